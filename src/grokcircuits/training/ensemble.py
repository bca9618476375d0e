"""An ensemble: M runs of one shape training together in one stacked model.

Each run keeps its own data, batch order, hyperparameters, optimiser state, EMA, evaluations,
snapshots, checkpoint and record; only the arithmetic is shared. Steps run in chunks that end where
some member must evaluate, checkpoint or finish; between chunks the host reads the step losses and
does the members' bookkeeping.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from grokcircuits.config import COMPOSED_RULE, RunConfig
from grokcircuits.science.models import build_model, count_parameters
from grokcircuits.science.models.stacked import Layout, member_state_dict
from grokcircuits.store import Store, load_tensors, save_tensors
from grokcircuits.training.evaluation import OOD_SET, evaluate, load_member_, snapshots_due
from grokcircuits.training.members import MemberData, gather_training_sets
from grokcircuits.training.optim import PREFIX, SCALE_INIT, Hyper, OptimizerState, UpdateSpec
from grokcircuits.training.record import make_record
from grokcircuits.training.state import Progress, RunTensors, checkpoint_path, load_checkpoint, save_checkpoint
from grokcircuits.training.step import Batches, EnsembleTensors, StepRunner, StepSpec, compile_supported, prepared_runner

CHUNK_STEPS = 256        # steps whose batch rows are copied to the device at once
CHUNK_SECONDS = 1.0      # ... and at most about this long, so a deadline is kept to within it
LOW_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def lr_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up over `warmup_steps`, then constant."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def composed(curves: list[dict], rule: dict = COMPOSED_RULE) -> bool:
    """Whether the last `rule["evaluations"]` evaluations all show a fitted, composing run: training
    accuracy and OOD atomic exact match at least `rule["fitted"]`, OOD exact match at least `rule["composes"]`."""
    last = curves[-rule["evaluations"]:]
    return len(last) == rule["evaluations"] and all(
        e.get("training_accuracy", 0.0) >= rule["fitted"]
        and e.get("ood_atomic", {}).get("exact_match", 0.0) >= rule["fitted"]
        and e.get(OOD_SET, {}).get("exact_match", 0.0) >= rule["composes"] for e in last)


def step_spec(configs: list[RunConfig], layout: Layout, device: torch.device,
              dtype: torch.dtype = torch.float32) -> StepSpec:
    """Numerics: the parameters' dtype on the CPU (float32; float64 where a test builds the models in
    float64 to check an equivalence exactly); on the GPU the recursive model runs its bf16 stream (no
    autocast) and the standard transformer autocasts, with per-member loss scaling for fp16."""
    c = configs[0]
    trm = c.model.architecture == "trm"
    low = LOW_PRECISION[c.train.precision] if device.type == "cuda" else None
    adam = tuple(n for n in layout.parameters if n != PREFIX)
    decayed = frozenset(adam) if trm else frozenset(n for n in adam if layout.ndim[n] >= 2)
    update = UpdateSpec(adam=adam, decayed=decayed, prefix=PREFIX if PREFIX in layout.parameters else None,
                        clip=any(x.train.grad_clip > 0 for x in configs),
                        grokfast=any(x.train.grokfast_lambda > 0 for x in configs),
                        loss_scaling=low == torch.float16)
    return StepSpec(model=c.model, loss=c.train.loss, update=update,
                    compute_dtype=(low or dtype) if trm else dtype,
                    autocast_dtype=None if trm else low, device_type=device.type)


def fresh_run_tensors(config: RunConfig, vocab_size: int, store: Store | None, loss_scaling: bool) -> RunTensors:
    """A run's start: seeded initialisation, or its parent's final EMA weights (fine-tuning)."""
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, vocab_size)
    if config.init_from is not None and store is not None:
        model.load_state_dict(load_tensors(store.checkpoint_dir(config.init_from) / "final.pt", "cpu"))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return RunTensors(model=state, ema={k: v.clone() for k, v in state.items()}, exp_avg={}, exp_avg_sq={},
                      grad_filter={}, count=0.0, loss_scale=SCALE_INIT if loss_scaling else 1.0, growth=0)


class Ensemble:
    reduce_gradients = None   # distributed training: (grads, losses) -> their averages over the processes

    def __init__(self, configs: list[RunConfig], data: list[MemberData], store: Store | None, device: torch.device,
                 log=None, compiled: bool | None = None, graph: bool | None = None):
        self.configs, self.data, self.store, self.device = configs, data, store, device
        self.log = log or (lambda msg: None)
        self.M = len(configs)
        template = build_model(configs[0].model, data[0].vocab_size)
        self.layout = Layout.of(template)
        self.parameters = count_parameters(template)
        self.spec = step_spec(configs, self.layout, device, dtype=next(template.parameters()).dtype)
        starts = [self._start(c, d) for c, d in zip(configs, data)]
        self.progress = [p for p, _ in starts]
        self.previous_ema = [t.previous_ema or None for _, t in starts]
        self.tensors = self._stack([t for _, t in starts])
        self.finished = [False] * self.M
        self.eval_model = template.to(device)
        cuda = device.type == "cuda"
        self._compiled = (configs[0].train.compile and compile_supported(device, self.log, configs[0].model.architecture)
                          if compiled is None else compiled)
        self._graph = cuda if graph is None else graph
        self.runner: StepRunner | None = None   # made by prepare()
        self._seconds_per_step = 0.0

    # --- building -------------------------------------------------------------------------------
    @property
    def writes(self) -> bool:
        """Whether this process writes checkpoints, snapshots and records (in distributed training only
        the first process does)."""
        return self.store is not None

    def ckpt_dir(self, i: int) -> Path:
        return self.store.checkpoint_dir(self.configs[i].key())

    def _start(self, config: RunConfig, data: MemberData) -> tuple[Progress, RunTensors]:
        resumed = load_checkpoint(self.store.checkpoint_dir(config.key())) if self.store is not None else None
        if resumed is not None:
            self.log(f"resumed {config.key()} at step {resumed[0].step}")
            return resumed
        return Progress(), fresh_run_tensors(config, data.vocab_size, self.store, self.spec.update.loss_scaling)

    def _stack(self, runs: list[RunTensors]) -> EnsembleTensors:
        dev, lay, up = self.device, self.layout, self.spec.update
        stack = lambda ts: torch.stack(ts).to(dev)
        weights = {n: stack([r.model[n] for r in runs]) for n in lay.parameters + lay.buffers}
        for n in lay.parameters:
            weights[n].requires_grad_(True)
        state = lambda attr, names: {n: stack([getattr(r, attr).get(n, torch.zeros_like(r.model[n])) for r in runs])
                                     for n in names}
        filtered = up.adam + ((up.prefix,) if up.prefix else ())
        opt = OptimizerState(
            exp_avg=state("exp_avg", up.adam), exp_avg_sq=state("exp_avg_sq", up.adam),
            grad_filter=state("grad_filter", filtered) if up.grokfast else {},
            count=torch.tensor([r.count for r in runs], dtype=torch.float64, device=dev),
            loss_scale=torch.tensor([r.loss_scale for r in runs], dtype=torch.float32, device=dev),
            growth=torch.tensor([r.growth for r in runs], dtype=torch.int64, device=dev))
        inputs, labels, mask, self.offsets = gather_training_sets(self.data, dev)
        B = self.data[0].batch_size
        loss_dtype = torch.float64 if self.spec.compute_dtype == torch.float64 else torch.float32   # as member_losses
        batches = Batches(inputs, labels, mask, rows=torch.zeros(CHUNK_STEPS, self.M, B, dtype=torch.int64, device=dev),
                          position=torch.zeros((), dtype=torch.int64, device=dev),
                          losses=torch.zeros(CHUNK_STEPS, self.M, dtype=loss_dtype, device=dev))
        return EnsembleTensors(
            weights=weights, parameters=lay.parameters, ema={n: stack([r.ema[n] for r in runs]) for n in lay.parameters},
            opt=opt, hyper=Hyper.of(self.configs, dev),
            step=torch.tensor([p.step for p in self.progress], dtype=torch.int64, device=dev),
            seeds=torch.tensor([c.train.seed for c in self.configs], dtype=torch.int64, device=dev), batches=batches)

    def prepare(self) -> None:
        """Compile, warm up and capture the step; its time is every member's compile time."""
        start = time.perf_counter()
        self.runner = prepared_runner(self.tensors, self.spec, self._compiled, self._graph, self.log,
                                      self.reduce_gradients)
        seconds = time.perf_counter() - start
        for p in self.progress:
            p.compile_seconds += seconds
            p.wall_seconds += seconds
            p.gpu_seconds += seconds / self.M
            p.ensemble_size = self.M

    # --- a member's tensors -----------------------------------------------------------------------
    def ema_weights(self) -> dict[str, torch.Tensor]:
        """The EMA parameters with the (fixed) buffers: what evaluations and saved weights hold."""
        return {**{n: self.tensors.weights[n] for n in self.layout.buffers}, **self.tensors.ema}

    def run_tensors(self, i: int) -> RunTensors:
        t, cpu = self.tensors, lambda x: x[i].detach().to("cpu", copy=True)
        return RunTensors(
            model=member_state_dict(t.weights, self.layout, i), ema=member_state_dict(self.ema_weights(), self.layout, i),
            exp_avg={n: cpu(x) for n, x in t.opt.exp_avg.items()},
            exp_avg_sq={n: cpu(x) for n, x in t.opt.exp_avg_sq.items()},
            grad_filter={n: cpu(x) for n, x in t.opt.grad_filter.items()}, count=float(t.opt.count[i]),
            loss_scale=float(t.opt.loss_scale[i]), growth=int(t.opt.growth[i]), previous_ema=self.previous_ema[i] or {})

    # --- the loop ---------------------------------------------------------------------------------
    def train(self, deadline: float | None = None, stop_after: int | None = None) -> None:
        """Train every member to its end, or until `deadline` (a time.time() value) or `stop_after`
        steps of this call; then checkpoint the unfinished ones and store their incomplete records."""
        self.prepare()
        for i, p in enumerate(self.progress):
            if p.step == 0 and not p.curves:
                self._evaluate(i)
            if p.step >= self.configs[i].train.steps:
                self._finish(i)
        done = 0
        while not all(self.finished):
            n = self._chunk_length(stop_after, done, deadline)
            if n <= 0:
                break
            ran = self._run_chunk(n, deadline)
            done += ran
            if ran < n:
                break
        self._stop()

    def _next_stop(self, i: int) -> int:
        """Steps until member i must evaluate, checkpoint or finish."""
        t, s = self.configs[i].train, self.progress[i].step
        return min(t.eval_every - s % t.eval_every, t.checkpoint_every - s % t.checkpoint_every, t.steps - s)

    def _chunk_length(self, stop_after: int | None, done: int, deadline: float | None = None) -> int:
        """Steps of the next chunk; 0 once the deadline has passed."""
        if deadline is not None and time.time() >= deadline:
            return 0
        n = min(self._next_stop(i) for i in range(self.M) if not self.finished[i])
        n = min(n, CHUNK_STEPS)
        if self._seconds_per_step > 0:
            n = min(n, max(1, int(CHUNK_SECONDS / self._seconds_per_step)))
        return n if stop_after is None else min(n, stop_after - done)

    def load_rows(self, n: int) -> None:
        """Copy the batch rows of each member's next n steps to the device (a finished member reads its
        first row: its results are no longer used) and rewind the chunk position."""
        b = self.tensors.batches
        b.rows[:n].copy_(self.batch_rows(n))
        b.position.zero_()

    def batch_rows(self, n: int) -> torch.Tensor:
        """(n, M, B) the global batch rows of each member's next n steps (member offsets added)."""
        rows = torch.zeros(n, self.M, self.data[0].batch_size, dtype=torch.int64)        # (n, M, B)
        for i in range(self.M):
            own = 0 if self.finished[i] else self.data[i].order.rows(self.progress[i].step, n)   # (n, B)
            rows[:, i] = int(self.offsets[i]) + own
        return rows

    def _run_chunk(self, n: int, deadline: float | None) -> int:
        """Run up to n steps (fewer if the deadline passes); returns the steps run."""
        b = self.tensors.batches
        self.load_rows(n)
        start, ran = time.perf_counter(), 0
        for _ in range(n):
            if deadline is not None and time.time() >= deadline:
                break
            self.runner.step()
            ran += 1
        losses = b.losses[:ran].cpu()                                                   # (ran, M); waits for the device
        seconds = time.perf_counter() - start
        if ran == 0:
            return 0
        self._seconds_per_step = seconds / ran
        active = [i for i in range(self.M) if not self.finished[i]]
        for i in active:
            p = self.progress[i]
            for value in losses[:, i].tolist():   # in step order, so the sums do not depend on chunking
                p.loss_sum += value
            p.loss_count += ran
            p.step += ran
            p.train_seconds += seconds
            p.wall_seconds += seconds
            p.gpu_seconds += seconds / len(active)
        for i in active:
            self._events(i)
        return ran

    def _events(self, i: int) -> None:
        t, s = self.configs[i].train, self.progress[i].step
        if s % t.eval_every == 0 or s == t.steps:
            self._evaluate(i)
        if s >= t.steps or (t.stop_when_composed and composed(self.progress[i].curves)):
            self._finish(i)
        elif s % t.checkpoint_every == 0:
            self._checkpoint(i)

    # --- a member's bookkeeping ---------------------------------------------------------------------
    def _evaluate(self, i: int) -> None:
        start = time.perf_counter()
        c, p = self.configs[i], self.progress[i]
        t = c.train
        entry = {"step": p.step, "wall_seconds": round(p.wall_seconds, 3),
                 "train_loss": p.loss_sum / p.loss_count if p.loss_count else None,
                 "lr": t.lr * lr_factor(p.step - 1, t.warmup_steps) if p.step else 0.0}
        model = load_member_(self.eval_model, self.ema_weights(), self.layout, i)
        entry.update(evaluate(model, self.data[i].probe_sets, with_lens=c.model.architecture == "trm"))
        p.curves.append(entry)
        p.loss_sum, p.loss_count = 0.0, 0
        current = member_state_dict(self.ema_weights(), self.layout, i)
        for step in snapshots_due(t, p, p.step, entry):
            weights = current if step == p.step else self.previous_ema[i]
            if weights is not None and self.writes:
                save_tensors(self.ckpt_dir(i) / f"snapshot_{step}.pt", weights)
                p.snapshot_steps = sorted(set(p.snapshot_steps) | {step})
        keep = not p.reached_ood_exact_match and OOD_SET in self.data[i].probe_sets
        self.previous_ema[i], p.previous_eval_step = (current, p.step) if keep else (None, -1)
        epoch = p.step / self.data[i].order.steps_per_epoch
        self.log(f"{c.key()} step {p.step} (epoch {epoch:.1f}, loss {entry['train_loss'] or float('nan'):.4f}): " + ", ".join(
            f"{n} {v['exact_match']:.3f}" for n, v in entry.items() if isinstance(v, dict)))
        seconds = time.perf_counter() - start
        p.eval_seconds += seconds
        p.wall_seconds += seconds
        p.gpu_seconds += seconds

    def _checkpoint(self, i: int) -> None:
        if not self.writes:
            return
        start = time.perf_counter()
        save_checkpoint(self.ckpt_dir(i), self.progress[i], self.run_tensors(i))
        seconds = time.perf_counter() - start
        self.progress[i].wall_seconds += seconds
        self.progress[i].gpu_seconds += seconds

    def _record(self, i: int, complete: bool) -> dict:
        d = self.data[i]
        return make_record(self.configs[i], self.progress[i], complete, self.device, self.parameters, d.sizes,
                           d.order.steps_per_epoch, self.runner.mode)

    def _finish(self, i: int) -> None:
        self.finished[i] = True
        if not self.writes:
            return
        key = self.configs[i].key()
        save_tensors(self.ckpt_dir(i) / "final.pt", member_state_dict(self.ema_weights(), self.layout, i))
        self.store.save_run(key, self._record(i, complete=True), self.progress[i].curves)
        checkpoint_path(self.ckpt_dir(i)).unlink(missing_ok=True)
        p = self.progress[i]
        self.log(f"finished {key}: {p.step} steps, {p.wall_seconds:.1f} s wall, ensemble of {self.M} on {self.device}")

    def _stop(self) -> None:
        """Checkpoint every unfinished member and store its record as incomplete (a later call resumes)."""
        for i in range(self.M):
            if not self.finished[i] and self.writes:
                self._checkpoint(i)
                self.store.save_run(self.configs[i].key(), self._record(i, complete=False), self.progress[i].curves)
                self.log(f"stopped {self.configs[i].key()} at step {self.progress[i].step} (checkpoint written)")
