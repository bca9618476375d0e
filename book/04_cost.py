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
# hardware and no cost. This chapter reads every run in the results store of the chosen profile
# (the runs the other chapters trained or loaded) and reports, for each, its steps, wall time,
# GPU-seconds and device; then it sets the cost of *waiting* for grokking on the natural data
# against the cost of reaching OOD accuracy by *augmenting* the data.

# %% tags=["parameters"]
profile = "tiny"   # tiny | gpu | paper: whose results store to read

# %%
from grokcircuits import book

ch = book.parameters("04_cost", globals())
book.setup_charts()
book.header(ch)

# %%
import json
from pathlib import Path

import pandas as pd
from grokcircuits import analysis, charts
from grokcircuits.config import RunConfig
from grokcircuits.engine import Run
from grokcircuits.stats import first_crossing

runs = [Run(RunConfig.from_dict(r["config"]), r, ch.store.curves(r["key"]), ch.store) for r in ch.store.runs()]
table = pd.DataFrame([{"run": f"{analysis.condition_of(r)} · seed {r.config.train.seed}", "condition": analysis.condition_of(r),
                       "seed": r.config.train.seed, "steps": r.record["steps"], "wall_seconds": r.record["wall_seconds"],
                       "eval_seconds": r.record["eval_seconds"], "gpu_seconds": r.record["gpu_seconds"],
                       "steps_per_second": r.record["steps_per_second"], "parameters": r.record["parameters"],
                       "device": r.record["device"]} for r in runs])
table.sort_values(["condition", "seed"]).set_index("run")

# %%
charts.cost_bars(table, f"Training wall time of every run (profile {ch.profile})") if len(table) else "no runs in the store yet"

# %% [markdown]
# ## Waiting against augmenting
#
# For every pretraining run of the recursive model: the first evaluation at which OOD exact match
# reaches 0.5, in optimiser steps and in seconds of that run's wall time.

# %%
rows = []
for r in runs:
    if r.config.model.architecture != "trm" or r.config.transfer is not None:
        continue
    steps = [e["step"] for e in r.curves]
    ood = [e["test_inferred_ood"]["exact_match"] for e in r.curves]
    hit = first_crossing(steps, ood, 0.5)
    secs = next((e["wall_seconds"] for e in r.curves if e["step"] == hit), None)
    rows.append({"condition": analysis.condition_of(r), "seed": r.config.train.seed, "steps trained": r.record["steps"],
                 "OOD exact match at the end": ood[-1], "steps to OOD 0.5": hit, "seconds to OOD 0.5": secs,
                 "device": r.record["device"]})
to_grok = pd.DataFrame(rows)
to_grok.round(3)

# %% [markdown]
# ## The paper's settings, estimated
#
# One paper-profile run is 1,556,000 optimiser steps (1,100 epochs of 724,000 examples at batch
# 512). With a measured time per step from the benchmark (`make bench` on a GPU writes
# `results/bench/latest.json`), the cost of the paper's five regimes follows.

# %%
bench_file = Path("results/bench/latest.json")
if bench_file.exists():
    bench = json.loads(bench_file.read_text())
    ms = bench["trm_paper_engine_ms_per_step"]
    print(f"{bench['device']}: {ms:.1f} ms per step at the paper's width -> {1_556_000 * ms / 3.6e6:.1f} GPU-hours per run, "
          f"{5 * 1_556_000 * ms / 3.6e6:.1f} for the five regimes")
else:
    print("No benchmark measurement in results/bench/latest.json yet: run `make bench` on a GPU.")

# %% [markdown]
# ## Verdict
#
# Augmentation is the cheaper road to OOD accuracy when a both-hops-full run reaches OOD exact
# match 0.5 in fewer steps than the natural run of the same seed (a natural run that never
# reaches it counts as slower). If no run reaches 0.5, the profile is too small to say.

# %%
# NBVAL_CHECK_OUTPUT
def steps_to_grok(cond, seed):
    """Steps to OOD exact match 0.5 of that run, or None (no such run, or it never got there)."""
    m = to_grok[(to_grok["condition"] == cond) & (to_grok["seed"] == seed)] if len(to_grok) else to_grok
    v = None if m.empty else m.iloc[0]["steps to OOD 0.5"]
    return None if v is None or pd.isna(v) else int(v)

seeds = sorted(to_grok["seed"].unique()) if len(to_grok) else []
pairs = [(steps_to_grok("natural (no augmentation)", s), steps_to_grok("both hops, full", s)) for s in seeds]
comparable = [(n, b) for n, b in pairs if n is not None or b is not None]
faster = [b is not None and (n is None or b < n) for n, b in comparable]
holds = bool(all(faster)) if comparable else None
book.verdict(ch, "Augmenting the data reaches OOD accuracy with less compute than waiting for grokking on the natural data.",
             holds, {"runs in the store": len(runs), "optimiser steps in all": int(table["steps"].sum()) if len(table) else 0,
                     "seeds where some run reached OOD 0.5": f"{len(comparable)}/{len(seeds)}",
                     "seeds where augmentation was faster": f"{sum(faster)}/{len(comparable)}"},
             runs, note="no pretraining run reached OOD exact match 0.5 at this profile" if holds is None else "")

# %%
book.provenance(ch, runs)
book.package_versions()
