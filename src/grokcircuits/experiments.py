"""The runs each chapter needs, and a way to train many of them (several at once on one GPU)."""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

from .config import REGIMES, Profile, RunConfig, check_choice
from .engine import Run, load_run, train
from .store import Store

PRETRAIN_REGIMES_FOR_TRANSFER = ("natural", "both_full")


def task_runs(profile: Profile, seeds) -> list[RunConfig]:
    """Chapter 00: the standard transformer and the recursive model on the natural data."""
    return [profile.run(arch, "natural", s) for arch in ("gpt", "trm") for s in seeds]


def path_runs(profile: Profile, seeds) -> list[RunConfig]:
    """Chapter 01: the natural run (checkpoints before and after its own curve rises) and both-hops-full."""
    return [profile.run("trm", r, s) for r in ("natural", "both_full") for s in seeds]


def regime_runs(profile: Profile, seeds, regimes=tuple(REGIMES)) -> list[RunConfig]:
    """Chapter 02: every data regime."""
    for r in regimes:
        check_choice("regimes", r, list(REGIMES))
    return [profile.run("trm", r, s) for r in regimes for s in seeds]


def transfer_runs(profile: Profile, seeds, regimes=PRETRAIN_REGIMES_FOR_TRANSFER) -> tuple[list[RunConfig], list[RunConfig]]:
    """Chapter 03: pretraining runs, then fine-tuning of each plus one from-scratch control per seed."""
    pre = regime_runs(profile, seeds, regimes)
    fine = [profile.transfer_run(p, p.train.seed) for p in pre] + [profile.transfer_run(None, s) for s in seeds]
    return pre, fine


def _train_in_worker(args):
    config_dict, root, concurrent = args
    run = train(RunConfig.from_dict(config_dict), Store(root), concurrent_runs=concurrent)
    return run.record["key"]


def train_many(configs: list[RunConfig], store: Store, workers: int = 1, log=print) -> dict[str, Run]:
    """Train (or load) every configuration; with workers > 1, that many runs share the device, each
    in its own process. Returns {key: Run}."""
    todo = [c for c in dict((c.key(), c) for c in configs).values() if load_run(c, store) is None]
    if todo:
        log(f"training {len(todo)} run(s) of {len(configs)}; the others come from {store.root}")
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            list(pool.map(_train_in_worker, [(c.to_dict(), str(store.root), min(workers, len(todo))) for c in todo]))
    else:
        for i, c in enumerate(todo):
            log(f"  run {i + 1}/{len(todo)}: {c.model.architecture} {c.data.regime} seed {c.train.seed}"
                + (" (transfer)" if c.transfer else ""))
            train(c, store)
    return {c.key(): load_run(c, store) for c in configs}
