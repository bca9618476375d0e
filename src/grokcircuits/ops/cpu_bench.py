"""The CPU benchmark: how close the engine's training step comes to what this CPU can do.

    python -m grokcircuits bench --cpu                 # writes results/bench/cpu.json (about 10 minutes)
    python -m grokcircuits bench --cpu --smoke         # toy sizes, eager only: the code path in seconds

For the recursive model and the standard transformer at the `cpu` profile's sizes it times the
engine's step (`build_step`, the step training uses) eager and compiled (torch.compile, where
inductor works; the reason is recorded where it falls back), at 1 and 2 threads, as ensembles of 1,
3 and 5 runs; and beside every figure the measured peak of a same-shape GEMM on the same threads
(the step's largest matmul, batched over the ensemble: the rate the step's arithmetic could reach).
A step's share of that peak is its matrix FLOPs per second over the peak. Run it on an otherwise idle
machine: a busy core beside it changes the 2-thread figures many times over.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from grokcircuits.ops.timing import members, timed
from grokcircuits.config import RunConfig, get_profile
from grokcircuits.science.models.trm import SEQ_LEN, swiglu_hidden
from grokcircuits.science.runs import device_name
from grokcircuits.training import build_step, model_flops_per_step

CPU = torch.device("cpu")
GATE = 0.4          # the recursive model's step must reach this share of the same-shape GEMM peak
ENSEMBLES = (1, 3, 5)
THREADS = (1, 2)
MODES = ("eager", "compiled")
DEFAULT_BUDGET = 1200.0   # seconds: about 10 minutes are needed on a 2-core AVX-512 machine


def cpu_model() -> str:
    """The processor's model name (Linux), or its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def largest_matmul(config: RunConfig) -> tuple[int, int, int]:
    """(rows, inner, cols) of the step's largest matmul: the recursive model's channel gate/up
    projection, the standard transformer's MLP up-projection."""
    m, B = config.model, config.train.batch_size
    if m.architecture == "trm":
        S = m.prefix_slots + SEQ_LEN
        return S * B, m.width, 2 * swiglu_hidden(m.width, m.expansion, m.token_multiple)
    return (SEQ_LEN - 1) * B, m.width, 4 * m.width


def gemm_peak_gflops(shape: tuple[int, int, int], m: int, steps: int = 50) -> float:
    """GFLOP/s of a float32 batched matmul (m, rows, inner) @ (m, inner, cols) on the current threads."""
    rows, inner, cols = shape
    a, b = torch.randn(m, rows, inner), torch.randn(m, inner, cols)
    seconds = timed(lambda: torch.bmm(a, b), steps, 5, CPU, windows=5)
    return 2 * m * rows * inner * cols / seconds / 1e9


def measure_step(configs: list[RunConfig], compiled: bool, threads: tuple[int, ...], steps: int, warmup: int) -> dict:
    """One ensemble's step in one mode, timed at each thread count, with its GEMM peak there."""
    notes: list[str] = []
    torch.set_num_threads(max(threads))
    step = build_step(configs, "cpu", compiled=compiled, graph=False, log=notes.append)
    flops = sum(model_flops_per_step(c) for c in configs)
    out = {"mode": step.mode, "compile_seconds": round(step.compile_seconds, 1), "fallback": notes or None,
           "gflop_per_step": round(flops / 1e9, 3), "threads": {}}
    for t in threads:
        torch.set_num_threads(t)
        seconds = timed(step, steps, warmup, CPU)
        peak = gemm_peak_gflops(largest_matmul(configs[0]), len(configs))
        achieved = flops / seconds / 1e9
        out["threads"][str(t)] = {"model_steps_per_s": round(len(configs) / seconds, 2),
                                  "ensemble_steps_per_s": round(1 / seconds, 2), "gflops": round(achieved, 1),
                                  "gemm_peak_gflops": round(peak, 1), "share_of_peak": round(achieved / peak, 3)}
    return out


def best(entries: dict) -> dict:
    """The fastest (model-steps/s) of an architecture's measured settings."""
    rows = [{"mode": mode, "members": int(m), "threads": int(t), **fig}
            for mode, by_m in entries.items() for m, e in by_m.items() for t, fig in e["threads"].items()]
    return max(rows, key=lambda r: r["model_steps_per_s"]) if rows else {}


def run(out_path: Path, smoke: bool = False, budget_seconds: float = DEFAULT_BUDGET, log=print) -> dict:
    """Measure everything within the budget (a setting that would start past it is skipped) and write
    the JSON after every setting, so an interrupted benchmark keeps what it measured."""
    profile = get_profile("tiny" if smoke else "cpu")
    ensembles, threads, modes = ((1, 2), (1,), ("eager",)) if smoke else (ENSEMBLES, THREADS, MODES)
    steps, warmup = (2, 1) if smoke else (10, 5)
    deadline = time.time() + budget_seconds
    before = torch.get_num_threads()
    results: dict = {"device": device_name(torch.device("cpu")), "cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "torch": torch.__version__, "profile": profile.name, "smoke": smoke, "gate": GATE,
                     "big_gemm_gflops": {}, "steps": {}, "skipped": []}
    try:
        for t in threads:
            torch.set_num_threads(t)
            results["big_gemm_gflops"][str(t)] = round(gemm_peak_gflops((1024, 1024, 1024), 1, steps=10), 1)
        for arch in ("trm", "gpt"):
            config = profile.run(arch, "natural", 0)
            for mode in modes:
                for m in ensembles:
                    if time.time() > deadline:
                        results["skipped"].append(f"{arch} {mode} x{m}: past the budget")
                        continue
                    entry = measure_step(members(config, m), mode == "compiled", threads, steps, warmup)
                    results["steps"].setdefault(arch, {}).setdefault(mode, {})[str(m)] = entry
                    log(f"{arch} {mode} x{m}: " + json.dumps(entry["threads"]))
                    write(results, out_path)
        summarize(results)
    finally:
        torch.set_num_threads(before)
    write(results, out_path)
    return results


def summarize(results: dict) -> dict:
    """The fastest setting of each architecture, the recursive model's best share of its GEMM peak,
    whether that clears the gate, and the mode the fastest setting ran in (the CPU default)."""
    results["fastest"] = {arch: best(e) for arch, e in results["steps"].items()}
    shares = [fig["share_of_peak"] for by_m in results["steps"].get("trm", {}).values() for e in by_m.values()
              for fig in e["threads"].values()]
    results["trm_best_share_of_peak"] = max(shares, default=None)
    results["gate_met"] = None if not shares else max(shares) >= results["gate"]
    results["default_mode"] = results["fastest"].get("trm", {}).get("mode")
    return results


def write(results: dict, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))
