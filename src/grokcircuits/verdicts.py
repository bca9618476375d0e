"""Every chapter's verdict as a pure function: tables in, a `Verdict` out.

A threshold counts as cleared only when the whole 95% interval across seeds lies on its side. A
claim HOLDS when every part of its rule is cleared that way; it DOES NOT HOLD when some part is
cleared the wrong way; otherwise it is NOT SHOWN (a premise missing at this scale, or intervals
that straddle a threshold). The `branch` names the rule branch taken in words that are the same
on every machine: what a notebook prints for regression tests, while the numbers (which differ
in their last digits between CPUs) go to an unchecked table and to the verdict file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from .config import REGIMES
from .inference_paths import DEFAULT_GROKKING_CRITERION as GROKKING_CRITERION   # OOD exact match of a grokked run
from .stats import mean_interval

Interval = tuple[float, float, float]   # (mean, low, high): a mean and its 95% interval over seeds

STANDARD = "standard transformer"               # analysis.condition_of's names of the conditions
RECURSIVE = REGIMES["natural"].label
CONTROL = "from scratch (control)"
OOD, IID = "test_inferred_ood", "test_inferred_iid"
TRANSFER_SETS = ("new_atomic", "new_old", "old_new", "new_new")
WORDS = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT SHOWN AT THIS SCALE"}
_PREFIX = {True: "holds", False: "does_not_hold", None: "not_shown"}


@dataclass(frozen=True)
class Verdict:
    """holds: True / False / None (not shown); branch: '<holds|does_not_hold|not_shown>[:reason]';
    numbers: name -> Interval, count or text; note: the branch in words, built from the rule's
    parameters only, so it reads the same on every machine."""
    holds: bool | None
    branch: str
    numbers: dict = field(default_factory=dict)
    note: str = ""
    key_numbers: tuple[str, ...] = ()   # the numbers the book's summary shows (when absent: the first two)

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


def _row(final: pd.DataFrame, condition: str, set_: str, metric: str) -> Interval:
    row = final[(final["condition"] == condition) & (final["set"] == set_) & (final["metric"] == metric)]
    if row.empty:
        raise ValueError(f"the table has no row for condition={condition!r}, set={set_!r}, metric={metric!r}")
    r = row.iloc[0]
    return (float(r["mean"]), float(r["low"]), float(r["high"]))


def _rising(final: pd.DataFrame, condition: str, set_: str, metric: str) -> bool:
    """Whether some seed's curve of this row was still rising at its end (analysis.still_rising);
    False for a table without that column."""
    row = final[(final["condition"] == condition) & (final["set"] == set_) & (final["metric"] == metric)]
    return bool("rising" in final.columns and not row.empty and bool(row.iloc[0]["rising"]))


def _trained(final: pd.DataFrame, condition: str) -> str:
    """'N steps (E epochs)': the most a condition's runs trained, as a table of final values gives it."""
    rows = final[final["condition"] == condition]
    if rows.empty or "steps" not in final.columns:
        return "the steps trained"
    r = rows.iloc[0]
    epochs = r.get("epochs")
    return f"{int(r['steps'])} steps" + (f" ({float(epochs):.0f} epochs)" if epochs is not None and epochs == epochs else "")


PAPER_EPOCHS = 1100   # the paper's pretraining length (PROTOCOL.md section 3)


def _epochs(final: pd.DataFrame, condition: str) -> float:
    """The most epochs a condition's runs trained, from a table of final values; NaN when unknown."""
    rows = final[final["condition"] == condition]
    if rows.empty or "epochs" not in final.columns:
        return math.nan
    value = rows["epochs"].astype(float).max()
    return float(value)


def _trained_less_than_the_paper(final: pd.DataFrame, condition: str, paper_epochs: float) -> bool:
    """Whether a condition trained fewer epochs than the paper (unknown counts as fewer): a premise
    that did not come may still come, so its absence is NOT SHOWN, never DOES NOT HOLD."""
    epochs = _epochs(final, condition)
    return not epochs >= paper_epochs


def _require(table: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {list(columns)}")


# --- chapter 00 -----------------------------------------------------------------------------------
def task_contrast(final: pd.DataFrame, generalises_at: float = 0.5, near_zero: float = 0.1,
                  composes_at: float = 0.5, paper_epochs: float = PAPER_EPOCHS) -> Verdict:
    """The recursive model composes OOD and the standard transformer does not, both generalising ID.

    `final`: analysis.final_values over (test_inferred_iid, test_inferred_ood) x (answer_exact_match,
    exact_match). Both models are judged by one definition, exact match at the answer slot (the
    recursive model's labels also hold the copied prefix; the standard transformer is trained on
    the answer only); exact match over each model's supervised slots is shown beside it."""
    em = {(m, s): _row(final, cond, s, "answer_exact_match")
          for m, cond in (("standard", STANDARD), ("recursive", RECURSIVE)) for s in (IID, OOD)}
    full = {(m, s): _row(final, cond, s, "exact_match")
            for m, cond in (("standard", STANDARD), ("recursive", RECURSIVE)) for s in (IID, OOD)}
    names = {"standard": STANDARD, "recursive": "recursive model"}
    numbers = {f"{names[m]}, {'OOD' if s == OOD else 'ID'}: answer-slot exact match": v for (m, s), v in em.items()}
    numbers.update({f"{names[m]}, {'OOD' if s == OOD else 'ID'}: exact match over its supervised slots": v
                    for (m, s), v in full.items()})
    key = (f"{STANDARD}, OOD: answer-slot exact match", "recursive model, OOD: answer-slot exact match")

    def verdict(holds, branch, note):
        return Verdict(holds, branch, numbers, note, key)

    if not (at_least(em["standard", IID], generalises_at) and at_least(em["recursive", IID], generalises_at)):
        return verdict(None, "not_shown:in_distribution_not_established",
                       f"the contrast needs both models to generalise in distribution (answer-slot exact match "
                       f"on held-out ID compositions at least {generalises_at} over the whole interval); "
                       f"at this scale at least one does not")
    standard_quiet = at_most(em["standard", OOD], near_zero)
    recursive_composes = at_least(em["recursive", OOD], composes_at)
    if standard_quiet and recursive_composes:
        return verdict(True, "holds", f"the standard transformer stays at or below {near_zero} on OOD compositions "
                       f"and the recursive model reaches at least {composes_at}")
    failures = [name for name, ok in (("standard_transformer_composes_ood", standard_quiet),
                                      ("recursive_model_does_not_compose_ood", recursive_composes)) if ok is False]
    if failures == ["recursive_model_does_not_compose_ood"] and _rising(final, RECURSIVE, OOD, "answer_exact_match"):
        numbers["recursive model: trained"] = _trained(final, RECURSIVE)
        return verdict(None, "not_shown:recursive_model_still_rising",
                       f"the recursive model is below {composes_at} on OOD compositions, but its curve was still rising "
                       f"at the end of the steps trained: more steps would decide")
    if failures == ["recursive_model_does_not_compose_ood"] and _trained_less_than_the_paper(final, RECURSIVE, paper_epochs):
        numbers["recursive model: trained"] = _trained(final, RECURSIVE)
        return verdict(None, "not_shown:recursive_model_trained_less_than_the_paper",
                       f"the recursive model is below {composes_at} on OOD compositions after fewer epochs than the "
                       f"paper's {paper_epochs:.0f}: the composition may still come")
    if failures:
        return verdict(False, "does_not_hold:" + "+".join(failures),
                       f"on OOD compositions the standard transformer should stay at or below {near_zero} and the "
                       f"recursive model reach at least {composes_at}; the intervals say otherwise")
    return verdict(None, "not_shown:ood_intervals_straddle",
                   f"an OOD interval straddles its threshold ({near_zero} or {composes_at}); more seeds would decide")


# --- chapter 01 -----------------------------------------------------------------------------------
PATH_COLUMNS = ("seed", "grokked", "pre_step", "similarity", "low", "high", "chance_high")


def identical_paths(table: pd.DataFrame, same_path_at: float = 0.8) -> Verdict:
    """Claim 1, seed by seed: the path before grokking and after it are the same.

    `table`: one row per seed, columns PATH_COLUMNS (inference_paths.path_similarity_table). A seed
    is eligible when it grokked and has a pre-grokking checkpoint. Holds when every eligible seed's
    similarity interval is at or above `same_path_at` and above the chance level's upper end; does
    not hold when some eligible seed's interval is wholly below `same_path_at`."""
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

    def verdict(holds, branch, note):
        return Verdict(holds, branch, numbers, note)

    if eligible.empty:
        reason = "no_grokked_seed" if not t["grokked"].astype(bool).any() else "no_pre_grokking_checkpoint"
        return verdict(None, f"not_shown:{reason}", "no seed both grokked and kept a checkpoint from before, "
                       "so there is no pair of paths to compare at this scale")
    ivs = [(float(r.similarity), float(r.low), float(r.high)) for r in eligible.itertuples()]
    same = [at_least(iv, same_path_at) for iv in ivs]
    if any(s is False for s in same):
        return verdict(False, "does_not_hold:paths_differ",
                       f"a grokked seed's similarity interval lies wholly below {same_path_at}")
    if not all(same):
        return verdict(None, "not_shown:interval_straddles",
                       f"a grokked seed's similarity interval straddles {same_path_at}")
    if not all(iv[1] > ch for iv, ch in zip(ivs, eligible["chance_high"].astype(float))):
        return verdict(None, "not_shown:not_above_chance",
                       "the similarity is high, but not above what shuffled maps reach by chance")
    return verdict(True, "holds", f"every grokked seed's similarity interval is at or above {same_path_at} "
                   "and above the chance level")


# --- chapter 02 -----------------------------------------------------------------------------------
def _reading(accuracy: bool | None, circuit: bool | None) -> str:
    if accuracy is True and circuit is False:
        return "accuracy without circuit"
    if accuracy is False and circuit is True:
        return "circuit without accuracy"
    if accuracy is not None and accuracy == circuit:
        return "both formed" if accuracy else "neither formed"
    return "unclear"


CIRCUIT_PROBES = {   # the circuit's readings, in the order the verdict tries them
    "bridge_found_tail_slots": "logit lens: bridge at the answer/END slot",
    "bridge_decoded": "linear probe: bridge decoded from one state",
}
COMPOSER = REGIMES["both_full"].label   # the trained model known to compose, once mature
MATURE_AT = 0.9                         # its OOD exact match, interval over seeds


def circuit_probe(final: pd.DataFrame, controls: dict[str, dict[str, float]],
                  circuit_at: float = 0.5) -> tuple[str | None, dict, str]:
    """The first probe of CIRCUIT_PROBES that passes its controls, (None if none does), with the
    controls' numbers and why each probe failed. A probe passes when it finds the bridge (at least
    `circuit_at`) in the hand-built composer and, over the whole interval, in the mature
    both-hops-full model, and does not (below `circuit_at`) in the hand-built lookup and an
    untrained network. The caller checks first that the both-hops-full model is mature."""
    numbers, failures = {}, []
    for metric, name in CIRCUIT_PROBES.items():
        c = controls[metric]
        trained = _row(final, COMPOSER, OOD, metric)
        numbers.update({f"{name}: {k}": c[k] for k in ("composer", "lookup", "untrained")})
        numbers[f"{name}: mature {COMPOSER}"] = trained
        found = {"the hand-built composer": c["composer"] >= circuit_at,
                 f"the mature {COMPOSER} model": at_least(trained, circuit_at) is True}
        quiet = {"the hand-built lookup": c["lookup"] < circuit_at, "an untrained network": c["untrained"] < circuit_at}
        missed = [k for k, ok in found.items() if not ok] + [f"finds it in {k}" for k, ok in quiet.items() if not ok]
        if not missed:
            return metric, numbers, "; ".join(failures)
        failures.append(f"{name} misses the bridge in " + ", ".join(missed))
    return None, numbers, "; ".join(failures)


def accuracy_vs_circuit(final: pd.DataFrame, controls: dict[str, dict[str, float]],
                        grokking_criterion: float = GROKKING_CRITERION, circuit_at: float = 0.5,
                        mature_at: float = MATURE_AT, paper_epochs: float = PAPER_EPOCHS) -> Verdict:
    """Claim 2: OOD accuracy and the bridge circuit come apart in some data regime.

    `final`: analysis.final_values on test_inferred_ood with exact_match, bridge_found_tail_slots
    and bridge_found, plus linear_probe.probe_values (bridge_decoded), one condition per regime
    label; `controls`: linear_probe.circuit_probe_controls. The circuit is read by the first probe
    that passes its positive and negative controls (`circuit_probe`): a probe blind to the bridge
    in models known to compose cannot tell "no circuit". A regime shows accuracy without the
    circuit when its exact-match interval is at or above `grokking_criterion` while the probe's
    interval is wholly below `circuit_at` (or the reverse). The authors' bridge-found (any state,
    any slot, copied prefix included) is reported but not judged."""
    regimes = [r for r in final["condition"].drop_duplicates() if r not in (STANDARD, CONTROL)]
    numbers: dict = {}

    def verdict(holds, branch, note, key=()):
        return Verdict(holds, branch, numbers, note, key)

    if COMPOSER not in regimes:
        return verdict(None, "not_shown:no_mature_composer", f"the {COMPOSER} regime was not run: no trained model "
                       "known to compose can check the circuit probes")
    composer_em = _row(final, COMPOSER, OOD, "exact_match")
    numbers[f"{COMPOSER}: OOD exact match"] = composer_em
    if at_least(composer_em, mature_at) is not True:
        numbers[f"{COMPOSER}: trained"] = _trained(final, COMPOSER)
        return verdict(None, "not_shown:no_mature_composer",
                       f"the {COMPOSER} model's OOD exact match is not at least {mature_at} over the whole interval: "
                       "no trained model known to compose can check the circuit probes", (f"{COMPOSER}: OOD exact match",))
    probe, control_numbers, failures = circuit_probe(final, controls, circuit_at)
    numbers.update(control_numbers)
    if probe is None:
        numbers["why the probes fail"] = failures
        return verdict(None, "not_shown:probe_blind", "no circuit probe passes its controls: at this scale the probes "
                       "cannot tell whether a model holds the bridge", ("why the probes fail",))
    name = CIRCUIT_PROBES[probe]
    numbers["circuit read by"] = name + (f" (the other failed its controls: {failures})" if failures else "")
    readings, formed = {}, {}
    for r in regimes:
        em, circuit = _row(final, r, OOD, "exact_match"), _row(final, r, OOD, probe)
        accuracy, bridge = at_least(em, grokking_criterion), at_least(circuit, circuit_at)
        readings[r], formed[r] = _reading(accuracy, bridge), accuracy is True or bridge is True
        numbers[f"{r}: OOD exact match"] = em
        numbers[f"{r}: {name}"] = circuit
        numbers[f"{r}: bridge found anywhere (the authors' measure)"] = _row(final, r, OOD, "bridge_found")
        numbers[f"{r}: reading"] = readings[r]
    decoupled = [r for r in regimes if readings[r] in ("accuracy without circuit", "circuit without accuracy")]
    key = tuple(f"{r}: {m}" for r in (decoupled or regimes)[:1] for m in ("OOD exact match", name))

    if decoupled:
        kinds = sorted({readings[r] for r in decoupled})
        branch = "holds:both_directions" if len(kinds) == 2 else "holds:" + kinds[0].replace(" ", "_")
        return verdict(True, branch, "in some regime one of OOD accuracy and the bridge circuit formed and the "
                       "other did not, both decided by the intervals", key)
    rising = [r for r in regimes if readings[r] == "neither formed"
              and (_rising(final, r, OOD, "exact_match") or _rising(final, r, OOD, probe))]
    if rising and all(readings[r] in ("both formed", "neither formed") for r in regimes):
        numbers.update({f"{r}: trained": _trained(final, r) for r in rising})
        return verdict(None, "not_shown:still_rising",
                       "every regime is coupled so far, but in a regime where neither formed a curve was still rising "
                       "at the end of the steps trained: more steps would decide", key)
    short = [r for r in regimes if readings[r] == "neither formed" and _trained_less_than_the_paper(final, r, paper_epochs)]
    if short and all(readings[r] in ("both formed", "neither formed") for r in regimes):
        numbers.update({f"{r}: trained": _trained(final, r) for r in short})
        return verdict(None, "not_shown:trained_less_than_the_paper",
                       f"every regime is coupled so far, but a regime where neither formed trained fewer epochs than "
                       f"the paper's {paper_epochs:.0f}: either may still come", key)
    if all(readings[r] in ("both formed", "neither formed") for r in regimes):
        return verdict(False, "does_not_hold:coupled_in_every_regime",
                       "in every regime OOD accuracy and the bridge circuit formed together or not at all", key)
    return verdict(None, "not_shown:intervals_straddle",
                   "no regime is decoupled by the intervals, and some regime's interval straddles a threshold", key)


# --- chapter 03 -----------------------------------------------------------------------------------
TRANSFER_COLUMNS = ("condition", "seed", "is_control", "pretrain_ood_exact_match") + TRANSFER_SETS


def limited_transfer(table: pd.DataFrame, grokking_criterion: float = GROKKING_CRITERION,
                     memorised_at: float = 0.9, composes_at: float = 0.5, near_zero: float = 0.1) -> Verdict:
    """Claim 3: a mature circuit composes a new first hop with an old second hop, and nothing else.

    `table`: one row per fine-tuned run (analysis.transfer_table), columns TRANSFER_COLUMNS. A
    fine-tuned model is mature only when its own pretraining run's OOD exact match reached
    `grokking_criterion`; each seed's mature models are averaged (never with a non-grokked one)
    and paired with the from-scratch control of that seed, and intervals run over those seeds.
    Holds when new facts are memorised (premise), new+old is composed and beats the control, and
    old+new and new+new stay near zero."""
    _require(table, TRANSFER_COLUMNS, "the transfer table")
    fine = table[~table["is_control"].astype(bool)]
    mature = fine[fine["pretrain_ood_exact_match"].astype(float) >= grokking_criterion]
    seeds = sorted(mature["seed"].unique())
    numbers: dict = {"fine-tuned models whose pretraining grokked": f"{len(mature)}/{len(fine)}",
                     "seeds with a mature model": ", ".join(map(str, seeds)) or "none"}

    def verdict(holds, branch, note):
        return Verdict(holds, branch, numbers, note, ("mature models: new+old exact match",
                                                      "mature minus control: new+old exact match"))

    if not seeds:
        return verdict(None, "not_shown:no_grokked_seed", f"no pretraining run reached OOD exact match "
                       f"{grokking_criterion}, so there is no mature circuit to transfer at this scale")
    per_seed = mature.groupby("seed")[list(TRANSFER_SETS)].mean()                # (seeds, 4): mature only
    control = table[table["is_control"].astype(bool)].set_index("seed")
    missing = [s for s in seeds if s not in control.index]
    if missing:
        raise ValueError(f"the transfer table has no from-scratch control for seed(s) {missing}")
    iv = {s: mean_interval(per_seed[s]) for s in TRANSFER_SETS}
    control_iv = mean_interval(control.loc[seeds, "new_old"].astype(float))
    gain = mean_interval(per_seed["new_old"] - control.loc[seeds, "new_old"].astype(float).values, bounds=(-1.0, 1.0))
    numbers.update({"mature models: new facts exact match": iv["new_atomic"],
                    "mature models: new+old exact match": iv["new_old"],
                    "from-scratch control: new+old exact match (same seeds)": control_iv,
                    "mature minus control: new+old exact match": gain,
                    "mature models: old+new exact match": iv["old_new"],
                    "mature models: new+new exact match": iv["new_new"]})
    if not at_least(iv["new_atomic"], memorised_at):
        return verdict(None, "not_shown:new_facts_not_memorised",
                       f"the mature models' exact match on the new facts is not at least {memorised_at} over the "
                       "whole interval, so what they compose from those facts cannot be judged")
    checks = (("new_old_not_composed", at_least(iv["new_old"], composes_at)),
              ("not_above_control", above(gain, 0.0)),
              ("old_new_composed", at_most(iv["old_new"], near_zero)),
              ("new_new_composed", at_most(iv["new_new"], near_zero)))
    failures = [name for name, ok in checks if ok is False]
    rising = "new_old_rising" in mature.columns and bool(mature["new_old_rising"].astype(bool).any())
    if failures == ["new_old_not_composed"] and rising:
        return verdict(None, "not_shown:new_old_still_rising",
                       f"new+old is below {composes_at}, but a mature model's new+old curve was still rising at the "
                       "end of fine-tuning: more steps would decide")
    if failures:
        return verdict(False, "does_not_hold:" + "+".join(failures),
                       f"expected: new+old at least {composes_at} and above the from-scratch control, old+new and "
                       f"new+new at most {near_zero}; the intervals contradict part of it")
    if all(ok for _, ok in checks):
        return verdict(True, "holds", f"new facts memorised; new+old at least {composes_at} and above the control; "
                       f"old+new and new+new at most {near_zero}")
    return verdict(None, "not_shown:intervals_straddle", "an interval straddles its threshold; more seeds would decide")


# --- chapter 04 -----------------------------------------------------------------------------------
COST_COLUMNS = ("regime", "seed", "steps_trained", "steps_to_criterion")


def _saved_fraction(natural: float, augmented: float) -> float:
    """The share of the natural run's steps that augmentation saves: 1 - augmented / natural."""
    return 1.0 - augmented / natural if math.isfinite(augmented) else -math.inf


def cost(table: pd.DataFrame, grokking_criterion: float = GROKKING_CRITERION) -> Verdict:
    """Augmenting the data (both hops, full) reaches OOD exact match `grokking_criterion` in fewer
    optimiser steps than waiting for grokking on the natural data, seed by seed.

    `table`: one row per pretraining run, columns COST_COLUMNS (steps_to_criterion NaN when the run
    never got there). A run that never got there is censored: it would have needed more than the
    steps it trained. The saved share 1 - augmented/natural is bounded per seed from below (a
    censored natural run counts its trained steps; a censored augmented run saves nothing one can
    claim) and from above (a censored augmented run counts its trained steps; a censored natural
    run would save everything). Holds when the lower bounds' interval is above zero; does not
    hold when the upper bounds' interval is at or below zero."""
    _require(table, COST_COLUMNS, "the cost table")
    runs = {(r.regime, r.seed): r for r in table.itertuples()}
    seeds = sorted({s for (reg, s) in runs if reg == "natural"} & {s for (reg, s) in runs if reg == "both_full"})
    compared = table[table["regime"].isin(["natural", "both_full"])]
    reached = compared["steps_to_criterion"].notna()
    numbers: dict = {f"natural and both-hops-full runs that reached OOD exact match {grokking_criterion}":
                     f"{int(reached.sum())}/{len(compared)}",
                     "seeds with a natural and an augmented run": len(seeds)}
    for reg in ("natural", "both_full"):
        hit = compared[(compared["regime"] == reg) & reached]["steps_to_criterion"].astype(float)
        numbers[f"{REGIMES[reg].label}: steps to the grokking criterion"] = (
            mean_interval(hit, bounds=None) if len(hit) else None)
    lower, upper = [], []
    for s in seeds:
        n, b = runs["natural", s], runs["both_full", s]
        n_at, b_at = float(n.steps_to_criterion), float(b.steps_to_criterion)   # NaN when never reached
        lower.append(_saved_fraction(n_at if n_at == n_at else float(n.steps_trained), b_at if b_at == b_at else math.inf))
        upper.append(1.0 if n_at != n_at else _saved_fraction(n_at, b_at if b_at == b_at else float(b.steps_trained)))
    low_iv = mean_interval(lower, bounds=None) if all(map(math.isfinite, lower)) else (math.nan, -math.inf, math.nan)
    high_iv = mean_interval(upper, bounds=None)
    numbers["share of steps saved by augmenting, lower bound"] = low_iv if seeds else None
    numbers["share of steps saved by augmenting, upper bound"] = high_iv if seeds else None

    def verdict(holds, branch, note):
        return Verdict(holds, branch, numbers, note, ("share of steps saved by augmenting, lower bound",
                                                      "share of steps saved by augmenting, upper bound"))

    if not seeds:
        return verdict(None, "not_shown:no_paired_runs", "no seed has both a natural and a both-hops-full "
                       "pretraining run, so the two roads cannot be compared")
    if not reached.any():
        return verdict(None, "not_shown:no_run_reached_criterion", f"no natural or both-hops-full run reached OOD "
                       f"exact match {grokking_criterion}, so neither road to it can be timed at this scale")
    if above(low_iv, 0.0):
        return verdict(True, "holds", "augmenting the data saves steps on every seed, decided by the interval of "
                       "the conservative (lower-bound) savings")
    if at_most(high_iv, 0.0):
        return verdict(False, "does_not_hold:augmenting_not_cheaper", "augmenting the data saves no steps, decided by "
                       "the interval of the generous (upper-bound) savings")
    return verdict(None, "not_shown:inconclusive", "the savings' interval straddles zero, or a run that never reached "
                   "the criterion leaves the comparison open; longer runs or more seeds would decide")
