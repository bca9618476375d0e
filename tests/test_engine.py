"""The training engine and the results store: caching by configuration, provenance, atomic
checkpoints, exact resume, fine-tuning from a stored run, and (slow) that it really learns."""
import json
from dataclasses import replace

import pytest
import torch

from grokcircuits.config import SCIENCE_VERSION, ConfigError, RunConfig, get_profile
from grokcircuits.science.runs import load_run
from grokcircuits.training import train, train_group
from grokcircuits.pages.experiments import train_many
from grokcircuits.store import Store, load_tensors, save_tensors, write_json

TINY = get_profile("tiny")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run about ten times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mini(seed=0, **overrides):
    """A few steps of the tiny profile: enough to exercise every part of the engine."""
    return TINY.run("trm", "natural", seed, **{"steps": 30, "eval_every": 10, "checkpoint_every": 10,
                                                "snapshots": 2, **overrides})


def test_run_records_its_provenance_and_is_loaded_not_retrained(tmp_path):
    store = Store(tmp_path)
    run = train(mini(), store)
    rec = run.record
    for key in ("key", "status", "config", "code_version", "science_version", "device", "device_type", "torch_version",
                "steps", "epochs", "wall_seconds", "eval_seconds", "compile_seconds", "steps_per_second", "gpu_seconds",
                "ensemble_size", "parameters", "dataset", "snapshot_steps", "finished"):
        assert key in rec
    assert rec["steps"] == 30 and rec["status"] == "complete" and RunConfig.from_dict(rec["config"]) == mini()
    assert rec["science_version"] == SCIENCE_VERSION and rec["ensemble_size"] == 1 and rec["steps_per_second"] > 0
    assert [e["step"] for e in run.curves] == [0, 10, 20, 30]
    assert set(run.curves[-1]["test_inferred_ood"]) >= {"exact_match", "bridge_found", "target_found", "bridge_map"}
    again = train(mini(), store, log=lambda m: pytest.fail(f"retrained: {m}"))
    assert again.record == rec
    assert (tmp_path / "runs" / mini().key() / "curves.json").exists()
    assert not (store.checkpoint_dir(mini().key()) / "last.pt").exists()      # the resumable state is dropped at the end


def test_a_changed_parameter_is_a_new_run(tmp_path):
    store = Store(tmp_path)
    train(mini(), store)
    other = mini(lr=1e-3)
    assert other.key() != mini().key() and load_run(other, store) is None
    assert mini(seed=1).key() != mini().key()
    assert TINY.run("trm", "hop1_only", 0).key() != TINY.run("trm", "natural", 0).key()


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    whole = train(mini(), Store(tmp_path / "a"))
    store = Store(tmp_path / "b")
    assert train(mini(), store, stop_after=20) is None
    assert (store.checkpoint_dir(mini().key()) / "last.pt").exists()
    resumed = train(mini(), store)
    a = whole.load_model(device=torch.device("cpu")).state_dict()
    b = resumed.load_model(device=torch.device("cpu")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda cs: [{k: v for k, v in e.items() if k != "wall_seconds"} for e in cs]
    assert strip(whole.curves) == strip(resumed.curves)


def test_interrupted_ensemble_resumes_to_the_same_weights_alone_or_together(tmp_path):
    """Checkpoints belong to runs, not ensembles: an ensemble stopped midway resumes bit for bit, as
    the same ensemble or with each run alone."""
    configs = [mini(), TINY.run("trm", "both_full", 1, steps=30, eval_every=10, checkpoint_every=10, snapshots=2, lr=1e-3)]
    whole = train_group(configs, Store(tmp_path / "a"))
    strip = lambda cs: [{k: v for k, v in e.items() if k != "wall_seconds"} for e in cs]
    for name, resume in (("b", lambda s: train_group(configs, s)), ("c", lambda s: [train_group([c], s) for c in configs])):
        store = Store(tmp_path / name)
        assert all(r is None for r in train_group(configs, store, stop_after=15).values())
        assert all(store.record(c.key())["status"] == "incomplete" and store.record(c.key())["steps"] == 15 for c in configs)
        resume(store)
        for c in configs:
            a = load_tensors(Store(tmp_path / "a").checkpoint_dir(c.key()) / "final.pt")
            b = load_tensors(store.checkpoint_dir(c.key()) / "final.pt")
            assert all(torch.equal(a[k], b[k]) for k in a)
            assert strip(whole[c.key()].curves) == strip(load_run(c, store).curves)
            assert load_run(c, store).snapshot_steps() == [10, 30]


def test_train_many_trains_runs_of_one_shape_as_one_ensemble(tmp_path):
    configs = [mini(0, steps=10, eval_every=10), mini(1, steps=10, eval_every=10),
               TINY.run("gpt", "natural", 0, steps=10, eval_every=10, checkpoint_every=10)]
    runs = train_many(configs, Store(tmp_path), log=lambda m: None)
    assert [r.record["ensemble_size"] for r in runs.values()] == [2, 2, 1]


def test_snapshots_are_loadable(tmp_path):
    run = train(mini(), Store(tmp_path))
    assert run.snapshot_steps() == [10, 30]
    model = run.load_model(10, device=torch.device("cpu"))
    assert not torch.equal(model.head.weight, run.load_model(device=torch.device("cpu")).head.weight)


def test_fine_tuning_needs_its_pretrained_run(tmp_path):
    pre = mini()
    fine = replace(TINY.transfer_run(pre, 0), train=replace(TINY.finetune, steps=10, eval_every=5))
    with pytest.raises(FileNotFoundError, match="init_from"):
        train(fine, Store(tmp_path))
    store = Store(tmp_path)
    train(pre, store)
    run = train(fine, store)
    assert set(run.curves[-1]) >= {"new_atomic", "new_old", "old_new", "new_new", "old_atomic"}


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": 1})

    class Boom:
        def __repr__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        write_json(path, {"a": Boom()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


class Custom:
    """An arbitrary object: weights_only loading must refuse it."""


def test_tensors_load_with_weights_only(tmp_path):
    save_tensors(tmp_path / "t.pt", {"w": torch.ones(2), "step": 3})
    assert load_tensors(tmp_path / "t.pt")["step"] == 3
    torch.save({"obj": Custom()}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="weights_only"):
        load_tensors(tmp_path / "bad.pt")


def test_bad_training_parameter_is_rejected_before_training():
    with pytest.raises(ConfigError, match="regime='bogus'.*'natural'"):
        TINY.run("trm", "bogus", 0)
    with pytest.raises(ConfigError, match="unknown training parameter.*'stepz'"):
        TINY.run("trm", "natural", 0, stepz=3)
    with pytest.raises(ConfigError, match="lr"):
        TINY.run("trm", "natural", 0, lr=-1.0)


@pytest.mark.slow
def test_tiny_profile_learns_its_atomic_facts(tmp_path):
    run = train(TINY.run("trm", "natural", 0), Store(tmp_path))
    final = run.curves[-1]
    # about 0.9 and 0.85 after 600 steps with the authors' truncated-normal initialisation (the
    # single-run engine this one replaced reached 0.885 and 0.85 on the same models)
    assert final["id_atomic"]["exact_match"] > 0.8
    assert final["train_inferred"]["exact_match"] > 0.75
    assert run.curves[0]["id_atomic"]["exact_match"] < 0.05       # learnt, not given


@pytest.mark.slow
def test_tiny_standard_transformer_learns_its_training_set(tmp_path):
    run = train(TINY.run("gpt", "natural", 0), Store(tmp_path))
    assert run.curves[-1]["train_inferred"]["exact_match"] > 0.9
