"""One run (or one ensemble) data-parallel over several processes: `torchrun` and torch.distributed.

    torchrun --nproc_per_node=G -m grokcircuits train --profile paper --regime natural --seed 0 --distributed

Every process holds the whole ensemble (weights, optimiser state, EMA) and computes the same batch
rows as one process would; process r keeps slice r of each member's global batch (B / G rows). After
the backward pass the gradients and the step losses are averaged over the processes in one
`all_reduce`, so every process applies the same update to the same weights: AdamW, clipping and
Grokfast see the gradient of the global batch, and sign-SGD on the prefix vector takes the sign of
the gradient summed over all processes (the average has the same sign), as the authors' distributed
optimiser does. Dropout masks count elements over the global batch (`HashDropout.shard`).

Why not DistributedDataParallel: the stacked model is a dict of tensors run by a functional forward,
not an `nn.Module`, and the step takes its gradients with `torch.autograd.grad` rather than
`.backward()`, so DDP's gradient hooks would never fire. The explicit `all_reduce` is what DDP does,
as one bucket.

The process of rank 0 alone writes checkpoints, snapshots and records; a checkpoint holds the whole
(replicated) state and nothing about the processes, so a run resumes at any number of them. Every
process reads the store when it starts: it must be one they all see (one node, or a shared
filesystem). Host-side decisions (how many steps the next chunk runs, whether the deadline passed)
are agreed on by all processes, so none waits forever in a collective another has skipped.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.distributed as dist

from grokcircuits.config import ConfigError, RunConfig
from grokcircuits.science.losses import at_least_float32
from grokcircuits.science.runs import default_device
from grokcircuits.store import Store
from grokcircuits.training.ensemble import Ensemble
from grokcircuits.training.group import train_group

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process among the others: its rank, their number, its device."""
    rank: int
    size: int
    device: torch.device


def init_world() -> World:
    """Join the process group that torchrun set up (NCCL on GPUs, gloo on the CPU); one GPU a process."""
    missing = [k for k in TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise ConfigError(f"distributed training needs torchrun's environment (missing {missing}): launch with "
                          "torchrun --nproc_per_node=G -m grokcircuits train ... --distributed")
    rank, size, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    device = default_device()
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=size)
    return World(rank, size, device)


def check_batches(configs: list[RunConfig], world_size: int) -> None:
    """Each process takes an equal slice of the global batch, so that the average of their gradients
    is the gradient of the whole batch."""
    for c in configs:
        check_batch(c.train.batch_size, world_size)


def check_batch(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise ConfigError(f"batch_size={batch_size} (the global batch) must be divisible by the number of "
                          f"processes {world_size}; allowed: multiples of {world_size}")


class GradientAverage:
    """(grads, losses) -> their averages over the processes, in one all_reduce of one flat buffer."""

    def __init__(self, world_size: int):
        self.world_size = world_size

    def __call__(self, grads: dict[str, torch.Tensor], losses: torch.Tensor):
        names = list(grads)
        flat = torch.cat([at_least_float32(grads[n].reshape(-1)) for n in names]
                         + [at_least_float32(losses.reshape(-1))])                     # (P + M,)
        dist.all_reduce(flat)                                                          # sum over processes
        flat.div_(self.world_size)
        out, start = {}, 0
        for n in names:
            g = grads[n]
            out[n] = flat[start:start + g.numel()].view(g.shape).to(g.dtype)
            start += g.numel()
        return out, flat[start:].view(losses.shape).to(losses.dtype)


class DistributedEnsemble(Ensemble):
    """An ensemble trained by every process at once, each on its slice of the global batch."""

    def __init__(self, configs, data, store, device, log=None, *, world: World, deadline: float | None = None):
        check_batch(data[0].batch_size, world.size)   # the effective batch (a training set may be smaller)
        self.world, self.deadline = world, deadline
        self.local_batch = data[0].batch_size // world.size
        self.reduce_gradients = GradientAverage(world.size)
        self._held_depth = 0
        super().__init__(configs, data, store, device, log if world.rank == 0 else None, graph=False)
        self.spec = replace(self.spec, shard=world.rank)
        self._agree_on_start()

    # --- what differs from one process ----------------------------------------------------------
    @property
    def writes(self) -> bool:
        return self.store is not None and self.world.rank == 0

    def _stack(self, runs):
        tensors = super()._stack(runs)
        b = tensors.batches
        b.rows = torch.zeros(*b.rows.shape[:2], self.local_batch, dtype=torch.int64, device=b.rows.device)  # (cap, M, B/G)
        return tensors

    def batch_rows(self, n: int) -> torch.Tensor:
        """(n, M, B/G) this process's slice of the global batch rows one process computes."""
        k, r = self.local_batch, self.world.rank
        return super().batch_rows(n)[:, :, r * k:(r + 1) * k]

    def _collective(self, value: float, op) -> float:
        x = torch.tensor([value], dtype=torch.float64, device=self.world.device)
        dist.all_reduce(x, op=op)
        return float(x)

    def _agree_on_start(self) -> None:
        """Every process must start where the others do (the same checkpoints); rank 0's tensors are then
        broadcast, as DDP does with a module's parameters."""
        steps = [float(p.step) for p in self.progress]
        for s in steps:
            if self._collective(s, dist.ReduceOp.MIN) != self._collective(s, dist.ReduceOp.MAX):
                raise RuntimeError("the processes resumed at different steps: the results store must be one that "
                                   "every process sees")
        with torch.no_grad():
            for x in self.tensors.mutable():
                dist.broadcast(x.detach(), src=0)

    def _chunk_length(self, stop_after, done, deadline=None) -> int:
        """The shortest chunk any process asks for (0 once the deadline passed for any of them)."""
        n = super()._chunk_length(stop_after, done, self.deadline)
        return int(self._collective(n, dist.ReduceOp.MIN))

    def _run_chunk(self, n: int, deadline) -> int:
        with self._held():   # no deadline inside a chunk: the processes agreed on its length
            return super()._run_chunk(n, None)

    def prepare(self) -> None:
        with self._held():
            super().prepare()

    def _evaluate(self, i: int) -> None:
        with self._held():
            super()._evaluate(i)

    @contextmanager
    def _held(self):
        """Time spent here holds every process's GPU: multiply the GPU seconds it adds by their number."""
        self._held_depth += 1
        before = [p.gpu_seconds for p in self.progress]
        try:
            yield
        finally:
            self._held_depth -= 1
            if self._held_depth == 0:
                for p, b in zip(self.progress, before):
                    p.gpu_seconds = b + (p.gpu_seconds - b) * self.world.size

    def _record(self, i: int, complete: bool) -> dict:
        return {**super()._record(i, complete), "world_size": self.world.size}

    def train(self, deadline=None, stop_after=None) -> None:
        """Train (the deadline given at construction applies); return when every process is done, so
        that rank 0's records and checkpoints are there for all of them."""
        super().train(None, stop_after)
        dist.barrier()


def train_distributed(configs: list[RunConfig], store: Store, world: World, log=None, deadline: float | None = None,
                      stop_after: int | None = None) -> dict:
    """`train_group` with every ensemble split over the processes of `world` (call it in each of them)."""
    check_batches(configs, world.size)
    log = log if (log is not None and world.rank == 0) else (lambda msg: None)
    make = partial(DistributedEnsemble, world=world, deadline=deadline)
    return train_group(configs, store, device=world.device, log=log, stop_after=stop_after, make_ensemble=make)


def train_from_cli(configs: list[RunConfig], store: Store, log=print) -> dict:
    """The `train --distributed` command in one process: join, train, leave; the runs on rank 0, {} elsewhere."""
    world = init_world()
    try:
        check_batches(configs, world.size)
        runs = train_distributed(configs, store, world, log)
    finally:
        dist.destroy_process_group()
    return runs if world.rank == 0 else {}
