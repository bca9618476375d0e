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
# # The task: two-hop composition over a knowledge graph
#
# The paper (He et al., arXiv 2601.09049) asks whether *grokking* — generalisation that arrives
# long after the training set is fitted — is worth its compute, by looking inside the circuit a
# parameter-sharing transformer forms for **two-hop composition**. This chapter sets up the task,
# the five data regimes the rest of the book compares, and the contrast that motivates the
# recursive model: a standard transformer learns compositions it has seen the parts of, but not
# compositions of facts that never appear inside a composition (the "curse of two-hop reasoning").

# %% tags=["parameters"]
profile = "tiny"   # tiny (CPU, seconds) | gpu (one H100, minutes) | paper (the authors' settings)
seeds = None      # None: the profile's seeds (tiny: [0, 1]; gpu and paper: [0, 1, 2])
workers = 1        # runs sharing the device at once (GPU only)

# %%
from grokcircuits import book

ch = book.parameters("00_task", globals())
book.setup_charts()
book.header(ch)

# %% [markdown]
# ## The knowledge graph and its splits
#
# Every head entity gets a fixed number of distinct relations, each with a uniformly random tail:
# an atomic fact `(h, r) -> t`. A two-hop query `(h, r1, r2) -> t` composes `(h, r1, b)` and
# `(b, r2, t)` through a **bridge entity** `b`. A small share of atomic facts is *OOD*: those facts
# are trained as atomic facts, but no training query ever composes them. A query whose two hops are
# both OOD is therefore an OOD composition; one whose two hops are ID and that was held out is an
# ID composition.

# %%
import pandas as pd
from grokcircuits.__main__ import describe

sizes = describe(ch.profile)
pd.DataFrame([{k: sizes[k] for k in ["atomic", "ood_atomic", "train_inferred", "test_inferred_iid",
                                      "test_inferred_ood", "train_examples", "vocabulary", "parameters"]}],
             index=[f"profile {ch.profile}"]).T

# %% [markdown]
# Each example is a sequence of five token slots. The model reads `[h, r1, r2, PAD, PAD]` and
# writes the whole target `[h, r1, r2, t, END]` ("maintain prefix"); an atomic fact reads
# `[h, r, PAD, PAD, PAD]` and writes `[h, r, t, END, PAD]`. Exact match requires every slot.

# %%
from grokcircuits.data import encode
from grokcircuits.engine import dataset

data = dataset(ch.profile_obj.data)
examples = data.train_examples()[[0, -1]]
inputs, labels = encode(examples, data.vocab)
pd.DataFrame({"row [h, r1, r2, b, t]": [list(map(int, e)) for e in examples],
              "input tokens": [list(map(int, i)) for i in inputs],
              "label tokens": [list(map(int, l)) for l in labels]}, index=["atomic fact", "two-hop query"])

# %% [markdown]
# ## Five data regimes
#
# The regimes differ only in how many *mixed* queries (one OOD hop, one ID hop) enter training.
# Hop-1 injection adds queries that start with an OOD fact and continue with an ID one; hop-2
# injection the reverse. No test query is ever added.

# %%
from grokcircuits.config import REGIMES
from grokcircuits.data import build_dataset
from dataclasses import replace

pd.DataFrame([{"regime": r.label, "rho1 / k1": f"{r.hop1_ratio} / {r.hop1_samples}",
               "rho2 / k2": f"{r.hop2_ratio} / {r.hop2_samples}",
               **{k: v for k, v in build_dataset(replace(ch.profile_obj.data, regime=name)).sizes().items()
                  if k in ("train_inferred", "injected_hop1", "injected_hop2")}}
              for name, r in REGIMES.items()]).set_index("regime")

# %% [markdown]
# ## The contrast: a standard transformer against the recursive model
#
# Both are trained on the natural data (no augmentation). We follow exact match on the held-out
# ID compositions and on the OOD compositions.

# %%
from grokcircuits import analysis, charts, experiments

runs = list(experiments.train_many(experiments.task_runs(ch.profile_obj, ch.seeds), ch.store, ch.workers).values())
sets = ["train_inferred", "test_inferred_iid", "test_inferred_ood"]
curves = analysis.mean_curves(analysis.curves_frame(runs, sets))
charts.curves(curves, f"Exact match over training (profile {ch.profile}; mean and 95% interval over seeds)",
              "exact match (fraction of queries)", facet="set")

# %%
final = analysis.final_values(runs, sets)
final.round(3)

# %% [markdown]
# ## Verdict
#
# The contrast holds when the standard transformer reaches at least 0.5 exact match on ID
# compositions but at most 0.1 on OOD ones, while the recursive model reaches at least 0.5 on OOD.
# When the standard transformer does not even generalise in distribution, the profile is too small
# to test the contrast, and the verdict says so instead of "does not hold".

# %%
# NBVAL_CHECK_OUTPUT
gpt_iid = analysis.lookup(final, "standard transformer", "test_inferred_iid", "exact_match")
gpt_ood = analysis.lookup(final, "standard transformer", "test_inferred_ood", "exact_match")
trm_ood = analysis.lookup(final, "natural (no augmentation)", "test_inferred_ood", "exact_match")
trm_iid = analysis.lookup(final, "natural (no augmentation)", "test_inferred_iid", "exact_match")
# the contrast needs a standard transformer that generalises in distribution at all
holds = None if gpt_iid[0] < 0.5 else bool(gpt_ood[0] <= 0.1 and trm_ood[0] >= 0.5)
book.verdict(ch, "A standard transformer learns ID compositions but stays near zero on OOD ones; "
             "the parameter-sharing model reaches OOD compositions.", holds,
             {"standard transformer, ID exact match": gpt_iid, "standard transformer, OOD exact match": gpt_ood,
              "recursive model, ID exact match": trm_iid, "recursive model, OOD exact match": trm_ood},
             runs, note="the standard transformer did not reach 0.5 on ID compositions at this profile"
             if holds is None else "")

# %%
book.provenance(ch, runs)
book.package_versions()
