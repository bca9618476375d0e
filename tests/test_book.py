"""Chapter parameters are validated at once, papermill runs with a bad parameter fail before any
training, the command line describes profiles, and every chapter is a runnable papermill notebook."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from grokcircuits import book
from grokcircuits.__main__ import main
from grokcircuits.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("*.py"))


def test_every_chapter_has_a_parameters_cell_and_a_checked_verdict():
    assert CHAPTERS == sorted(book.CHAPTER_PARAMETERS)
    for ch in CHAPTERS:
        text = (ROOT / "book" / f"{ch}.py").read_text()
        assert '# %% tags=["parameters"]' in text
        assert text.count("# NBVAL_CHECK_OUTPUT") == 1
        assert f'book.parameters("{ch}", globals())' in text


def test_parameters_accept_defaults_and_papermill_text_lists():
    ch = book.parameters("02_accuracy_vs_circuit", {"profile": "tiny", "seeds": "[0, 1, 2]", "workers": 1,
                                                    "regimes": "natural,hop2_only", "In": [], "get_ipython": print})
    assert ch.seeds == [0, 1, 2] and ch.regimes == ["natural", "hop2_only"] and ch.profile == "tiny"
    default = book.parameters("00_task", {"profile": "gpu", "seeds": None, "workers": 1})
    assert default.seeds == [0, 1, 2]                       # None: the profile's seeds


@pytest.mark.parametrize("namespace, message", [
    ({"profile": "tiny", "seeds": [0], "workers": 1, "regimes": ["natural"], "seed": 3},
     r"unknown parameter\(s\) 'seed'.*allowed parameters: profile, seeds, workers, regimes"),
    ({"profile": "huge", "seeds": [0], "workers": 1, "regimes": ["natural"]}, r"profile='huge'.*'tiny', 'gpu', 'paper'"),
    ({"profile": "tiny", "seeds": "zero", "workers": 1, "regimes": ["natural"]}, r"seeds='zero' must be a non-empty list"),
    ({"profile": "tiny", "seeds": [0], "workers": 1, "regimes": ["natural", "hop3"]}, r"'hop3'.*allowed values: 'natural'"),
    ({"profile": "tiny", "seeds": [0], "workers": 0, "regimes": ["natural"]}, r"workers=0 must be a positive int"),
])
def test_bad_parameters_name_the_parameter_and_the_allowed_values(namespace, message):
    with pytest.raises(ConfigError, match=message):
        book.parameters("02_accuracy_vs_circuit", namespace)


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
