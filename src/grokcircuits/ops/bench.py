"""The GPU kit: one process that measures the training engine on a GPU (`make gpu-check`).

    python -m grokcircuits bench                   # on a GPU: writes results/bench/latest.json
    python -m grokcircuits bench --smoke           # the same code path at toy sizes, on the CPU
    python -m grokcircuits bench --cpu             # the CPU benchmark (cpu_bench.py): results/bench/cpu.json
    python -m grokcircuits bench --parts resume,profile_runs   # some parts only (the rates are always measured)

Plain Python (torch and numpy only). In order, each part guarded (a failure is recorded and the
rest still runs) and all under one wall-clock budget (a part that would not fit is skipped):

1. the device's bf16 matrix-multiply rate and copy bandwidth (the ceilings the floors below use);
2. the engine's compiled/captured bf16 step of one GPU-profile run for a few hundred steps (its loss
   must stay finite and fall), and its time per step: the ensemble of M = 1;
3. ensembles of M = 5 and 15 runs of the GPU profile: model-steps per second;
4. the recursive model at the paper's width (1536, 16 prefix slots): a plain eager step against ours;
5. the reference setup of the original code (Hugging Face GPT2LMHeadModel, 4 layers, width 768,
   fp16 autocast + GradScaler, eager AdamW; only where `transformers` is importable) against our
   engine on the same shape;
6. an interrupted-and-resumed run against an uninterrupted one, on the device;
7. K runs of the GPU profile as one ensemble against one run, through the whole training path.

Steps are timed after warm-up (process start, data building, compiles and evaluations are not in
the figures): the median of timed windows, with the device synchronised around each. Each timed
configuration also gets its floor, its matrix FLOPs per step over the measured bf16 rate, and how
many times the floor it took. The JSON is rewritten after every part, so a killed process leaves
what it had measured.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from grokcircuits.config import check_choice, ConfigError, GPU, ModelConfig, PAPER, RunConfig, TINY
from grokcircuits.science.runs import device_name
from grokcircuits.ops.timing import sync_device, members, timed, with_train
from grokcircuits.ops.sweep import trm_traffic_bytes
from grokcircuits.training import build_step, model_flops_per_step, train_group, training_loss
from grokcircuits.ops import cpu_bench
from grokcircuits.science.losses import supervised_mask
from grokcircuits.science.models.trm import TRM
from grokcircuits.store import load_tensors, Store

PAPER_VOCAB = 2206   # 2000 entities + 200 relations + 6 special tokens
TARGETS = {   # what the engine is built to reach on one H100 (measured by this kit, never by a timed test)
    "ensemble of 15 at least 10x the model-steps/s of one run": ("ensemble_speedup_largest", ">=", 10.0),
    "GPT engine at least 8x the reference": ("gpt_speedup", ">=", 8.0),
    "recursive model at the paper's width at most 50 ms a step": ("trm_paper_engine_ms_per_step", "<=", 50.0),
}


# --- timing -------------------------------------------------------------------------------------
def matmul_tflops(device, n: int, dtype=torch.bfloat16) -> float:
    """The device's matrix-multiply rate (TFLOP/s) on random n x n x n products."""
    if device.type == "cpu":
        dtype = torch.float32   # CPU bf16 matmuls are emulated: fp32 is the CPU's rate
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    seconds = timed(lambda: a @ b, 10, 3, device)
    return 2 * n ** 3 / seconds / 1e12


def copy_tb_per_s(device, n_bytes: int) -> float:
    """Device-memory bandwidth (TB/s, bytes read plus bytes written) of a large copy."""
    src = torch.randn(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), 10, 3, device)
    return 2 * n_bytes / seconds / 1e12


# --- the steps being compared ---------------------------------------------------------------------
def _random_batch(device, batch: int, vocab: int):
    inputs = torch.randint(0, vocab - 6, (batch, 5), device=device)                # (B, 5)
    labels = torch.randint(0, vocab - 6, (batch, 5), device=device)                # (B, 5)
    return inputs, labels


def reference_gpt_step(device, cfg: ModelConfig, batch: int, vocab: int = PAPER_VOCAB):
    """The original code's setup: HF GPT2LMHeadModel, fp16 autocast + GradScaler, eager AdamW."""
    from transformers import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=8, n_embd=cfg.width, n_layer=cfg.layers,
                                       n_head=cfg.heads)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    cuda = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=cuda)
    _, labels = _random_batch(device, batch, vocab)

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            loss = model(input_ids=labels, labels=labels).loss
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    return step


def plain_trm_step(device, cfg: ModelConfig, batch: int, vocab: int):
    """The recursive model as written, eager: the authors' bf16 numerics on the GPU, torch's AdamW."""
    model = TRM(cfg, vocab, compute_dtype=torch.bfloat16 if device.type == "cuda" else torch.float32).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-5, betas=(0.9, 0.95), weight_decay=1.0)
    inputs, labels = _random_batch(device, batch, vocab)
    mask = supervised_mask(labels, pad=vocab - 6)                                  # (B, 5)
    loss_fn = training_loss(model, "stablemax", 0.5, compiled=False)

    def step():
        loss_fn(inputs, labels, mask).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def engine_step(configs: list[RunConfig], device):
    """The engine's compiled and CUDA-graph-captured step (eager on the CPU) of these configurations
    trained as one ensemble, on their own data; calling it runs one step of every member."""
    return build_step(configs, device)


def last_loss(step) -> float:
    """The summed member losses of the step just run (reads the device; only between timed windows)."""
    b = step.ensemble.tensors.batches
    return float(b.losses[int(b.position) - 1].sum())


# --- sizes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """What the kit measures at: the GPU sizes, or toy sizes that check the code path anywhere."""
    profile: RunConfig           # one run of the GPU profile: the ensembles' member
    paper_trm: RunConfig         # the recursive model at the paper's width, at the kit's batch
    paper_gpt: RunConfig         # the standard transformer of the paper (the reference's shape)
    ensembles: tuple[int, ...]   # ensemble sizes M
    k: int                       # runs of the whole-path comparison
    steps: int                   # steps per timed window
    warmup: int
    captured_steps: int          # steps of the captured-step check
    run_steps: int               # steps of the whole-path runs (resume, one against K)
    matmul_n: int
    copy_bytes: int


FULL = Sizes(profile=GPU.run("trm", "natural", 0, snapshots=0), paper_trm=PAPER.run("trm"), paper_gpt=PAPER.run("gpt"),
             ensembles=(1, 5, 15), k=5, steps=20, warmup=5, captured_steps=300, run_steps=600, matmul_n=8192,
             copy_bytes=2 ** 30)


def smoke_sizes() -> Sizes:
    """Toy sizes with the same structure (a prefix, recursion, a GPT) for a CPU in seconds."""
    profile = TINY.run("trm", "natural", 0, snapshots=0, batch_size=16, eval_size=50)
    profile = replace(profile, model=replace(profile.model, width=32, h_cycles=1, l_cycles=1))
    data = replace(PAPER.data, n_entities=80, n_relations=20, relations_per_entity=4, probe_size=100)
    paper_trm = RunConfig(data=data, model=ModelConfig(width=32, prefix_slots=4, token_multiple=16, h_cycles=1, l_cycles=2),
                          train=replace(PAPER.trm_train, batch_size=16, eval_size=100))
    paper_gpt = RunConfig(data=data, model=ModelConfig(architecture="gpt", width=32, layers=1, heads=2),
                          train=replace(PAPER.gpt_train, batch_size=16, eval_size=100))
    return Sizes(profile=profile, paper_trm=paper_trm, paper_gpt=paper_gpt, ensembles=(1, 2, 3), k=2, steps=2, warmup=1,
                 captured_steps=6, run_steps=6, matmul_n=128, copy_bytes=2 ** 20)


def vocab_of(config: RunConfig) -> int:
    d = config.data
    return d.n_entities + d.n_relations + d.n_special_tokens


# --- the kit -----------------------------------------------------------------------------------------
REQUIRED = ("gpt_reference_steps_per_s", "gpt_engine_steps_per_s", "trm_paper_plain_ms_per_step",
            "trm_paper_engine_ms_per_step", "ensemble_model_steps_per_s", "gpu_profile_one_run_s",
            "gpu_profile_k_runs_s")


class Kit:
    """Runs the parts in order within one budget; a part that raises is recorded, the rest still run."""

    def __init__(self, sizes: Sizes, device, budget_seconds: float, out_path: Path, smoke: bool,
                 earlier: dict | None = None):
        """`earlier`: the results of an earlier call on the same device, which the parts run now update."""
        self.sizes, self.device, self.out_path, self.smoke = sizes, device, out_path, smoke
        self.deadline = time.time() + budget_seconds
        self.results: dict = {"device": device_name(device), "torch": torch.__version__, "smoke": smoke,
                              "budget_seconds": budget_seconds, "batch": sizes.paper_trm.train.batch_size,
                              "k": sizes.k, **{key: None for key in REQUIRED}, "parts": {}, "floors": {}}
        if earlier and earlier.get("device") == self.results["device"] and earlier.get("smoke") == smoke:
            self.results = {**earlier, **{k: v for k, v in self.results.items() if k not in (*REQUIRED, "parts", "floors")}}

    def left(self) -> float:
        return self.deadline - time.time()

    def part(self, name: str, needs_seconds: float, fn) -> None:
        status = {"status": "skipped", "reason": f"{self.left():.0f} s of the budget left; it needs about {needs_seconds:.0f} s"}
        if self.left() >= needs_seconds:
            t = time.time()
            try:
                self.results.update(fn(self))
                status = {"status": "ok"}
            except Exception as e:   # noqa: BLE001 (one failure must not stop the rest)
                status = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                          "traceback": traceback.format_exc()[-2000:]}
            status["seconds"] = round(time.time() - t, 1)
            gc.collect()   # the part's steps, CUDA graphs and their memory pools go before the next part
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.results["parts"][name] = status
        print(f"[{name}] {json.dumps(status)[:400]}", flush=True)
        self.write()

    def floor(self, name: str, configs: list[RunConfig], measured_s: float) -> None:
        """The configuration's floor, its matrix FLOPs at the measured bf16 rate, and how many times the
        floor the step took; for the recursive model also its estimated activation traffic at the
        measured copy bandwidth (an estimate of unfused traffic, not a bound)."""
        flops = sum(model_flops_per_step(c) for c in configs)
        entry = {"runs": len(configs), "tflop_per_step": flops / 1e12, "measured_ms": 1e3 * measured_s}
        rate = self.results.get("bf16_matmul_tflops")
        if rate:
            entry.update(floor_ms=1e3 * flops / (rate * 1e12), times_floor=measured_s * rate * 1e12 / flops)
        bandwidth = self.results.get("copy_tb_per_s")
        if bandwidth and configs[0].model.architecture == "trm":
            entry["traffic_ms_estimate"] = 1e3 * sum(trm_traffic_bytes(c) for c in configs) / (bandwidth * 1e12)
        self.results["floors"][name] = entry

    def write(self) -> None:
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.out_path.write_text(json.dumps(self.results, indent=1, default=str))

    def time(self, step) -> float:
        return timed(step, self.sizes.steps, self.sizes.warmup, self.device)


def part_matmul(kit: Kit) -> dict:
    return {"bf16_matmul_tflops": matmul_tflops(kit.device, kit.sizes.matmul_n),
            "copy_tb_per_s": copy_tb_per_s(kit.device, kit.sizes.copy_bytes)}


def part_captured_step(kit: Kit) -> dict:
    """A few hundred steps of the engine's captured step of one GPU-profile run: the loss must stay
    finite and fall. Also its time per step (the ensemble of one)."""
    step = engine_step([kit.sizes.profile], kit.device)
    losses, n = [], kit.sizes.captured_steps
    sync_device(kit.device)
    start = time.perf_counter()
    for i in range(n):
        step()
        if i % 50 == 0 or i == n - 1:
            losses.append(last_loss(step))
    seconds = kit.time(step)
    kit.floor("ensemble_1", [kit.sizes.profile], seconds)
    return {"captured_step": {"steps": n, "mode": step.mode, "compile_seconds": round(step.compile_seconds, 1),
                              "wall_seconds": round(time.perf_counter() - start, 2), "losses": losses,
                              "finite": all(math.isfinite(x) for x in losses), "loss_fell": losses[-1] < losses[0]},
            "ensemble_model_steps_per_s": {"1": 1 / seconds}}


def part_ensembles(kit: Kit) -> dict:
    """Model-steps per second of ensembles of M GPU-profile runs (M = 1 from the captured step)."""
    rates = dict(kit.results.get("ensemble_model_steps_per_s") or {})
    for m in kit.sizes.ensembles:
        if str(m) in rates:
            continue
        configs = members(kit.sizes.profile, m)
        seconds = kit.time(engine_step(configs, kit.device))
        rates[str(m)] = m / seconds
        kit.floor(f"ensemble_{m}", configs, seconds)
        kit.results["ensemble_model_steps_per_s"] = rates   # kept if a larger M fails
    largest = str(max(kit.sizes.ensembles))
    return {"ensemble_model_steps_per_s": rates, "ensemble_speedup_largest": rates[largest] / rates["1"],
            "ensemble_largest": int(largest)}


def part_trm_paper(kit: Kit) -> dict:
    """The recursive model at the paper's width: a plain eager step against the engine's."""
    run = kit.sizes.paper_trm
    plain = kit.time(plain_trm_step(kit.device, run.model, run.train.batch_size, vocab_of(run)))
    kit.floor("trm_paper_plain", [run], plain)
    kit.results["trm_paper_plain_ms_per_step"] = 1e3 * plain
    if kit.device.type == "cuda":
        torch.cuda.empty_cache()
    ours = kit.time(engine_step([run], kit.device))
    kit.floor("trm_paper_engine", [run], ours)
    return {"trm_paper_plain_ms_per_step": 1e3 * plain, "trm_paper_engine_ms_per_step": 1e3 * ours,
            "trm_speedup": plain / ours}


def part_gpt(kit: Kit) -> dict:
    """The original code's setup (if `transformers` is importable) against the engine, same shape."""
    run = kit.sizes.paper_gpt
    out: dict = {"gpt_reference_steps_per_s": None}
    try:
        reference = kit.time(reference_gpt_step(kit.device, run.model, run.train.batch_size, vocab_of(run)))
        out["gpt_reference_steps_per_s"] = 1 / reference
        kit.floor("gpt_reference", [run], reference)
    except ImportError:
        out["gpt_reference_note"] = "transformers is not importable here: no reference measurement"
    kit.results.update(out)
    ours = kit.time(engine_step([run], kit.device))
    kit.floor("gpt_engine", [run], ours)
    out["gpt_engine_steps_per_s"] = 1 / ours
    if out["gpt_reference_steps_per_s"]:
        out["gpt_speedup"] = out["gpt_engine_steps_per_s"] / out["gpt_reference_steps_per_s"]
    return out


def _train(configs: list[RunConfig], device, root: Path | None = None, stop_after: int | None = None):
    """Train through the whole path (data, evaluations, records) into a fresh store; returns it."""
    store = Store(root or tempfile.mkdtemp(prefix="grokcircuits-kit-"))
    train_group(configs, store, device=device, stop_after=stop_after)
    return store


def _measured(curves: list[dict]) -> list[dict]:
    """What a curve measured (its wall-clock times left out)."""
    return [{k: v for k, v in e.items() if k != "wall_seconds"} for e in curves]


def part_resume(kit: Kit) -> dict:
    """One run straight through against the same run interrupted half-way and resumed from its
    checkpoint: the curves and the final EMA weights agree bit for bit where the kernels are
    deterministic (atomic adds in the backward pass may leave rounding-level differences)."""
    n = kit.sizes.run_steps
    run = with_train(kit.sizes.profile, steps=n, eval_every=n // 2, checkpoint_every=n)
    straight = _train([run], kit.device)
    resumed = _train([run], kit.device, stop_after=n // 2)
    interrupted_record = resumed.record(run.key())
    _train([run], kit.device, root=resumed.root)
    wa, wb = (load_tensors(s.checkpoint_dir(run.key()) / "final.pt") for s in (straight, resumed))
    diff = max(float((wa[name].float() - wb[name].float()).abs().max()) for name in wa)
    return {"resume": {"steps": n, "interrupted_at": interrupted_record["steps"],
                       "interrupted_status": interrupted_record["status"], "max_abs_weight_difference": diff,
                       "weights_equal": diff == 0.0,
                       "curves_equal": _measured(straight.curves(run.key())) == _measured(resumed.curves(run.key()))}}


def _train_seconds(record: dict) -> float:
    """A run's time in steps alone (no compile, no evaluations): steps over its steps per second."""
    return record["steps"] / record["steps_per_second"]


def part_profile_runs(kit: Kit) -> dict:
    """K runs of the GPU profile as one ensemble against one run, through the whole training path."""
    n = kit.sizes.run_steps
    runs = [with_train(c, steps=n, eval_every=n, checkpoint_every=n) for c in members(kit.sizes.profile, kit.sizes.k)]
    one = _train(runs[:1], kit.device).record(runs[0].key())
    many = _train(runs, kit.device)
    one_s = _train_seconds(one)
    k_s = max(_train_seconds(many.record(c.key())) for c in runs)
    return {"gpu_profile_steps": n, "gpu_profile_one_run_s": one_s, "gpu_profile_k_runs_s": k_s,
            "gpu_profile_k_speedup": kit.sizes.k * one_s / k_s}


PARTS = {   # name -> (function, seconds it needs at least on the GPU: its compiles and its timing), by priority
    "matmul": (part_matmul, 5),
    "captured_step": (part_captured_step, 50),
    "ensembles": (part_ensembles, 80),
    "trm_paper": (part_trm_paper, 55),
    "gpt": (part_gpt, 40),
    "resume": (part_resume, 40),
    "profile_runs": (part_profile_runs, 30),
}


def judge_targets(results: dict) -> dict:
    """Each target met (True), missed (False) or not measured (None)."""
    out = {}
    for name, (key, op, bound) in TARGETS.items():
        v = results.get(key)
        out[name] = None if v is None else (v >= bound if op == ">=" else v <= bound)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grokcircuits bench")
    ap.add_argument("--smoke", action="store_true", help="toy sizes and few steps: the same code path on the CPU")
    ap.add_argument("--cpu", action="store_true", help="the CPU benchmark instead (cpu_bench.py): eager vs compiled, "
                    "1 vs 2 threads, ensembles of 1/3/5 at the cpu profile, against a same-shape GEMM; writes "
                    "results/bench/cpu.json")
    ap.add_argument("--budget-seconds", type=float, default=210.0, help="wall-clock budget of all parts together; "
                    "a part that would not fit in what is left is skipped")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, run in this order: {','.join(PARTS)}; "
                    "naming some updates the figures already in --out (from the same device), keeping the others")
    ap.add_argument("--out", default=None, help="default results/bench/latest.json (smoke: results/bench/smoke.json)")
    args = ap.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    try:
        for p in parts:
            check_choice("parts", p, list(PARTS))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.cpu:
        out = Path(args.out or f"results/bench/{'cpu_smoke' if args.smoke else 'cpu'}.json")
        results = cpu_bench.run(out, smoke=args.smoke, budget_seconds=args.budget_seconds if args.budget_seconds != 210.0
                                else cpu_bench.DEFAULT_BUDGET)
        print(json.dumps({k: v for k, v in results.items() if k != "steps"}, indent=1))
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if device.type != "cuda" and not args.smoke:
        print("no GPU: the kit measures GPU throughput; use --smoke to check the code path on a CPU")
        return 2
    out = Path(args.out or f"results/bench/{'smoke' if args.smoke else 'latest'}.json")
    earlier = json.loads(out.read_text()) if set(parts) != set(PARTS) and out.exists() else None
    kit = Kit(smoke_sizes() if args.smoke else FULL, device, args.budget_seconds, out, args.smoke, earlier)
    if "matmul" not in parts and not args.smoke:   # every floor needs the measured rates
        parts.insert(0, "matmul")
    for name in PARTS:
        if name in parts:
            fn, needs = PARTS[name]
            kit.part(name, 0 if args.smoke else needs, fn)
    kit.results["targets"] = None if args.smoke else judge_targets(kit.results)
    kit.results["seconds"] = round(args.budget_seconds - kit.left(), 1)
    kit.write()
    print(json.dumps({k: v for k, v in kit.results.items() if k not in ("parts", "floors")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
