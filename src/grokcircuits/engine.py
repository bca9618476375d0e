"""The training engine: one run from configuration to stored curves and EMA weights.

Data lives on the device; the step is compiled on the GPU (torch.compile) and runs under bf16
autocast there; AdamW (fused on the GPU) with linear warm-up then a constant rate; sign-SGD for
the learned prefix vector; an EMA of the weights that every evaluation and checkpoint uses.
A run is cached by the hash of its configuration, checkpointed atomically, and resumed from
its last checkpoint after an interruption.
"""
from __future__ import annotations

import copy
import datetime as _dt
import math
import os
import platform
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig, RunConfig, TransferConfig
from .data import answer_slot, build_dataset, encode
from .losses import exact_match, sequence_loss, supervised_mask
from .models import build_model, count_parameters
from .probes import EncodedSet, path_summary
from .store import Store, code_version, load_tensors, save_tensors
from .transfer_data import build_transfer

TRAINING_SETS = ("id_atomic", "ood_atomic", "train_inferred")   # "training accuracy" is their mean EM


def default_device() -> torch.device:
    return torch.device(os.environ.get("GROKCIRCUITS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


@lru_cache(maxsize=8)
def dataset(config: DataConfig):
    return build_dataset(config)


@lru_cache(maxsize=8)
def transfer_dataset(data_config: DataConfig, config: TransferConfig):
    return build_transfer(dataset(data_config), config)


def examples_for(config: RunConfig) -> tuple:
    """(vocab, training examples (N, 5), probe sets {name: (n, 5)}, dataset sizes)."""
    data = dataset(config.data)
    if config.transfer is None:
        return data.vocab, data.train_examples(), data.probe_sets(), data.sizes()
    t = transfer_dataset(config.data, config.transfer)
    return t.vocab, t.train_examples(), t.probe_sets(), t.sizes()


@dataclass
class Run:
    """A finished run in the store: its configuration, record and curves; weights on demand."""
    config: RunConfig
    record: dict
    curves: list[dict]
    store: Store

    @property
    def key(self) -> str:
        return self.config.key()

    def snapshot_steps(self) -> list[int]:
        return list(self.record.get("snapshot_steps", []))

    def has_weights(self) -> bool:
        return (self.store.checkpoint_dir(self.key) / "final.pt").exists()

    def load_model(self, step: int | None = None, device: torch.device | None = None):
        """The EMA weights at the end (step=None) or at one of `snapshot_steps()`."""
        device = device or default_device()
        vocab = dataset(self.config.data).vocab
        model = build_model(self.config.model, vocab.size).to(device)
        name = "final.pt" if step is None else f"snapshot_{step}.pt"
        path = self.store.checkpoint_dir(self.key) / name
        if not path.exists():
            raise FileNotFoundError(f"no weights at {path}: the run's checkpoints were not kept on this machine "
                                    f"(only curves and records are committed); retrain it to probe its weights")
        model.load_state_dict(load_tensors(path, device))
        return model.eval()


def load_run(config: RunConfig, store: Store) -> Run | None:
    key = config.key()
    if not store.has_run(key):
        return None
    return Run(config, store.record(key), store.curves(key), store)


def lr_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up over `warmup_steps`, then constant."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def _evaluate(model, probe_sets: dict[str, EncodedSet], with_lens: bool) -> dict:
    model.eval()
    out = {name: path_summary(model, s, with_lens) for name, s in probe_sets.items()}
    if all(n in out for n in TRAINING_SETS):
        out["training_accuracy"] = float(np.mean([out[n]["exact_match"] for n in TRAINING_SETS]))
    return out


def _snapshot_steps(steps: int, eval_every: int, snapshots: int) -> list[int]:
    evals = sorted(set(range(eval_every, steps, eval_every)) | {steps})
    if snapshots <= 0:
        return []
    idx = np.unique(np.round(np.linspace(0, len(evals) - 1, min(snapshots, len(evals)))).astype(int))
    return [evals[i] for i in idx]


def training_loss(model, loss_kind: str, halting_weight: float, compiled: bool):
    """The loss of one batch (inputs, labels, mask) -> scalar, optionally torch.compile'd: the
    sequence loss plus the weighted halting loss (BCE against "sequence fully correct")."""
    def loss_fn(x, y, m):
        logits, halt = model(x, y)                                                  # (B, 5, V), (B,)
        loss = sequence_loss(logits, y, m, loss_kind)
        if halt is not None and halting_weight > 0:
            correct = exact_match(logits.detach(), y, m).float()                    # (B,)
            loss = loss + halting_weight * F.binary_cross_entropy_with_logits(halt, correct)
        return loss
    return torch.compile(loss_fn) if compiled else loss_fn


def _adamw(params: list, tc, decay_all: bool, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on every weight (the recursive model, as the authors) or on matrices
    only (the standard transformer, as its reference trainer)."""
    decay = [p for p in params if decay_all or p.dim() >= 2]
    no_decay = [p for p in params if not (decay_all or p.dim() >= 2)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=tc.lr, betas=tc.betas, eps=1e-8, fused=fused)


def train(config: RunConfig, store: Store, device: torch.device | None = None, stop_after: int | None = None,
          log=None, concurrent_runs: int = 1) -> Run | None:
    """Train one run, or load it when the store already has it. `stop_after` stops (with a
    checkpoint) after that many steps, as an interruption would; the next call resumes."""
    config.validate()
    key = config.key()
    done = load_run(config, store)
    if done is not None:
        return done
    device = device or default_device()
    log = log or (lambda msg: None)
    tc, mc = config.train, config.model
    ckpt_dir = store.checkpoint_dir(key)

    # --- data on the device ---
    vocab, train_examples, probe_examples, sizes = examples_for(config)
    inputs_np, labels_np = encode(train_examples, vocab)                           # (N, 5) each
    inputs = torch.as_tensor(inputs_np, device=device)                             # (N, 5)
    labels = torch.as_tensor(labels_np, device=device)                             # (N, 5)
    slot = torch.as_tensor(answer_slot(train_examples), device=device) if tc.answer_only_loss else None
    mask = supervised_mask(labels, vocab.pad, slot)                                # (N, 5)
    probe_sets = {name: EncodedSet.build(ex, vocab, device, tc.answer_only_loss).take(tc.eval_size)
                  for name, ex in probe_examples.items()}
    n_train = inputs.shape[0]
    batch_size = min(tc.batch_size, n_train)
    steps_per_epoch = n_train // batch_size

    # --- model, EMA, optimisers ---
    torch.manual_seed(tc.seed)
    model = build_model(mc, vocab.size).to(device)
    if config.init_from is not None:
        parent = store.checkpoint_dir(config.init_from) / "final.pt"
        if not parent.exists():
            raise FileNotFoundError(f"init_from={config.init_from}: that run's final weights are not in {store.root}; train it first")
        model.load_state_dict(load_tensors(parent, device))
    ema = copy.deepcopy(model) if tc.ema_decay > 0 else model
    prefix = getattr(model, "prefix_vector", None)
    params = [p for n, p in model.named_parameters() if n != "prefix_vector"]
    optim = _adamw(params, tc, decay_all=mc.architecture == "trm", fused=device.type == "cuda")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[tc.precision] if device.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    step_loss = training_loss(model, tc.loss, tc.halting_loss_weight, compiled=tc.compile and device.type == "cuda")

    # --- resume ---
    step, wall, eval_seconds, curves, loss_sum, loss_count = 0, 0.0, 0.0, [], 0.0, 0
    last = ckpt_dir / "last.pt"
    if last.exists():
        state = load_tensors(last, device)
        model.load_state_dict(state["model"])
        if ema is not model:
            ema.load_state_dict(state["ema"])
        optim.load_state_dict(state["optim"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and len(state["rng_cuda"]):
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        step, wall, curves = state["step"], state["wall_seconds"], state["curves"]
        eval_seconds = state["eval_seconds"]
        loss_sum, loss_count = state["loss_sum"], state["loss_count"]
        log(f"resumed {key} at step {step}")

    def checkpoint():
        save_tensors(last, {
            "model": model.state_dict(), "ema": ema.state_dict() if ema is not model else {},
            "optim": optim.state_dict(), "scaler": scaler.state_dict() if scaler else {},
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8),
            "step": step, "wall_seconds": wall, "eval_seconds": eval_seconds,
            "curves": curves,
            "loss_sum": loss_sum, "loss_count": loss_count,
        })

    def evaluate_now():
        nonlocal loss_sum, loss_count
        entry = {"step": step, "wall_seconds": round(wall, 3),
                 "train_loss": loss_sum / loss_count if loss_count else None,
                 "lr": tc.lr * lr_factor(step - 1, tc.warmup_steps) if step else 0.0}
        entry.update(_evaluate(ema, probe_sets, with_lens=mc.architecture == "trm"))
        model.train()
        curves.append(entry)
        loss_sum, loss_count = 0.0, 0
        log(f"step {step}: " + ", ".join(f"{n} {entry[n]['exact_match']:.3f}" for n in probe_sets))

    snapshots = _snapshot_steps(tc.steps, tc.eval_every, tc.snapshots)
    model.train()
    if step == 0:
        t_eval = time.perf_counter()
        evaluate_now()
        eval_seconds += time.perf_counter() - t_eval
        wall += time.perf_counter() - t_eval
    ema_params = [p for p in ema.parameters()] if ema is not model else []
    model_params = [p for p in model.parameters()] if ema is not model else []
    epoch_perm, epoch_of_perm = None, -1
    t0 = time.perf_counter()
    running_loss = torch.zeros((), device=device)
    losses_since = 0
    while step < tc.steps:
        epoch, offset = divmod(step, steps_per_epoch)
        if epoch != epoch_of_perm:   # batch order depends only on (seed, epoch): resume-exact
            g = torch.Generator().manual_seed(tc.seed * 1_000_003 + epoch)
            epoch_perm, epoch_of_perm = torch.randperm(n_train, generator=g).to(device), epoch
        idx = epoch_perm[offset * batch_size:(offset + 1) * batch_size]             # (B,)
        factor = lr_factor(step, tc.warmup_steps)
        for group in optim.param_groups:
            group["lr"] = tc.lr * factor
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = step_loss(inputs[idx], labels[idx], mask[idx])
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optim)
        else:
            loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        if scaler is not None:
            scaler.step(optim)
            scaler.update()
        else:
            optim.step()
        if prefix is not None and prefix.grad is not None:   # sign-SGD with decoupled weight decay
            with torch.no_grad():
                lr = tc.prefix_lr * factor
                prefix.mul_(1 - lr * tc.prefix_weight_decay).add_(prefix.grad.sign(), alpha=-lr)
        optim.zero_grad(set_to_none=True)
        if prefix is not None:
            prefix.grad = None
        if ema_params:
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, model_params, 1 - tc.ema_decay)
        running_loss += loss.detach()
        losses_since += 1
        step += 1
        at_eval = step % tc.eval_every == 0 or step == tc.steps
        at_ckpt = step % tc.checkpoint_every == 0 or (stop_after is not None and step >= stop_after)
        if at_eval or at_ckpt:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall += time.perf_counter() - t0
            loss_sum += float(running_loss)
            loss_count += losses_since
            running_loss.zero_()
            losses_since = 0
            t0 = time.perf_counter()
            if at_eval:
                evaluate_now()
            if step in snapshots:
                save_tensors(ckpt_dir / f"snapshot_{step}.pt", ema.state_dict())
            eval_seconds += time.perf_counter() - t0
            wall += time.perf_counter() - t0
            if at_ckpt and step < tc.steps:
                checkpoint()
            t0 = time.perf_counter()
            if stop_after is not None and step >= stop_after and step < tc.steps:
                log(f"stopped at step {step} (checkpoint written)")
                return None

    save_tensors(ckpt_dir / "final.pt", ema.state_dict())
    is_gpu = device.type == "cuda"
    record = {
        "key": key, "status": "complete", "config": config.to_dict(), "code_version": code_version(),
        "device": device_name(device), "device_type": device.type, "torch_version": torch.__version__,
        "steps": step, "epochs": round(step / steps_per_epoch, 2), "wall_seconds": round(wall, 2),
        "eval_seconds": round(eval_seconds, 2), "steps_per_second": round(step / max(wall - eval_seconds, 1e-9), 2),
        "gpu_seconds": round(wall / concurrent_runs, 2) if is_gpu else 0.0, "concurrent_runs": concurrent_runs,
        "parameters": count_parameters(model), "dataset": sizes, "snapshot_steps": snapshots,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    store.save_run(key, record, curves)
    if last.exists():
        last.unlink()
    log(f"finished {key}: {step} steps in {wall:.1f} s on {record['device']}")
    return load_run(config, store)   # as stored, so a trained and a loaded run look the same
