"""`python -m grokcircuits probe`: a sweep run's stored weights probed at one step; clear errors for a
key that is not a recursive run of the grid and for a step with no stored weights."""
import json

import pytest
import torch

from grokcircuits.ops import sweep_probe as sp
from grokcircuits.__main__ import main
from grokcircuits.config import ConfigError
from grokcircuits.ops.grids import get_grid
from grokcircuits.science.models import build_model
from grokcircuits.science.runs import dataset
from grokcircuits.store import Store, save_tensors

TOY = get_grid("toy")


def _store_snapshot(store: Store, config, step: int) -> None:
    torch.manual_seed(0)
    model = build_model(config.model, dataset(config.data).vocab.size)
    store.checkpoint_dir(config.key()).mkdir(parents=True, exist_ok=True)
    save_tensors(store.checkpoint_dir(config.key()) / f"snapshot_{step}.pt", model.state_dict())


def test_an_unknown_or_standard_key_names_the_recursive_runs():
    with pytest.raises(ConfigError, match="its recursive runs: " + TOY.recursive[0].key()):
        sp.recursive_run(TOY, "nope")
    with pytest.raises(ConfigError, match="not a recursive run"):
        sp.recursive_run(TOY, TOY.standard[0].key())


def test_the_latest_snapshot_is_read_and_a_missing_step_lists_the_stored_ones(tmp_path):
    store, config = Store(tmp_path), TOY.recursive[0]
    with pytest.raises(ConfigError, match="not on this machine"):
        sp.weights_path(store, config.key(), None)
    for step in (20, 5):
        _store_snapshot(store, config, step)
    assert sp.snapshot_steps(store, config.key()) == [5, 20]
    assert sp.weights_path(store, config.key(), None)[1] == 20
    with pytest.raises(ConfigError, match=r"step=7: .*stored snapshot steps: \[5, 20\]"):
        sp.weights_path(store, config.key(), 7)


def test_an_untrained_run_is_diagnosed_near_chance(tmp_path, monkeypatch, one_thread, capsys):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    config = TOY.recursive[0]
    _store_snapshot(Store(tmp_path / "sweep"), config, 20)
    assert main(["probe", "--grid", "toy", "--key", config.key()]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 20 and set(out["exact_match"]) >= {"id_atomic", "test_inferred_ood"}
    assert out["exact_match"]["id_atomic"] < 0.2
    stored = json.loads(sp.probe_path("toy", config.key(), 20).read_text())
    assert stored == out and stored["device"].startswith("CPU")
    probe = out["linear_probe"]
    assert probe["ood"]["bridge_decoded"] < 0.5 and probe["chance"] == 1 / 40
