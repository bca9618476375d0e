"""The package's layers (pyproject.toml, [tool.importlinter]): the command line over operations over
pages over training over science over the store over the configuration, no module importing a layer
above its own and no import cycles between sibling modules. Control: the same layers stated upside
down must break, so a kept contract is the linter's finding, not its silence."""
from pathlib import Path

import pytest

lint = pytest.importorskip("importlinter.cli").lint_imports

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["grokcircuits.__main__", "grokcircuits.ops", "grokcircuits.pages", "grokcircuits.training",
          "grokcircuits.science", "grokcircuits.store", "grokcircuits.config"]


def test_every_module_imports_only_its_own_layer_and_those_below_without_cycles():
    assert lint(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_the_layers_stated_upside_down_are_broken(tmp_path):
    config = tmp_path / "upside_down.toml"
    config.write_text('[tool.importlinter]\nroot_package = "grokcircuits"\n\n[[tool.importlinter.contracts]]\n'
                      'name = "upside down"\ntype = "layers"\nlayers = [' + ", ".join(f'"{m}"' for m in reversed(LAYERS)) + "]\n")
    assert lint(config_filename=str(config), no_cache=True, no_logo=True) == 1


def test_the_contract_names_every_layer_folder():
    text = (ROOT / "pyproject.toml").read_text()
    folders = sorted(p.name for p in (ROOT / "src" / "grokcircuits").iterdir() if (p / "__init__.py").exists())
    assert folders == ["ops", "pages", "science", "training"]
    for layer in LAYERS:
        assert f'"{layer}"' in text


BARE_MACHINE = ["grokcircuits.__main__", "grokcircuits.ops.sweep", "grokcircuits.ops.sweep_probe", "grokcircuits.ops.bench",
                "grokcircuits.ops.cpu_bench", "grokcircuits.ops.stability", "grokcircuits.training"]


@pytest.mark.parametrize("module", BARE_MACHINE)
def test_the_plain_commands_import_without_the_notebook_stack(module):
    """The command line's training, sweep and benchmark commands run on a bare GPU machine (torch and
    numpy only): their modules must import with pandas, altair and the notebook tools absent.
    Control: a page module needs pandas, so the blocking is real."""
    import subprocess
    import sys
    block = "import sys\nfor b in ('pandas', 'altair', 'vl_convert', 'IPython', 'papermill', 'submitit'): sys.modules[b] = None\n"
    run = lambda m: subprocess.run([sys.executable, "-c", block + f"import {m}"], capture_output=True, text=True)
    assert run(module).returncode == 0, run(module).stderr[-500:]
    assert "pandas" in run("grokcircuits.pages.analysis").stderr
