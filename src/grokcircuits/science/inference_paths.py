"""Claim 1: compare the inference path of checkpoints before and after grokking on ID queries.

The path is read two ways: the logit-lens map (where, over recursion states and token slots, the
bridge entity is the head's top-1 token) and the causal-patching map of `patching` (where putting
back a clean state into a bridge-changing corrupted run restores the clean answer's logit lead),
together with the bridge-preserving kept rate (does the model still answer when the first hop is
swapped for an untrained one reaching the same bridge).

Which checkpoints: the *pre-grokking* one is the latest stored snapshot that has memorised the
training set and fails the grokking criterion, strictly before the first evaluation that meets it
(`pre_grok_step`; None when there is none, never a substitute); the *post-grokking* one is the end
of a run that meets the criterion at its final evaluation (`grokked`).

What counts as grokking: the paper's, exact match on the OOD compositions (`grokking_set="ood"`);
or, as a variant named so wherever it is shown, exact match on the held-out ID compositions
(`grokking_set="iid"`): the checkpoints before and after in-distribution generalisation, for a
scale at which the OOD compositions never come.

What is compared: the paper's pair, one run before and after grokking (`comparison="grokking"`);
or, as a second variant, the ends of two runs of the same graph and seed of which one composes OOD
facts and the other does not (`comparison="composing"`: the both-hops-full run against the natural
one, `composing_similarity_table`). The paper's own evidence for claim 1 is that contrast: the
bridge-then-answer path appears without a grokking delay once compositions are supervised.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from grokcircuits.config import ConfigError
from grokcircuits.science.controls import Composer, Lookup
from grokcircuits.science.models.trm import stage_names
from grokcircuits.science.patching import Corruptions, first_hop_corruptions, kept_rate_interval, map_similarity, patching_sweep, PatchingResult
from grokcircuits.science.runs import Run, dataset

DEFAULT_GROKKING_CRITERION = 0.5   # OOD exact match at which a run counts as grokked
OOD_SET = "test_inferred_ood"
GROKKING_SETS = {"ood": OOD_SET, "iid": "test_inferred_iid"}   # grokking_set -> the compositions it is judged on
COMPARISONS = ("grokking", "composing")   # what chapter 01 compares: before/after grokking (the paper) | a composer against a non-composer
VARIANTS = {"iid": "iid: before and after in-distribution generalisation (held-out ID compositions), "
                   "not the paper's OOD grokking",
            "composing": "composing: at the end of training, the both-hops-full model (which composes OOD facts) "
                         "against the natural model of the same graph and seed (which does not), not one model "
                         "before and after grokking"}
QUERY_SETS = ("train_inferred", "test_inferred_iid")   # the in-distribution query sets a path can be read on
SIMILARITY_COLUMNS = ["seed", "grokked", "pre_step", "similarity", "low", "high", "chance_high"]
COMPOSING_COLUMNS = ["seed", "natural_ood", "composer_ood", "contrast", "similarity", "low", "high", "chance_high"]
_PATCHING_STREAM = 0xBA7C4          # the random stream of the patching queries, beside the run's seed


def check_grokking_criterion(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"grokking_criterion={value!r} must be a number in (0, 1]: the OOD exact match at which a run counts as grokked")
    return float(value)


def check_grokking_set(value) -> str:
    if value not in GROKKING_SETS:
        raise ConfigError(f"grokking_set={value!r} is not allowed; allowed values: {', '.join(map(repr, GROKKING_SETS))}")
    return value


def check_comparison(value, grokking_set: str = "ood") -> str:
    """`comparison` (one of COMPARISONS); 'composing' judges composition on the OOD compositions, so
    it takes the paper's grokking_set only."""
    if value not in COMPARISONS:
        raise ConfigError(f"comparison={value!r} is not allowed; allowed values: {', '.join(map(repr, COMPARISONS))}")
    if value == "composing" and grokking_set != "ood":
        raise ConfigError(f"comparison='composing' judges composition on the OOD compositions: it needs "
                          f"grokking_set='ood', not {grokking_set!r}")
    return value


def variant_of(comparison: str = "grokking", grokking_set: str = "ood") -> str | None:
    """The variant a chapter 01 page answers ('<name>: <what it is>'), or None for the paper's claim."""
    if check_comparison(comparison, grokking_set) == "composing":
        return VARIANTS["composing"]
    return None if check_grokking_set(grokking_set) == "ood" else VARIANTS[grokking_set]


def stages_of(run: Run) -> list[str]:
    return stage_names(run.config.model.h_cycles, run.config.model.l_cycles)


def _entry(run: Run, step: int) -> dict:
    return next(e for e in run.curves if e["step"] == step)


def _exact_match(entry: dict, grokking_set: str = "ood") -> float:
    return entry[GROKKING_SETS[check_grokking_set(grokking_set)]]["exact_match"]


def grokked(run: Run, grokking_criterion: float = DEFAULT_GROKKING_CRITERION, grokking_set: str = "ood") -> bool:
    """Whether the run's final evaluation meets the grokking criterion (exact match on `grokking_set`)."""
    return _exact_match(run.curves[-1], grokking_set) >= check_grokking_criterion(grokking_criterion)


def first_grokked_step(run: Run, grokking_criterion: float = DEFAULT_GROKKING_CRITERION,
                       grokking_set: str = "ood") -> int | None:
    """The step of the first evaluation that meets the grokking criterion, or None."""
    criterion = check_grokking_criterion(grokking_criterion)
    return next((e["step"] for e in run.curves if _exact_match(e, grokking_set) >= criterion), None)


def check_memorised_at(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"memorised_at={value!r} must be None (the run's snapshot_at_training_accuracy) or a "
                          "number in (0, 1]: the training accuracy at which a checkpoint counts as memorised")
    return float(value)


def pre_grok_step(run: Run, grokking_criterion: float = DEFAULT_GROKKING_CRITERION, grokking_set: str = "ood",
                  memorised_at: float | None = None) -> int | None:
    """The latest stored snapshot (before the end; its weights at hand) whose training accuracy has
    reached the memorisation threshold (`memorised_at`, by default the run's
    `train.snapshot_at_training_accuracy`) and whose exact match on `grokking_set` is below the
    grokking criterion, strictly before the first evaluation that meets the criterion; None if there
    is none. Never a fallback: a checkpoint that is not memorised-but-not-grokked is not a
    pre-grokking one."""
    criterion = check_grokking_criterion(grokking_criterion)
    memorised = check_memorised_at(memorised_at) or run.config.train.snapshot_at_training_accuracy
    by_step = {e["step"]: e for e in run.curves}
    end = run.curves[-1]["step"]
    first = first_grokked_step(run, criterion, grokking_set)
    candidates = [s for s in run.snapshot_steps()
                  if s in by_step and s < end and (first is None or s < first) and run.has_snapshot(s)
                  and by_step[s]["training_accuracy"] >= memorised and _exact_match(by_step[s], grokking_set) < criterion]
    return max(candidates, default=None)


def lens_map(run: Run, step: int | None, set_: str, metric: str = "bridge_map") -> list:
    e = run.curves[-1] if step is None else _entry(run, step)
    return e[set_][metric]


# --- patching ----------------------------------------------------------------------------------
def _check_set(set_: str) -> None:
    if set_ not in QUERY_SETS:
        raise ConfigError(f"query_set={set_!r} is not allowed; allowed values: {', '.join(map(repr, QUERY_SETS))}")


def patching_corruptions(data, set_: str, n_queries: int, seed: int) -> Corruptions:
    """n_queries clean ID queries of `set_`, drawn at random (seeded by `seed`), with their
    bridge-preserving and bridge-changing partners."""
    _check_set(set_)
    trained = data.train_inferred
    id_id_trained = trained[: len(trained) - data.n_injected_hop1 - data.n_injected_hop2]   # both hops ID
    queries = id_id_trained if set_ == "train_inferred" else data.test_inferred_iid
    rng = np.random.default_rng([seed, _PATCHING_STREAM])
    return first_hop_corruptions(queries, data.atomic[~data.atomic_is_ood], trained, id_id_trained, n_queries, rng)


def patching(run: Run, step: int | None, set_: str, n_queries: int) -> PatchingResult:
    """The patching sweep of one checkpoint (step None = the end) on `n_queries` random ID queries
    of `set_`, memoised in the run's results store."""
    _check_set(set_)
    key = {"probe": "patching_two_corruptions", "run": run.key, "step": step if step is not None else "final",
           "set": set_, "queries": n_queries}

    def compute():
        data = dataset(run.config.data)
        corruptions = patching_corruptions(data, set_, n_queries, run.config.train.seed)
        model = run.load_model(step)
        return patching_sweep(model, corruptions, data.vocab, next(model.parameters()).device).to_json()

    return PatchingResult.from_json(run.store.memo("patching", key, compute))


def checkpoints_to_patch(natural: Run, both_full: Run, grokking_criterion: float = DEFAULT_GROKKING_CRITERION,
                         grokking_set: str = "ood", memorised_at: float | None = None) -> list[tuple[str, Run, int | None]]:
    """The checkpoints chapter 01 patches for one seed: (label, run, step; None = the end). The
    pre-grokking checkpoint is left out where the run has none."""
    pre = pre_grok_step(natural, grokking_criterion, grokking_set, memorised_at)
    out = [("natural, pre-grokking", natural, pre)] if pre is not None else []
    return out + [("natural, end", natural, None), ("both hops full, end", both_full, None)]


def path_similarity_table(natural: list[Run], set_: str, n_queries: int,
                          grokking_criterion: float = DEFAULT_GROKKING_CRITERION, draws: int = 1000,
                          grokking_set: str = "ood", memorised_at: float | None = None) -> pd.DataFrame:
    """One row per natural run: whether it grokked, its pre-grokking step, and the similarity of
    the pre-grokking and final patching maps with its 95% bootstrap interval over queries and the
    upper end of the chance level (NaN where the run has no pre-grokking checkpoint)."""
    rows = []
    for run in natural:
        seed = run.config.train.seed
        pre = pre_grok_step(run, grokking_criterion, grokking_set, memorised_at)
        row = {"seed": seed, "grokked": grokked(run, grokking_criterion, grokking_set), "pre_step": pre,
               "similarity": np.nan, "low": np.nan, "high": np.nan, "chance_high": np.nan}
        if pre is not None:
            s = map_similarity(patching(run, pre, set_, n_queries), patching(run, None, set_, n_queries), draws, seed)
            row.update({k: s[k] for k in ("similarity", "low", "high", "chance_high")})
        rows.append(row)
    table = pd.DataFrame(rows, columns=SIMILARITY_COLUMNS)
    table["grokked"] = table["grokked"].astype(bool)
    table["pre_step"] = pd.Series([r["pre_step"] for r in rows], dtype=object, index=table.index)   # int or None
    return table


def composing_similarity_table(natural: list[Run], both_full: dict[int, Run], set_: str, n_queries: int,
                               composes_at: float = DEFAULT_GROKKING_CRITERION, draws: int = 1000) -> pd.DataFrame:
    """One row per natural run with a both-hops-full run of its seed: both runs' final OOD exact
    match, whether they show the contrast (the both-hops-full run composes, at least `composes_at`,
    and the natural one does not), and the similarity of their final patching maps on ID queries,
    with its 95% bootstrap interval over queries (the same queries for both) and the chance level's
    upper end. The similarity is computed at every seed; the contrast says which seeds it tests."""
    composes_at = check_grokking_criterion(composes_at)
    rows = []
    for run in natural:
        seed = run.config.train.seed
        if seed not in both_full:
            continue
        composer = both_full[seed]
        nat, comp = _exact_match(run.curves[-1]), _exact_match(composer.curves[-1])
        s = map_similarity(patching(run, None, set_, n_queries), patching(composer, None, set_, n_queries), draws, seed)
        rows.append({"seed": seed, "natural_ood": nat, "composer_ood": comp,
                     "contrast": bool(comp >= composes_at and nat < composes_at),
                     **{k: s[k] for k in ("similarity", "low", "high", "chance_high")}})
    table = pd.DataFrame(rows, columns=COMPOSING_COLUMNS)
    table["contrast"] = table["contrast"].astype(bool)
    return table


# --- the controls ------------------------------------------------------------------------------
CONTROLS = {"composer (hand-built)": Composer, "lookup (hand-built)": Lookup}


def control_patching(data, set_: str, n_queries: int, seed: int = 0, store=None) -> dict[str, PatchingResult]:
    """The patching sweep of the hand-built controls (`controls`) on the same random queries as a
    run of this dataset and seed; memoised in `store` when one is given."""
    def compute():
        corruptions = patching_corruptions(data, set_, n_queries, seed)
        return {name: patching_sweep(cls(data), corruptions, data.vocab, "cpu").to_json() for name, cls in CONTROLS.items()}

    if store is None:
        out = compute()
    else:
        key = {"probe": "patching_controls", "data": dataclasses.asdict(data.config), "set": set_,
               "queries": n_queries, "seed": seed}
        out = store.memo("patching", key, compute)
    return {name: PatchingResult.from_json(d) for name, d in out.items()}


def patching_frame(result: PatchingResult, **labels) -> pd.DataFrame:
    """The normalised map as a long frame (stage, position, value) for a heat map, with `labels` as columns."""
    m = result.normalised_map()
    return pd.DataFrame([{"stage": st, "position": pos, "value": float(m[i, j]), **labels}
                         for i, st in enumerate(result.states) for j, pos in enumerate(result.positions)])


# --- tables the chapter shows ------------------------------------------------------------------
def checkpoint_table(natural: list[Run], grokking_criterion: float = DEFAULT_GROKKING_CRITERION,
                     grokking_set: str = "ood", memorised_at: float | None = None) -> pd.DataFrame:
    """Per natural run: the pre-grokking checkpoint (if any) and the end, with what they had reached."""
    rows = []
    judged = "OOD" if grokking_set == "ood" else "held-out ID"
    for run in natural:
        pre, end = pre_grok_step(run, grokking_criterion, grokking_set, memorised_at), run.curves[-1]
        e_pre = _entry(run, pre) if pre is not None else None
        rows.append({"seed": run.config.train.seed, "pre-grokking step": pre,
                     "training accuracy then": e_pre["training_accuracy"] if e_pre else np.nan,
                     f"{judged} exact match then": _exact_match(e_pre, grokking_set) if e_pre else np.nan,
                     "first step meeting the criterion": first_grokked_step(run, grokking_criterion, grokking_set),
                     "final step": end["step"], "final training accuracy": end["training_accuracy"],
                     f"final {judged} exact match": _exact_match(end, grokking_set),
                     "grokked": grokked(run, grokking_criterion, grokking_set)})
    return pd.DataFrame(rows).set_index("seed")


def score_table(results: dict, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per patched checkpoint (label -> PatchingResult): the clean accuracy, the clean run's logit
    lead over the bridge-changing run (the normalised map's denominator) and the bridge-preserving
    kept rate with its 95% bootstrap interval over queries."""
    rows = []
    for label, r in results.items():
        kept, low, high = kept_rate_interval(r, draws, seed)
        rows.append({"checkpoint": label, "queries": len(r), "clean answered right": float(r.clean_right.mean()),
                     "logit lead, clean minus bridge-changing": float(r.clean_ld.mean() - r.corrupt_ld.mean()),
                     "bridge-preserving: answer kept": kept, "kept, low": low, "kept, high": high})
    return pd.DataFrame(rows).set_index("checkpoint")


def similarity_rows(pairs: dict, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per named pair (name -> (PatchingResult, PatchingResult)): the map similarity, its 95%
    bootstrap interval and the chance level (mean and upper end)."""
    rows = []
    for name, (a, b) in pairs.items():
        s = map_similarity(a, b, draws, seed)
        rows.append({"comparison": name, **{k: s[k] for k in ("similarity", "low", "high", "chance", "chance_high")}})
    return pd.DataFrame(rows).set_index("comparison")
