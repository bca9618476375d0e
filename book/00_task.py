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
profile = "tiny"   # tiny (CPU, seconds) | cpu (2-core CPU, hours) | gpu (one H100, minutes) | paper (the authors' settings)
seeds = None      # None: the profile's seeds (tiny: [0, 1]; cpu, gpu and paper: [0, 1, 2]) and every other seed
                  # whose runs at this configuration are complete (in the profile's store or the sweep's)
workers = 16       # most runs trained together as one ensemble (one batched step)

# %% tags=["hide-input"]
from grokcircuits.pages import book

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

# %% tags=["hide-input"]
import pandas as pd
from grokcircuits.pages.experiments import describe

sizes = describe(ch.profile)
pd.DataFrame([{k: sizes[k] for k in ["atomic", "ood_atomic", "train_inferred", "test_inferred_iid",
                                      "test_inferred_ood", "train_examples", "vocabulary", "parameters"]}],
             index=[f"profile {ch.profile}"]).T

# %% [markdown]
# Each example is a sequence of five token slots. The model reads `[h, r1, r2, PAD, PAD]` and
# writes the whole target `[h, r1, r2, t, END]` ("maintain prefix"); an atomic fact reads
# `[h, r, PAD, PAD, PAD]` and writes `[h, r, t, END, PAD]`. The standard transformer of the
# contrast is trained on the answer alone (the tail and END), as in Wang et al.
#
# **Two exact matches.** *Answer-slot exact match* asks whether the answer slot holds the gold
# tail: one definition for every model, and the one the verdicts judge. *Exact match over the
# supervised slots* asks for every slot a model was trained on: all five for the recursive model
# (the copied prefix too), the answer and END for the standard transformer. It is shown beside
# the first; comparing it across the two models would hold them to different tests.

# %% tags=["hide-input"]
from grokcircuits.science.data import encode
from grokcircuits.science.runs import dataset

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

# %% tags=["hide-input"]
from grokcircuits.config import REGIMES
from grokcircuits.science.data import build_dataset
from dataclasses import replace

pd.DataFrame([{"regime": r.label, "rho1 / k1": f"{r.hop1_ratio} / {r.hop1_samples}",
               "rho2 / k2": f"{r.hop2_ratio} / {r.hop2_samples}",
               **{k: v for k, v in build_dataset(replace(ch.profile_obj.data, regime=name)).sizes().items()
                  if k in ("train_inferred", "injected_hop1", "injected_hop2")}}
              for name, r in REGIMES.items()]).set_index("regime")

# %% [markdown]
# ## The contrast: a standard transformer against the recursive model
#
# Both are trained on the natural data (no augmentation). We follow answer-slot exact match on the
# training compositions, the held-out ID compositions and the OOD compositions.

# %% tags=["hide-input"]
from grokcircuits.pages import analysis, charts, experiments
from grokcircuits.science import verdicts

runs = book.chapter_runs(ch, lambda seeds: experiments.task_runs(ch.profile_obj, seeds))
book.seeds_note(ch)
sets = ["train_inferred", "test_inferred_iid", "test_inferred_ood"]
curves = analysis.named(analysis.mean_curves(analysis.curves_frame(runs, sets, ["answer_exact_match"])))
curves["condition"] = curves["condition"].replace({verdicts.RECURSIVE: "recursive model (natural data)"})
charts.curves(curves, "Answer-slot exact match over training", "share of queries", facet="set",
              facet_order=[analysis.SET_NAMES[s] for s in sets],
              subtitle=f"profile {ch.profile}; mean and 95% interval over seeds {ch.seeds_used}")

# %% [markdown]
# At the end of training, both exact matches, seed by seed:

# %% tags=["hide-input"]
per_seed = analysis.seed_values(runs, sets, ["answer_exact_match", "exact_match"])
analysis.readable(analysis.named(per_seed).pivot_table(index=["condition", "set", "metric"], columns="seed", values="value"))

# %% [markdown]
# ## Verdict
#
# Seed by seed (a run of each model at that seed): the seed **shows** the contrast when both models
# generalise in distribution (answer-slot exact match on the held-out ID compositions at least 0.5),
# the standard transformer stays at or below 0.1 on OOD compositions and the recursive model
# reaches 0.5. It is **open** when a model does not generalise in distribution (the premise), or
# when only the recursive model falls short while its curve was still rising or after fewer epochs
# than the paper's 1100 (the composition may still come); otherwise it **contradicts** the
# contrast. The share of seeds showing it then decides, as below. The rule is
# `grokcircuits.science.verdicts.task_contrast`; the cell prints only what every machine agrees on (the
# verdict, its branch, k of n seeds), and each seed's values follow it.

# %% tags=["hide-input"]
book.share_rule()

# %%
# NBVAL_CHECK_OUTPUT
contrast = verdicts.task_contrast(per_seed)
book.verdict(ch, "A standard transformer learns ID compositions but stays near zero on OOD ones; "
             "the parameter-sharing model reaches OOD compositions.", contrast, runs)

# %% tags=["hide-input"]
book.verdict_numbers(contrast)

# %% [markdown]
# ## The paper reports / we measured

# %% tags=["hide-input"]
n = contrast.numbers
book.paper_table([
    ("standard transformer, ID compositions", "generalises in distribution",
     n["standard transformer, ID: answer-slot exact match"]),
    ("standard transformer, OOD compositions", "near 0 (the curse of two-hop reasoning)",
     n["standard transformer, OOD: answer-slot exact match"]),
    ("recursive model, ID compositions", "generalises in distribution", n["recursive model, ID: answer-slot exact match"]),
    ("recursive model, OOD compositions", "high after long training (grokking)",
     n["recursive model, OOD: answer-slot exact match"]),
])

# %% tags=["hide-input"]
book.provenance(ch, runs)

# %% tags=["hide-cell"]
book.package_versions()
