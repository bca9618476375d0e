"""Recovering a finished run's lost snapshots by training its first steps again: the replay follows
the original (its evaluations agree), its snapshot files are copied only then, and the copied
weights are the original's."""
import json

import pytest
import torch

from grokcircuits.config import ConfigError, get_profile
from grokcircuits.ops.replay import largest_difference, recover_snapshots, replay_config
from grokcircuits.store import Store
from grokcircuits.training import train_group

TINY = get_profile("tiny")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny natural run trained to its end, with one early snapshot's weights kept aside and its file removed."""
    store = Store(tmp_path_factory.mktemp("store"))
    config = TINY.run("trm", "natural", 0)
    run = train_group([config], store, log=lambda m: None)[config.key()]
    step = run.snapshot_steps()[1]
    path = store.checkpoint_dir(run.key) / f"snapshot_{step}.pt"
    original = torch.load(path, weights_only=True)
    path.unlink()
    return store, config, run, step, original


def test_the_replay_is_the_same_run_cut_short_with_every_evaluation_kept():
    config = TINY.run("trm", "natural", 0)
    short = replay_config(config, 300)
    assert short.train.steps == 300 and short.train.snapshots >= 300 // config.train.eval_every
    assert (short.train.lr, short.train.seed, short.data, short.model) == (config.train.lr, 0, config.data, config.model)
    with pytest.raises(ConfigError, match="until=9000 must lie in"):
        replay_config(config, 9000)


def test_the_difference_is_read_at_the_steps_both_curves_hold():
    e = lambda step, x: {"step": step, "ood_atomic": {"exact_match": x}}
    assert largest_difference([e(100, 0.5), e(200, 0.9)], [e(100, 0.52), e(150, 0.0)], ("ood_atomic",)) == \
        pytest.approx((0.02, 1))
    assert largest_difference([e(100, 0.5)], [e(300, 0.5)], ("ood_atomic",))[0] == float("inf")   # nothing to compare


@pytest.mark.slow
def test_a_lost_snapshot_is_recovered_with_the_original_weights(finished, tmp_path):
    store, config, run, step, original = finished
    refused = recover_snapshots(config, store, step, tolerance=-1.0, log=lambda m: None)   # no replay agrees that well
    assert refused["recovered"] == [] and not (store.checkpoint_dir(run.key) / f"snapshot_{step}.pt").exists()
    out = recover_snapshots(config, store, step, log=lambda m: None)
    assert out["recovered"] == [step] and out["largest_difference"] <= 0.02 and out["evaluations_compared"] >= 1
    recovered = torch.load(store.checkpoint_dir(run.key) / f"snapshot_{step}.pt", weights_only=True)
    assert recovered.keys() == original.keys()
    assert all(torch.allclose(recovered[k], original[k], atol=1e-5) for k in original)
    note = json.loads((store.run_dir(run.key) / "recovered_snapshots.json").read_text())
    assert note["recovered"] == [step] and note["replay_key"] == replay_config(config, step).key()
    assert recover_snapshots(config, store, step, log=lambda m: None)["recovered"] == []       # nothing left to do


def test_a_run_that_is_not_complete_has_nothing_to_recover(tmp_path):
    with pytest.raises(ConfigError, match="is not complete"):
        recover_snapshots(TINY.run("trm", "natural", 5), Store(tmp_path), 100)
