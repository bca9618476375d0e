"""A run's record: its configuration, provenance, cost and where it stands (complete or incomplete)."""
from __future__ import annotations

import datetime as _dt

import torch

from grokcircuits.config import SCIENCE_VERSION, RunConfig
from grokcircuits.science.runs import device_name
from grokcircuits.store import code_version
from grokcircuits.training.state import Progress


def make_record(config: RunConfig, progress: Progress, complete: bool, device: torch.device, parameters: int,
                sizes: dict, steps_per_epoch: int, step_mode: str) -> dict:
    """`steps_per_second` counts this run's steps over the time its ensemble trained (evaluation and
    compilation excluded); `gpu_seconds` is its share of the device: the ensemble's training time over
    the runs training in it, plus its own evaluations, plus its share of the compilation (0 off a GPU);
    `device_seconds` is that share on any device."""
    p = progress
    return {
        "key": config.key(), "status": "complete" if complete else "incomplete", "config": config.to_dict(),
        "code_version": code_version(), "science_version": SCIENCE_VERSION,
        "device": device_name(device), "device_type": device.type, "torch_version": torch.__version__,
        "steps": p.step, "epochs": round(p.step / steps_per_epoch, 2), "wall_seconds": round(p.wall_seconds, 2),
        "eval_seconds": round(p.eval_seconds, 2), "compile_seconds": round(p.compile_seconds, 2),
        "steps_per_second": round(p.step / max(p.train_seconds, 1e-9), 2),
        "gpu_seconds": round(p.gpu_seconds, 2) if device.type == "cuda" else 0.0,
        "device_seconds": round(p.gpu_seconds, 2),   # the same share on any device (CPU-seconds on a CPU)
        "ensemble_size": p.ensemble_size, "step_mode": step_mode, "parameters": parameters, "dataset": sizes,
        "snapshot_steps": sorted(p.snapshot_steps),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
