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
# # Claim 2: accuracy and the circuit are decoupled
#
# **The paper's claim.** High exact match on OOD compositions after long training, and the
# formation of the bridge-entity reasoning path, can happen independently, depending on the data
# regime: *accuracy without the circuit* ("fake grokking") and *a circuit without accuracy*.
#
# **What we fix.** The paper's main figure plots "final answer accuracy", which is in fact *target
# found anywhere* (the gold tail is top-1 at any recursion state and any slot). We plot the true
# exact match and show the loose metric beside it, named for what it is. "Bridge found" keeps the
# authors' definition (any state, any slot, copied prefix slots included) and is shown beside a
# stricter reading (the bridge at the answer or END slot). All five regimes are run and labelled.

# %% tags=["parameters"]
profile = "tiny"    # tiny | gpu | paper
seeds = None      # None: the profile's seeds (tiny: [0, 1]; gpu and paper: [0, 1, 2])
workers = 1         # runs sharing the device at once (GPU only)
regimes = ["natural", "both_full", "both_half", "hop1_only", "hop2_only"]

# %%
from grokcircuits import book

ch = book.parameters("02_accuracy_vs_circuit", globals())
book.setup_charts()
book.header(ch)

# %%
import pandas as pd
from grokcircuits import analysis, charts, experiments
from grokcircuits.config import REGIMES

runs = list(experiments.train_many(experiments.regime_runs(ch.profile_obj, ch.seeds, ch.regimes), ch.store, ch.workers).values())
metrics = ["exact_match", "target_found", "bridge_found", "bridge_found_tail_slots"]
ood = analysis.mean_curves(analysis.curves_frame(runs, ["test_inferred_ood"], metrics))
ood["metric"] = ood["metric"].map(analysis.METRIC_NAMES)

# %% [markdown]
# ## OOD compositions over training, per regime

# %%
charts.curves(ood, f"OOD compositions over training (profile {ch.profile}; mean and 95% interval over seeds)",
              "fraction of OOD queries", facet="metric", width=210, height=170)

# %% [markdown]
# ## When each curve crosses 0.5 and 0.9

# %%
cross = pd.concat([analysis.crossings(runs, "test_inferred_ood", m).assign(metric=analysis.METRIC_NAMES[m])
                   for m in ["exact_match", "target_found", "bridge_found"]])
cross.pivot_table(index=["condition", "metric"], columns="threshold", values="mean_first_step", aggfunc="first", dropna=False)

# %%
cross.pivot_table(index=["condition", "metric"], columns="threshold", values="seeds_crossed", aggfunc="first")

# %% [markdown]
# ## Final values

# %%
final = analysis.final_values(runs, ["test_inferred_ood", "test_inferred_iid"], metrics)
final.round(3)

# %% [markdown]
# ## The paper reports / we measured
#
# The paper's figure (one seed per regime) reports, after long training: the second-hop-only run
# reaches high OOD accuracy while the bridge is rarely found; the first-hop-only run finds the
# bridge but stays low on OOD accuracy; natural and both-hops runs do both.

# %%
def cell(cond, metric):
    m, lo, hi = analysis.lookup(final, cond, "test_inferred_ood", metric)
    return f"{m:.2f} [{lo:.2f}, {hi:.2f}]"

paper_says = {"natural": "accuracy and bridge both rise", "both_full": "accuracy and bridge both rise",
              "both_half": "(the paper's panel plotted the first-hop-only run)",
              "hop1_only": "bridge found, OOD accuracy low", "hop2_only": "OOD accuracy high, bridge rarely found"}
pd.DataFrame([{"regime": REGIMES[r].label, "the paper reports": paper_says[r],
               "OOD exact match": cell(REGIMES[r].label, "exact_match"),
               "target found anywhere": cell(REGIMES[r].label, "target_found"),
               "bridge found": cell(REGIMES[r].label, "bridge_found")} for r in ch.regimes]).set_index("regime")

# %% [markdown]
# ## Verdict
#
# The decoupling holds when the second-hop-only regime reaches OOD exact match of at least 0.5
# while its bridge is found in under 0.5 of queries (accuracy without the circuit), **and** the
# first-hop-only regime finds the bridge in at least 0.5 of queries while its OOD exact match stays
# under 0.5 (a circuit without accuracy). If neither regime reaches 0.5 on either measure, the
# profile is too small to test the claim.

# %%
# NBVAL_CHECK_OUTPUT
h2_em, h2_br = (analysis.lookup(final, REGIMES["hop2_only"].label, "test_inferred_ood", m) for m in ("exact_match", "bridge_found"))
h1_em, h1_br = (analysis.lookup(final, REGIMES["hop1_only"].label, "test_inferred_ood", m) for m in ("exact_match", "bridge_found"))
tested = "hop1_only" in ch.regimes and "hop2_only" in ch.regimes and max(h2_em[0], h1_br[0]) >= 0.5
holds = bool(h2_em[0] >= 0.5 and h2_br[0] < 0.5 and h1_br[0] >= 0.5 and h1_em[0] < 0.5) if tested else None
book.verdict(ch, "High OOD accuracy and the bridge-entity circuit can form independently, depending on the data regime.", holds,
             {"second hop only: OOD exact match": h2_em, "second hop only: bridge found": h2_br,
              "first hop only: OOD exact match": h1_em, "first hop only: bridge found": h1_br},
             runs, note="neither regime reached 0.5 OOD exact match or bridge found at this profile" if holds is None else "")

# %%
book.provenance(ch, runs)
book.package_versions()
