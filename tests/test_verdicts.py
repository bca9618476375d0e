"""Every branch of every chapter's verdict, driven by synthetic per-seed tables; the share of seeds
and its Wilson interval that every rule decides by; the tables the chapters build from runs; and
exact match at the answer slot, one definition for both models."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from grokcircuits.pages import analysis
from grokcircuits.science import verdicts as v
from grokcircuits.config import REGIMES, TINY
from grokcircuits.science.data import Vocab
from grokcircuits.science.probes import EncodedSet, path_summary
from grokcircuits.science.runs import Run

NAT = REGIMES["natural"].label
FIVE = (0, 1, 2, 3, 4)


def seeds_table(rows, epochs=v.PAPER_EPOCHS, seeds=FIVE) -> pd.DataFrame:
    """An analysis.seed_values-shaped table from (condition, set, metric, values), one value per
    seed of `seeds`, every run trained `epochs` epochs (the paper's length unless a test says
    otherwise) and no curve still rising."""
    out = [{"condition": cond, "seed": s, "set": set_, "metric": metric, "value": x, "rising": False,
            "steps": 40_000, "epochs": epochs}
           for cond, set_, metric, values in rows for s, x in zip(seeds, values)]
    return pd.DataFrame(out, columns=analysis.SEED_COLUMNS)


def rising(table, condition, metric, seeds=None, set_=v.OOD):
    """The same table with `condition`'s curve of `metric` still rising at `seeds` (default: all)."""
    table = table.copy()
    row = (table["condition"] == condition) & (table["set"] == set_) & (table["metric"] == metric)
    if seeds is not None:
        row &= table["seed"].isin(seeds)
    table.loc[row, "rising"] = True
    return table


def outcomes(*shown, why="x"):
    return [v.Outcome(i, s, "values", "" if s else why) for i, s in enumerate(shown)]


# --- the interval tests -------------------------------------------------------------------------
def test_a_threshold_is_cleared_only_by_the_whole_interval():
    assert v.at_least((0.7, 0.6, 0.8), 0.5) is True
    assert v.at_least((0.3, 0.2, 0.4), 0.5) is False
    assert v.at_least((0.5, 0.3, 0.7), 0.5) is None              # the mean is above, the interval is not
    assert v.at_least((math.nan,) * 3, 0.5) is None
    assert v.at_most((0.05, 0.0, 0.1), 0.1) is True and v.at_most((0.3, 0.2, 0.4), 0.1) is False
    assert v.at_most((0.1, 0.0, 0.3), 0.1) is None
    assert v.above((0.1, 0.01, 0.2), 0.0) is True and v.above((0.0, -0.1, 0.0), 0.0) is False
    assert v.above((0.1, -0.1, 0.3), 0.0) is None


def test_a_verdict_branch_must_match_its_holds():
    assert v.Verdict(None, "not_shown:x").word == "NOT SHOWN AT THIS SCALE"
    assert v.Verdict(True, "holds").word == "HOLDS" and v.Verdict(False, "does_not_hold:x").word == "DOES NOT HOLD"
    with pytest.raises(ValueError, match="does not match"):
        v.Verdict(True, "not_shown:x")


# --- a share of seeds: every branch of `judge` --------------------------------------------------------
@pytest.mark.parametrize("shown, holds, branch", [
    ((True,) * 5, True, "holds"),                                   # 5 of 5: [0.57, 1] above 0.5
    ((True,) * 4, True, "holds"),                                   # 4 of 4: [0.51, 1]
    ((True,) * 3, None, "not_shown:too_few_seeds"),                 # 3 of 3: [0.44, 1], no 3 seeds can clear 0.5
    ((False,) * 3, None, "not_shown:too_few_seeds"),                # 0 of 3: [0, 0.56]
    ((False,) * 5, False, "does_not_hold:x"),                       # 0 of 5: [0, 0.43] below 0.5
    ((True, True, True, False, False), None, "not_shown:share_straddles"),
    ((True, True, True, True, None), None, "not_shown:y"),          # the open seed could tip it: 5 of 5 would hold
    ((None, None, None), None, "not_shown:y"),                      # open seeds outnumber the others
    ((True, True, False, False, None), None, "not_shown:share_straddles"),   # one open seed decides nothing
    ((False, False, False, False, None), None, "not_shown:y"),      # the open seed could still make it 1 of 5
    ((), None, "not_shown:too_few_seeds"),
])
def test_judge_reads_the_share_of_seeds_by_its_wilson_interval(shown, holds, branch):
    seeds = [v.Outcome(i, s, "values", {True: "", False: "x", None: "y"}[s]) for i, s in enumerate(shown)]
    assert v.judge(seeds) == (holds, branch)


def test_a_contradiction_names_each_failed_part_once_in_order():
    seeds = [v.Outcome(0, False, "", "b"), v.Outcome(1, False, "", "a+b"), v.Outcome(2, False, "", "c")]
    assert v.failures(seeds) == ["b", "a", "c"]


def test_the_tally_counts_seeds_the_same_on_every_machine():
    seeds = [v.Outcome(0, True, "0.91"), v.Outcome(1, False, "0.12", "x"), v.Outcome(2, None, "0.3", "y")]
    assert v.tally(seeds, "it") == "it: 1 of 3 seeds show it (1 contradict it, 1 open)"
    assert v.tally(seeds[:1]) == "1 of 1 seeds show it"
    assert v.per_seed(seeds) == "seed 0: shows it: 0.91; seed 1: contradicts it (x): 0.12; seed 2: open (y): 0.3"
    numbers = v.share_numbers(seeds)
    assert numbers["seeds showing it"] == "1/3" and numbers["seed 1"] == "contradicts it (x): 0.12"


def test_a_share_threshold_is_a_parameter():
    assert v.judge(outcomes(True, True, True), share_at=0.4) == (True, "holds")      # 3 of 3: 0.44 > 0.4
    assert v.judge(outcomes(True, True, True, True), share_at=0.6)[1] == "not_shown:too_few_seeds"


# --- chapter 00 -----------------------------------------------------------------------------------
def contrast(gpt_id, gpt_ood, trm_id, trm_ood, seeds=FIVE, **kw):
    rows = []
    for cond, iid, ood in ((v.STANDARD, gpt_id, gpt_ood), (v.RECURSIVE, trm_id, trm_ood)):
        for set_, vals in ((v.IID, iid), (v.OOD, ood)):
            rows += [(cond, set_, "answer_exact_match", vals),
                     (cond, set_, "exact_match", [x * 0.9 for x in vals])]   # full-sequence EM is lower
    return seeds_table(rows, seeds=seeds, **kw)


HIGH, ZERO = [0.95, 0.97, 0.96, 0.98, 0.99], [0.0, 0.01, 0.02, 0.0, 0.01]
MIXED = [0.95, 0.97, 0.96, 0.0, 0.01]          # three seeds high, two low


@pytest.mark.parametrize("tables, holds, branch", [
    ((HIGH, ZERO, HIGH, HIGH), True, "holds"),
    ((HIGH, HIGH, HIGH, HIGH), False, "does_not_hold:standard_transformer_composes_ood"),
    ((HIGH, ZERO, HIGH, ZERO), False, "does_not_hold:recursive_model_does_not_compose_ood"),
    ((HIGH, HIGH, HIGH, ZERO), False,
     "does_not_hold:standard_transformer_composes_ood+recursive_model_does_not_compose_ood"),
    ((ZERO, ZERO, HIGH, HIGH), None, "not_shown:in_distribution_not_established"),   # standard fails ID
    ((HIGH, ZERO, ZERO, ZERO), None, "not_shown:in_distribution_not_established"),   # recursive fails ID
    ((HIGH, ZERO, HIGH, MIXED), None, "not_shown:share_straddles"),                   # 3 of 5 compose
])
def test_task_contrast_branches(tables, holds, branch):
    out = v.task_contrast(contrast(*tables))
    assert (out.holds, out.branch) == (holds, branch)
    assert out.numbers["recursive model, OOD: answer-slot exact match"].startswith(f"seed 0: {tables[3][0]:.2f}")
    assert "recursive model, OOD: exact match over its supervised slots" in out.numbers
    assert out.tally.startswith("the contrast: ") and out.per_seed.startswith("seed 0: ")
    assert set(out.summary_numbers()) == set(out.key_numbers)


def test_task_contrast_is_not_shown_at_three_seeds_however_they_agree():
    out = v.task_contrast(contrast(HIGH[:3], ZERO[:3], HIGH[:3], HIGH[:3], seeds=(0, 1, 2)))
    assert (out.holds, out.branch) == (None, "not_shown:too_few_seeds")
    assert out.tally == "the contrast: 3 of 3 seeds show it" and "it takes 4 seeds" in out.note


def test_task_contrast_needs_a_seed_with_both_models():
    table = contrast(HIGH, ZERO, HIGH, HIGH)
    table.loc[table["condition"] == v.STANDARD, "seed"] += 10
    assert v.task_contrast(table).branch == "not_shown:no_paired_seeds"


def test_task_contrast_judges_both_models_at_the_answer_slot():
    """A recursive model that answers right but miscopies the prefix composes: full-sequence EM
    alone would have called it a failure."""
    t = contrast(HIGH, ZERO, HIGH, HIGH)
    t.loc[(t["condition"] == v.RECURSIVE) & (t["metric"] == "exact_match"), "value"] = 0.0
    assert v.task_contrast(t).holds is True


def test_task_contrast_needs_the_answer_slot_metric():
    t = contrast(HIGH, ZERO, HIGH, HIGH)
    with pytest.raises(ValueError, match="answer_exact_match"):
        v.task_contrast(t[t["metric"] != "answer_exact_match"])


def test_task_contrast_is_open_while_the_recursive_model_still_rises_or_trained_less_than_the_paper():
    table = contrast(HIGH, ZERO, HIGH, ZERO)
    out = v.task_contrast(rising(table, v.RECURSIVE, "answer_exact_match"))
    assert (out.holds, out.branch) == (None, "not_shown:recursive_model_still_rising")
    short = contrast(HIGH, ZERO, HIGH, ZERO, epochs=312.0)
    out = v.task_contrast(short)
    assert (out.holds, out.branch) == (None, "not_shown:recursive_model_trained_less_than_the_paper")
    assert out.numbers["recursive model: trained"] == "40000 steps (312 epochs)"
    assert v.task_contrast(short, paper_epochs=300).branch == "does_not_hold:recursive_model_does_not_compose_ood"
    assert v.task_contrast(short.assign(epochs=None)).holds is None        # epochs unknown: never DOES NOT HOLD
    # a standard transformer that composes OOD is a failure more steps cannot mend
    assert v.task_contrast(rising(contrast(HIGH, HIGH, HIGH, ZERO), v.RECURSIVE, "answer_exact_match")).holds is False


# --- chapter 01 -----------------------------------------------------------------------------------
def paths(*rows):
    return pd.DataFrame(rows, columns=list(v.PATH_COLUMNS))


SAME = (True, 100, 0.95, 0.9, 0.99, 0.4)       # grokked, pre step, similarity [low, high], chance's upper end
DIFFER = (True, 100, 0.5, 0.4, 0.6, 0.3)


def seeds_of(*rows):
    return paths(*((i, *r) for i, r in enumerate(rows)))


@pytest.mark.parametrize("table, holds, branch", [
    (seeds_of(SAME, SAME, SAME, SAME, (False, 100, 0.1, 0.0, 0.2, 0.3)), True, "holds"),   # seed 4 did not grok
    (seeds_of(DIFFER, DIFFER, DIFFER, DIFFER, DIFFER), False, "does_not_hold:paths_differ"),
    (seeds_of(SAME, SAME, SAME, DIFFER, DIFFER), None, "not_shown:share_straddles"),
    (seeds_of(SAME, SAME, SAME), None, "not_shown:too_few_seeds"),
    (seeds_of(*[(True, 100, 0.85, 0.7, 0.95, 0.4)] * 5), None, "not_shown:interval_straddles"),
    (seeds_of(*[(True, 100, 0.95, 0.9, 0.99, 0.92)] * 5), None, "not_shown:not_above_chance"),
    (seeds_of((False, 100, 0.95, 0.9, 0.99, 0.4), (False, 200, 0.9, 0.85, 0.95, 0.3)), None, "not_shown:no_grokked_seed"),
    (seeds_of((True, None, 0.95, 0.9, 0.99, 0.4)), None, "not_shown:no_pre_grokking_checkpoint"),
    (seeds_of((True, None, 0, 0, 0, 0), SAME, (True, None, 0, 0, 0, 0)), None, "not_shown:too_few_eligible_seeds"),
    (seeds_of(SAME, SAME), None, "not_shown:too_few_eligible_seeds"),
])
def test_identical_paths_branches(table, holds, branch):
    out = v.identical_paths(table)
    assert (out.holds, out.branch) == (holds, branch)
    if table["pre_step"].notna().iloc[0]:
        assert out.numbers["seed 0: chance level (upper end)"] == table["chance_high"].iloc[0]
    else:
        assert out.numbers["seed 0: path similarity"] == "no pre-grokking checkpoint"
    eligible = int((table["grokked"] & table["pre_step"].notna()).sum())
    assert out.tally.startswith(f"{eligible} of {len(table)} seeds eligible")


def test_identical_paths_says_how_many_seeds_were_eligible_when_too_few():
    out = v.identical_paths(seeds_of((True, None, 0, 0, 0, 0), SAME, (True, None, 0, 0, 0, 0)))
    assert out.note.startswith("1 of 3 seeds grokked with a pre-grokking checkpoint; the rule needs at least 3")
    assert out.tally == "1 of 3 seeds eligible (grokked, with a pre-grokking checkpoint); 1 of 1 seeds show it"
    assert "lower end +0.50 against it" in out.per_seed                  # the paired difference with chance
    assert out.per_seed.startswith("seed 0: not eligible (no pre-grokking checkpoint); seed 1: shows it: ")
    ungrokked = v.identical_paths(seeds_of((False, 100, 0.97, 0.9, 0.99, 0.4)))
    assert ungrokked.per_seed == "seed 0: not eligible (did not grok): similarity pre vs end 0.97"
    assert v.identical_paths(seeds_of(SAME), min_eligible=1).branch == "not_shown:too_few_seeds"


def test_identical_paths_threshold_is_a_parameter_and_columns_are_checked():
    t = seeds_of(*[(True, 100, 0.85, 0.75, 0.95, 0.4)] * 5)
    assert v.identical_paths(t, same_path_at=0.7).holds is True
    assert v.identical_paths(t, same_path_at=0.97).branch == "does_not_hold:paths_differ"
    with pytest.raises(ValueError, match="chance_high"):
        v.identical_paths(t.drop(columns="chance_high"))


def composing(*rows):
    """Rows (natural OOD, composer OOD, similarity, low, high, chance's upper end), seeds 0, 1, ..."""
    return pd.DataFrame([(i, n, c, c >= 0.5 and n < 0.5, *rest) for i, (n, c, *rest) in enumerate(rows)],
                        columns=list(v.COMPOSING_PATH_COLUMNS))


C_SAME = (0.02, 1.0, 0.95, 0.9, 0.99, 0.4)     # natural does not compose, both hops full does; same path
C_DIFFER = (0.02, 1.0, 0.5, 0.4, 0.6, 0.3)


@pytest.mark.parametrize("table, holds, branch", [
    (composing(C_SAME, C_SAME, C_SAME, C_SAME, (0.9, 1.0, 0.1, 0.0, 0.2, 0.3)), True, "holds"),  # seed 4: both compose
    (composing(*[C_DIFFER] * 5), False, "does_not_hold:paths_differ"),
    (composing(C_SAME, C_SAME, C_SAME, C_DIFFER, C_DIFFER), None, "not_shown:share_straddles"),
    (composing(C_SAME, C_SAME, C_SAME), None, "not_shown:too_few_seeds"),
    (composing(*[(0.02, 1.0, 0.85, 0.7, 0.95, 0.4)] * 5), None, "not_shown:interval_straddles"),
    (composing(*[(0.02, 1.0, 0.95, 0.9, 0.99, 0.92)] * 5), None, "not_shown:not_above_chance"),
    (composing(C_SAME, (0.02, 0.3, 0.95, 0.9, 0.99, 0.4), C_SAME), None, "not_shown:too_few_eligible_seeds"),
    (composing(), None, "not_shown:too_few_eligible_seeds"),
])
def test_composing_paths_branches(table, holds, branch):
    out = v.composing_paths(table)
    assert (out.holds, out.branch) == (holds, branch)
    assert out.tally.startswith(f"{int(table['contrast'].sum())} of {len(table)} seeds eligible")


def test_composing_paths_names_why_a_seed_is_not_eligible_and_checks_columns():
    out = v.composing_paths(composing(C_SAME, (0.02, 0.3, 0.9, 0.8, 0.95, 0.4), (0.7, 1.0, 0.2, 0.1, 0.3, 0.4)))
    assert out.note.startswith("1 of 3 seeds show the contrast")
    assert "seed 1: not eligible (the both-hops-full run does not compose" in out.per_seed
    assert "seed 2: not eligible (the natural run composes too" in out.per_seed
    assert out.numbers["seed 2: OOD exact match, both hops full / natural"] == "1.00 / 0.70"
    assert v.composing_paths(composing(*[C_SAME] * 5), same_path_at=0.995).branch == "does_not_hold:paths_differ"
    with pytest.raises(ValueError, match="contrast"):
        v.composing_paths(composing(C_SAME).drop(columns="contrast"))


# --- chapter 02 -----------------------------------------------------------------------------------
FULL = REGIMES["both_full"].label
LENS, LINEAR = "bridge_found_tail_slots", "bridge_decoded"
GOOD = {"composer": 1.0, "lookup": 0.01, "untrained": 0.0,    # a probe that passes its hand-built controls
        "natural, earliest snapshot": {0: 0.02, 1: 0.01}, "standard transformer": {0: 0.05}}   # and its trained ones
CONTROLS = {LENS: GOOD, LINEAR: GOOD}


def regimes(full=(HIGH, HIGH), seeds=FIVE, epochs=v.PAPER_EPOCHS, **by_label):
    """by regime label: (OOD exact match values, the circuit probes' values), both hops full (a
    mature composer by default) first; one circuit value stands for both probes, or a pair
    (logit lens, linear probe)."""
    rows = []
    for label, (em, circuit) in {FULL: full, **by_label}.items():
        lens, linear = circuit if isinstance(circuit, tuple) else (circuit, circuit)
        rows += [(label, v.OOD, "exact_match", em), (label, v.OOD, LENS, lens), (label, v.OOD, LINEAR, linear),
                 (label, v.OOD, "bridge_found", [1.0] * len(em))]
    return seeds_table(rows, epochs, seeds)


@pytest.mark.parametrize("table, holds, branch", [
    (regimes(full=(ZERO, ZERO), a=(HIGH, ZERO)), None, "not_shown:no_mature_composer"),
    (regimes(full=(MIXED, HIGH), a=(HIGH, ZERO)), None, "not_shown:no_mature_composer"),   # not mature at every seed
    (regimes(full=(HIGH[:1], HIGH[:1]), a=(HIGH[:1], ZERO[:1]), seeds=(0,)), None, "not_shown:no_mature_composer"),
    (regimes(full=(HIGH, ZERO), a=(HIGH, ZERO)), None, "not_shown:probe_blind"),
    (regimes(a=(HIGH, HIGH), b=(HIGH, ZERO)), True, "holds:accuracy_without_circuit"),
    (regimes(a=(ZERO, ZERO), b=(ZERO, HIGH)), True, "holds:circuit_without_accuracy"),
    (regimes(a=(HIGH, ZERO), b=(ZERO, HIGH)), True, "holds:both_directions"),
    (regimes(a=(HIGH, HIGH), b=(ZERO, ZERO)), False, "does_not_hold:coupled_in_every_regime"),
    (regimes(a=(HIGH, HIGH), b=(ZERO, MIXED)), None, "not_shown:share_straddles"),     # 3 of 5 decoupled
    (regimes(full=(HIGH[:3], HIGH[:3]), a=(ZERO[:3], HIGH[:3]), seeds=(0, 1, 2)), None, "not_shown:too_few_seeds"),
    (regimes(a=(HIGH, HIGH), b=(ZERO, ZERO), epochs=312.0), None, "not_shown:trained_less_than_the_paper"),
])
def test_accuracy_vs_circuit_branches(table, holds, branch):
    out = v.accuracy_vs_circuit(table, CONTROLS)
    assert (out.holds, out.branch) == (holds, branch)
    if holds is not None:
        assert "a: bridge found anywhere (the authors' measure)" in out.numbers
        assert set(out.summary_numbers()) == set(out.key_numbers) and out.tally.startswith("decoupled, per regime: ")


def test_accuracy_vs_circuit_reads_each_regime_seed_by_seed():
    out = v.accuracy_vs_circuit(regimes(a=(HIGH, HIGH), b=(ZERO, MIXED)), CONTROLS)
    assert out.tally == ("decoupled, per regime: both hops, full: 0 of 5 seeds show it (5 contradict it); "
                         "a: 0 of 5 seeds show it (5 contradict it); b: 3 of 5 seeds show it (2 contradict it)")
    assert out.numbers["b: decoupled seeds"] == "3/5" and out.numbers["a: decoupled seeds"] == "0/5"
    assert out.numbers["b: seed 3"] == "contradicts it (neither_formed): OOD exact match 0.00, circuit 0.00: neither formed"
    assert out.per_seed.startswith("b: seed 0: shows it: OOD exact match 0.00, circuit 0.95: circuit without accuracy")


def test_accuracy_vs_circuit_needs_the_both_hops_full_regime():
    table = seeds_table([("a", v.OOD, m, HIGH) for m in ("exact_match", LENS, LINEAR, "bridge_found")])
    assert v.accuracy_vs_circuit(table, CONTROLS).branch == "not_shown:no_mature_composer"


def test_accuracy_vs_circuit_uses_the_grokking_criterion():
    table = regimes(a=([0.3, 0.32, 0.31, 0.3, 0.33], ZERO))
    assert v.accuracy_vs_circuit(table, CONTROLS).branch == "does_not_hold:coupled_in_every_regime"
    assert v.accuracy_vs_circuit(table, CONTROLS, grokking_criterion=0.25).branch == "holds:accuracy_without_circuit"


def test_a_probe_blind_to_the_mature_composer_gives_way_to_one_that_sees_it():
    # the logit lens misses the bridge in the mature both-hops-full model; the linear probe finds it
    table = regimes(full=(HIGH, (ZERO, HIGH)), b=(HIGH, (ZERO, ZERO)))
    out = v.accuracy_vs_circuit(table, CONTROLS)
    assert out.branch == "holds:accuracy_without_circuit"
    assert out.numbers["circuit read by"].startswith(v.CIRCUIT_PROBES[LINEAR])
    assert "misses the bridge in the mature" in out.numbers["circuit read by"]
    # the lens must find the bridge in the mature composer at every seed
    assert v.accuracy_vs_circuit(regimes(full=(HIGH, (MIXED, HIGH)), b=(HIGH, ZERO)), CONTROLS).numbers[
        "circuit read by"].startswith(v.CIRCUIT_PROBES[LINEAR])
    assert v.accuracy_vs_circuit(regimes(full=(HIGH, HIGH), b=(HIGH, (ZERO, ZERO))), CONTROLS).numbers["circuit read by"] \
        == v.CIRCUIT_PROBES[LENS]


@pytest.mark.parametrize("control, value", [("composer", 0.1), ("lookup", 0.9), ("untrained", 0.6)])
def test_a_probe_failing_a_hand_built_control_is_not_used(control, value):
    table = regimes(b=(HIGH, (HIGH, ZERO)))          # the lens says circuit, the linear probe says none
    assert v.accuracy_vs_circuit(table, CONTROLS).branch == "does_not_hold:coupled_in_every_regime"
    failed = {LENS: {**GOOD, control: value}, LINEAR: GOOD}
    out = v.accuracy_vs_circuit(table, failed)
    assert out.branch == "holds:accuracy_without_circuit"        # read by the linear probe
    both_failed = v.accuracy_vs_circuit(table, {LENS: failed[LENS], LINEAR: failed[LENS]})
    assert both_failed.branch == "not_shown:probe_blind" and "misses" in both_failed.numbers["why the probes fail"]


@pytest.mark.parametrize("negative", list(v.TRAINED_NEGATIVES))
def test_a_probe_reading_the_bridge_in_a_trained_negative_is_not_used(negative):
    table = regimes(b=(HIGH, (HIGH, ZERO)))          # the lens says circuit, the linear probe says none
    failed = {LENS: {**GOOD, negative: {0: 0.01, 1: 0.7}}, LINEAR: GOOD}   # high at one seed is enough
    out = v.accuracy_vs_circuit(table, failed)
    assert out.branch == "holds:accuracy_without_circuit"        # read by the linear probe
    assert f"finds it in the {negative}" in out.numbers["circuit read by"]
    assert out.numbers[f"{v.CIRCUIT_PROBES[LENS]}: {negative}"] == "seed 0: 0.01, seed 1: 0.70"


@pytest.mark.parametrize("negative", list(v.TRAINED_NEGATIVES))
def test_a_trained_negative_not_measured_leaves_a_decided_verdict_not_shown(negative):
    table = regimes(a=(HIGH, ZERO))                  # decoupled at every seed: HOLDS with every control measured
    assert v.accuracy_vs_circuit(table, CONTROLS).branch == "holds:accuracy_without_circuit"
    unmeasured = {m: {**GOOD, negative: {}} for m in (LENS, LINEAR)}
    out = v.accuracy_vs_circuit(table, unmeasured)
    assert (out.holds, out.branch) == (None, "not_shown:trained_controls_not_measured")
    assert "with them the reading would be: holds" in out.note
    assert out.numbers["trained negative controls not measured"] == negative
    assert out.numbers["b: decoupled seeds" if "b: decoupled seeds" in out.numbers else "a: decoupled seeds"] == "5/5"
    missing_key = {m: {k: x for k, x in GOOD.items() if k != negative} for m in (LENS, LINEAR)}
    assert v.accuracy_vs_circuit(table, missing_key).branch == "not_shown:trained_controls_not_measured"
    # an open verdict keeps its own reason; a probe that fails a measured control still gives way
    straddles = regimes(a=(HIGH, HIGH), b=(ZERO, MIXED))
    assert v.accuracy_vs_circuit(straddles, unmeasured).branch == "not_shown:share_straddles"
    lens_fails = {LENS: {**GOOD, "lookup": 0.9}, LINEAR: {**GOOD, negative: {}}}
    out = v.accuracy_vs_circuit(regimes(b=(HIGH, (HIGH, ZERO))), lens_fails)
    assert out.branch == "not_shown:trained_controls_not_measured" and out.numbers["circuit read by"].startswith(
        v.CIRCUIT_PROBES[LINEAR])


def test_accuracy_vs_circuit_is_open_while_an_unformed_regime_still_rises():
    table = regimes(a=(HIGH, HIGH), b=(ZERO, ZERO))
    out = v.accuracy_vs_circuit(rising(table, "b", LENS), CONTROLS)
    assert (out.holds, out.branch) == (None, "not_shown:still_rising")
    # a formed regime still rising changes nothing
    assert v.accuracy_vs_circuit(rising(table, "a", "exact_match"), CONTROLS).holds is False
    # a decoupled regime holds however long the others trained
    assert v.accuracy_vs_circuit(regimes(a=(HIGH, ZERO), b=(ZERO, ZERO), epochs=312.0), CONTROLS).holds is True


# --- chapter 03 -----------------------------------------------------------------------------------
def transfer(pre_ood, new_atomic=0.99, new_old=0.8, old_new=0.02, new_new=0.01, control_new_old=0.05,
             seeds=FIVE, extra=()):
    """Fine-tuned from natural (pretraining OOD EM `pre_ood` per seed) plus a control per seed;
    a value is one number for every seed, or a list of one per seed."""
    def at(x, i):
        return x[i] if isinstance(x, (list, tuple)) else x
    rows = []
    for i, s in enumerate(seeds):
        rows.append({"condition": f"fine-tuned from {NAT}", "seed": s, "is_control": False,
                     "pretrain_ood_exact_match": pre_ood[i], "new_atomic": at(new_atomic, i), "new_old": at(new_old, i),
                     "old_new": at(old_new, i), "new_new": at(new_new, i)})
        rows.append({"condition": v.CONTROL, "seed": s, "is_control": True, "pretrain_ood_exact_match": math.nan,
                     "new_atomic": 0.99, "new_old": at(control_new_old, i), "old_new": 0.0, "new_new": 0.0})
    return pd.DataFrame(rows + list(extra))


GROKKED = [0.9, 0.95, 0.92, 0.93, 0.91]


@pytest.mark.parametrize("table, holds, branch", [
    (transfer(GROKKED), True, "holds"),
    (transfer([0.1, 0.2, 0.05, 0.1, 0.1]), None, "not_shown:no_grokked_seed"),
    (transfer(GROKKED, new_atomic=0.5), None, "not_shown:new_facts_not_memorised"),
    (transfer(GROKKED, old_new=0.6), False, "does_not_hold:old_new_composed"),
    (transfer(GROKKED, new_new=0.6), False, "does_not_hold:new_new_composed"),
    (transfer(GROKKED, new_old=0.2), False, "does_not_hold:new_old_not_composed"),
    (transfer(GROKKED, new_old=0.05), False, "does_not_hold:new_old_not_composed+not_above_control"),
    (transfer(GROKKED, control_new_old=0.8), False, "does_not_hold:not_above_control"),
    (transfer(GROKKED, old_new=[0.02, 0.01, 0.0, 0.6, 0.7]), None, "not_shown:share_straddles"),
    (transfer(GROKKED[:3], seeds=(0, 1, 2)), None, "not_shown:too_few_seeds"),
])
def test_limited_transfer_branches(table, holds, branch):
    out = v.limited_transfer(table)
    assert (out.holds, out.branch) == (holds, branch)


def test_limited_transfer_pairs_each_seed_with_its_own_control():
    """new+old 0.3 to 0.7 against controls 0.2 to 0.8: above its own control at every seed, though
    not above every control."""
    table = transfer(GROKKED, new_old=[0.55, 0.6, 0.65, 0.7, 0.9], control_new_old=[0.5, 0.55, 0.6, 0.65, 0.8])
    out = v.limited_transfer(table)
    assert out.holds is True and "difference +0.05" in out.numbers["seed 0"]
    assert out.numbers["from-scratch control: new+old exact match (same seeds)"].startswith("seed 0: 0.50")


def test_limited_transfer_never_averages_in_a_seed_whose_pretraining_did_not_grok():
    """Seed 5's pretraining did not grok: its old+new of 0.9 would break the claim if it were
    counted. With only seeds 0-4 mature the claim holds; a lower criterion lets seed 5 in."""
    table = transfer(GROKKED + [0.3], seeds=FIVE + (5,))
    table.loc[(table["seed"] == 5) & ~table["is_control"], "old_new"] = 0.9
    out = v.limited_transfer(table)
    assert out.holds is True and out.numbers["seeds with a mature model"] == "0, 1, 2, 3, 4"
    assert out.numbers["fine-tuned models whose pretraining grokked"] == "5/6"
    assert v.limited_transfer(table, grokking_criterion=0.25).tally == "limited transfer: 5 of 6 seeds show it (1 contradict it)"


def test_summary_numbers_fall_back_to_the_first_numbers_of_a_branch_that_stopped_early():
    out = v.limited_transfer(transfer([0.1, 0.2, 0.05, 0.1, 0.1]))
    assert list(out.summary_numbers()) == ["fine-tuned models whose pretraining grokked", "seeds with a mature model"]
    assert list(v.limited_transfer(transfer(GROKKED)).summary_numbers()) == list(v.limited_transfer(transfer(GROKKED)).key_numbers)


def test_limited_transfer_needs_a_control_for_each_mature_seed():
    table = transfer(GROKKED)
    with pytest.raises(ValueError, match="control"):
        v.limited_transfer(table[~(table["is_control"] & (table["seed"] == 1))])


def test_limited_transfer_is_open_while_new_old_still_rises():
    table = transfer(GROKKED, new_old=0.2).assign(new_old_rising=False)
    assert v.limited_transfer(table).branch == "does_not_hold:new_old_not_composed"
    table.loc[~table["is_control"], "new_old_rising"] = True
    out = v.limited_transfer(table)
    assert (out.holds, out.branch) == (None, "not_shown:new_old_still_rising")
    # new+old below the control as well: a failure more steps need not mend
    assert v.limited_transfer(transfer(GROKKED, new_old=0.05).assign(new_old_rising=True)).holds is False


# --- chapter 04 -----------------------------------------------------------------------------------
def cost_rows(natural, augmented, trained=10_000, augmented_trained=None, per_epoch=0.0078):
    """Steps to the criterion per seed (None: never reached within `trained` steps); epochs are
    steps times `per_epoch` (10,000 steps: 78 epochs; 40,000: 312)."""
    rows = []
    for s, (n, b) in enumerate(zip(natural, augmented)):
        for regime, at, steps in (("natural", n, trained), ("both_full", b, augmented_trained or trained)):
            rows.append({"regime": regime, "seed": s, "steps_trained": steps, "epochs_trained": steps * per_epoch,
                         "steps_to_criterion": math.nan if at is None else at,
                         "epochs_to_criterion": math.nan if at is None else at * per_epoch})
    return pd.DataFrame(rows)


NONE5 = [None] * 5
FAST, SLOW = [2000, 2500, 2200, 2100, 2300], [8000, 9000, 8500, 8800, 9500]


@pytest.mark.parametrize("table, holds, branch", [
    (cost_rows(NONE5, NONE5), None, "not_shown:no_run_reached_criterion"),
    (cost_rows([None, None], [None, None]).assign(regime=lambda f: f["regime"].replace("both_full", "hop2_only")),
     None, "not_shown:no_paired_runs"),
    (pd.concat([cost_rows([None], [None]), cost_rows([1000], [500]).assign(regime="hop2_only")]), None,
     "not_shown:no_run_reached_criterion"),                                       # other regimes do not count
    (cost_rows(SLOW, FAST), True, "holds"),
    (cost_rows(NONE5, FAST, trained=40_000), True, "holds:bound_by_the_budget"),   # censored at 312 epochs >= 280
    (cost_rows(NONE5, FAST), None, "not_shown:natural_run_stopped_before_the_papers_epochs"),   # at 78 epochs
    (cost_rows(FAST, SLOW), False, "does_not_hold:augmenting_not_cheaper"),
    (cost_rows(FAST, NONE5), False, "does_not_hold:augmenting_not_cheaper"),
    (cost_rows(SLOW, NONE5, augmented_trained=5000), None, "not_shown:inconclusive"),   # augmented stopped early
    (cost_rows(SLOW[:3], FAST[:3]), None, "not_shown:too_few_seeds"),
    (cost_rows([3000, 2000, 5000, 4000, 6000], [2000, 3000, 4000, 5000, 5000]), None, "not_shown:share_straddles"),
])
def test_cost_branches(table, holds, branch):
    out = v.cost(table)
    assert (out.holds, out.branch) == (holds, branch)
    assert set(out.summary_numbers()) == set(out.key_numbers)


def test_a_censored_natural_run_makes_the_saving_the_budgets_and_says_so():
    out = v.cost(cost_rows(NONE5, FAST, trained=40_000))
    assert "a bound set by the budget it trained (40,000 steps, 312 epochs)" in out.note
    assert out.numbers["natural runs that never reached the criterion: trained"] == "40,000 steps, 312 epochs"
    assert "natural not reached in 40,000 steps (312 epochs)" in out.numbers["seed 0"]
    assert "a bound set by the natural run's budget" in out.numbers["seed 0"]
    three = v.cost(cost_rows(NONE5[:3], FAST[:3], trained=40_000))          # not shown, and still said
    assert three.branch == "not_shown:too_few_seeds" and "a bound set by the budget it trained" in three.note
    assert v.cost(cost_rows(NONE5, FAST, trained=40_000), paper_natural_epochs=400).branch == \
        "not_shown:natural_run_stopped_before_the_papers_epochs"
    assert "budget" not in v.cost(cost_rows(SLOW, FAST)).note                  # measured savings: no budget bound


def test_cost_compares_epochs_beside_steps():
    out = v.cost(cost_rows(SLOW, FAST))
    assert out.numbers[f"{REGIMES['natural'].label}: epochs to the grokking criterion"].startswith("seed 0: 62, seed 1: 70")
    assert "at least 0.75 of the epochs" in out.numbers["seed 0"]
    unknown = cost_rows(NONE5, FAST, trained=40_000).drop(columns=["epochs_trained", "epochs_to_criterion"])
    assert v.cost(unknown).branch == "not_shown:natural_run_stopped_before_the_papers_epochs"   # epochs unknown: open


# --- the tables the chapters build from runs --------------------------------------------------------
def fake_run(config, curves, steps=600):
    return Run(config, {"steps": steps, "device": "CPU", "key": config.key()}, curves, store=None)


def test_transfer_table_decides_maturity_from_each_models_own_pretraining():
    pre = {s: fake_run(TINY.run("trm", "natural", s), [{"step": 600, "test_inferred_ood": {"exact_match": ood}}])
           for s, ood in ((0, 0.9), (1, 0.1))}
    last = {"step": 300, **{s: {"exact_match": 0.5} for s in analysis.TRANSFER_SETS}}
    fine = [fake_run(TINY.transfer_run(pre[s].config, s), [last]) for s in (0, 1)]
    fine += [fake_run(TINY.transfer_run(None, s), [last]) for s in (0, 1)]
    t = analysis.transfer_table(list(pre.values()), fine)
    assert list(t["pretrain_ood_exact_match"].iloc[:2]) == [0.9, 0.1]
    assert list(t["is_control"]) == [False, False, True, True] and t["pretrain_ood_exact_match"].iloc[2:].isna().all()
    with pytest.raises(ValueError, match="not among the pretrained runs"):
        analysis.transfer_table([pre[0]], fine)


def test_transfer_by_regime_puts_conditions_side_by_side_with_every_seed():
    per_run = pd.DataFrame([
        {"condition": "fine-tuned from A", "seed": 1, "is_control": False, "pretrain_ood_exact_match": 0.2,
         "new_atomic": 1.0, "new_old": 0.2, "old_new": 0.0, "new_new": 0.0},
        {"condition": "fine-tuned from A", "seed": 0, "is_control": False, "pretrain_ood_exact_match": 0.9,
         "new_atomic": 1.0, "new_old": 0.8, "old_new": 0.1, "new_new": 0.0},
        {"condition": "control", "seed": 0, "is_control": True, "pretrain_ood_exact_match": float("nan"),
         "new_atomic": 1.0, "new_old": 0.1, "old_new": 0.0, "new_new": 0.0}])
    t = analysis.transfer_by_regime(per_run, grokking_criterion=0.5)
    assert list(t.index) == ["fine-tuned from A", "control"]                       # the control last
    assert t.loc["fine-tuned from A", "mature circuit (pretraining grokked)"] == "1 of 2"
    assert t.loc["control", "mature circuit (pretraining grokked)"] == "-"
    assert t.loc["fine-tuned from A", analysis.SET_NAMES["new_old"]] == "0.50 (s0 0.80, s1 0.20)"   # seeds in order


def test_cost_table_finds_the_first_evaluation_at_the_criterion():
    curves = [{"step": s, "wall_seconds": s / 100, "test_inferred_ood": {"exact_match": em}}
              for s, em in ((0, 0.0), (100, 0.3), (200, 0.6), (300, 0.9))]
    runs = [fake_run(TINY.run("trm", "both_full", 0), curves, 300),
            fake_run(TINY.run("trm", "natural", 0), curves[:2], 100), fake_run(TINY.run("gpt", "natural", 0), curves)]
    t = analysis.cost_table(runs, 0.5)
    assert list(t["regime"]) == ["both_full", "natural"]                         # the standard transformer is left out
    assert t["steps_to_criterion"].iloc[0] == 200 and t["seconds_to_criterion"].iloc[0] == 2.0
    assert math.isnan(t["steps_to_criterion"].iloc[1])
    assert analysis.cost_table(runs, 0.95)["steps_to_criterion"].isna().all()


def test_format_measure_and_readable_say_not_reached():
    assert analysis.format_measure((0.123, 0.0, 0.456)) == "0.12 [0.00, 0.46]"
    assert analysis.format_measure(None) == "not reached" and analysis.format_measure(math.nan) == "not reached"
    assert analysis.format_measure([None, None, None]) == "not reached"   # an interval never reached (JSON null)
    assert analysis.format_measure((math.nan, math.nan, math.nan), missing="not run") == "not run"
    assert analysis.format_measure((5000.0, 3000.0, 7000.0)) == "5,000 [3,000, 7,000]"
    assert analysis.format_measure((2.0, -math.inf, math.inf)) == "2.00 [no interval from one seed]"
    assert analysis.format_measure("2/3") == "2/3"
    t = analysis.readable(pd.DataFrame({"step": [None, 120.0], "x": [0.12345, math.nan]}))
    assert list(t["step"]) == ["not reached", 120.0] and list(t["x"]) == [0.123, "not reached"]


# --- exact match at the answer slot -----------------------------------------------------------------
VOCAB = Vocab(n_entities=20, n_relations=4, n_special=2)


class Oracle(torch.nn.Module):
    """Predicts the label everywhere, except that it can spoil the copied prefix (slot 0) or the answer."""
    def __init__(self, spoil_slot: int | None):
        super().__init__()
        self.spoil_slot = spoil_slot

    def forward(self, inputs, labels, visit=None):
        out = labels.clone()                                                      # (B, 5)
        if self.spoil_slot is not None:
            out[:, self.spoil_slot] = VOCAB.pad
        return torch.nn.functional.one_hot(out, VOCAB.size).float(), None        # (B, 5, V)


def test_answer_exact_match_reads_the_answer_slot_only():
    two_hop = np.array([[0, 0, 1, 5, 7], [1, 1, 2, 6, 8]], dtype=np.int64)
    atomic = np.array([[0, 0, -1, -1, 5], [2, 1, -1, -1, 9]], dtype=np.int64)
    for rows, answer in ((two_hop, 3), (atomic, 2)):
        full_seq = EncodedSet.build(rows, VOCAB, "cpu")
        answer_only = EncodedSet.build(rows, VOCAB, "cpu", answer_only=True)
        wrong_prefix = path_summary(Oracle(0), full_seq, with_lens=False)
        assert wrong_prefix["exact_match"] == 0.0 and wrong_prefix["answer_exact_match"] == 1.0
        assert path_summary(Oracle(0), answer_only, with_lens=False)["exact_match"] == 1.0   # prefix unsupervised
        wrong_answer = path_summary(Oracle(answer), answer_only, with_lens=False)
        assert wrong_answer["exact_match"] == 0.0 and wrong_answer["answer_exact_match"] == 0.0


def test_still_rising_reads_the_last_quarter_of_a_curve():
    steps = [0, 1000, 2000, 3000, 4000]
    assert analysis.still_rising(steps, [0.0, 0.1, 0.2, 0.3, 0.4])          # +0.2 since step 3000
    assert not analysis.still_rising(steps, [0.0, 0.5, 0.9, 0.92, 0.93])    # +0.01: flat
    assert not analysis.still_rising(steps, [0.0, 0.5, 0.9, 0.6, 0.3])      # falling
    assert not analysis.still_rising([0], [0.3]) and not analysis.still_rising(steps, [None] * 5)



def test_seed_values_keeps_each_seeds_last_value_and_whether_it_still_rises():
    curves = [{"step": s, "test_inferred_ood": {"exact_match": em}} for s, em in ((0, 0.0), (300, 0.1), (400, 0.5))]
    flat = [{"step": s, "test_inferred_ood": {"exact_match": 0.2}} for s in (0, 300, 400)]
    runs = [Run(TINY.run("trm", "natural", 0), {"steps": 400, "epochs": 44.4}, curves, store=None),
            Run(TINY.run("trm", "natural", 1), {"steps": 400}, flat, store=None)]
    t = analysis.seed_values(runs, ["test_inferred_ood"])
    assert list(t.columns) == analysis.SEED_COLUMNS and list(t["seed"]) == [0, 1]
    assert list(t["value"]) == [0.5, 0.2] and list(t["rising"]) == [True, False]
    assert t["epochs"].iloc[0] == 44.4 and math.isnan(t["epochs"].iloc[1]) and list(t["steps"]) == [400, 400]
    assert analysis.seed_listing(t, NAT, "test_inferred_ood", "exact_match") == "seed 0: 0.50, seed 1: 0.20"
    assert analysis.seed_listing(t, "other", "test_inferred_ood", "exact_match") == "not run"


def test_cost_table_gives_epochs_beside_steps():
    curves = [{"step": s, "wall_seconds": s / 100, "test_inferred_ood": {"exact_match": em}}
              for s, em in ((0, 0.0), (100, 0.3), (200, 0.6))]
    t = analysis.cost_table([Run(TINY.run("trm", "both_full", 0), {"steps": 200, "epochs": 4.0, "device": "CPU"},
                                 curves, store=None)], 0.5)
    assert t["epochs_trained"].iloc[0] == 4.0 and t["epochs_to_criterion"].iloc[0] == 4.0
