# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The cost: is grokking worth its compute?
#
# The paper's title asks whether grokking is worthwhile, yet it reports no wall-clock time, no
# hardware and no cost. This chapter reads the runs that chapters 00-03 use at the chosen profile
# (with the profile's seeds, any other seed whose runs at the identical configuration are complete,
# and every regime; runs trained for anything else are left out, so this page does not depend on
# what else was run) and reports, for each, its steps, wall time,
# GPU-seconds and device; then it sets the cost of *waiting* for grokking on the natural data
# against the cost of reaching OOD accuracy by *augmenting* the data.

# %% tags=["hide-cell"]
# Run first: grokcircuits and what the chapters import must be installed (on Colab this installs them).
import importlib.util, subprocess, sys
_library = "grokcircuits @ git+https://github.com/grokcircuits/grokcircuits@main"
if importlib.util.find_spec("grokcircuits") is None and "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", _library], check=True)
    importlib.invalidate_caches()
if importlib.util.find_spec("grokcircuits") is None:
    raise ModuleNotFoundError(f"grokcircuits is not installed in this kernel ({sys.executable}): run "
                              f"%pip install '{_library}' in a cell, or from a clone of https://github.com/grokcircuits/grokcircuits run "
                              "`make setup` and choose the kernel of .venv")
from grokcircuits.pages.environment_check import ensure_environment
ensure_environment()

# %% tags=["parameters"]
profile = "tiny"   # tiny | cpu | gpu | paper: whose results store to read

# %% tags=["hide-input"]
from grokcircuits.pages import book

ch = book.parameters("04_cost", globals())
book.setup_charts()
book.header(ch)

# %% tags=["hide-input"]
import json
from pathlib import Path

import pandas as pd
from grokcircuits.pages import analysis, chapters, charts
from grokcircuits.science import verdicts

seeds = book.point_seeds(ch, lambda seeds: [c for cs in chapters.planned_runs(ch.profile_obj, seeds).values() for c in cs])
runs, planned = analysis.load_planned(ch.profile_obj, ch.store, seeds)
book.record_seeds(ch, seeds, runs)
book.seeds_note(ch)
table = pd.DataFrame([{"run": f"{analysis.condition_of(r)} · seed {r.config.train.seed}", "condition": analysis.condition_of(r),
                       "seed": r.config.train.seed, "steps": r.record["steps"], "wall_seconds": r.record["wall_seconds"],
                       "eval_seconds": r.record["eval_seconds"], "gpu_seconds": r.record["gpu_seconds"],
                       "steps_per_second": r.record["steps_per_second"], "parameters": r.record["parameters"],
                       "device": r.record["device"]} for r in runs])
print(f"{len(runs)} of the {len(planned)} runs the chapters plan at profile '{ch.profile}' and seeds {seeds} are in {ch.store.root}.")
analysis.readable(table.sort_values(["condition", "seed"]).set_index("run"), digits=1) if len(table) else planned

# %% tags=["hide-input"]
(charts.cost_bars(table, "Training wall time of every run", subtitle=f"profile {ch.profile}; the runs chapters 00-03 use")
 if len(table) else "none of the chapters' runs is in the store yet")

# %% [markdown]
# ## Waiting against augmenting
#
# For every pretraining run of the recursive model: the steps and epochs it trained, and the first
# evaluation at which OOD exact match reaches the grokking criterion (0.5, as in the other
# chapters, on the same OOD compositions for every regime), in optimiser steps, in epochs and in
# seconds of that run's wall time. Epochs compare like with like across regimes (one epoch is one
# pass over that regime's training set) and with the paper, whose natural run reached its OOD
# target after about 280 epochs.

# %% tags=["hide-input"]
to_grok = analysis.cost_table(runs, verdicts.GROKKING_CRITERION)
analysis.readable(to_grok.set_index(["condition", "seed"]).drop(columns="regime"))

# %% [markdown]
# ## The paper's settings, estimated
#
# One paper-profile run is 1,556,000 optimiser steps (1,100 epochs of 724,000 examples at batch
# 512). With a measured time per step from the benchmark (`make bench` on a GPU writes
# `results/bench/latest.json`), the cost of the paper's five regimes follows.

# %%
bench_file = Path("results/bench/latest.json")
bench = json.loads(bench_file.read_text()) if bench_file.exists() else {}
ms = bench.get("trm_paper_engine_ms_per_step")
if bench and ms is None:
    print(f"The GPU kit ran on {bench['device']} but did not measure the paper-width step (see its parts below).")
elif bench:
    print(f"{bench['device']}: {ms:.1f} ms per step at the paper's width -> {1_556_000 * ms / 3.6e6:.1f} GPU-hours per run, "
          f"{5 * 1_556_000 * ms / 3.6e6:.1f} for the five regimes")
else:
    print("No benchmark measurement in results/bench/latest.json yet: run `make bench` on a GPU.")

# %% [markdown]
# ## Verdict
#
# Augmentation is the cheaper road to OOD accuracy when, seed by seed, the both-hops-full run
# reaches the grokking criterion in fewer optimiser steps than the natural run. The saving is
# measured as the share of the natural run's steps saved, `1 - augmented / natural` (in epochs
# beside it). A run that never reached the criterion would have needed more steps than it trained,
# so each seed gives a lower bound of the saving (a natural run that never got there counts its
# trained steps; an augmented one that never got there saves nothing one can claim) and an upper
# bound. A seed **shows** the claim when its lower bound is above zero, **contradicts** it when its
# upper bound is at or below zero, and is open otherwise.
#
# **A censored natural run.** When the natural run never reached the criterion, its saving is not
# measured: it is a bound set by the budget the run trained (its steps and epochs), and says only
# that waiting would have cost more than that budget. Such a seed counts only where the natural run
# trained at least the epochs the paper's natural run took to reach its OOD target (about 280)
# without reaching it; a shorter budget bounds nothing and leaves the seed open. The verdict then
# says that its saving is the budget's. The share of seeds showing the claim decides, as below, and
# the claim is **not shown** when no run reached the criterion. The rule is
# `grokcircuits.science.verdicts.cost`.

# %% tags=["hide-input"]
book.share_rule()

# %%
# NBVAL_CHECK_OUTPUT
waiting = verdicts.cost(to_grok)
book.verdict(ch, "Augmenting the data reaches OOD accuracy with less compute than waiting for grokking on the natural data.",
             waiting, runs)

# %% tags=["hide-input"]
book.verdict_numbers(waiting)

# %% [markdown]
# ## The paper reports / we measured

# %% tags=["hide-input"]
from grokcircuits.config import REGIMES

spent = (f"{len(runs)} runs: {table['steps'].sum():,} steps, {table['gpu_seconds'].sum():,.0f} GPU-seconds, "
         f"{table['wall_seconds'].sum():,.0f} s of wall time on {', '.join(sorted(set(table['device'])))}" if len(table) else "no runs yet")
book.paper_table([
    ("hardware, wall time, GPU-seconds", "not reported", spent),
    ("steps to OOD accuracy, natural data", "not reported (each run trained 1.56M steps)",
     waiting.numbers[f"{REGIMES['natural'].label}: steps to the grokking criterion"]),
    ("steps to OOD accuracy, both hops augmented", "not reported",
     waiting.numbers[f"{REGIMES['both_full'].label}: steps to the grokking criterion"]),
    ("epochs to OOD accuracy, natural data", f"about {verdicts.PAPER_NATURAL_EPOCHS} (its natural run's OOD target)",
     waiting.numbers[f"{REGIMES['natural'].label}: epochs to the grokking criterion"]),
    ("epochs to OOD accuracy, both hops augmented", "not reported",
     waiting.numbers[f"{REGIMES['both_full'].label}: epochs to the grokking criterion"]),
])

# %% [markdown]
# ## Where it groks and what it costs
#
# A profile can show the book's claims only where they appear: the recursive model trained on both hops
# augmented must compose OOD (exact match at least 0.9: a mature circuit for claim 3), and on the natural
# data it must grok (OOD exact match at least 0.5) while the standard transformer at the same graph stays
# near zero on OOD, both above 0.9 in distribution. Where that happens is found by sweeps: the grid `cpu`
# on this project's 2-core CPUs (`make sweep GRID=cpu BUDGET=...`, hours, resumed from what is committed),
# the grid `cpu_wd03` that holds the `cpu` profile's recursive runs (its point at weight decay 0.3, three
# seeds), and the grid `first` on a GPU (`make sweep GRID=first`, one command of at most 7 minutes on one H100;
# {doc}`/book/appendix/sweeps`). For every point and data regime the table gives the optimiser steps, epochs and
# device seconds (the run's share of its CPU or GPU) to training accuracy 0.9, to ID exact match 0.9, to
# OOD exact match 0.5 and 0.9 and to bridge found 0.5 (on the OOD compositions), the OOD atomic facts'
# exact match at the end (OOD compositions need them stored first), the standard transformer's OOD exact
# match at the same graph, and whether the run finished. `sweep.choose_cpu_profile` names the cheapest
# point that meets both conditions (or only the first, with the second left open), or none.

# %% tags=["hide-input"]
from grokcircuits.ops import sweep as sweeps

sweep_tables = sweeps.load_tables()
if not sweep_tables:
    print(f"No sweep table in {sweeps.sweep_root()} yet: `make sweep GRID=cpu BUDGET=...` makes one.")
for t in sweep_tables:
    print(f"grid {t['grid']} ({', '.join(t['devices']) or 'no device'}; {t.get('elapsed_seconds', '?')} s of a "
          f"{t.get('budget_seconds', '?')} s budget): {t['note']}")
    for p in sweeps.profile_points(t["rows"]):
        a = sweeps.a_status(p)
        b = f"shown at {p['b_steps']} steps ({p['b_epochs']} epochs)" if p["b"] else (
            "not shown: " + ", ".join(k for k, ok in (p["natural_criteria"] or {}).items() if not ok) or "not trained")
        print(f"  {p['point']}: (a) both hops full, OOD >= 0.9: {a}; (b) natural contrast: {b}")
    choice = t.get("cpu_profile_choice")
    if choice:
        print(f"  the cpu profile's point: {choice['point']} (meets {choice['meets']})")
sweep_columns = ["regime", "seed", "n_entities", "width", "lr", "weight_decay", "grokfast", "status", "steps", "epochs",
                 "steps_to_training_0.9", "steps_to_id_0.9", "steps_to_ood_0.5", "epochs_to_ood_0.5", "steps_to_ood_0.9",
                 "steps_to_bridge_0.5", "final_id_exact_match", "final_ood_exact_match", "final_ood_atomic_exact_match",
                 "standard_id_exact_match", "standard_ood_exact_match", "seconds_to_ood_0.5", "seconds_to_ood_0.9",
                 "device_seconds", "device"]
sweep_frame = pd.DataFrame([{"grid": t["grid"], **{c: r.get(c, "natural" if c == "regime" else None) for c in sweep_columns}}
                            for t in sweep_tables for r in t["rows"]])
analysis.readable(sweep_frame.set_index("grid")) if len(sweep_frame) else "no sweep table yet"

# %% tags=["hide-input"]
import altair as alt

THRESHOLDS = {"training_0.9": "training accuracy 0.9", "id_0.9": "ID exact match 0.9",
              "ood_0.5": "OOD exact match 0.5", "ood_0.9": "OOD exact match 0.9"}


def crossings_chart(frame):
    """Per grid and data regime, the steps to each threshold; a threshold not reached is drawn hollow at
    the steps the run trained (a lower bound)."""
    long = frame.melt(id_vars=["grid", "regime", "steps", "status"], value_name="steps_to",
                      value_vars=[f"steps_to_{k}" for k in THRESHOLDS], var_name="threshold")
    long["threshold"] = long["threshold"].str.removeprefix("steps_to_").map(THRESHOLDS)
    long["reached"] = long["steps_to"].notna()
    long["steps_shown"] = long["steps_to"].fillna(long["steps"]).astype(float)
    base = alt.Chart().encode(
        x=alt.X("steps_shown:Q", title="optimiser steps"), y=alt.Y("regime:N", title=None),
        color=alt.Color("threshold:N", title="first reaches", sort=list(THRESHOLDS.values()),
                        legend=alt.Legend(orient="bottom", columns=2)),
        tooltip=["grid", "regime", "threshold", "steps_shown", "reached", "status"])
    reached = base.transform_filter("datum.reached").mark_point(filled=True, size=90)
    missed = base.transform_filter("!datum.reached").mark_point(filled=False, size=90)
    return alt.layer(reached, missed, data=long).properties(width=520, height=140).facet(
        row=alt.Row("grid:N", title="grid")).properties(
        title="Steps to each threshold (hollow: not reached by the steps trained)")


crossings_chart(sweep_frame) if len(sweep_frame) else "no sweep table yet: nothing to draw"

# %% [markdown]
# ## When does the natural objective keep composition?
#
# No natural-data run here has come to answer OOD compositions. The stability screen
# (`grokcircuits.ops.stability`, `python -m grokcircuits stability --grid stability`) asks why from the
# other side: at each point (graph, model, training) it first fits the recursive model on both hops
# full until it answers the OOD compositions (training accuracy and OOD atomic facts at least 0.99,
# OOD exact match at least 0.9, at two evaluations in a row), then continues those weights on the
# natural data of the same graph for 40 epochs. A point **retains** when OOD exact match is still at
# least 0.5 at +40 epochs. A fall while the OOD atomic facts stay stored means the natural objective
# pulls the model off composition; the control continues the same weights on both hops full for the
# same steps, so a restart alone cannot explain a fall. The table and curves are read from
# `results/sweep/stability/stability.json`, committed; nothing is trained here.

# %% tags=["hide-input"]
from grokcircuits.ops import stability

screen = stability.load_stability("stability")
if screen is None:
    print("the stability screen has not been run (python -m grokcircuits stability --grid stability)")
else:
    print(stability.summary_line(screen))
    display(charts.retention_summary(stability.retention_by_point(screen), screen["retains_at"],
                                     "Where the natural objective keeps composition",
                                     "OOD exact match after a composing model moves to the natural data, a row per "
                                     "point labelled with its reading, a panel per graph; a point retains right of "
                                     "the dashed line at its last epoch"))
    display(stability.retention_table(screen))
    display(charts.retention(stability.retention_curves(screen),
                             "OOD exact match after a composing model moves to the natural data",
                             "each panel a screen point; solid: natural data, dashed: both hops full (control)"))

# %% [markdown]
# Chapter 02's split of the OOD queries by their facts' history reads the fall from the other side:
# where its variant verdict does not hold, the models compose an OOD fact only where they saw it
# composed in training (both hops half answers the queries with both facts composed and not those
# with neither). A both-hops-full fit has seen every OOD fact composed; the natural data rehearse those
# facts as atomic queries only, so the composed form the fit answered with goes and the atomic form
# stays: the fall with the facts kept. A point can retain only where a model composes facts it never
# saw composed; the grid `cpu_composed` (`python -m grokcircuits composed`, `results/sweep/README.md`)
# asks that of the model's variants directly.

# %% [markdown]
# **What the screen finds.** The natural objective keeps composition nowhere this screen reached.
# Every 50-entity point that met the fitting rule loses composition within 40 natural-data epochs
# while its OOD facts stay stored; the knobs (width 64 to 256, one block or two, Grokfast on or off,
# weight decay 0 to 1.0, the paper's recursion depth, training through every H-cycle, tied
# embeddings, re-embedding between H-cycles, self-attention as the token mixer) change how fast the
# first ten epochs go (OOD exact match 0.09 to 0.62 at +10), not where the fall ends (at most 0.19 at
# +40, the narrowest model). At 100 and 200 entities every fit that ended (widths 128 and 256 at 100;
# at 200 width 128, plain, with tied embeddings, re-embedding or self-attention, or at weight decay 0.1)
# answers the OOD compositions before it answers every OOD fact as an atomic query and meets its step cap so; the screen's rule reads those points as
# confounded, and where the facts stay at the fit's level (weight decay 0.1, self-attention at 200
# entities) composition goes all the same (0.00-0.02 at +40). The grid `cpu_composed` gives
# the reason in one table: each variant, trained on both hops half, has one hop that reaches facts
# it never saw composed and one that does not, and answers at most 0.06 of the queries with neither
# fact composed, the only kind natural data ask about. Where the trend points: no knob of the model
# or its training tried here lets both hops read stored facts; what is left untried is the scale
# the paper trains at (2,000 entities, width 1,536, about 1,100 epochs), hours a point on a GPU
# and beyond these CPUs.

# %% [markdown]
# The CPU step that trains the `cpu` profile, measured by `python -m grokcircuits bench --cpu`
# (`results/bench/cpu.json`, on an otherwise idle machine): model-steps per second eager and compiled, at
# 1 and 2 threads, as ensembles of 1, 3 and 5 runs, and each step's matrix FLOP rate as a share of a
# same-shape GEMM on the same threads (the step's largest matmul, batched over the ensemble).

# %% tags=["hide-input"]
cpu_file = Path("results/bench/cpu.json")
cpu_bench = json.loads(cpu_file.read_text()) if cpu_file.exists() else {}
if not cpu_bench:
    print("No CPU benchmark in results/bench/cpu.json yet: run `python -m grokcircuits bench --cpu`.")
else:
    fastest = cpu_bench.get("fastest", {}).get("trm", {})
    print(f"{cpu_bench['device']} ({cpu_bench['cpu_capability']}), torch {cpu_bench['torch']}: the recursive model's "
          f"best step reaches {cpu_bench.get('trm_best_share_of_peak')} of its same-shape GEMM peak "
          f"(gate {cpu_bench['gate']}: {'met' if cpu_bench.get('gate_met') else 'missed'}); fastest: "
          f"{fastest.get('mode')}, {fastest.get('members')} run(s), {fastest.get('threads')} thread(s), "
          f"{fastest.get('model_steps_per_s')} model-steps/s")
cpu_rows = [{"model": arch, "mode": mode, "runs": int(m), "threads": int(t), **fig}
            for arch, modes in cpu_bench.get("steps", {}).items() for mode, by_m in modes.items()
            for m, e in by_m.items() for t, fig in e["threads"].items()]
analysis.readable(pd.DataFrame(cpu_rows).set_index("model"), digits=3) if cpu_rows else "no CPU benchmark yet"

# %% [markdown]
# The engine that trains the sweep, measured by the GPU kit (`make gpu-check`, at most 4 minutes on one
# H100; `results/bench/latest.json`): K runs as one ensemble against one run, the engine against the
# original code's setup, and each step against its floor (its matrix FLOPs at the measured bf16 rate).

# %% tags=["hide-input"]
kit_file = Path("results/bench/latest.json")
kit = json.loads(kit_file.read_text()) if kit_file.exists() else {}
if not kit:
    print("No GPU kit measurement in results/bench/latest.json yet: run `make gpu-check` on a GPU.")
else:
    print(f"{kit['device']}, bf16 matrix rate {kit.get('bf16_matmul_tflops') or float('nan'):.0f} TFLOP/s; "
          f"ensembles of M runs of the GPU profile, model-steps per second: {kit.get('ensemble_model_steps_per_s')}")
    for name, met in (kit.get("targets") or {}).items():
        print(f"  {name}: {'met' if met else 'missed' if met is not None else 'not measured'}")
    for name, part in kit.get("parts", {}).items():
        if part["status"] != "ok":
            print(f"  part {name}: {part['status']} ({part.get('error') or part.get('reason')})")
kit_floors = pd.DataFrame([{"configuration": n, **f} for n, f in kit.get("floors", {}).items()])
analysis.readable(kit_floors.set_index("configuration"), digits=2) if len(kit_floors) else "no floors measured yet"

# %% tags=["hide-input"]
book.provenance(ch, runs)

# %% tags=["hide-cell"]
book.package_versions()
