"""The no-train mode: publishing renders committed results and must never retrain; and the
committed runs of a chapter's point, wherever they are stored.

With `GROKCIRCUITS_NO_TRAIN=1` (set by `make book TRAIN=0` and by `make publish`), `train_many`
loads every run from the store or stops, before any training, with the list of the runs that are
missing and the command that makes them. A page built this way therefore shows exactly the runs
that were committed, and a missing one fails the build instead of silently costing hours.

A chapter decides from every complete run at its configuration: the run key is the hash of the
whole configuration, seed included, so a run of the same key is the same run whichever store holds
it. `point_seeds` finds the seeds at which a chapter's plan has complete runs in the profile's
store or the sweep's (`results/sweep`, where the sweep trains grids whose points are a profile's),
and `adopt_complete` copies those runs into the profile's store, as the campaign does, so that
their probe results are stored beside the profile's. Neither changes a key.
"""
from __future__ import annotations

import os

from grokcircuits.config import PROFILES, ConfigError, RunConfig
from grokcircuits.store import Store, read_json

NO_TRAIN_ENV = "GROKCIRCUITS_NO_TRAIN"
_ON, _OFF = ("1", "true", "yes"), ("", "0", "false", "no")


class MissingRunsError(RuntimeError):
    """Training is disabled and some runs a page needs are not in the results store."""


def training_disabled() -> bool:
    """Whether `GROKCIRCUITS_NO_TRAIN` asks for the no-train mode; any other value is refused."""
    value = os.environ.get(NO_TRAIN_ENV, "").strip().lower()
    if value not in _ON + _OFF:
        raise ConfigError(f"{NO_TRAIN_ENV}={value!r} is not allowed; allowed values: "
                          f"{', '.join(map(repr, _ON + _OFF))} (1 = load runs only, never train)")
    return value in _ON


def _role(config: RunConfig) -> str:
    if config.transfer is None:
        return "pretraining"
    if config.init_from is None:
        return "transfer: from-scratch control"
    return f"transfer: fine-tuned from the {config.init_regime} pretraining run {config.init_from}"


def describe_run(config: RunConfig) -> str:
    """One line naming a run the way a reader finds it: architecture, regime, seed, role, key."""
    return (f"architecture {config.model.architecture}, regime {config.data.regime}, "
            f"seed {config.train.seed}, {_role(config)}, key {config.key()}")


def missing_runs(configs: list[RunConfig], store: Store) -> list[RunConfig]:
    """The configurations (one per key, in order) whose complete run is not in `store`."""
    unique = dict((c.key(), c) for c in configs)
    return [c for key, c in unique.items() if not store.has_run(key)]


def _profile_name(store: Store) -> str:
    """The store of a profile lives at `<results>/<profile>`; anything else is named as a path."""
    return store.root.name if store.root.name in PROFILES else "<profile>"


def missing_runs_message(missing: list[RunConfig], store: Store) -> str:
    profile = _profile_name(store)
    lines = [f"training is disabled ({NO_TRAIN_ENV}=1) and {len(missing)} run(s) this page needs "
             f"are not in the results store {store.root} (profile {profile}):"]
    lines += [f"  - {describe_run(c)}" for c in missing]
    lines.append(f"Make them on a machine that can train them with `make runs PROFILE={profile}` "
                 f"(`make results PROFILE={profile}` on this machine), commit {store.root} "
                 f"(its checkpoints stay ignored), then build again; or build with training "
                 f"enabled (`make book PROFILE={profile} TRAIN=1`).")
    return "\n".join(lines)


def refuse_training_if_disabled(configs: list[RunConfig], store: Store) -> None:
    """Called first by `train_many`: in the no-train mode, raise `MissingRunsError` naming every
    run of `configs` that the store lacks; otherwise do nothing."""
    if not training_disabled():
        return
    missing = missing_runs(configs, store)
    if missing:
        raise MissingRunsError(missing_runs_message(missing, store))


# --- the complete runs of a chapter's point ---------------------------------------------------------
def stored_seeds(stores) -> set[int]:
    """Every training seed of a complete run in `stores`."""
    seeds = set()
    for store in stores:
        for record in store.runs() if (store.root / "runs").exists() else ():
            seed = record.get("config", {}).get("train", {}).get("seed")
            if isinstance(seed, int):
                seeds.add(seed)
    return seeds


def point_seeds(plan, stores, whole_seeds: bool = False) -> list[int]:
    """The seeds at which `plan` (seeds -> [RunConfig]) has complete runs in some store of `stores`,
    found by key; with `whole_seeds`, only the seeds whose every run of the plan is complete."""
    out = []
    for seed in sorted(stored_seeds(stores)):
        done = [any(s.has_run(c.key()) for s in stores) for c in plan([seed])]
        if done and (all(done) if whole_seeds else any(done)):
            out.append(seed)
    return out


def adopt_complete(configs: list[RunConfig], store: Store, source: Store) -> list[str]:
    """Copy into `store` every complete run of `configs` that `source` holds and `store` lacks:
    its checkpoints and snapshots, then its curves and record (last: the record marks completion).
    A run adopted before whose weights `store` lacks (git holds them in `source` only) gets them
    back. Returns the keys copied whole; a missing `source`, or `store` itself, copies nothing."""
    if not (source.root / "runs").exists() or source.root.resolve() == store.root.resolve():
        return []
    copied = []
    for key in dict.fromkeys(c.key() for c in configs):
        if store.has_run(key):
            store.copy_missing_weights_from(source, key)
            continue
        if not source.has_run(key):
            continue
        store.copy_run_from(source, key)
        copied.append(key)
    return copied


def run_status(config: RunConfig, stores) -> str:
    """'incomplete: 16,000 of 40,000 steps' or 'not started': where a run of a plan stands."""
    for store in stores:
        path = store.run_dir(config.key()) / "record.json"
        if path.exists():
            record = read_json(path)
            return f"{record.get('status', 'incomplete')}: {record.get('steps', 0):,} of {config.train.steps:,} steps"
    return "not started"
