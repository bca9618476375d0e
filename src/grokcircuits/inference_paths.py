"""Claim 1: compare the inference path of checkpoints before and after grokking on ID queries.

The path is read two ways: the logit-lens map (where, over recursion states and token slots, the
bridge entity is the head's top-1 token) and the causal-patching map (where patching a clean
state into a corrupted run restores the clean answer). Two paths are compared by the cosine
similarity of their maps.
"""
from __future__ import annotations

import numpy as np

from .engine import Run, dataset
from .models.trm import stage_names
from .probes import EncodedSet, corrupt_first_hop, patching_map

MEMORISED = 0.9   # training accuracy at which the training set counts as fitted
GROKKED = 0.5     # OOD exact match at which a run counts as grokked

OOD_SET = "test_inferred_ood"
QUERY_SETS = ("train_inferred", "test_inferred_iid")   # the in-distribution query sets a path can be read on


def stages_of(run: Run) -> list[str]:
    return stage_names(run.config.model.h_cycles, run.config.model.l_cycles)


def _entry(run: Run, step: int) -> dict:
    return next(e for e in run.curves if e["step"] == step)


def grokked(run: Run) -> bool:
    return run.curves[-1][OOD_SET]["exact_match"] >= GROKKED


def pre_grok_step(run: Run) -> int | None:
    """The earliest snapshot whose training accuracy is high while OOD accuracy is still low;
    failing that, the snapshot with the highest training accuracy before the end."""
    snaps = [s for s in run.snapshot_steps() if s != run.record["steps"]] or run.snapshot_steps()
    if not snaps:
        return None
    low_ood = [s for s in snaps if _entry(run, s)[OOD_SET]["exact_match"] < GROKKED]
    fitted = [s for s in low_ood if _entry(run, s)["training_accuracy"] >= MEMORISED]
    if fitted:
        return fitted[0]
    pool = low_ood or snaps
    return max(pool, key=lambda s: _entry(run, s)["training_accuracy"])


def lens_map(run: Run, step: int | None, set_: str, metric: str = "bridge_map") -> list:
    e = run.curves[-1] if step is None else _entry(run, step)
    return e[set_][metric]


def patching(run: Run, step: int | None, set_: str, n_queries: int) -> dict:
    """Causal patching on ID queries of `set_` at one checkpoint (memoised in the results store)."""
    if set_ not in QUERY_SETS:
        raise ValueError(f"set_={set_!r}; allowed values: {QUERY_SETS}")
    key = {"probe": "patching_first_hop", "run": run.key, "step": step if step is not None else "final",
           "set": set_, "queries": n_queries}

    def compute():
        data = dataset(run.config.data)
        rng = np.random.default_rng(run.config.train.seed)
        queries = data.probe_sets()[set_][:n_queries]
        id_facts = data.atomic[~data.atomic_is_ood]
        clean, corrupt = corrupt_first_hop(queries, id_facts, rng)
        model = run.load_model(step)
        dev = next(model.parameters()).device
        return patching_map(model, EncodedSet.build(clean, data.vocab, dev), EncodedSet.build(corrupt, data.vocab, dev))

    return run.store.memo("patching", key, compute)


def informative_cells(patch: dict) -> np.ndarray:
    """The patching map without the states that say nothing about the path: `Init` (the same for
    every query, so patching it changes nothing) and the final commit (it *is* the output, so
    patching it restores the answer trivially); restoration is taken above the corrupted baseline."""
    r = np.asarray(patch["restoration"], float)[1:-1]                   # (n_stages - 2, 5)
    return np.clip(r - patch["corrupt_baseline"], 0.0, None)


def path_similarity(a: dict, b: dict) -> float:
    """Cosine similarity of two patching results' informative cells (1 = the same path)."""
    from .analysis import cosine
    return cosine(informative_cells(a), informative_cells(b))


def shuffled_similarity(a: dict, b: dict, draws: int = 200, seed: int = 0) -> float:
    """Chance level: the mean similarity of `a` with `b`'s cells in random places."""
    from .analysis import cosine
    rng = np.random.default_rng(seed)
    x, y = informative_cells(a).ravel(), informative_cells(b).ravel()
    return float(np.nanmean([cosine(x, rng.permutation(y)) for _ in range(draws)]))


def checkpoints_to_patch(natural: Run, both_full: Run) -> list[tuple[str, Run, int | None]]:
    """The checkpoints chapter 01 patches for one seed: (label, run, step; None = the end)."""
    return [("natural, pre-grokking", natural, pre_grok_step(natural)), ("natural, end", natural, None),
            ("both hops full, end", both_full, None)]
