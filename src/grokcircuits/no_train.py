"""The no-train mode: publishing renders committed results and must never retrain.

With `GROKCIRCUITS_NO_TRAIN=1` (set by `make book TRAIN=0` and by `make publish`), `train_many`
loads every run from the store or stops, before any training, with the list of the runs that are
missing and the command that makes them. A page built this way therefore shows exactly the runs
that were committed, and a missing one fails the build instead of silently costing hours.
"""
from __future__ import annotations

import os

from .config import PROFILES, ConfigError, RunConfig
from .store import Store

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
