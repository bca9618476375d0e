"""The campaign: its plan and order, adopting the sweep's runs, and an interrupted campaign resumed
on the same store ending exactly where an uninterrupted one ends (bit for bit on the CPU)."""
from dataclasses import replace

import pytest
import torch

from grokcircuits.ops import campaign
from grokcircuits.config import REGIMES, get_profile
from grokcircuits.store import Store, read_json, load_tensors

TINY = get_profile("tiny")


def short(profile, steps=20):
    """The tiny profile with few steps: the campaign's code path in seconds."""
    cut = dict(steps=steps, eval_every=steps // 2, checkpoint_every=steps // 2, eval_size=20)
    return replace(profile, trm_train=replace(profile.trm_train, snapshots=0, **cut),
                   gpt_train=replace(profile.gpt_train, **cut), finetune=replace(profile.finetune, **cut))


pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_plan_holds_every_chapter_run_in_the_order_that_answers_claims_soonest():
    cpu = get_profile("cpu")
    waves = campaign.planned_waves(cpu)
    first, transfer, standard, others, transfer_others = (w.runs for w in waves)
    assert sorted({c.data.regime for c in first}) == ["both_full", "natural"] and len(first) == 6
    assert len(transfer) == 9 and all(c.transfer is not None for c in transfer)
    assert {c.init_from for c in transfer} - {None} <= {c.key() for c in first}    # parents trained before
    assert [c.model.architecture for c in standard] == ["gpt"] * 3
    assert sorted({c.data.regime for c in others}) == sorted(set(REGIMES) - {"natural", "both_full"})
    # chapter 03 fine-tunes from every regime at cpu: those from the other regimes come after their parents
    assert sorted({c.init_regime for c in transfer_others}) == sorted(set(REGIMES) - {"natural", "both_full"})
    assert len(transfer_others) == 9 and {c.init_from for c in transfer_others} <= {c.key() for c in others}
    assert len(campaign.all_runs(waves)) == 6 + 9 + 3 + 9 + 9
    assert campaign.name_of(transfer[0]).startswith("transfer fine-tuned from")
    assert campaign.name_of(transfer[-1]) == "transfer from scratch s2"


def final(store, config):
    return load_tensors(store.checkpoint_dir(config.key()) / "final.pt")


def measured(curves):
    return [{k: v for k, v in e.items() if k != "wall_seconds"} for e in curves]


def test_an_interrupted_campaign_resumes_exactly_where_an_uninterrupted_one_ends(tmp_path):
    profile = short(TINY)
    lines = []
    straight = Store(tmp_path / "straight")
    rows = campaign.run_campaign(profile, 600, store=straight, log=lines.append, sweep_store=Store(tmp_path / "none"),
                                 seeds=[0])
    assert all(r["status"] == "complete" for r in rows) and len(rows) == 9
    assert any("epoch" in line and "min left" in line and "trm both_full s0" in line for line in lines)
    resumed = Store(tmp_path / "resumed")
    cut = campaign.run_campaign(profile, 600, store=resumed, log=lines.append, sweep_store=Store(tmp_path / "none"),
                                seeds=[0], stop_after=5)
    assert {r["status"] for r in cut} == {"incomplete", "not started"}
    assert "planned runs complete" in campaign.summary(cut) and "incomplete" in campaign.summary(cut)
    done = campaign.run_campaign(profile, 600, store=resumed, log=lines.append, sweep_store=Store(tmp_path / "none"),
                                 seeds=[0], stop_after=None)
    assert all(r["status"] == "complete" for r in done)
    for c in campaign.all_runs(campaign.planned_waves(profile, [0])):
        a, b = final(straight, c), final(resumed, c)
        assert all(torch.equal(a[n], b[n]) for n in a), campaign.name_of(c)
        assert measured(straight.curves(c.key())) == measured(resumed.curves(c.key()))


def test_runs_the_sweep_trained_are_adopted_not_trained_again(tmp_path):
    profile = short(TINY)
    sweep = Store(tmp_path / "sweep")
    first = campaign.planned_waves(profile, [0])[0].runs[0]
    from grokcircuits.training import train_group
    train_group([first], sweep)
    store = Store(tmp_path / "cpu")
    assert campaign.adopt([first], store, sweep) == [first.key()]
    assert campaign.adopt([first], store, sweep) == []          # already there with as many steps
    assert torch.equal(final(store, first)["head.weight"], final(sweep, first)["head.weight"])
    rows = campaign.status([first], store)
    assert rows[0]["status"] == "complete" and rows[0]["steps"] == 20


def test_remaining_time_is_estimated_from_the_measured_rates_of_the_same_kind_of_run():
    rows = [{"kind": "trm pretraining", "status": "incomplete", "steps": 100, "steps_planned": 1100,
             "steps_per_device_second": 10.0},
            {"kind": "trm pretraining", "status": "not started", "steps": 0, "steps_planned": 500,
             "steps_per_device_second": None},
            {"kind": "trm transfer", "status": "complete", "steps": 500, "steps_planned": 500,
             "steps_per_device_second": 50.0},
            {"kind": "trm transfer", "status": "not started", "steps": 0, "steps_planned": 500,
             "steps_per_device_second": None},
            {"kind": "gpt pretraining", "status": "not started", "steps": 0, "steps_planned": 200,
             "steps_per_device_second": None},
            {"kind": "gpt pretraining", "status": "complete", "steps": 300, "steps_planned": 300,
             "steps_per_device_second": 20.0}]
    assert campaign.remaining_seconds(rows) == 100 + 50 + 10 + 10
    rows[-1]["steps_per_device_second"] = None            # no gpt rate: the slowest measured (10/s)
    assert campaign.remaining_seconds(rows) == 100 + 50 + 10 + 20


def test_a_runs_rate_is_its_steps_over_its_share_of_the_ensembles_time(tmp_path):
    profile = short(TINY)
    store = Store(tmp_path / "cpu")
    campaign.run_campaign(profile, 600, store=store, log=lambda m: None, sweep_store=Store(tmp_path / "none"),
                          seeds=[0], waves=["first"])
    rows = [r for r in campaign.status(campaign.all_runs(campaign.planned_waves(profile, [0])), store)
            if r["status"] == "complete"]
    assert len(rows) == 2 and {r["kind"] for r in rows} == {"trm pretraining"}
    for r in rows:
        record = read_json(store.run_dir(r["key"]) / "record.json")
        assert record["ensemble_size"] == 2
        assert r["steps_per_device_second"] == record["steps"] / record["device_seconds"]
        assert r["steps_per_device_second"] > 1.5 * record["steps_per_second"]   # not the ensemble's wall rate


def test_waves_train_only_the_named_waves_and_a_wrong_name_is_refused(tmp_path):
    profile = short(TINY)
    store = Store(tmp_path / "cpu")
    rows = campaign.run_campaign(profile, 600, store=store, log=lambda m: None, sweep_store=Store(tmp_path / "none"),
                                 seeds=[0], waves=["standard"])
    trained = {r["run"] for r in rows if r["status"] == "complete"}
    assert trained == {"gpt natural s0"} and len(rows) == 9
    with pytest.raises(Exception, match="waves='gpt' is not a wave; allowed: first, transfer, standard, regimes, transfer_regimes"):
        campaign.run_campaign(profile, 600, store=store, sweep_store=Store(tmp_path / "none"), seeds=[0], waves=["gpt"])


def test_the_weights_to_commit_are_the_unfinished_runs_checkpoints_then_the_finished_runs_final_weights(tmp_path):
    profile = short(TINY)
    store, none = Store(tmp_path / "cpu"), Store(tmp_path / "none")
    first = campaign.planned_waves(profile, [0])[0].runs
    campaign.run_campaign(profile, 600, store=store, log=lambda m: None, sweep_store=none, seeds=[0],
                          waves=["first"], stop_after=5)
    assert [f.name for f in campaign.weights_to_commit(list(first), store)] == ["last.pt"] * len(first)
    campaign.run_campaign(profile, 600, store=store, log=lambda m: None, sweep_store=none, seeds=[0], waves=["first"])
    listed = campaign.weights_to_commit(list(first), store)
    assert listed == [store.checkpoint_dir(c.key()) / "final.pt" for c in first]
    assert all(f.exists() for f in listed)


def test_workers_caps_the_runs_of_one_ensemble_and_a_wrong_count_is_refused(tmp_path):
    profile = short(TINY)
    store, none = Store(tmp_path / "cpu"), Store(tmp_path / "none")
    lines = []
    campaign.run_campaign(profile, 600, store=store, log=lines.append, sweep_store=none, seeds=[0],
                          waves=["regimes"], workers=2, stop_after=2)
    sizes = [int(line.split("training ")[1].split(" ")[0]) for line in lines if "as one ensemble" in line]
    assert sizes == [2, 1]                     # the three other regimes, split evenly at most two a group
    with pytest.raises(Exception, match="workers=0 must be >= 1"):
        campaign.run_campaign(profile, 600, store=store, sweep_store=none, seeds=[0], waves=["regimes"], workers=0)
