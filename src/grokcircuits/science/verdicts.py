"""Every chapter's verdict as a pure function: per-seed tables in, a `Verdict` out.

Per-seed outcomes here are bimodal (a run composes or it does not), so every rule reads them as
they come: each seed gets a binary outcome with the values it rests on (`Outcome`: it shows the
claim, it contradicts it, or it is open: a premise missing at that seed, or a curve that more
training could still change). A claim HOLDS when the share of seeds showing it has a 95% Wilson
interval wholly above the rule's `share_at` (0.5: most seeds show it); it DOES NOT HOLD when that
interval lies wholly below, even counting every open seed as showing it; otherwise it is NOT
SHOWN, always with k of n seeds. With 3 seeds no share's interval clears 0.5 (3 of 3 gives
[0.44, 1]); it takes 4 of 4 ([0.51, 1]) or 5 of 5 ([0.57, 1]). Continuous contrasts (a path's
similarity against its chance level, transfer against the from-scratch control) are paired
differences within each seed, and decide that seed's outcome.

The `branch` names the rule branch taken in words that are the same on every machine; with the
tally (k of n seeds) it is what a notebook prints for regression tests, while the numbers (which
differ in their last digits between CPUs) go to an unchecked table and to the verdict file.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace

import pandas as pd

from grokcircuits.config import REGIMES
from grokcircuits.science.inference_paths import DEFAULT_GROKKING_CRITERION as GROKKING_CRITERION  # OOD exact match of a grokked run
from grokcircuits.science.stats import seeds_to_clear, wilson_interval

Interval = tuple[float, float, float]   # (value, low, high): a value and its 95% interval

STANDARD = "standard transformer"               # analysis.condition_of's names of the conditions
RECURSIVE = REGIMES["natural"].label
CONTROL = "from scratch (control)"
OOD, IID = "test_inferred_ood", "test_inferred_iid"
TRANSFER_SETS = ("new_atomic", "new_old", "old_new", "new_new")
WORDS = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT SHOWN AT THIS SCALE"}
_PREFIX = {True: "holds", False: "does_not_hold", None: "not_shown"}
SHARE_AT = 0.5        # a claim must be shown by more than this share of seeds (Wilson 95% interval)
PAPER_EPOCHS = 1100   # the paper's pretraining length (book/appendix/protocol.md, section 3)


@dataclass(frozen=True)
class Outcome:
    """One seed under a rule: shown True (it shows the claim), False (it contradicts it) or None
    (open); `values` the numbers it rests on, as text; `why` the failed parts ('+'-joined) of a
    contradiction, or why the seed is open."""
    seed: int
    shown: bool | None
    values: str
    why: str = ""

    def line(self) -> str:
        word = {True: "shows it", False: f"contradicts it ({self.why})", None: f"open ({self.why})"}[self.shown]
        return f"{word}: {self.values}"


@dataclass(frozen=True)
class Verdict:
    """holds: True / False / None (not shown); branch: '<holds|does_not_hold|not_shown>[:reason]';
    numbers: name -> Interval, count or text; note: the branch in words, built from the rule's
    parameters and counts only, so it reads the same on every machine; tally: k of n seeds (the
    same on every machine); per_seed: each seed's outcome with its values (not printed)."""
    holds: bool | None
    branch: str
    numbers: dict = field(default_factory=dict)
    note: str = ""
    key_numbers: tuple[str, ...] = ()   # the numbers the book's summary shows (when absent: the first two)
    tally: str = ""
    per_seed: str = ""

    def __post_init__(self):
        if self.branch.split(":")[0] != _PREFIX[self.holds]:
            raise ValueError(f"branch {self.branch!r} does not match holds={self.holds!r}")

    @property
    def word(self) -> str:
        return WORDS[self.holds]

    def summary_numbers(self) -> dict:
        """The key numbers that this branch measured; failing those (a branch that stopped before
        them), the first two numbers."""
        picked = {k: self.numbers[k] for k in self.key_numbers if k in self.numbers}
        return picked or {k: self.numbers[k] for k in tuple(self.numbers)[:2]}


# --- one threshold against one interval ---------------------------------------------------------
def at_least(iv: Interval, threshold: float) -> bool | None:
    """True when the whole interval is at or above `threshold`, False when it is wholly below,
    None when it straddles the threshold or is undefined (NaN)."""
    _, low, high = iv
    if low >= threshold:
        return True
    if high < threshold:
        return False
    return None


def at_most(iv: Interval, threshold: float) -> bool | None:
    """True when the whole interval is at or below `threshold`, False when wholly above, else None."""
    _, low, high = iv
    if high <= threshold:
        return True
    if low > threshold:
        return False
    return None


def above(iv: Interval, threshold: float) -> bool | None:
    """True when the whole interval is strictly above `threshold`, False when at or below it."""
    _, low, high = iv
    if low > threshold:
        return True
    if high <= threshold:
        return False
    return None


# --- a share of seeds ------------------------------------------------------------------------------
def counts(outcomes) -> tuple[int, int, int, int]:
    """(n, shown, contradicted, open) over `outcomes`."""
    shown = [o.shown for o in outcomes]
    return len(shown), shown.count(True), shown.count(False), shown.count(None)


def share(outcomes) -> Interval:
    """The share of seeds showing the claim, with its 95% Wilson interval (open seeds count as not)."""
    n, yes, _, _ = counts(outcomes)
    return wilson_interval(yes, n)


def decide(outcomes, share_at: float = SHARE_AT) -> bool | None:
    """True when the Wilson interval of the share showing it lies wholly above `share_at`; False
    when it lies wholly below even with every open seed counted as showing it; else None."""
    n, yes, _, opened = counts(outcomes)
    if n and wilson_interval(yes, n)[1] > share_at:
        return True
    if n and wilson_interval(yes + opened, n)[2] < share_at:
        return False
    return None


def open_reason(outcomes, share_at: float = SHARE_AT) -> str:
    """Why an undecided share stays open: the commonest reason of the open seeds where they could
    tip it or outnumber both the others; else `too_few_seeds` (all n agreeing could not clear
    `share_at`); else `share_straddles`."""
    n, yes, no, opened = counts(outcomes)
    tip = opened and (wilson_interval(yes + opened, n)[1] > share_at or wilson_interval(yes, n)[2] < share_at)
    if opened and (tip or opened > max(yes, no)):
        return Counter(o.why for o in outcomes if o.shown is None).most_common(1)[0][0]
    if n < seeds_to_clear(share_at):
        return "too_few_seeds"
    return "share_straddles"


def failures(outcomes) -> list[str]:
    """The failed parts of the contradicting seeds, each once, in the order they first appear."""
    parts = [p for o in outcomes if o.shown is False for p in o.why.split("+")]
    return list(dict.fromkeys(parts))


def judge(outcomes, share_at: float = SHARE_AT, holds_branch: str = "holds") -> tuple[bool | None, str]:
    """(holds, branch) from per-seed outcomes: `holds_branch`, 'does_not_hold:<failed parts>', or
    'not_shown:<open_reason>'."""
    d = decide(outcomes, share_at)
    if d is True:
        return True, holds_branch
    if d is False:
        return False, "does_not_hold:" + "+".join(failures(outcomes))
    return None, "not_shown:" + open_reason(outcomes, share_at)


def tally(outcomes, subject: str = "") -> str:
    """'<subject>: k of n seeds show it (c contradict it, o open)': the same on every machine."""
    n, yes, no, opened = counts(outcomes)
    rest = ", ".join(f"{c} {w}" for c, w in ((no, "contradict it"), (opened, "open")) if c)
    return (f"{subject}: " if subject else "") + f"{yes} of {n} seeds show it" + (f" ({rest})" if rest else "")


def per_seed(outcomes) -> str:
    """Each seed's outcome with its values, one after another."""
    return "; ".join(f"seed {o.seed}: {o.line()}" for o in outcomes)


def share_numbers(outcomes, share_at: float = SHARE_AT) -> dict:
    """The numbers of a share: k/n, its Wilson interval, and one line per seed."""
    n, yes, _, _ = counts(outcomes)
    out = {"seeds showing it": f"{yes}/{n}",
           f"share of seeds showing it (95% Wilson interval; the claim needs it above {share_at})": share(outcomes)}
    out.update({f"seed {o.seed}": o.line() for o in outcomes})
    return out


def share_note(branch: str, outcomes, share_at: float, reasons: dict[str, str], holds: str = "") -> str:
    """The note of a share-based branch, from its counts and the rule's parameters only."""
    n, yes, _, _ = counts(outcomes)
    kind, _, reason = branch.partition(":")
    if kind == "holds":
        return (f"{yes} of {n} seeds show it: the share's 95% Wilson interval lies above {share_at}"
                + (f"; {holds}" if holds else ""))
    if kind == "does_not_hold":
        return (f"{yes} of {n} seeds show it: the share's 95% Wilson interval lies below {share_at} even with every "
                f"open seed counted as showing it ({reasons.get(reason, reason)})")
    if reason == "too_few_seeds":
        return (f"with {n} seed(s) no share's 95% Wilson interval can clear {share_at}: it takes "
                f"{seeds_to_clear(share_at)} seeds all agreeing ({yes} of {n} show it)")
    if reason == "share_straddles":
        return f"{yes} of {n} seeds show it: the share's 95% Wilson interval straddles {share_at}; more seeds would decide"
    return f"{yes} of {n} seeds show it; the others are open: {reasons.get(reason, reason)}"


def _fmt(x: float) -> str:
    return "n/a" if x is None or x != x else f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.2f}"


def _whole(x: float) -> str:
    return "n/a" if x is None or x != x else f"{x:,.0f}"


def by_seed(values: dict, fmt=_fmt) -> str:
    """'seed 0: 0.99, seed 1: 0.98': a condition's value at each seed."""
    return ", ".join(f"seed {s}: {fmt(v)}" for s, v in sorted(values.items())) or "no seed"


# --- reading per-seed tables ------------------------------------------------------------------------
SEED_COLUMNS = ("condition", "seed", "set", "metric", "value")


def _require(table: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {list(columns)}")


def _rows(table: pd.DataFrame, condition: str, set_: str, metric: str) -> pd.DataFrame:
    return table[(table["condition"] == condition) & (table["set"] == set_) & (table["metric"] == metric)]


def seed_values(table: pd.DataFrame, condition: str, set_: str, metric: str) -> dict[int, float]:
    """{seed: value} of one condition, set and metric of a per-seed table (analysis.seed_values)."""
    rows = _rows(table, condition, set_, metric)
    if rows.empty:
        raise ValueError(f"the table has no row for condition={condition!r}, set={set_!r}, metric={metric!r}")
    return {int(r.seed): float(r.value) for r in rows.itertuples()}


def _seed_column(table: pd.DataFrame, condition: str, set_: str, metric: str, column: str) -> dict:
    """{seed: the row's `column`} (None for a table without that column)."""
    rows = _rows(table, condition, set_, metric)
    return {int(s): (v if column in table.columns else None) for s, v in
            zip(rows["seed"], rows[column] if column in table.columns else [None] * len(rows))}


def _rising(table, condition, set_, metric, seed) -> bool:
    """Whether that seed's curve was still rising at its end (analysis.still_rising)."""
    return bool(_seed_column(table, condition, set_, metric, "rising").get(seed) or False)


def _epochs(table, condition, set_, metric, seed) -> float:
    """The epochs that seed's run trained; NaN when unknown."""
    e = _seed_column(table, condition, set_, metric, "epochs").get(seed)
    return float(e) if e is not None and e == e else math.nan


def _trained_less_than_the_paper(epochs: float, paper_epochs: float) -> bool:
    """Unknown counts as fewer: a premise that did not come may still come, so its absence is
    open, never a contradiction."""
    return not epochs >= paper_epochs


def _trained(table: pd.DataFrame, condition: str) -> str:
    """'N steps (E epochs)': the most a condition's runs trained, from a per-seed table."""
    rows = table[table["condition"] == condition]
    if rows.empty or "steps" not in table.columns:
        return "the steps trained"
    epochs = rows["epochs"].dropna().astype(float).max() if "epochs" in table.columns else math.nan
    return f"{int(rows['steps'].max())} steps" + (f" ({epochs:.0f} epochs)" if epochs == epochs else "")


def _reasons_note(branch: str, outcomes, share_at: float, reasons: dict[str, str], holds: str = "") -> str:
    """share_note, with a contradiction's parts each in words."""
    kind, _, reason = branch.partition(":")
    words = {reason: "; ".join(reasons.get(p, p) for p in reason.split("+"))} if reason else {}
    return share_note(branch, outcomes, share_at, {**reasons, **words}, holds)


def _verdict(outcomes, share_at, reasons, numbers, key=(), subject="", holds_branch="holds", holds_note="") -> Verdict:
    """The Verdict of a rule whose claim is judged as one share of seeds."""
    holds, branch = judge(outcomes, share_at, holds_branch)
    numbers.update(share_numbers(outcomes, share_at))
    key = tuple(key) + (next(k for k in numbers if k.startswith("share of seeds showing it")),)
    return Verdict(holds, branch, numbers, _reasons_note(branch, outcomes, share_at, reasons, holds_note), key,
                   tally(outcomes, subject), per_seed(outcomes))


# --- chapter 00 -----------------------------------------------------------------------------------
def _contrast_outcome(seed, em, table, generalises_at, near_zero, composes_at, paper_epochs) -> Outcome:
    """One seed of chapter 00: its standard transformer and recursive model, judged together."""
    sid, soo, rid, roo = (em[m, s][seed] for m, s in (("standard", IID), ("standard", OOD), ("recursive", IID),
                                                       ("recursive", OOD)))
    values = f"ID: standard {sid:.2f}, recursive {rid:.2f}; OOD: standard {soo:.2f}, recursive {roo:.2f}"
    if not (sid >= generalises_at and rid >= generalises_at):
        return Outcome(seed, None, values, "in_distribution_not_established")
    failed = [name for name, ok in (("standard_transformer_composes_ood", soo <= near_zero),
                                    ("recursive_model_does_not_compose_ood", roo >= composes_at)) if not ok]
    if not failed:
        return Outcome(seed, True, values)
    if failed == ["recursive_model_does_not_compose_ood"]:
        if _rising(table, RECURSIVE, OOD, "answer_exact_match", seed):
            return Outcome(seed, None, values, "recursive_model_still_rising")
        if _trained_less_than_the_paper(_epochs(table, RECURSIVE, OOD, "answer_exact_match", seed), paper_epochs):
            return Outcome(seed, None, values, "recursive_model_trained_less_than_the_paper")
    return Outcome(seed, False, values, "+".join(failed))


def task_contrast(table: pd.DataFrame, generalises_at: float = 0.5, near_zero: float = 0.1,
                  composes_at: float = 0.5, paper_epochs: float = PAPER_EPOCHS, share_at: float = SHARE_AT) -> Verdict:
    """The recursive model composes OOD and the standard transformer does not, both generalising ID.

    `table`: analysis.seed_values over (test_inferred_iid, test_inferred_ood) x (answer_exact_match,
    exact_match). Both models are judged by one definition, exact match at the answer slot (the
    recursive model's labels also hold the copied prefix; the standard transformer is trained on
    the answer only); exact match over each model's supervised slots is shown beside it. A seed
    (one run of each model) shows the contrast when both reach `generalises_at` on held-out ID
    compositions, the standard transformer stays at or below `near_zero` on OOD ones and the
    recursive model reaches `composes_at`. It is open when a model does not generalise ID (the
    premise), or when only the recursive model falls short while its curve still rises or after
    fewer epochs than the paper's; otherwise it contradicts the contrast."""
    _require(table, SEED_COLUMNS, "the per-seed table")
    models = (("standard", STANDARD), ("recursive", RECURSIVE))
    em = {(m, s): seed_values(table, cond, s, "answer_exact_match") for m, cond in models for s in (IID, OOD)}
    full = {(m, s): seed_values(table, cond, s, "exact_match") for m, cond in models for s in (IID, OOD)}
    names = {"standard": STANDARD, "recursive": "recursive model"}
    numbers = {f"{names[m]}, {'OOD' if s == OOD else 'ID'}: answer-slot exact match": by_seed(v)
               for (m, s), v in em.items()}
    numbers.update({f"{names[m]}, {'OOD' if s == OOD else 'ID'}: exact match over its supervised slots": by_seed(v)
                    for (m, s), v in full.items()})
    numbers["recursive model: trained"] = _trained(table, RECURSIVE)
    seeds = sorted(set.intersection(*(set(v) for v in em.values())))
    if not seeds:
        return Verdict(None, "not_shown:no_paired_seeds", numbers, "no seed has a run of both models")
    outcomes = [_contrast_outcome(s, em, table, generalises_at, near_zero, composes_at, paper_epochs) for s in seeds]
    reasons = {"in_distribution_not_established": "a model does not generalise in distribution (answer-slot exact "
               f"match on held-out ID compositions below {generalises_at})",
               "recursive_model_still_rising": f"the recursive model is below {composes_at} on OOD compositions, but its "
               "curve was still rising at the end of the steps trained: more steps would decide",
               "recursive_model_trained_less_than_the_paper": f"the recursive model is below {composes_at} on OOD "
               f"compositions after fewer epochs than the paper's {paper_epochs:.0f}: the composition may still come",
               "standard_transformer_composes_ood": f"the standard transformer exceeds {near_zero} on OOD compositions",
               "recursive_model_does_not_compose_ood": f"the recursive model stays below {composes_at} on OOD compositions"}
    return _verdict(outcomes, share_at, reasons, numbers, subject="the contrast",
                    holds_note=f"at each, both models generalise ID, the standard transformer stays at or below "
                               f"{near_zero} on OOD compositions and the recursive model reaches {composes_at}")


# --- chapter 01 -----------------------------------------------------------------------------------
PATH_COLUMNS = ("seed", "grokked", "pre_step", "similarity", "low", "high", "chance_high")
MIN_ELIGIBLE = 3   # seeds that grokked with a pre-grokking checkpoint: fewer decide nothing


def _path_outcome(r, same_path_at: float) -> Outcome:
    """One eligible seed of chapter 01: its similarity interval against `same_path_at`, and its
    lower end against that seed's chance level (a paired difference)."""
    sim, low, high, chance = float(r.similarity), float(r.low), float(r.high), float(r.chance_high)
    values = (f"similarity {sim:.2f} [{low:.2f}, {high:.2f}], chance level up to {chance:.2f} "
              f"(lower end {low - chance:+.2f} against it)")
    if high < same_path_at:
        return Outcome(int(r.seed), False, values, "paths_differ")
    if low < same_path_at:
        return Outcome(int(r.seed), None, values, "interval_straddles")
    if not low > chance:
        return Outcome(int(r.seed), None, values, "not_above_chance")
    return Outcome(int(r.seed), True, values)


def _ineligible(r) -> str:
    """Why a seed is not judged, with the similarity it shows all the same."""
    if r.pre_step is None or r.pre_step != r.pre_step:
        return "not eligible (no pre-grokking checkpoint)"
    return f"not eligible (did not grok): similarity pre vs end {float(r.similarity):.2f}"


def identical_paths(table: pd.DataFrame, same_path_at: float = 0.8, min_eligible: int = MIN_ELIGIBLE,
                    share_at: float = SHARE_AT) -> Verdict:
    """Claim 1, seed by seed: the path before grokking and after it are the same.

    `table`: one row per seed, columns PATH_COLUMNS (inference_paths.path_similarity_table). A seed
    is eligible when it grokked and has a pre-grokking checkpoint; fewer than `min_eligible`
    eligible seeds decide nothing. An eligible seed shows the claim when its similarity's bootstrap
    interval is at or above `same_path_at` and its lower end above the chance level's upper end;
    it contradicts it when the interval lies wholly below `same_path_at`; otherwise it is open."""
    _require(table, PATH_COLUMNS, "the path-similarity table")
    t = table.sort_values("seed")
    eligible = t[t["grokked"].astype(bool) & t["pre_step"].notna()]
    numbers: dict = {"seeds that grokked, with a pre-grokking checkpoint": f"{len(eligible)}/{len(t)}"}
    for r in t.itertuples():
        if r.pre_step is None or r.pre_step != r.pre_step:
            numbers[f"seed {r.seed}: path similarity"] = "no pre-grokking checkpoint"
            continue
        label = "pre vs post grokking" if r.Index in eligible.index else "pre vs end (did not grok)"
        numbers[f"seed {r.seed}: path similarity, {label}"] = (float(r.similarity), float(r.low), float(r.high))
        numbers[f"seed {r.seed}: chance level (upper end)"] = float(r.chance_high)
    count = f"{len(eligible)} of {len(t)} seeds eligible (grokked, with a pre-grokking checkpoint)"
    outcomes = [_path_outcome(r, same_path_at) for r in eligible.itertuples()]
    judged = {o.seed: o.line() for o in outcomes}
    every_seed = "; ".join(f"seed {r.seed}: {judged.get(int(r.seed)) or _ineligible(r)}" for r in t.itertuples())
    if eligible.empty:
        reason = "no_grokked_seed" if not t["grokked"].astype(bool).any() else "no_pre_grokking_checkpoint"
        return Verdict(None, f"not_shown:{reason}", numbers, "no seed both grokked and kept a checkpoint from before, "
                       "so there is no pair of paths to compare at this scale", tally=count, per_seed=every_seed)
    if len(eligible) < min_eligible:
        numbers.update(share_numbers(outcomes, share_at))
        return Verdict(None, "not_shown:too_few_eligible_seeds", numbers,
                       f"{len(eligible)} of {len(t)} seeds grokked with a pre-grokking checkpoint; the rule needs at "
                       f"least {min_eligible} such seeds", tally=f"{count}; " + tally(outcomes), per_seed=every_seed)
    reasons = {"paths_differ": f"a grokked seed's similarity interval lies wholly below {same_path_at}",
               "interval_straddles": f"a grokked seed's similarity interval straddles {same_path_at}",
               "not_above_chance": "the similarity is high, but not above what shuffled maps reach by chance"}
    v = _verdict(outcomes, share_at, reasons, numbers, subject="the same path",
                 holds_note=f"at each, the similarity interval is at or above {same_path_at} and above the chance level")
    return replace(v, tally=f"{count}; {v.tally}", per_seed=every_seed)


COMPOSING_PATH_COLUMNS = ("seed", "natural_ood", "composer_ood", "contrast", "similarity", "low", "high", "chance_high")


def _not_a_contrast(r, composes_at: float) -> str:
    """Why a seed does not test the composing variant, with the similarity it shows all the same."""
    why = ("the both-hops-full run does not compose" if r.composer_ood < composes_at
           else "the natural run composes too")
    return (f"not eligible ({why}: OOD exact match both hops full {r.composer_ood:.2f}, natural {r.natural_ood:.2f}); "
            f"similarity {float(r.similarity):.2f}")


def composing_paths(table: pd.DataFrame, same_path_at: float = 0.8, composes_at: float = GROKKING_CRITERION,
                    min_eligible: int = MIN_ELIGIBLE, share_at: float = SHARE_AT) -> Verdict:
    """Claim 1's composing variant, seed by seed: on ID queries, the model that composes OOD facts
    (both hops full) and the one that does not (natural, same graph and seed) use the same path.

    `table`: one row per seed, columns COMPOSING_PATH_COLUMNS
    (inference_paths.composing_similarity_table). A seed is eligible when it shows the contrast
    (the both-hops-full run composes, the natural one does not); fewer than `min_eligible` eligible
    seeds decide nothing. An eligible seed is judged as in `identical_paths`: its similarity
    interval at or above `same_path_at` with its lower end above its chance level shows the claim,
    an interval wholly below `same_path_at` contradicts it, anything else is open."""
    _require(table, COMPOSING_PATH_COLUMNS, "the composing path-similarity table")
    t = table.sort_values("seed")
    eligible = t[t["contrast"].astype(bool)]
    numbers: dict = {"seeds with the contrast (both hops full composes, natural does not)": f"{len(eligible)}/{len(t)}"}
    for r in t.itertuples():
        numbers[f"seed {r.seed}: OOD exact match, both hops full / natural"] = f"{r.composer_ood:.2f} / {r.natural_ood:.2f}"
        numbers[f"seed {r.seed}: path similarity, both hops full vs natural"] = (float(r.similarity), float(r.low), float(r.high))
        numbers[f"seed {r.seed}: chance level (upper end)"] = float(r.chance_high)
    count = f"{len(eligible)} of {len(t)} seeds eligible (both hops full composes, natural does not)"
    outcomes = [_path_outcome(r, same_path_at) for r in eligible.itertuples()]
    judged = {o.seed: o.line() for o in outcomes}
    every_seed = "; ".join(f"seed {r.seed}: {judged.get(int(r.seed)) or _not_a_contrast(r, composes_at)}"
                           for r in t.itertuples())
    if len(eligible) < min_eligible:
        numbers.update(share_numbers(outcomes, share_at))
        return Verdict(None, "not_shown:too_few_eligible_seeds", numbers,
                       f"{len(eligible)} of {len(t)} seeds show the contrast (a composing and a non-composing model "
                       f"of the same graph and seed); the rule needs at least {min_eligible} such seeds",
                       tally=f"{count}; " + tally(outcomes), per_seed=every_seed)
    reasons = {"paths_differ": f"a seed's similarity interval lies wholly below {same_path_at}",
               "interval_straddles": f"a seed's similarity interval straddles {same_path_at}",
               "not_above_chance": "the similarity is high, but not above what shuffled maps reach by chance"}
    v = _verdict(outcomes, share_at, reasons, numbers, subject="the same path",
                 holds_note=f"at each, the similarity interval is at or above {same_path_at} and above the chance level")
    return replace(v, tally=f"{count}; {v.tally}", per_seed=every_seed)


# --- chapter 02 -----------------------------------------------------------------------------------
def _reading(accuracy: bool, circuit: bool) -> str:
    if accuracy and not circuit:
        return "accuracy without circuit"
    if circuit and not accuracy:
        return "circuit without accuracy"
    return "both formed" if accuracy else "neither formed"


CIRCUIT_PROBES = {   # the circuit's readings, in the order the verdict tries them
    "bridge_found_tail_slots": "logit lens: bridge at the answer/END slot",
    "bridge_decoded": "linear probe: bridge decoded from one state",
}
COMPOSER = REGIMES["both_full"].label   # the trained model known to compose, once mature
MATURE_AT = 0.9                         # its OOD exact match, at every seed
MIN_CONTROL_SEEDS = 2                   # a trained control passes at every seed, and one seed never decides
DECOUPLED = ("accuracy without circuit", "circuit without accuracy")


TRAINED_NEGATIVES = {   # trained models without the bridge circuit, each probe must read low at every seed measured
    "natural, earliest snapshot": "the natural run at its earliest stored snapshot with the OOD atomic facts "
                                  "stored and the held-out ID compositions not yet answered (no path formed yet)",
    "standard transformer": "the standard transformer at the end of training (it never answers OOD compositions)",
}


def _trained_negative(c: dict, name: str) -> dict:
    """{seed: value} of one trained negative in a probe's controls (empty when it was not measured)."""
    return {int(k): float(x) for k, x in (c.get(name) or {}).items() if x is not None and x == x}


def circuit_probe(table: pd.DataFrame, controls: dict[str, dict], circuit_at: float = 0.5
                  ) -> tuple[str | None, dict, str, list[str]]:
    """The probe the circuit is read by: the first probe of CIRCUIT_PROBES that passes its controls,
    or else the first that passes every control that was measured (None if none does), with the
    controls' numbers, why each probe failed, and the trained negatives the chosen probe was not
    checked on (empty when it passed them all).

    A probe passes when it finds the bridge (at least `circuit_at`) in the hand-built composer and
    in the mature both-hops-full model at every seed, and does not (below `circuit_at`) in the
    hand-built lookup, an untrained network, and each trained negative (TRAINED_NEGATIVES; `controls`
    holds them as {seed: value}) at every seed it was measured at. A trained negative measured at no
    seed leaves the probe unchecked, not failed. The caller checks first that the both-hops-full
    model is mature."""
    numbers, failures_, unchecked = {}, [], []
    for metric, name in CIRCUIT_PROBES.items():
        c = controls[metric]
        trained = seed_values(table, COMPOSER, OOD, metric)
        numbers.update({f"{name}: {k}": c[k] for k in ("composer", "lookup", "untrained")})
        numbers[f"{name}: mature {COMPOSER}"] = by_seed(trained)
        negatives = {k: _trained_negative(c, k) for k in TRAINED_NEGATIVES}
        numbers.update({f"{name}: {k}": by_seed(vals) if vals else "not measured" for k, vals in negatives.items()})
        found = {"the hand-built composer": c["composer"] >= circuit_at,
                 f"the mature {COMPOSER} model": all(v >= circuit_at for v in trained.values())}
        quiet = {"the hand-built lookup": c["lookup"] < circuit_at, "an untrained network": c["untrained"] < circuit_at}
        quiet.update({f"the {k}": all(x < circuit_at for x in vals.values()) for k, vals in negatives.items()})
        missed = [k for k, ok in found.items() if not ok] + [f"finds it in {k}" for k, ok in quiet.items() if not ok]
        unmeasured = [k for k, vals in negatives.items() if not vals]
        if not missed and not unmeasured:
            return metric, numbers, "; ".join(failures_), []
        if missed:
            failures_.append(f"{name} misses the bridge in " + ", ".join(missed))
        elif not unchecked:
            unchecked = [metric, unmeasured]
    if unchecked:
        return unchecked[0], numbers, "; ".join(failures_), unchecked[1]
    return None, numbers, "; ".join(failures_), []


def _regime_outcome(table, regime, seed, probe, em, circuit, grokking_criterion, circuit_at, paper_epochs) -> Outcome:
    """One seed of one regime: decoupled (shows it), coupled (contradicts it), or neither formed
    while a curve still rises or after fewer epochs than the paper (open)."""
    reading = _reading(em >= grokking_criterion, circuit >= circuit_at)
    values = f"OOD exact match {em:.2f}, circuit {circuit:.2f}: {reading}"
    if reading in DECOUPLED:
        return Outcome(seed, True, values, reading.replace(" ", "_"))
    if reading == "neither formed":
        if any(_rising(table, regime, OOD, m, seed) for m in ("exact_match", probe)):
            return Outcome(seed, None, values, "still_rising")
        if _trained_less_than_the_paper(_epochs(table, regime, OOD, "exact_match", seed), paper_epochs):
            return Outcome(seed, None, values, "trained_less_than_the_paper")
    return Outcome(seed, False, values, reading.replace(" ", "_"))


# the reason an undecided regime gives the verdict: a regime with seeds enough that splits first
_OPEN_PRIORITY = ("share_straddles", "still_rising", "trained_less_than_the_paper", "too_few_seeds")


def _mature_composer(table, mature_at, numbers) -> bool:
    """Whether the both-hops-full model composes at every seed, at least MIN_CONTROL_SEEDS of them."""
    em = seed_values(table, COMPOSER, OOD, "exact_match")
    numbers[f"{COMPOSER}: OOD exact match"] = by_seed(em)
    return len(em) >= MIN_CONTROL_SEEDS and all(v >= mature_at for v in em.values())


def accuracy_vs_circuit(table: pd.DataFrame, controls: dict[str, dict[str, float]],
                        grokking_criterion: float = GROKKING_CRITERION, circuit_at: float = 0.5,
                        mature_at: float = MATURE_AT, paper_epochs: float = PAPER_EPOCHS,
                        share_at: float = SHARE_AT) -> Verdict:
    """Claim 2: OOD accuracy and the bridge circuit come apart in some data regime.

    `table`: analysis.seed_values on test_inferred_ood with exact_match, bridge_found_tail_slots
    and bridge_found, plus analysis.probe_seed_values (bridge_decoded), one condition per regime
    label; `controls`: linear_probe.circuit_probe_controls. The circuit is read by the first probe
    that passes its positive and negative controls (`circuit_probe`), once the both-hops-full
    model composes at every seed (at least two): a probe blind to the bridge in models known to
    compose cannot tell "no circuit". A seed of a regime shows the decoupling when one of OOD
    exact match (against `grokking_criterion`) and the circuit (against `circuit_at`) formed and the
    other did not. Holds when some regime's share of decoupled seeds lies above `share_at`; does
    not hold when every regime's lies below. The authors' bridge-found (any state, any slot,
    copied prefix included) is reported but not judged."""
    _require(table, SEED_COLUMNS, "the per-seed table")
    regimes = [r for r in table["condition"].drop_duplicates() if r not in (STANDARD, CONTROL)]
    numbers: dict = {}
    if COMPOSER not in regimes or not _mature_composer(table, mature_at, numbers):
        return Verdict(None, "not_shown:no_mature_composer", numbers,
                       f"the {COMPOSER} model does not reach OOD exact match {mature_at} at every seed (at least "
                       f"{MIN_CONTROL_SEEDS}): no trained model known to compose can check the circuit probes",
                       (f"{COMPOSER}: OOD exact match",))
    probe, control_numbers, why, unmeasured = circuit_probe(table, controls, circuit_at)
    numbers.update(control_numbers)
    if probe is None:
        numbers["why the probes fail"] = why
        return Verdict(None, "not_shown:probe_blind", numbers, "no circuit probe passes its controls: at this scale the "
                       "probes cannot tell whether a model holds the bridge", ("why the probes fail",))
    name = CIRCUIT_PROBES[probe]
    numbers["circuit read by"] = name + (f" (the other failed its controls: {why})" if why else "")
    outcomes = {r: _regime_numbers(table, r, probe, name, grokking_criterion, circuit_at, paper_epochs, share_at, numbers)
                for r in regimes}
    v = _decoupling(outcomes, share_at, numbers)
    if not unmeasured:
        return v
    numbers["trained negative controls not measured"] = ", ".join(unmeasured)   # v.numbers is this dict
    if v.holds is None:
        return v                                # open already: the missing controls could not decide it either
    reading = WORDS[v.holds].lower()
    return replace(v, holds=None, branch="not_shown:trained_controls_not_measured",
                   note=f"the circuit probe passed every control that was measured, but not the trained negative(s) "
                        f"{', '.join(unmeasured)}, whose weights are not at hand: a probe not checked on a trained "
                        f"model without the circuit decides nothing (with them the reading would be: {reading})")


def _regime_numbers(table, regime, probe, name, grokking_criterion, circuit_at, paper_epochs, share_at, numbers):
    """One regime's per-seed outcomes, with its numbers added to `numbers`."""
    em, circuit = seed_values(table, regime, OOD, "exact_match"), seed_values(table, regime, OOD, probe)
    outcomes = [_regime_outcome(table, regime, s, probe, em[s], circuit[s], grokking_criterion, circuit_at, paper_epochs)
                for s in sorted(set(em) & set(circuit))]
    n, yes, _, _ = counts(outcomes)
    numbers.update({f"{regime}: OOD exact match": by_seed(em), f"{regime}: {name}": by_seed(circuit),
                    f"{regime}: bridge found anywhere (the authors' measure)":
                        by_seed(seed_values(table, regime, OOD, "bridge_found")),
                    f"{regime}: decoupled seeds": f"{yes}/{n}",
                    f"{regime}: share decoupled (95% Wilson interval)": share(outcomes)})
    numbers.update({f"{regime}: seed {o.seed}": o.line() for o in outcomes})
    return outcomes


def _decoupling(outcomes: dict[str, list[Outcome]], share_at: float, numbers: dict) -> Verdict:
    """Chapter 02's verdict from each regime's per-seed outcomes."""
    decided = {r: decide(o, share_at) for r, o in outcomes.items()}
    key = max(outcomes, key=lambda r: (decided[r] is True, counts(outcomes[r])[1],   # most decoupled seeds
                                       share(outcomes[r])[0] if outcomes[r] else -1))
    key_numbers = (f"{key}: decoupled seeds", f"{key}: share decoupled (95% Wilson interval)")
    numbers["decoupled seeds, per regime"] = "; ".join(tally(o, r) for r, o in outcomes.items())

    def verdict(holds, branch, note):
        return Verdict(holds, branch, numbers, note, key_numbers, "decoupled, per regime: " + numbers[
            "decoupled seeds, per regime"], f"{key}: {per_seed(outcomes[key])}")

    holding = [r for r, d in decided.items() if d is True]
    if holding:
        kinds = sorted({o.why for r in holding for o in outcomes[r] if o.shown})
        branch = "holds:both_directions" if len(kinds) == 2 else "holds:" + kinds[0]
        return verdict(True, branch, f"in {', '.join(holding)} the share of seeds where one of OOD accuracy and the "
                       f"bridge circuit formed and the other did not has a 95% Wilson interval above {share_at}")
    if all(d is False for d in decided.values()):
        return verdict(False, "does_not_hold:coupled_in_every_regime", f"in every regime the share of decoupled seeds "
                       f"has a 95% Wilson interval below {share_at}: OOD accuracy and the circuit formed together or not at all")
    reasons = {open_reason(outcomes[r], share_at) for r, d in decided.items() if d is None}
    reason = next(r for r in _OPEN_PRIORITY if r in reasons)
    notes = {"still_rising": "in a regime, seeds where neither formed were still rising at the end of the steps trained: "
                             "more steps would decide",
             "trained_less_than_the_paper": "in a regime, seeds where neither formed trained fewer epochs than the "
                                            "paper's: either may still come",
             "share_straddles": f"no regime's share of decoupled seeds has a 95% Wilson interval above {share_at}, "
                                "and some regime's straddles it: more seeds would decide",
             "too_few_seeds": f"the regimes still open have too few seeds for a share's 95% Wilson interval to clear "
                              f"{share_at} (it takes {seeds_to_clear(share_at)} seeds all agreeing)"}
    return verdict(None, f"not_shown:{reason}", notes[reason])


# --- chapter 02: which OOD compositions are answered (science/composed.py) --------------------------
COMPOSED_COLUMNS = ("seed", "cell", "n", "exact_match")
BOTH_COMPOSED, NEITHER_COMPOSED = "both hops composed", "neither composed"   # composed.CELLS[0], [-1]
MIN_CELL = 10   # queries a cell needs before its exact match decides anything


def _composed_outcome(seed: int, cells: pd.DataFrame, composes_at: float, reaches_at: float, min_cell: int) -> Outcome:
    """One seed: its queries whose two facts were both composed in training are the control (the model
    must answer them), those with neither composed the test."""
    row = {c: r for c, r in zip(cells["cell"], cells.itertuples())}
    both, neither = row.get(BOTH_COMPOSED), row.get(NEITHER_COMPOSED)
    if both is None or neither is None or min(both.n, neither.n) < min_cell:
        sizes = ", ".join(f"{c} {int(r.n)}" for c, r in row.items())
        return Outcome(seed, None, f"queries per cell: {sizes or 'none'}", "cells_too_small")
    values = f"both hops composed {both.exact_match:.2f} (n {int(both.n)}), neither {neither.exact_match:.2f} (n {int(neither.n)})"
    if both.exact_match < composes_at:
        return Outcome(seed, None, values, "does_not_compose_its_trained_facts")
    if neither.exact_match >= reaches_at:
        return Outcome(seed, True, values)
    return Outcome(seed, False, values, "bound_to_composed_facts")


COMPOSED_REASONS = {
    "bound_to_composed_facts": "the model answers the OOD queries whose facts it saw composed and not those whose "
                               "facts it never saw composed",
    "cells_too_small": "too few OOD queries with both or with neither fact composed in training",
    "does_not_compose_its_trained_facts": "the model does not answer even the OOD queries whose facts it saw "
                                          "composed, so the split cannot tell",
}


def composition_beyond_composed_facts(cells: pd.DataFrame, composes_at: float = MATURE_AT, reaches_at: float = 0.5,
                                      min_cell: int = MIN_CELL, share_at: float = SHARE_AT) -> Verdict:
    """Does a model that composes OOD facts compose those it never saw composed?

    `cells`: one regime's OOD test compositions split by `composed.ood_by_composed`, a row per seed
    and cell (COMPOSED_COLUMNS). A seed shows it when the queries with neither fact composed in
    training reach `reaches_at` exact match while those with both composed reach `composes_at` (the
    positive control); it contradicts it when the control passes and the uncomposed queries stay
    below; it is open when the control fails or either cell has fewer than `min_cell` queries.
    Judged as a share of seeds against `share_at`."""
    _require(cells, COMPOSED_COLUMNS, "the composed-facts table")
    outcomes = [_composed_outcome(int(seed), g, composes_at, reaches_at, min_cell)
                for seed, g in cells.groupby("seed", sort=True)]
    numbers = {}
    for name in (BOTH_COMPOSED, NEITHER_COMPOSED):
        numbers[f"OOD exact match, {name}"] = by_seed(
            {int(r.seed): float(r.exact_match) for r in cells[cells["cell"] == name].itertuples()})
    return _verdict(outcomes, share_at, COMPOSED_REASONS, numbers,
                    key=(f"OOD exact match, {NEITHER_COMPOSED}",), subject="composition beyond the composed facts")


# --- chapter 03 -----------------------------------------------------------------------------------
TRANSFER_COLUMNS = ("condition", "seed", "is_control", "pretrain_ood_exact_match") + TRANSFER_SETS


def _transfer_outcome(seed, v, control, rising, memorised_at, composes_at, near_zero) -> Outcome:
    """One mature seed of chapter 03: its mature models' mean on each set, and new+old against the
    from-scratch control of the same seed (a paired difference)."""
    gain = v["new_old"] - control
    values = (f"new facts {v['new_atomic']:.2f}; new+old {v['new_old']:.2f} (control {control:.2f}, difference "
              f"{gain:+.2f}); old+new {v['old_new']:.2f}; new+new {v['new_new']:.2f}")
    if v["new_atomic"] < memorised_at:
        return Outcome(seed, None, values, "new_facts_not_memorised")
    failed = [name for name, ok in (("new_old_not_composed", v["new_old"] >= composes_at), ("not_above_control", gain > 0),
                                    ("old_new_composed", v["old_new"] <= near_zero),
                                    ("new_new_composed", v["new_new"] <= near_zero)) if not ok]
    if not failed:
        return Outcome(seed, True, values)
    if failed == ["new_old_not_composed"] and rising:
        return Outcome(seed, None, values, "new_old_still_rising")
    return Outcome(seed, False, values, "+".join(failed))


def limited_transfer(table: pd.DataFrame, grokking_criterion: float = GROKKING_CRITERION,
                     memorised_at: float = 0.9, composes_at: float = 0.5, near_zero: float = 0.1,
                     share_at: float = SHARE_AT) -> Verdict:
    """Claim 3: a mature circuit composes a new first hop with an old second hop, and nothing else.

    `table`: one row per fine-tuned run (analysis.transfer_table), columns TRANSFER_COLUMNS. A
    fine-tuned model is mature only when its own pretraining run's OOD exact match reached
    `grokking_criterion`; each seed's mature models are averaged (never with a non-grokked one)
    and paired with the from-scratch control of that seed. A mature seed shows the claim when its
    new facts are memorised (a premise: else open), new+old reaches `composes_at` and exceeds the
    control's, and old+new and new+new stay at or below `near_zero`; a new+old still rising at the
    end of fine-tuning, the only part missing, leaves it open."""
    _require(table, TRANSFER_COLUMNS, "the transfer table")
    fine = table[~table["is_control"].astype(bool)]
    mature = fine[fine["pretrain_ood_exact_match"].astype(float) >= grokking_criterion]
    seeds = sorted(int(s) for s in mature["seed"].unique())
    numbers: dict = {"fine-tuned models whose pretraining grokked": f"{len(mature)}/{len(fine)}",
                     "seeds with a mature model": ", ".join(map(str, seeds)) or "none"}
    if not seeds:
        return Verdict(None, "not_shown:no_grokked_seed", numbers, f"no pretraining run reached OOD exact match "
                       f"{grokking_criterion}, so there is no mature circuit to transfer at this scale")
    per_seed_ = mature.groupby("seed")[list(TRANSFER_SETS)].mean()                # (seeds, 4): mature only
    control = table[table["is_control"].astype(bool)].set_index("seed")
    missing = [s for s in seeds if s not in control.index]
    if missing:
        raise ValueError(f"the transfer table has no from-scratch control for seed(s) {missing}")
    rising = mature.groupby("seed")["new_old_rising"].any() if "new_old_rising" in mature.columns else {}
    outcomes = [_transfer_outcome(s, per_seed_.loc[s], float(control.loc[s, "new_old"]), bool(rising.get(s, False)),
                                  memorised_at, composes_at, near_zero) for s in seeds]
    names = {"new_atomic": "new facts", "new_old": "new+old", "old_new": "old+new", "new_new": "new+new"}
    numbers.update({f"mature models: {names[s]} exact match": by_seed(per_seed_[s].to_dict()) for s in TRANSFER_SETS})
    numbers["from-scratch control: new+old exact match (same seeds)"] = by_seed(
        {s: float(control.loc[s, "new_old"]) for s in seeds})
    reasons = {"new_facts_not_memorised": f"the mature models' exact match on the new facts is below {memorised_at}, so "
               "what they compose from those facts cannot be judged",
               "new_old_still_rising": f"new+old is below {composes_at}, but a mature model's new+old curve was still "
               "rising at the end of fine-tuning: more steps would decide",
               "new_old_not_composed": f"new+old stays below {composes_at}",
               "not_above_control": "new+old does not exceed the from-scratch control of the same seed",
               "old_new_composed": f"old+new exceeds {near_zero}", "new_new_composed": f"new+new exceeds {near_zero}"}
    return _verdict(outcomes, share_at, reasons, numbers, subject="limited transfer",
                    holds_note=f"at each, new facts are memorised, new+old reaches {composes_at} and exceeds the "
                               f"control's, old+new and new+new stay at or below {near_zero}")


# --- chapter 04 -----------------------------------------------------------------------------------
COST_COLUMNS = ("regime", "seed", "steps_trained", "steps_to_criterion")
PAPER_NATURAL_EPOCHS = 280   # the epochs the paper's natural run took to its OOD target (its figure)


def _saved_fraction(natural: float, augmented: float) -> float:
    """The share of the natural run's steps that augmentation saves: 1 - augmented / natural."""
    return 1.0 - augmented / natural if math.isfinite(augmented) else -math.inf


def _reached(r) -> bool:
    return r.steps_to_criterion == r.steps_to_criterion


def _epochs_of(r, column: str) -> float:
    v = getattr(r, column, math.nan)
    return float(v) if v is not None and v == v else math.nan


def _road(r) -> str:
    """'reached at 2,667 steps (18 epochs)' or 'not reached in 40,000 steps (312 epochs)'."""
    if _reached(r):
        steps, epochs = float(r.steps_to_criterion), _epochs_of(r, "epochs_to_criterion")
        return f"reached at {_fmt(steps)} steps ({_whole(epochs)} epochs)"
    return f"not reached in {_fmt(float(r.steps_trained))} steps ({_whole(_epochs_of(r, 'epochs_trained'))} epochs)"


def _cost_outcome(seed, n, b, paper_natural_epochs) -> Outcome:
    """One seed of chapter 04: the share of the natural run's steps that augmenting saves, bounded
    below (a censored natural run counts the steps it trained; a censored augmented run saves
    nothing one can claim) and above (a censored augmented run counts its trained steps; a censored
    natural run would save everything); the same shares in epochs beside them."""
    n_at = float(n.steps_to_criterion) if _reached(n) else float(n.steps_trained)
    lower = _saved_fraction(n_at, float(b.steps_to_criterion) if _reached(b) else math.inf)
    b_at = float(b.steps_to_criterion if _reached(b) else b.steps_trained)
    upper = 1.0 if not _reached(n) else _saved_fraction(n_at, b_at)
    n_ep = _epochs_of(n, "epochs_to_criterion" if _reached(n) else "epochs_trained")
    lower_ep = _saved_fraction(n_ep, _epochs_of(b, "epochs_to_criterion") if _reached(b) else math.inf)
    values = (f"natural {_road(n)}; both hops full {_road(b)}; saves {_fmt(lower)} to {_fmt(upper)} of the steps "
              f"(at least {_fmt(lower_ep)} of the epochs)")
    if lower > 0 and not _reached(n):
        if not _epochs_of(n, "epochs_trained") >= paper_natural_epochs:
            return Outcome(seed, None, values, "natural_run_stopped_before_the_papers_epochs")
        return Outcome(seed, True, values + ", a bound set by the natural run's budget", "bound_by_the_budget")
    if lower > 0:
        return Outcome(seed, True, values)
    if upper <= 0:
        return Outcome(seed, False, values, "augmenting_not_cheaper")
    return Outcome(seed, None, values, "inconclusive")


def _budget(censored) -> str:
    """'40,000 steps, 312 epochs': the least a censored natural run trained."""
    return (f"{_fmt(min(float(r.steps_trained) for r in censored))} steps, "
            f"{_whole(min(_epochs_of(r, 'epochs_trained') for r in censored))} epochs")


def cost(table: pd.DataFrame, grokking_criterion: float = GROKKING_CRITERION,
         paper_natural_epochs: float = PAPER_NATURAL_EPOCHS, share_at: float = SHARE_AT) -> Verdict:
    """Augmenting the data (both hops, full) reaches OOD exact match `grokking_criterion` in fewer
    optimiser steps than waiting for grokking on the natural data, seed by seed.

    `table`: one row per pretraining run (analysis.cost_table), columns COST_COLUMNS and, for
    epochs, epochs_trained and epochs_to_criterion (steps_to_criterion NaN when the run never got
    there). A seed shows the claim when the lower bound of its saving (`_cost_outcome`) is above
    zero, contradicts it when the upper bound is at or below zero, and is open otherwise. A natural
    run that never reached the criterion bounds the saving by the budget it trained: that counts
    only when it trained at least the paper's epochs to its natural target (`paper_natural_epochs`)
    without reaching it; otherwise the seed is open."""
    _require(table, COST_COLUMNS, "the cost table")
    runs = {(r.regime, int(r.seed)): r for r in table.itertuples()}
    seeds = sorted({s for (reg, s) in runs if reg == "natural"} & {s for (reg, s) in runs if reg == "both_full"})
    compared = table[table["regime"].isin(["natural", "both_full"])]
    reached = compared["steps_to_criterion"].notna()
    numbers: dict = {f"natural and both-hops-full runs that reached OOD exact match {grokking_criterion}":
                     f"{int(reached.sum())}/{len(compared)}", "seeds with a natural and an augmented run": len(seeds)}
    for reg in ("natural", "both_full"):
        numbers[f"{REGIMES[reg].label}: steps to the grokking criterion"] = by_seed(
            {s: float(r.steps_to_criterion) for (g, s), r in runs.items() if g == reg}).replace("n/a", "not reached")
        numbers[f"{REGIMES[reg].label}: epochs to the grokking criterion"] = by_seed(
            {s: _epochs_of(r, "epochs_to_criterion") for (g, s), r in runs.items() if g == reg}, _whole).replace(
            "n/a", "not reached")
    early = tuple(numbers)[:2]
    if not seeds:
        return Verdict(None, "not_shown:no_paired_runs", numbers, "no seed has both a natural and a both-hops-full "
                       "pretraining run, so the two roads cannot be compared", early)
    if not reached.any():
        return Verdict(None, "not_shown:no_run_reached_criterion", numbers, f"no natural or both-hops-full run reached "
                       f"OOD exact match {grokking_criterion}, so neither road to it can be timed at this scale", early)
    outcomes = [_cost_outcome(s, runs["natural", s], runs["both_full", s], paper_natural_epochs) for s in seeds]
    censored = [runs["natural", o.seed] for o in outcomes if not _reached(runs["natural", o.seed])]
    if censored:
        numbers["natural runs that never reached the criterion: trained"] = _budget(censored)
    numbers["the paper's natural run: epochs to its target"] = paper_natural_epochs
    bound = any(o.why == "bound_by_the_budget" for o in outcomes if o.shown)
    reasons = {"natural_run_stopped_before_the_papers_epochs": "a natural run that never reached the criterion trained "
               f"fewer epochs than the paper's natural run took to reach it (about {paper_natural_epochs:.0f}): its budget "
               "bounds nothing", "inconclusive": "a run that never reached the criterion leaves the saving open either way",
               "augmenting_not_cheaper": "augmenting the data saves no steps, even by the generous (upper) bound"}
    v = _verdict(outcomes, share_at, reasons, numbers, subject="augmenting cheaper",
                 holds_branch="holds:bound_by_the_budget" if bound else "holds",
                 holds_note="augmenting saves steps by the conservative (lower) bound")
    if not censored:
        return v
    return replace(v, note=f"{v.note}. A natural run never reached OOD exact match {grokking_criterion}: its saving is "
                   f"a bound set by the budget it trained ({_budget(censored)}), not a measured saving, and counts only "
                   f"where that is at least the paper's {paper_natural_epochs:.0f} epochs to its natural target")
