"""Chapter parameters are validated at once, papermill runs with a bad parameter fail before any
training, the command line describes profiles, and every chapter is a runnable papermill notebook."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from grokcircuits.pages import book, chapters
from grokcircuits.__main__ import main
from grokcircuits.config import ConfigError, get_profile

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("*.py"))


def test_every_chapter_has_a_parameters_cell_and_a_checked_verdict():
    assert CHAPTERS == sorted(book.CHAPTER_PARAMETERS)
    for ch in CHAPTERS:
        text = (ROOT / "book" / f"{ch}.py").read_text()
        assert '# %% tags=["parameters"]' in text
        extra = sum(pv.page == ch for pv in chapters.PAGE_VERDICTS)   # a page's second verdicts, each checked
        assert text.count("# NBVAL_CHECK_OUTPUT") == 1 + extra
        assert f'book.parameters("{ch}", globals())' in text


def test_parameters_accept_defaults_and_papermill_text_lists():
    ch = book.parameters("02_accuracy_vs_circuit", {"profile": "tiny", "seeds": "[0, 1, 2]", "workers": 1,
                                                    "regimes": "natural,hop2_only", "grokking_criterion": 0.5,
                                                    "In": [], "get_ipython": print})
    assert ch.seeds == [0, 1, 2] and ch.regimes == ["natural", "hop2_only"] and ch.profile == "tiny"
    default = book.parameters("00_task", {"profile": "gpu", "seeds": None, "workers": 1})
    assert default.seeds == [0, 1, 2]                       # None: the profile's seeds


@pytest.mark.parametrize("namespace, message", [
    ({"profile": "tiny", "seeds": [0], "workers": 1, "regimes": ["natural"], "seed": 3},
     r"unknown parameter\(s\) 'seed'.*allowed parameters: profile, seeds, workers, regimes, grokking_criterion"),
    ({"profile": "huge", "seeds": [0], "workers": 1, "regimes": ["natural"]}, r"profile='huge'.*'tiny', 'cpu', 'gpu', 'paper'"),
    ({"profile": "tiny", "seeds": "zero", "workers": 1, "regimes": ["natural"]}, r"seeds='zero' must be a non-empty list"),
    ({"profile": "tiny", "seeds": [0], "workers": 1, "regimes": ["natural", "hop3"]}, r"'hop3'.*allowed values: 'natural'"),
    ({"profile": "tiny", "seeds": [0], "workers": 0, "regimes": ["natural"]}, r"workers=0 must be a positive int"),
    ({"profile": "tiny", "seeds": [0], "workers": 1, "regimes": ["natural"], "grokking_criterion": 2},
     r"grokking_criterion=2 must be a number in \(0, 1\]"),
])
def test_bad_parameters_name_the_parameter_and_the_allowed_values(namespace, message):
    with pytest.raises(ConfigError, match=message):
        book.parameters("02_accuracy_vs_circuit", {"grokking_criterion": 0.5, **namespace})


def test_describe_prints_json_sizes(capsys):
    assert main(["describe", "--profile", "tiny"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["atomic"] == 480 and out["vocabulary"] == 138 and out["parameters"] > 0
    assert set(out) >= {"ood_atomic", "train_inferred", "test_inferred_iid", "test_inferred_ood", "transfer"}


def test_command_line_rejects_an_unknown_profile(capsys):
    assert main(["describe", "--profile", "huge"]) == 2
    assert "profile='huge'" in capsys.readouterr().err


@pytest.mark.slow
def test_describe_paper_profile_matches_the_paper():
    out = subprocess.run([sys.executable, "-m", "grokcircuits", "describe", "--profile", "paper"],
                         capture_output=True, text=True, check=True).stdout
    d = json.loads(out)
    assert (d["atomic"], d["ood_atomic"], d["train_inferred"], d["parameters"]) == (40000, 2000, 684000, 44_560_898)
    assert d["vocabulary"] == 2206


@pytest.mark.slow
def test_papermill_with_an_unknown_parameter_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path / "results"))   # the kernel inherits it
    import jupytext
    import papermill as pm
    nb = jupytext.read(ROOT / "book" / "02_accuracy_vs_circuit.py")
    src = tmp_path / "ch.ipynb"
    jupytext.write(nb, src)
    with pytest.raises(pm.PapermillExecutionError, match="unknown parameter.*'stepz'"):
        pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters={"stepz": 10}, progress_bar=False)
    assert not (tmp_path / "results").exists()          # nothing was trained or stored


def test_golden_notebooks_hold_the_current_chapter_code():
    """nbval re-executes the golden notebooks' code: it must be the chapters' code of today
    (`make golden` refreshes them), apart from papermill's injected-parameters cell."""
    import jupytext
    import nbformat
    for ch in CHAPTERS:
        golden = nbformat.read(ROOT / "tests" / "golden" / f"{ch}.ipynb", as_version=4)
        source = jupytext.read(ROOT / "book" / f"{ch}.py")
        code = lambda nb: [c.source for c in nb.cells if c.cell_type == "code"
                           and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
        assert code(golden) == code(source), f"tests/golden/{ch}.ipynb is stale: run `make golden`"


def test_command_line_trains_and_then_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    args = ["train", "--profile", "tiny", "--regime", "natural,hop2_only", "--seed", "0", "--steps", "20"]
    assert main(args) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(first) == 2 and all(r["steps"] == 20 for r in first)
    assert len(list((tmp_path / "tiny" / "runs").glob("*/record.json"))) == 2
    assert main(args) == 0                                   # the second time both runs are loaded
    assert "training" not in capsys.readouterr().out
    assert main(["train", "--regime", "hop3"]) == 2
    assert "regime='hop3'" in capsys.readouterr().err


# --- the grokking criterion, the verdict, the summary page ---------------------------------------
from grokcircuits.science import verdicts  # noqa: E402

OWNED_HERE = ["00_task", "02_accuracy_vs_circuit", "03_limited_transfer", "04_cost"]


@pytest.mark.parametrize("value", [0, -0.1, 1.5, "0.5", True, None])
def test_grokking_criterion_must_be_a_share_in_the_unit_interval(value):
    ns = {"profile": "tiny", "seeds": [0], "workers": 1, "regimes": ["natural"], "grokking_criterion": value}
    with pytest.raises(ConfigError, match=r"grokking_criterion=.*must be a number in \(0, 1\]"):
        book.parameters("02_accuracy_vs_circuit", ns)


def test_grokking_criterion_is_a_parameter_of_chapters_01_to_03():
    ns = {"profile": "tiny", "seeds": [0], "workers": 1, "pretrain_regimes": ["natural"], "grokking_criterion": 1,
          "finetune": "profile"}
    assert book.parameters("03_limited_transfer", ns).grokking_criterion == 1.0
    for ch in ("01_identical_paths", "02_accuracy_vs_circuit", "03_limited_transfer"):
        assert "grokking_criterion" in book.CHAPTER_PARAMETERS[ch]
    for ch in ("02_accuracy_vs_circuit", "03_limited_transfer"):
        assert "\ngrokking_criterion = 0.5" in (ROOT / "book" / f"{ch}.py").read_text()


def _chapter(tmp_path, monkeypatch, name="03_limited_transfer"):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path / "results"))
    return book.parameters(name, {"profile": "tiny", "seeds": [0, 1], "workers": 1,
                                  "pretrain_regimes": ["natural"], "grokking_criterion": 0.5, "finetune": "profile"})


def test_the_verdict_prints_only_what_every_machine_agrees_on(tmp_path, monkeypatch, capsys):
    """Two runs whose numbers differ in their last digits print the same text; the numbers, with
    their intervals, go to the verdict file."""
    ch = _chapter(tmp_path, monkeypatch)
    printed = []
    for x in (0.123456, 0.123999):
        v = verdicts.Verdict(None, "not_shown:no_grokked_seed", {"new+old": (x, 0.0, 0.7), "count": "0/4"}, "no seed grokked")
        book.verdict(ch, "A claim.", v)
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1]
    assert printed[0].splitlines() == ["Claim: A claim.", "Verdict at profile 'tiny' with seeds [0, 1]: NOT SHOWN AT THIS SCALE",
                                       "Rule branch: not_shown:no_grokked_seed", "Why: no seed grokked"]
    counted = verdicts.Verdict(None, "not_shown:too_few_seeds", {}, "too few", tally="the contrast: 2 of 2 seeds show it",
                               per_seed="seed 0: shows it: 0.123456")
    book.verdict(ch, "A claim.", counted)
    out = capsys.readouterr().out
    assert "Seeds: the contrast: 2 of 2 seeds show it\n" in out and "0.123456" not in out   # k of n, never the values
    record = json.loads((tmp_path / "results" / "tiny" / "verdicts" / "03_limited_transfer.json").read_text())
    assert record["tally"] == counted.tally and record["per_seed"] == counted.per_seed
    book.verdict(ch, "A claim.", v)
    record = json.loads((tmp_path / "results" / "tiny" / "verdicts" / "03_limited_transfer.json").read_text())
    assert {"claim", "holds", "branch", "numbers", "seeds", "profile", "device", "wall_seconds"} <= set(record)
    assert record["numbers"]["new+old"] == [0.123999, 0.0, 0.7] and record["holds"] is None
    assert record["seeds"] == [0, 1] and record["profile"] == "tiny" and record["device"]


def test_the_verdict_file_holds_no_nan_or_infinity(tmp_path, monkeypatch):
    ch = _chapter(tmp_path, monkeypatch)
    v = verdicts.Verdict(True, "holds", {"one seed": (0.5, float("-inf"), float("inf")), "missing": float("nan")})
    book.verdict(ch, "A claim.", v)
    text = (tmp_path / "results" / "tiny" / "verdicts" / "03_limited_transfer.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["numbers"]["one seed"] == [0.5, None, None]


def test_numbers_and_paper_tables_say_not_reached():
    v = verdicts.Verdict(None, "not_shown:x", {"steps": None, "share": (0.25, 0.1, 0.4), "count": "1/2"})
    table = book.verdict_numbers(v)
    assert list(table.iloc[:, 0]) == ["not reached", "0.25 [0.10, 0.40]", "1/2"]
    paper = book.paper_table([("a", "high", (0.9, 0.8, 1.0)), ("b", "low", {"x": None, "y": 0.5})], index="what")
    assert paper.loc["a", "we measured"] == "0.90 [0.80, 1.00]"
    assert paper.loc["b", "we measured: x"] == "not reached" and paper.loc["b", "we measured: y"] == "0.50"
    assert book.paper_table([("c", "x", float("nan"))], missing="not run").loc["c", "we measured"] == "not run"


def test_summary_reads_the_verdict_of_the_profile_each_chapter_ran_with(tmp_path, monkeypatch):
    ch = _chapter(tmp_path, monkeypatch)
    v = verdicts.Verdict(False, "does_not_hold:old_new_composed", {"mature models: new+old exact match": (0.8, 0.7, 0.9),
                                                                    "other": 3, "hidden": "x"},
                         key_numbers=("mature models: new+old exact match", "other"),
                         tally="limited transfer: 0 of 2 seeds show it (2 contradict it)",
                         per_seed="seed 0: contradicts it (old_new_composed): old+new 0.61; seed 1: contradicts it")
    book.verdict(ch, "Limited transfer.", v)
    executed = tmp_path / "chapters"
    executed.mkdir()
    (executed / "03_limited_transfer.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {"papermill": {"parameters": {"profile": "tiny"}}}, "nbformat": 4, "nbformat_minor": 5}))
    text = book.summary_markdown(executed)
    rows = {line.split(" | ")[0]: line for line in text.splitlines()[2:]}
    assert len(rows) == len(book.CHAPTER_PARAMETERS) + len(chapters.VARIANTS) + len(chapters.PAGE_VERDICTS)
    for v in chapters.VARIANTS:
        assert "not executed yet" in rows[f"| {{doc}}`{v.title} </chapters/{v.page}>`"]
    for pv in chapters.PAGE_VERDICTS:                          # listed right after its chapter's own row
        names = [line.split(" | ")[0] for line in text.splitlines()[2:]]
        assert names.index(f"| {{doc}}`{pv.title} </chapters/{pv.page}>`") == names.index(f"| {{doc}}`/chapters/{pv.page}`") + 1
    row = rows["| {doc}`/chapters/03_limited_transfer`"]
    assert "**DOES NOT HOLD** (`does_not_hold:old_new_composed`)" in row
    assert "mature models: new+old exact match: 0.80 [0.70, 0.90]; other: 3" in row and "hidden" not in row
    assert "_limited transfer: 0 of 2 seeds show it (2 contradict it)_<br>_seed 0: contradicts it (old_new_composed): " \
        "old+new 0.61; seed 1: contradicts it_<br>mature models" in row                # k of n, then each seed
    assert "| profile `tiny`, 2 seeds: 0, 1; " in row and row.count(" | ") == 3   # four columns: provenance in one
    assert "not executed yet" in rows["| {doc}`/chapters/00_task`"]
    out = tmp_path / "_summary.md"
    book.write_summary(executed, out)
    assert out.read_text() == text


def _cells(ch):
    import jupytext
    return [c for c in jupytext.read(ROOT / "book" / f"{ch}.py").cells if c.cell_type == "code"]


def test_every_verdict_cell_calls_a_tested_rule():
    """The checked cell holds no rule of its own: it calls grokcircuits.science.verdicts and book.verdict."""
    for ch in CHAPTERS:
        cell = next(c.source for c in _cells(ch) if "# NBVAL_CHECK_OUTPUT" in c.source)
        assert "verdicts." in cell and "book.verdict(ch," in cell, ch
        assert not any(op in cell for op in (">=", "<=", " < ", " > ")), f"{ch}: a threshold in the verdict cell"


@pytest.mark.parametrize("ch", OWNED_HERE)
def test_boilerplate_cells_are_folded(ch):
    for c in _cells(ch):
        tags = c.metadata.get("tags", [])
        if any(s in c.source for s in ("book.parameters(", "book.provenance(", "book.package_versions(")):
            assert {"hide-input", "hide-cell", "remove-input", "remove-cell"} & set(tags), (ch, c.source[:60])


def test_chapter_01_takes_the_grokking_set_and_files_a_variant_under_its_own_name(tmp_path, monkeypatch, capsys):
    ns = {"profile": "tiny", "seeds": None, "workers": 1, "query_set": "train_inferred", "patching_queries": 10,
          "grokking_criterion": 0.9, "comparison": "grokking", "memorised_at": None}
    with pytest.raises(ConfigError, match=r"grokking_set='OOD' is not allowed; allowed values: 'ood', 'iid'"):
        book.parameters("01_identical_paths", {**ns, "grokking_set": "OOD"})
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    ch = book.parameters("01_identical_paths", {**ns, "grokking_set": "iid"})
    from grokcircuits.science.inference_paths import VARIANTS
    from grokcircuits.science.verdicts import Verdict
    book.verdict(ch, "a claim", Verdict(None, "not_shown:x"), variant=VARIANTS["iid"])
    assert "Variant: iid: before and after in-distribution generalisation" in capsys.readouterr().out
    record = json.loads((ch.store.root / "verdicts" / "01_identical_paths.iid.json").read_text())
    assert record["variant"] == VARIANTS["iid"] and not (ch.store.root / "verdicts" / "01_identical_paths.json").exists()


def test_chapter_01_takes_the_comparison_and_refuses_a_composing_one_judged_in_distribution():
    from grokcircuits.science.inference_paths import VARIANTS, variant_of
    ns = {"profile": "tiny", "seeds": None, "workers": 1, "query_set": "train_inferred", "patching_queries": 10,
          "grokking_criterion": 0.5, "grokking_set": "ood", "memorised_at": None}
    with pytest.raises(ConfigError, match=r"comparison='paths' is not allowed; allowed values: 'grokking', 'composing'"):
        book.parameters("01_identical_paths", {**ns, "comparison": "paths"})
    ch = book.parameters("01_identical_paths", {**ns, "comparison": "composing"})
    assert variant_of(ch.comparison, ch.grokking_set) == VARIANTS["composing"]
    assert variant_of("grokking", "ood") is None and variant_of("grokking", "iid") == VARIANTS["iid"]
    with pytest.raises(ConfigError, match="needs grokking_set='ood', not 'iid'"):
        variant_of("composing", "iid")


@pytest.mark.parametrize("v", chapters.VARIANTS, ids=lambda v: v.page)
def test_each_variant_page_is_built_with_the_parameters_the_summary_reads(v):
    run = lambda *a: subprocess.run([sys.executable, "-m", "grokcircuits", "chapters", *a], capture_output=True,
                                    text=True, check=True).stdout.strip()
    assert v.page in run("--variants").split()
    assert run("--variant", v.page) == " ".join(f"-p {k} {x}" for k, x in v.parameters.items())
    assert run("--variant", v.page, "--source") == v.chapter
    assert "grokcircuits chapters --variant" in (ROOT / "Makefile").read_text()   # the Makefile reads the registry
    assert f"chapters/{v.page}\n    title: \"{v.title}\"" in (ROOT / "_toc.yml").read_text()
    assert v.verdict.startswith(v.chapter + ".")                                # filed apart from the chapter's own
    bad = subprocess.run([sys.executable, "-m", "grokcircuits", "chapters", "--variant", "nope"], capture_output=True, text=True)
    assert bad.returncode != 0 and "allowed values: " + ", ".join(x.page for x in chapters.VARIANTS) in bad.stderr


def test_the_registry_is_the_one_list_of_chapters():
    """The Makefile, CI and _toc.yml read or list the chapters of grokcircuits.pages.chapters, and
    every chapter source is in it (and nothing else)."""
    from grokcircuits.pages import chapters
    out = subprocess.run([sys.executable, "-m", "grokcircuits", "chapters"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == chapters.names() == CHAPTERS
    toc = (ROOT / "_toc.yml").read_text()
    assert [line.split("chapters/")[1].strip() for line in toc.splitlines()
            if "file: chapters/" in line and not any(v.page in line for v in chapters.VARIANTS)] == chapters.names()
    assert "make -s --no-print-directory chapters" in (ROOT / ".ci" / "run").read_text()
    assert set(chapters.planned_runs(get_profile("tiny"))) == {c.name for c in chapters.CHAPTERS if c.plan}
    assert all(f"chapters/{v.page}" in book.summary_markdown(ROOT / "no-such-folder") for v in chapters.VARIANTS)


# --- every complete run at a chapter's point: the profile's store and the sweep's -------------------
from grokcircuits.pages import experiments
from grokcircuits.training import no_train
from grokcircuits.config import TINY  # noqa: E402
from grokcircuits.store import Store  # noqa: E402


def _stored(store, config, complete=True, steps=None):
    """A run of `config` in `store` (record and curves; a final weights file), as training leaves it."""
    steps = config.train.steps if steps is None else steps
    record = {"key": config.key(), "status": "complete" if complete else "incomplete", "config": config.to_dict(),
              "steps": steps, "epochs": 1.0, "device": "CPU"}
    (store.checkpoint_dir(config.key())).mkdir(parents=True, exist_ok=True)
    (store.checkpoint_dir(config.key()) / "final.pt").write_bytes(b"weights")
    store.save_run(config.key(), record, [{"step": steps}])


def _plan(seeds):
    return experiments.regime_runs(TINY, seeds, ["natural", "hop1_only"])


def _chapter02(tmp_path, monkeypatch, seeds=None):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    return book.parameters("02_accuracy_vs_circuit", {"profile": "tiny", "seeds": seeds, "workers": 1,
                                                      "regimes": ["natural", "hop1_only"], "grokking_criterion": 0.5})


@pytest.fixture
def point(tmp_path, monkeypatch):
    """The tiny profile's seeds 0 and 1 in its store; in the sweep's store, seed 2 of the first hop
    only (complete) and of the natural data (incomplete), and seed 3 of both (complete)."""
    profile, sweep = Store(tmp_path / "tiny"), Store(tmp_path / "sweep")
    for c in _plan([0, 1]):
        _stored(profile, c)
    natural2, hop1_2 = _plan([2])
    _stored(sweep, hop1_2)
    _stored(sweep, natural2, complete=False, steps=100)
    for c in _plan([3]):
        _stored(sweep, c)
    monkeypatch.setenv(no_train.NO_TRAIN_ENV, "1")
    return profile, sweep


def test_a_chapter_reads_every_complete_run_of_its_point_from_either_store(point, tmp_path, monkeypatch):
    profile, sweep = point
    ch = _chapter02(tmp_path, monkeypatch)
    runs = book.chapter_runs(ch, _plan)
    seeds = {(r.config.data.regime, r.config.train.seed) for r in runs}
    assert seeds == {("natural", 0), ("natural", 1), ("hop1_only", 0), ("hop1_only", 1), ("hop1_only", 2),
                     ("natural", 3), ("hop1_only", 3)}
    assert ch.seeds_used == [0, 1, 2, 3] and all(r.store.root == profile.root for r in runs)
    for c in _plan([3]):                                   # adopted: the same key, weights and all
        assert profile.has_run(c.key()) and (profile.checkpoint_dir(c.key()) / "final.pt").exists()
    assert not profile.has_run(_plan([2])[0].key())       # an incomplete run is never adopted
    text = book.seeds_text(ch)
    assert "0, 1, 2, 3 (4 seeds)" in text and "seed(s) 2, 3 were found" in text
    assert "natural (no augmentation): 0, 1, 3 (3 seeds)" in text
    assert "Left out, not complete: natural (no augmentation), seed 2 (incomplete: 100 of 600 steps)" in text
    assert ch.seed_report["missing"] == ["natural (no augmentation), seed 2 (incomplete: 100 of 600 steps)"]


def test_seeds_asked_for_are_read_where_complete_and_named_where_not(point, tmp_path, monkeypatch):
    ch = _chapter02(tmp_path, monkeypatch, seeds=[0, 1, 2, 4])
    runs = book.chapter_runs(ch, _plan)
    assert ch.seeds_used == [0, 1, 2] and len(runs) == 5                     # seed 3 was not asked for
    assert ch.seed_report["missing"] == ["natural (no augmentation), seed 2 (incomplete: 100 of 600 steps)",
                                         "natural (no augmentation), seed 4 (not started)",
                                         "first hop only, full, seed 4 (not started)"]
    assert "seed(s) 2 were asked for" in book.seeds_text(ch)


def test_a_chapter_that_pairs_runs_of_a_seed_leaves_out_a_seed_with_one_missing(point, tmp_path, monkeypatch):
    ch = _chapter02(tmp_path, monkeypatch)
    runs = book.chapter_runs(ch, _plan, whole_seeds=True)
    assert ch.seeds_used == [0, 1, 3] and {r.config.train.seed for r in runs} == {0, 1, 3}
    assert "(and with them every run of seed(s) 2, which this page pairs)" in book.seeds_text(ch)


def test_the_profiles_own_seeds_must_be_complete_without_training(point, tmp_path, monkeypatch):
    profile, _ = point
    import shutil
    shutil.rmtree(profile.run_dir(_plan([1])[0].key()))
    with pytest.raises(no_train.MissingRunsError, match="1 run"):
        book.chapter_runs(_chapter02(tmp_path, monkeypatch), _plan)


def test_training_trains_the_seeds_asked_for_and_only_reads_the_others(point, tmp_path, monkeypatch):
    """With training on, a missing run of an asked seed is trained; a found seed is never trained."""
    monkeypatch.delenv(no_train.NO_TRAIN_ENV)
    trained = []
    monkeypatch.setattr(experiments, "train_group", lambda group, store, **kw: trained.extend(c.key() for c in group))
    ch = _chapter02(tmp_path, monkeypatch)
    book.chapter_runs(ch, _plan)
    assert trained == [] and ch.seeds_used == [0, 1, 2, 3]
    ch = _chapter02(tmp_path, monkeypatch, seeds=[5])
    assert book.chapter_runs(ch, _plan) == []        # the stub trained nothing: left out, and named
    assert trained == [c.key() for c in _plan([5])] and len(ch.seed_report["missing"]) == 2


def test_an_adopted_run_whose_weights_only_the_sweep_holds_gets_them_back(point, tmp_path, monkeypatch):
    """A fresh clone holds an adopted run's record in the profile's store and its weights only where
    git holds them (the sweep's store): adopting again restores them, and only for the same record."""
    profile, sweep = point
    key = _plan([3])[0].key()
    assert no_train.adopt_complete(_plan([3]), profile, sweep) == [key, _plan([3])[1].key()]
    (sweep.checkpoint_dir(key) / "snapshot_5.pt").write_bytes(b"a snapshot")
    import shutil
    shutil.rmtree(profile.checkpoint_dir(key))
    assert no_train.adopt_complete(_plan([3]), profile, sweep) == []              # nothing adopted anew
    assert sorted(p.name for p in profile.checkpoint_dir(key).iterdir()) == ["final.pt", "snapshot_5.pt"]
    other = _plan([3])[1].key()
    shutil.rmtree(profile.checkpoint_dir(other))
    record = profile.record(other)
    profile.save_run(other, {**record, "wall_seconds": 1.0}, profile.curves(other))   # another run's record
    no_train.adopt_complete(_plan([3]), profile, sweep)
    assert not profile.checkpoint_dir(other).exists()


def test_point_seeds_and_adoption_without_a_sweep_store(tmp_path):
    store = Store(tmp_path / "tiny")
    for c in _plan([0]):
        _stored(store, c)
    assert no_train.point_seeds(_plan, [store, Store(tmp_path / "sweep")]) == [0]
    assert no_train.adopt_complete(_plan([0]), store, Store(tmp_path / "sweep")) == []
    assert no_train.adopt_complete(_plan([0]), store, store) == []
    assert no_train.run_status(_plan([7])[0], [store]) == "not started"


def test_the_share_rule_on_the_page_states_its_threshold_and_what_3_seeds_can_show():
    text = book.share_rule_text()
    assert "wholly above 0.5" in text and "With 3 seeds no share's interval clears 0.5 (3 of 3: lower end 0.44)" in text
    assert "it takes 4 seeds all agreeing (4 of 4: 0.51; 5 of 5: 0.57)" in text


def test_chapter_03_fine_tunes_by_the_profiles_protocol_or_one_nearer_the_papers():
    cpu = get_profile("cpu")
    pre = cpu.run("trm", "both_full", 0)
    # the profile's own protocol keeps the committed runs' keys (results/cpu/runs)
    assert cpu.transfer_run(pre, 0).key() == cpu.transfer_run(pre, 0, "profile").key() == "e5b89109bf838356"
    assert cpu.transfer_run(None, 0).key() == "82a361ab4f12492f"
    paper_like = cpu.transfer_run(pre, 0, "paper_like")
    assert (paper_like.train.weight_decay, paper_like.train.ema_decay) == (1.0, 0.999)
    assert paper_like.train.lr < cpu.finetune.lr and paper_like.train.steps > cpu.finetune.steps
    assert paper_like.key() != cpu.transfer_run(pre, 0).key() and paper_like.init_from == pre.key()
    assert get_profile("paper").finetune_config("paper_like") == get_profile("paper").finetune   # already the paper's
    with pytest.raises(ConfigError, match="finetune='short' is not allowed.*'profile', 'paper_like'"):
        cpu.finetune_config("short")
    ns = {"profile": "tiny", "seeds": None, "workers": 1, "pretrain_regimes": ["natural"], "grokking_criterion": 0.5}
    with pytest.raises(ConfigError, match="finetune='short'"):
        book.parameters("03_limited_transfer", {**ns, "finetune": "short"})
    assert book.parameters("03_limited_transfer", {**ns, "finetune": "paper_like"}).finetune == "paper_like"


@pytest.mark.parametrize("args, message", [
    (["--finetune", "short"], "finetune='short' is not allowed; allowed values: 'profile', 'paper_like'"),
    (["--pretrain-regimes", "natural,hop3"], "regimes='hop3' is not allowed"),
])
def test_chapter_03_on_the_command_line_refuses_bad_input_before_training(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    assert main(["chapter", "03", "--profile", "tiny", *args]) == 2
    assert message in capsys.readouterr().err and not any(tmp_path.iterdir())
