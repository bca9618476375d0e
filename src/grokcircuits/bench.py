"""Training throughput, measured side by side in one process on one device (`make bench`).

    python -m grokcircuits.bench            # on a GPU: writes results/bench/latest.json
    python -m grokcircuits.bench --smoke    # a few steps of toy sizes, any device (checks the code path)

Measures steps per second at batch 512 of: the reference setup of the original code (a Hugging Face
GPT2LMHeadModel with fp16 autocast, GradScaler and eager AdamW, if `transformers` is installed); our
engine's step on the same GPT shape; a plain eager step of the recursive model at the paper's width
and our engine's compiled step on it; and our engine at the GPU profile, one run alone against K
runs sharing the device. Each figure is the median of timed windows after warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import ModelConfig, get_profile
from .engine import device_name, training_loss
from .losses import supervised_mask
from .models import build_model

VOCAB = 2206


def _timed(step, steps: int, warmup: int, device) -> float:
    """Seconds per step: median over 3 windows of `steps` steps after `warmup` steps."""
    for _ in range(warmup):
        step()
    windows = []
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        windows.append((time.perf_counter() - t) / steps)
    return sorted(windows)[1]


def _batch(device, batch: int, vocab: int = VOCAB):
    inputs = torch.randint(0, vocab - 6, (batch, 5), device=device)                # (B, 5)
    labels = torch.randint(0, vocab - 6, (batch, 5), device=device)                # (B, 5)
    return inputs, labels


def reference_gpt_step(device, cfg: ModelConfig, batch: int):
    """The original code's setup: HF GPT2LMHeadModel, fp16 autocast + GradScaler, eager AdamW."""
    from transformers import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=8, n_embd=cfg.width, n_layer=cfg.layers,
                                       n_head=cfg.heads)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    _, labels = _batch(device, batch)

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            loss = model(input_ids=labels, labels=labels).loss
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    return step


def engine_step(device, cfg: ModelConfig, batch: int, compiled: bool, loss_kind: str):
    """Our step: data on the device, bf16 autocast, fused AdamW, the engine's (optionally compiled) loss."""
    model = build_model(cfg, VOCAB).to(device)
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=fused)
    inputs, labels = _batch(device, batch)
    mask = supervised_mask(labels, pad=VOCAB - 6)                                  # (B, 5)
    fwd = training_loss(model, loss_kind, 0.5 if cfg.architecture == "trm" else 0.0, compiled)
    amp = torch.bfloat16 if device.type == "cuda" else None

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = fwd(inputs, labels, mask)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def _flops_per_step(cfg: ModelConfig, batch: int) -> float:
    """Matrix FLOPs of one recursive-model step: 2 per multiply-add, backward = 2x forward on the
    applications with gradient (the last H-cycle) and none on the others."""
    from .models.trm import swiglu_hidden
    S, D = cfg.prefix_slots + 5, cfg.width
    ht, hc = swiglu_hidden(S, cfg.expansion, cfg.token_multiple), swiglu_hidden(D, cfg.expansion, cfg.token_multiple)
    per_block = 2 * batch * (D * 3 * S * ht + S * 3 * D * hc)
    apps = cfg.h_cycles * (cfg.l_cycles + 1) * cfg.blocks
    grad_apps = (cfg.l_cycles + 1) * cfg.blocks
    return per_block * (apps + 2 * grad_apps) + 2 * batch * 5 * D * VOCAB * 3


def profile_runs(k: int, steps: int) -> float:
    """Wall seconds for k GPU-profile runs of `steps` steps each, as k processes sharing the device."""
    code = ("import sys, tempfile; from grokcircuits.config import get_profile; from grokcircuits.engine import train; "
            "from grokcircuits.store import Store; p = get_profile('gpu'); "
            f"train(p.run('trm', 'natural', int(sys.argv[1]), steps={steps}, eval_every={steps}, snapshots=0), "
            "Store(tempfile.mkdtemp()))")
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)]) for i in range(k)]
    if any(p.wait() for p in procs):
        raise RuntimeError("a GPU-profile benchmark run failed")
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grokcircuits.bench")
    ap.add_argument("--smoke", action="store_true", help="toy sizes and few steps: checks the code path anywhere")
    ap.add_argument("--k", type=int, default=5, help="runs sharing the device in the last measurement")
    ap.add_argument("--out", default=None, help="default results/bench/latest.json (smoke: results/bench/smoke.json)")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        print("no GPU: the benchmark measures GPU throughput; use --smoke to check the code path on a CPU")
        return 2
    batch, steps, warmup = (16, 2, 1) if args.smoke else (512, 30, 10)
    paper = get_profile("paper")
    gpt_cfg = paper.gpt
    trm_cfg = paper.trm if not args.smoke else ModelConfig(width=64, prefix_slots=4, token_multiple=16)
    out: dict = {"device": device_name(device), "torch": torch.__version__, "batch": batch, "smoke": args.smoke}
    compiled = device.type == "cuda"
    try:
        out["gpt_reference_steps_per_s"] = 1 / _timed(reference_gpt_step(device, gpt_cfg, batch), steps, warmup, device)
    except ImportError:
        out["gpt_reference_steps_per_s"] = None   # transformers not installed
    out["gpt_engine_steps_per_s"] = 1 / _timed(engine_step(device, gpt_cfg, batch, compiled, "softmax"), steps, warmup, device)
    out["trm_paper_plain_ms_per_step"] = 1e3 * _timed(engine_step(device, trm_cfg, batch, False, "stablemax"), steps, warmup, device)
    out["trm_paper_engine_ms_per_step"] = 1e3 * _timed(engine_step(device, trm_cfg, batch, compiled, "stablemax"), steps, warmup, device)
    out["trm_paper_tflop_per_step"] = _flops_per_step(trm_cfg, batch) / 1e12
    if out["gpt_reference_steps_per_s"]:
        out["gpt_speedup"] = out["gpt_engine_steps_per_s"] / out["gpt_reference_steps_per_s"]
    out["trm_speedup"] = out["trm_paper_plain_ms_per_step"] / out["trm_paper_engine_ms_per_step"]
    profile_steps = 20 if args.smoke else 2000
    out["k"] = args.k
    out["gpu_profile_steps"] = profile_steps
    out["gpu_profile_one_run_s"] = profile_runs(1, profile_steps) if not args.smoke else None
    out["gpu_profile_k_runs_s"] = profile_runs(args.k, profile_steps) if not args.smoke else None
    path = Path(args.out or f"results/bench/{'smoke' if args.smoke else 'latest'}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
