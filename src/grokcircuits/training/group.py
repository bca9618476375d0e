"""Which runs can train together, and training them: `group_by_shape`, `train_group`, `build_step`."""
from __future__ import annotations

import math
import time

import torch

from grokcircuits.config import ConfigError, RunConfig
from grokcircuits.science.runs import Run, default_device, load_run
from grokcircuits.store import Store
from grokcircuits.training.ensemble import Ensemble
from grokcircuits.training.members import load_member_data

MAX_MEMBERS = 16   # runs per ensemble: enough to fill an H100 with the GPU profile's models


def shape_key(config: RunConfig) -> tuple:
    """Runs with the same key can share one ensemble: same model shapes and vocabulary, batch size,
    loss and numerics. Seeds, data regimes, learning rates, weight decays, warm-up, EMA, Grokfast,
    clipping, step counts and evaluation schedules may all differ."""
    d, t = config.data, config.train
    return (config.model, d.n_entities + d.n_relations + d.n_special_tokens, t.batch_size, t.loss,
            t.precision, t.compile)


def _depth(config: RunConfig, by_key: dict[str, RunConfig]) -> int:
    """0 for a run that starts from scratch or from a run outside `by_key`; else its parent's depth + 1."""
    depth = 0
    while config.init_from in by_key:
        config, depth = by_key[config.init_from], depth + 1
    return depth


def group_by_shape(configs: list[RunConfig], max_members: int = MAX_MEMBERS) -> list[list[RunConfig]]:
    """Ensembles for `configs` (duplicates dropped, order kept): runs of one shape key, at most
    `max_members` each and split evenly; a fine-tuning run comes in a later group than its parent."""
    if max_members < 1:
        raise ConfigError(f"max_members={max_members} must be >= 1")
    unique = list({c.key(): c for c in configs}.values())
    by_key = {c.key(): c for c in unique}
    buckets: dict[tuple, list[RunConfig]] = {}
    for c in unique:
        buckets.setdefault((_depth(c, by_key), shape_key(c)), []).append(c)
    groups = []
    for (_, _), members in sorted(buckets.items(), key=lambda kv: kv[0][0]):
        parts = math.ceil(len(members) / max_members)
        size, extra = divmod(len(members), parts)
        start = 0
        for j in range(parts):
            end = start + size + (j < extra)
            groups.append(members[start:end])
            start = end
    return groups


def _check_parents(configs: list[RunConfig], store: Store) -> None:
    keys = {c.key() for c in configs}
    for c in configs:
        parent = c.init_from
        if parent is not None and parent not in keys and not (store.checkpoint_dir(parent) / "final.pt").exists():
            raise FileNotFoundError(f"init_from={parent}: that run's final weights are not in {store.root}; "
                                    "train it first")


def _by_batch_size(group: list[RunConfig], device) -> list[tuple[list[RunConfig], list]]:
    """Load the members' data; split the rare group whose training sets are smaller than the batch
    (the batch is then the whole set) by effective batch size."""
    parts: dict[int, tuple[list, list]] = {}
    for c in group:
        d = load_member_data(c, device)
        configs, data = parts.setdefault(d.batch_size, ([], []))
        configs.append(c)
        data.append(d)
    return list(parts.values())


def _finished(key: str, store: Store) -> bool:
    """Whether the run `key` finished (its final weights are there to start from)."""
    return store.has_run(key) and (store.checkpoint_dir(key) / "final.pt").exists()


def train_group(configs: list[RunConfig], store: Store, device=None, log=None, deadline: float | None = None,
                stop_after: int | None = None, make_ensemble=Ensemble) -> dict[str, Run | None]:
    """Train `configs` as one ensemble (runs already in the store are loaded, not retrained) and return
    {key: Run}, None for a run left incomplete. Configurations of different shapes train as successive
    ensembles, parents before their fine-tuning runs. At `deadline` (a time.time() value) training stops
    at the next step boundary: unfinished runs are checkpointed and stored with "status": "incomplete",
    their steps and curves so far, and a later call resumes them; `stop_after` stops after that many
    steps of this call in the same way. `make_ensemble` builds each ensemble (distributed training
    passes its own)."""
    for c in configs:
        c.validate()
    unique = list({c.key(): c for c in configs}.values())
    device = torch.device(device) if device is not None else default_device()
    log = log or (lambda msg: None)
    todo = [c for c in unique if load_run(c, store) is None]
    _check_parents(todo, store)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    for group in group_by_shape(todo, max_members=max(len(todo), 1)):
        if deadline is not None and time.time() >= deadline:
            break
        ready = [c for c in group if c.init_from is None or _finished(c.init_from, store)]
        for configs_, data in _by_batch_size(ready, device):
            if deadline is not None and time.time() >= deadline:
                break
            log(f"training {len(configs_)} run(s) as one ensemble on {device}")
            make_ensemble(configs_, data, store, device, log).train(deadline, stop_after)
    return {c.key(): load_run(c, store) for c in unique}


class EnsembleStep:
    """One training step of a whole ensemble, ready to time (fresh weights; nothing is stored).
    Calling it runs one step of every member; `synchronize()` waits for the device."""

    def __init__(self, ensemble: Ensemble):
        self.ensemble = ensemble
        self.compile_seconds = ensemble.runner.compile_seconds
        self.mode = ensemble.runner.mode
        self.members = ensemble.M
        self._left = 0

    def __call__(self) -> None:
        e = self.ensemble
        if self._left == 0:   # the rows of each member's first steps again (stream-ordered after the last step)
            e.load_rows(e.tensors.batches.capacity)
            self._left = e.tensors.batches.capacity
        e.runner.step()
        self._left -= 1

    def synchronize(self) -> None:
        if self.ensemble.device.type == "cuda":
            torch.cuda.synchronize(self.ensemble.device)


def build_step(configs: list[RunConfig], device=None, compiled: bool | None = None,
               graph: bool | None = None, log=None) -> EnsembleStep:
    """The compiled/captured training step of an ensemble of `configs` (one shape), for benchmarking.
    `compiled` and `graph` default to what training uses on that device (both on a GPU); `log` hears
    why a compilation or capture fell back."""
    for c in configs:
        c.validate()
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    parts = _by_batch_size(configs, device)
    if len(parts) != 1 or len({shape_key(c) for c in configs}) != 1:
        raise ConfigError("build_step needs configurations of one shape (see group_by_shape)")
    ensemble = Ensemble(parts[0][0], parts[0][1], None, device, log=log, compiled=compiled, graph=graph)
    ensemble.prepare()
    return EnsembleStep(ensemble)
