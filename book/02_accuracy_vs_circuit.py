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
# stricter reading (the bridge at the answer or END slot), which is the one the verdict judges: the
# prefix slots hold the query's own tokens, so the authors' reading can count a bridge that the
# model merely copied past. All five regimes are run and labelled.

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
profile = "tiny"    # tiny | cpu | gpu | paper
seeds = None      # None: the profile's seeds (tiny: [0, 1]; cpu, gpu and paper: [0, 1, 2]) and every other seed
                  # whose runs at this configuration are complete (in the profile's store or the sweep's)
workers = 16        # most runs trained together as one ensemble (one batched step)
regimes = ["natural", "both_full", "both_half", "hop1_only", "hop2_only"]
grokking_criterion = 0.5   # OOD exact match at which a run counts as grokked: "high OOD accuracy"

# %% tags=["hide-input"]
from grokcircuits.pages import book

ch = book.parameters("02_accuracy_vs_circuit", globals())
book.setup_charts()
book.header(ch)

# %% tags=["hide-input"]
import pandas as pd
from grokcircuits.pages import analysis, charts, experiments
from grokcircuits.science import verdicts
from grokcircuits.config import REGIMES

runs = book.chapter_runs(ch, lambda seeds: experiments.regime_runs(ch.profile_obj, seeds, ch.regimes))
book.seeds_note(ch)
metrics = ["exact_match", "target_found", "bridge_found", "bridge_found_tail_slots"]
ood = analysis.named(analysis.mean_curves(analysis.curves_frame(runs, ["test_inferred_ood"], metrics)))

# %% [markdown]
# ## OOD compositions over training, per regime
#
# Four readings of the same OOD queries: exact match (the model's output), the gold tail anywhere
# in the recursion (the paper's "final answer accuracy"), and the bridge entity anywhere (the
# authors' "bridge found") or at the answer/END slot (ours).

# %% tags=["hide-input"]
charts.curves(ood, "OOD compositions over training, per regime", "share of OOD queries", facet="metric",
              facet_order=[analysis.METRIC_NAMES[m] for m in metrics],
              subtitle=f"profile {ch.profile}; mean and 95% interval over seeds {ch.seeds_used}")

# %% [markdown]
# ## When each curve crosses the grokking criterion and 0.9
#
# A run counts as **grokked** when its OOD exact match reaches `grokking_criterion`, a parameter of
# this page (0.5 unless the header says otherwise). The table gives the mean first step over the
# seeds that got there, and how many did.

# %% tags=["hide-input"]
analysis.crossing_summary(runs, "test_inferred_ood", ["exact_match", "target_found", "bridge_found", "bridge_found_tail_slots"],
                          sorted({ch.grokking_criterion, 0.9}))

# %% [markdown]
# ## Can the probes see the bridge?
#
# "No circuit" is only a finding if the probe would have seen one. Each circuit probe is checked on
# models whose path is known: the hand-built *composer* writes the bridge at the answer slot and must
# be found; the hand-built *lookup* never computes a bridge, and an *untrained* network of the same
# shape has none, and both must not be. It must also find the bridge in the trained model known to
# compose: both hops full, once its OOD exact match is at least 0.9 over the whole interval.
#
# The toys are easy to pass: any linear read-out fails a one-hot lookup. So each probe must also
# come out low, seed by seed, on two **trained** models without the circuit: the natural run at its
# earliest stored snapshot with the OOD atomic facts stored (at least 0.5) but the held-out ID
# compositions not yet answered (below 0.9), and the **standard transformer**, read through its named
# states (its embedding and each block, at the slot of the token each state predicts). Causal, the
# standard transformer's state at r1 has not seen r2: it is the atomic query (h, r1)'s and holds its
# tail, the bridge, in any model that stores the facts (at the tiny profile it is decoded there at 0.33
# by a model that never composes). So the probe reads only states that have seen the whole query: in
# the recursive model every slot, in the standard transformer those at r2 and after. A trained
# negative whose weights are not at hand is "not measured" at that seed; one measured at no seed
# leaves the probe unchecked, and a verdict that would be decided stays **not shown**.
#
# Two probes are tried, in this order. The **logit lens** reads each state with the model's own
# output head (the bridge at the answer/END slot). The **linear probe** (`grokcircuits.science.linear_probe`)
# fits a ridge readout of the bridge entity to every state and token slot on ID compositions
# (leaving out every query whose first hop is the first hop of a test query), chooses the state and
# slot on half of the OOD compositions and reports on the other half, from the final EMA weights.
# The verdict reads the circuit with the first probe that passes every control.

# %% tags=["hide-input"]
from grokcircuits.science import linear_probe

final = analysis.final_values(runs, ["test_inferred_ood", "test_inferred_iid"], metrics)
final = pd.concat([final, analysis.probe_values(runs)], ignore_index=True)
per_seed = pd.concat([analysis.seed_values(runs, ["test_inferred_ood"], metrics), analysis.probe_seed_values(runs)],
                     ignore_index=True)
standard = book.control_runs(ch, lambda seeds: [ch.profile_obj.run("gpt", "natural", s) for s in seeds])
trained_negatives = linear_probe.trained_negative_controls([r for r in runs if r.config.data.regime == "natural"], standard)
controls = {p: {**c, **trained_negatives[p]} for p, c in linear_probe.circuit_probe_controls(runs[0].config).items()}
full_label = REGIMES["both_full"].label
pd.DataFrame([{"probe": verdicts.CIRCUIT_PROBES[p],
               **{k: (verdicts.by_seed(x) if x else "not measured") if isinstance(x, dict) else analysis.format_measure(x)
                  for k, x in c.items()},
               f"{full_label} (trained)": analysis.seed_listing(per_seed, full_label, "test_inferred_ood", p)}
              for p, c in controls.items()]).set_index("probe")

# %% [markdown]
# ## Final values
#
# Seed by seed on the OOD compositions (the verdict reads these), then mean and 95% interval over
# seeds on the OOD and held-out ID compositions.

# %% tags=["hide-input"]
analysis.readable(analysis.named(per_seed).pivot_table(index=["condition", "metric"], columns="seed", values="value"),
                  missing="not run")

# %% tags=["hide-input"]
analysis.readable(analysis.named(final).set_index(["condition", "set", "metric"]))

# %% [markdown]
# ## Verdict
#
# First the probes: the both-hops-full model must compose (OOD exact match at least 0.9) at every
# seed, at least two, and the circuit is read by the first probe that passes its controls above,
# the mature both-hops-full model at every seed included; else the claim is **not shown**. Then,
# per regime and seed, OOD accuracy is *formed* when the seed's OOD exact match is at least
# `grokking_criterion`, and the circuit when the probe reads at least 0.5. A seed **shows** the
# decoupling when one formed and the other did not; it **contradicts** it when both or neither
# formed, except that a seed where neither formed while a curve was still rising, or after fewer
# epochs than the paper's 1100, is open (either may still come). The decoupling **holds** when
# some regime's share of decoupled seeds lies above the threshold below, and **does not hold**
# when every regime's lies below it; otherwise it is **not shown**. The rule is
# `grokcircuits.science.verdicts.accuracy_vs_circuit`.

# %% tags=["hide-input"]
book.share_rule()

# %%
# NBVAL_CHECK_OUTPUT
decoupling = verdicts.accuracy_vs_circuit(per_seed, controls, ch.grokking_criterion)
book.verdict(ch, "High OOD accuracy and the bridge-entity circuit can form independently, depending on the data regime.",
             decoupling, runs)

# %% tags=["hide-input"]
book.verdict_numbers(decoupling)

# %% [markdown]
# ## Which OOD compositions does a model answer?
#
# An OOD composition rests on two OOD facts, its first hop (h, r1) -> b and its second (b, r2) -> t.
# The natural data never compose an OOD fact; the augmented regimes compose some of them with ID
# facts. A model that composes *as a rule* answers an OOD query whatever its facts' history; one
# that learnt composition *fact by fact* answers only those whose facts it saw composed. Both hops
# half splits its OOD queries four ways by whether each fact was composed in training in the role
# the query gives it (the first hop as a first hop, the second as a second: both, the first only,
# the second only, neither), so it can tell: the queries with both facts composed are the positive
# control (a model that misses them cannot show either), those with neither are the test. This
# is the question the natural data ask of a model, at every query. The one-hop regimes fill one
# cell each and show which hop, alone, reaches facts never composed in its role. The split is
# `grokcircuits.science.composed`, the rule `verdicts.composition_beyond_composed_facts`: a seed
# shows composition beyond the composed facts when its neither-composed queries reach exact match
# 0.5 while its both-composed ones reach 0.9; it contradicts it when only the control passes; it is
# open when the control fails or a cell has fewer than 10 queries.

# %% tags=["hide-input"]
composed_split = {r: analysis.composed_cells(runs, r) for r in ch.regimes}
analysis.composed_listing(composed_split)

# %%
# NBVAL_CHECK_OUTPUT
beyond = verdicts.composition_beyond_composed_facts(composed_split.get("both_half", analysis.composed_cells([], "both_half")))
book.verdict(ch, "A model that composes OOD facts it saw composed also composes OOD facts it never saw composed.",
             beyond, runs, variant="composed_facts: the both-hops-half model's OOD queries, split by their facts' "
                                   "history in training")

# %% tags=["hide-input"]
book.verdict_numbers(beyond)

# %% [markdown]
# A fact outside its role's cell may still have been composed in the other role (both hops half
# composes OOD facts in both). The finer split (`composed.ROLE_CELLS`: composed in its own role, only
# in the other, or never; `python -m grokcircuits composed`, `results/sweep/cpu_composed/composed.md`)
# reads, at the `cpu` profile's five seeds, one hop that answers facts never composed in any role
# (the first at seeds 0 and 1: 0.90 and 0.58; the second at seeds 2-4: 0.96-1.00), one that gains
# nothing from the other role (at most 0.12), and 0.00-0.07 on the queries with both facts never
# composed: one hop composes as a rule, the other fact by fact.

# %% [markdown]
# ## The paper reports / we measured
#
# The paper's figure (one seed per regime) reports, after long training: the second-hop-only run
# reaches high OOD accuracy while the bridge is rarely found; the first-hop-only run finds the
# bridge but stays low on OOD accuracy; natural and both-hops runs do both. Ours, seed by seed.

# %% tags=["hide-input"]
paper_says = {"natural": "accuracy and bridge both rise", "both_full": "accuracy and bridge both rise",
              "both_half": "(the paper's panel plotted the first-hop-only run)",
              "hop1_only": "bridge found, OOD accuracy low", "hop2_only": "OOD accuracy high, bridge rarely found"}
book.paper_table([(REGIMES[r].label, paper_says[r],
                   {what: analysis.seed_listing(per_seed, REGIMES[r].label, "test_inferred_ood", m)
                    for what, m in (("OOD exact match", "exact_match"), ("bridge at answer/END", "bridge_found_tail_slots"),
                                    ("bridge decoded (linear probe)", "bridge_decoded"), ("bridge anywhere", "bridge_found"),
                                    ("target anywhere", "target_found"))})
                  for r in ch.regimes], index="regime")

# %% tags=["hide-input"]
book.provenance(ch, runs + standard)

# %% tags=["hide-cell"]
book.package_versions()
