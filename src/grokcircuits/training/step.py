"""One training step of the whole ensemble, and the runner that repeats it: eagerly on the CPU;
on the GPU compiled (torch.compile) and captured with everything else of the step -- data gather,
forward, backward, the update of every member -- as one CUDA graph replayed once per step.

Everything a step reads or writes lives in `EnsembleTensors` at fixed addresses: the batch rows of
the coming steps are copied in before a chunk of steps, the learning-rate schedule is computed from
a device step counter, and each step's member losses are written to a device buffer, so no step
waits for the host.
"""
from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from grokcircuits.config import ModelConfig
from grokcircuits.science.losses import exact_match, loss_dtype, per_slot_nll
from grokcircuits.science.models.stacked import HashDropout, stacked_forward
from grokcircuits.training.optim import Hyper, OptimizerState, UpdateSpec, apply_update_, lr_factor


@dataclass(frozen=True)
class StepSpec:
    """The fixed shape of a step: model, loss, numerics, update."""
    model: ModelConfig
    loss: str                          # stablemax | softmax
    update: UpdateSpec
    compute_dtype: torch.dtype         # the recursive model's residual stream (bf16 on the GPU)
    autocast_dtype: torch.dtype | None  # the standard transformer's autocast on the GPU
    device_type: str
    shard: int = 0                     # which slice of the global batch this process holds (distributed)


@dataclass
class Batches:
    """Every member's training set on the device and the batch rows of the steps of one chunk."""
    inputs: torch.Tensor      # (R, 5) all members' rows
    labels: torch.Tensor      # (R, 5)
    mask: torch.Tensor        # (R, 5)
    rows: torch.Tensor        # (cap, M, B) rows of the chunk's steps (member offsets added)
    position: torch.Tensor    # () int64: the chunk step that comes next
    losses: torch.Tensor      # (cap, M) float32: each chunk step's member losses

    @property
    def capacity(self) -> int:
        return self.rows.shape[0]


@dataclass
class EnsembleTensors:
    """What the step reads and writes, stacked over the M members."""
    weights: dict[str, torch.Tensor]   # parameters (requires_grad) and buffers, (M, ...)
    parameters: tuple[str, ...]
    ema: dict[str, torch.Tensor]       # EMA of every parameter, (M, ...)
    opt: OptimizerState
    hyper: Hyper
    step: torch.Tensor                 # (M,) int64 each member's step
    seeds: torch.Tensor                # (M,) int64 (dropout)
    batches: Batches

    def mutable(self) -> list[torch.Tensor]:
        """The tensors a step changes (saved and restored around the warm-up of a compiled step)."""
        b = self.batches
        return [*(self.weights[n] for n in self.parameters), *self.ema.values(), *self.opt.tensors(), self.step,
                b.position, b.losses]


def member_losses(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, halt: torch.Tensor | None,
                  kind: str, halting_weight: torch.Tensor) -> torch.Tensor:
    """(M,) each member's loss: `engine.training_loss` per member (sequence loss + weighted halting BCE)."""
    nll = per_slot_nll(logits, labels, mask, kind)                                  # (M, B, 5)
    loss = (nll.sum(-1) / mask.sum(-1).clamp_min(1)).mean(-1).to(loss_dtype(logits))   # (M,)
    if halt is not None:
        correct = exact_match(logits.detach(), labels, mask).to(halt.dtype)         # (M, B)
        bce = F.binary_cross_entropy_with_logits(halt, correct, reduction="none").mean(-1)   # (M,)
        loss = loss + halting_weight.to(bce.dtype) * bce
    return loss


def forward_loss(spec: StepSpec, weights: dict, inputs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                 step: torch.Tensor, seeds: torch.Tensor, halting_weight: torch.Tensor) -> torch.Tensor:
    """(M,) member losses of one batch (M, B, 5); the part of the step that torch.compile fuses."""
    dropout = HashDropout(spec.model.dropout, seeds, step, spec.shard) if spec.model.architecture == "gpt" else None
    amp = spec.autocast_dtype
    with torch.autocast(spec.device_type, dtype=amp, enabled=True, cache_enabled=False) if amp else nullcontext():
        logits, halt = stacked_forward(weights, spec.model, inputs, labels, spec.compute_dtype, dropout)
    return member_losses(logits, labels, mask, halt, spec.loss, halting_weight)


def train_step(t: EnsembleTensors, spec: StepSpec, loss_fn, reduce=None) -> None:
    """One step of every member, in place, without a host synchronisation. `reduce` (distributed
    training) maps this process's (gradients, losses) to their averages over all processes."""
    b = t.batches
    M, B = b.rows.shape[1:]
    here = b.position.view(1)
    rows = b.rows.index_select(0, here).view(M * B)                                  # (M*B,)
    take = lambda table: table.index_select(0, rows).view(M, B, -1)                  # (M, B, 5)
    factor = lr_factor(t.step, t.hyper.warmup)                                       # (M,)
    losses = loss_fn(t.weights, take(b.inputs), take(b.labels), take(b.mask), t.step, t.seeds,
                     t.hyper.halting_weight)                                         # (M,)
    total = (losses * t.opt.loss_scale).sum() if spec.update.loss_scaling else losses.sum()
    params = [t.weights[n] for n in t.parameters]
    grads = dict(zip(t.parameters, torch.autograd.grad(total, params)))
    if reduce is not None:
        grads, losses = reduce(grads, losses.detach())
    apply_update_(t.weights, t.ema, grads, t.opt, spec.update, t.hyper, factor)
    with torch.no_grad():
        b.losses.index_copy_(0, here, losses.detach().view(1, M))
        b.position.add_(1)
        t.step.add_(1)


class StepRunner:
    """Runs steps: eagerly, compiled (torch.compile of the forward and loss), and on the GPU captured as
    one CUDA graph. `prepare()` compiles, warms up and captures, then puts every tensor back as it
    was, so training starts from the true state; the time it takes is the run's compile time."""

    def __init__(self, tensors: EnsembleTensors, spec: StepSpec, compiled: bool, graph: bool, reduce=None):
        self.t, self.spec, self.reduce = tensors, spec, reduce
        loss = partial(forward_loss, spec)
        if compiled:   # every ensemble shape is one more compilation of the same function
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self.loss_fn = torch.compile(loss, dynamic=False) if compiled else loss
        self.compiled, self.use_graph = compiled, graph
        self.graph: torch.cuda.CUDAGraph | None = None
        self.compile_seconds = 0.0

    def _eager_step(self) -> None:
        train_step(self.t, self.spec, self.loss_fn, self.reduce)

    def prepare(self, warmup_steps: int = 3) -> None:
        if not (self.compiled or self.use_graph):
            return
        start = time.perf_counter()
        saved = [x.detach().clone() for x in self.t.mutable()]
        cuda = self.spec.device_type == "cuda"
        try:
            side = torch.cuda.Stream() if cuda else None
            if cuda:   # warm up on a side stream, as CUDA graph capture requires
                side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side) if cuda else nullcontext():
                for _ in range(warmup_steps):
                    self._eager_step()
            if cuda:
                torch.cuda.current_stream().wait_stream(side)
            if self.use_graph:
                self._restore(saved)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self._eager_step()
        finally:   # capture records without running; the warm-up steps are undone
            self._restore(saved)
            if cuda:
                torch.cuda.synchronize()
        self.compile_seconds = time.perf_counter() - start

    @torch.no_grad()
    def _restore(self, saved: list[torch.Tensor]) -> None:
        for x, s in zip(self.t.mutable(), saved):
            x.copy_(s)

    @property
    def mode(self) -> str:
        """How steps run: eager, compiled, and/or replayed from a CUDA graph."""
        return ("compiled" if self.compiled else "eager") + ("+cuda_graph" if self.graph is not None else "")

    def step(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._eager_step()


NO_COMPILE_ENV = "GROKCIRCUITS_NO_COMPILE"   # set (to anything but "" or "0") to train eagerly everywhere


def compile_supported(device: torch.device, log=None, architecture: str = "trm") -> bool:
    """Whether a run that asks for `compile` gets a compiled step on `device`. On a GPU always; on a
    CPU for the recursive model (its fused step is about 1.3x the eager one at the `cpu` profile's
    sizes and compiles in about a minute; bench --cpu) but not for the standard transformer (its
    hash-dropout graph took 226 s to compile for 1.3x, and over 11 minutes as an ensemble of 3), and
    not where ATen's capability is forced down with ATEN_CPU_CAPABILITY (inductor's vectorised C++ then
    fails to build or stalls) or GROKCIRCUITS_NO_COMPILE is set; `log` hears why not."""
    reason = None
    if os.environ.get(NO_COMPILE_ENV, "0") not in ("", "0"):
        reason = f"{NO_COMPILE_ENV} is set"
    elif device.type == "cpu" and os.environ.get("ATEN_CPU_CAPABILITY"):
        reason = "ATEN_CPU_CAPABILITY is set (inductor cannot compile for an emulated CPU)"
    elif device.type == "cpu" and architecture != "trm":
        reason = "the standard transformer's step compiles for minutes on a CPU for a 1.3x faster step"
    if reason and log is not None:
        log(f"eager steps: {reason}")
    return reason is None


def prepared_runner(tensors: EnsembleTensors, spec: StepSpec, compiled: bool, graph: bool, log,
                    reduce=None) -> StepRunner:
    """A prepared runner. Should compilation or capture fail, fall back (logged, and named by the
    runner's `mode` in each record) to capture without compilation, then to eager steps."""
    attempts = list(dict.fromkeys([(compiled, graph), (False, graph), (False, False)]))
    for c, g in attempts[:-1]:
        runner = StepRunner(tensors, spec, compiled=c, graph=g, reduce=reduce)
        try:
            runner.prepare()
            return runner
        except Exception as error:   # noqa: BLE001 (any failure of the compiler or the capture)
            log(f"step preparation failed (compiled={c}, cuda_graph={g}: {type(error).__name__}: {error}); falling back")
    runner = StepRunner(tensors, spec, compiled=attempts[-1][0], graph=attempts[-1][1], reduce=reduce)
    runner.prepare()
    return runner
