"""What both benchmarks share (`bench`, the GPU kit; `cpu_bench`, the CPU step): timing a step and
making an ensemble of one configuration."""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from grokcircuits.config import RunConfig


def sync_device(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, steps: int, warmup: int, device, windows: int = 3) -> float:
    """Seconds per step: the median of `windows` windows of `steps` steps after `warmup` steps."""
    for _ in range(warmup):
        step()
    out = []
    for _ in range(windows):
        sync_device(device)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync_device(device)
        out.append((time.perf_counter() - t) / steps)
    return sorted(out)[len(out) // 2]


def with_train(config: RunConfig, **changes) -> RunConfig:
    return replace(config, train=replace(config.train, **changes))


def members(config: RunConfig, m: int) -> list[RunConfig]:
    """m runs of one configuration, differing by seed: an ensemble of one shape."""
    return [with_train(config, seed=i) for i in range(m)]
