"""The sweep: grids, the table's crossings, the choice of a GPU profile (every branch, on synthetic
tables), and the toy grid end to end on a CPU, complete and cut short by its budget."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from grokcircuits.ops import sweep
from grokcircuits.config import ConfigError
from grokcircuits.ops.grids import get_grid
from grokcircuits.store import Store

FIRST = get_grid("first")
POINT = FIRST.recursive[0]


def entry(step, train=0.0, iid=0.0, ood=0.0, ood_atomic=0.0, bridge=0.0):
    return {"step": step, "training_accuracy": train, "id_atomic": {"exact_match": train},
            "ood_atomic": {"exact_match": ood_atomic}, "test_inferred_iid": {"exact_match": iid},
            "test_inferred_ood": {"exact_match": ood, "bridge_found": bridge}}


def record(status="complete", steps=2000, gpu_seconds=100.0, train_examples=36_200):
    return {"status": status, "steps": steps, "epochs": round(steps / (train_examples // 512), 2),
            "dataset": {"train_examples": train_examples}, "config": POINT.to_dict(), "wall_seconds": gpu_seconds,
            "gpu_seconds": gpu_seconds, "device": "NVIDIA H100 80GB HBM3"}


GROKKING = [entry(0), entry(500, train=0.5, iid=0.3, bridge=0.2), entry(1000, train=0.95, iid=0.92, ood=0.3, ood_atomic=0.8, bridge=0.6),
            entry(1500, train=0.99, iid=0.95, ood=0.6, ood_atomic=0.9, bridge=0.7), entry(2000, train=1.0, iid=0.97, ood=0.93, ood_atomic=1.0, bridge=0.9)]
STANDARD = [entry(0), entry(1000, train=0.9, iid=0.95, ood=0.02), entry(2000, train=1.0, iid=0.96, ood=0.05)]


def test_row_reports_first_crossings_in_steps_and_epochs():
    row = sweep.row_of(POINT, record(), GROKKING, record(), STANDARD)
    assert (row["steps_to_training_0.9"], row["steps_to_id_0.9"], row["steps_to_ood_0.5"],
            row["steps_to_ood_0.9"], row["steps_to_bridge_0.5"]) == (1000, 1000, 1500, 2000, 1000)
    assert row["epochs_to_ood_0.5"] == round(1500 / 70, 1) and row["epochs"] == round(2000 / 70, 1)
    assert row["final_ood_atomic_exact_match"] == 1.0 and row["final_ood_exact_match"] == 0.93
    assert row["standard_ood_exact_match"] == 0.05 and row["standard_ood_exact_match_max"] == 0.05
    assert row["seconds_to_ood_0.5"] == 75.0   # 1500 of 2000 steps of 100 GPU-seconds
    assert (row["n_entities"], row["width"], row["lr"], row["weight_decay"], row["grokfast"]) == (100, 128, 1e-3, 0.1, "off")


def test_row_of_an_unfinished_and_of_an_unstarted_run():
    cut = sweep.row_of(POINT, record("incomplete", steps=1000), GROKKING[:3], None, [])
    assert cut["status"] == "incomplete" and cut["steps"] == 1000 and cut["steps_to_ood_0.5"] is None
    assert cut["standard_status"] == "not started" and cut["standard_ood_exact_match"] is None
    never = sweep.row_of(POINT, None, [], None, [])
    assert never["status"] == "not started" and never["steps"] == 0 and never["final_ood_exact_match"] is None


def good_row(**changes):
    row = sweep.row_of(POINT, record(), GROKKING, record(), STANDARD)
    row.update(changes)
    return row


def test_choose_gpu_profile_takes_the_cheapest_point_that_shows_the_contrast():
    cheap, dear = good_row(key="cheap", **{"seconds_to_ood_0.5": 20.0}), good_row(key="dear", **{"seconds_to_ood_0.5": 90.0})
    assert sweep.choose_gpu_profile({"rows": [dear, cheap]})["key"] == "cheap"
    assert sweep.choose_gpu_profile([dear])["key"] == "dear"


@pytest.mark.parametrize("changes", [
    {"final_ood_exact_match": 0.45},            # the recursive model does not reach OOD 0.5
    {"final_id_exact_match": 0.9},              # ... nor exceed 0.9 on ID
    {"standard_ood_exact_match_max": 0.15},     # the standard transformer does not stay <= 0.1 on OOD
    {"standard_ood_exact_match_max": None},     # ... was never trained
    {"standard_id_exact_match": 0.85},          # ... does not exceed 0.9 on ID
])
def test_choose_gpu_profile_rejects_a_point_that_misses_one_criterion(changes):
    bad = good_row(key="bad", **{"seconds_to_ood_0.5": 1.0}, **changes)
    assert sweep.choose_gpu_profile([bad]) is None
    assert sweep.choose_gpu_profile([bad, good_row(key="good")])["key"] == "good"
    assert sum(not ok for ok in sweep.criteria(bad).values()) == 1


def test_note_says_what_follows_when_nothing_groks():
    rows = [good_row(final_ood_exact_match=0.02, status="incomplete")]
    assert sweep.choose_gpu_profile(rows) is None
    note = sweep.note_for(None, rows)
    assert sweep.NEXT_GRID in note and "1 of 1 runs did not finish" in note
    assert sweep.NEXT_GRID in sweep.note_for(None, [])
    assert "cheapest point" in sweep.note_for(good_row(), [good_row()])


def test_grids_hold_full_configurations_with_a_standard_transformer_per_graph():
    assert len(FIRST.recursive) == 6 and len(FIRST.standard) == 1
    assert {sweep.knobs(c)["grokfast"] for c in FIRST.recursive} == {"on", "off"}
    assert {(c.train.lr, c.train.weight_decay) for c in FIRST.recursive} == {(1e-3, 0.1), (1e-3, 1.0), (3e-4, 1.0)}
    for c in FIRST.recursive:
        assert (c.model.architecture, c.data.regime, c.data.phi, c.data.relations_per_entity) == ("trm", "natural", 18.0, 20)
        assert (c.model.h_cycles, c.model.l_cycles, c.train.eval_every, c.train.steps) == (2, 6, 500, 20_000)
        std = FIRST.standard_for(c)
        assert std.model.architecture == "gpt" and std.data == c.data and std.train.steps == c.train.steps
    assert len({c.key() for c in FIRST.configs()}) == 7
    with pytest.raises(ConfigError, match="grid"):
        get_grid("nope")


def test_the_first_grid_trains_as_two_ensembles_planned_within_seven_minutes():
    plan = sweep.plan(FIRST)
    assert sorted((p["architecture"], p["runs"]) for p in plan) == [("gpt", 1), ("trm", 6)]
    assert sum(p["estimated_seconds"] for p in plan) < 7 * 60
    # the planning model: more runs in an ensemble cost more per step, and a bigger model more per run
    assert sweep.seconds_per_step(list(FIRST.recursive), "cuda") > sweep.seconds_per_step(list(FIRST.recursive[:2]), "cuda")
    wide = replace(FIRST.recursive[0], model=replace(FIRST.recursive[0].model, width=256))
    assert sweep.trm_traffic_bytes(wide) > 1.5 * sweep.trm_traffic_bytes(FIRST.recursive[0])


def test_table_is_written_as_json_and_csv(tmp_path):
    table = {"grid": "x", "description": "d", "rows": [good_row(), good_row(key="other")], "note": "n"}
    sweep.write_table(table, tmp_path)
    assert json.loads((tmp_path / "table.json").read_text())["rows"][1]["key"] == "other"
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert len(lines) == 3 and "steps_to_ood_0.5" in lines[0]
    assert "ood.5" in sweep.format_table(table)


def test_the_bare_gpu_path_imports_neither_pandas_nor_altair():
    code = ("import sys, grokcircuits.ops.sweep, grokcircuits.ops.bench, grokcircuits.ops.grids, grokcircuits.__main__; "
            "bad = {'pandas', 'altair'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)




def test_toy_sweep_runs_end_to_end_and_chooses_nothing(one_thread):
    table = sweep.run_sweep(get_grid("toy"), budget_seconds=120, log=lambda m: None)
    assert [r["status"] for r in table["rows"]] == ["complete"] * 4
    assert all(r["steps"] == 40 and r["standard_status"] == "complete" for r in table["rows"])
    assert all(r["final_ood_atomic_exact_match"] is not None for r in table["rows"])
    assert table["choice"] is None and sweep.NEXT_GRID in table["note"]   # far too small to grok
    on_disk = json.loads((sweep.table_dir("toy") / "table.json").read_text())
    assert on_disk["rows"] == json.loads(json.dumps(table["rows"]))
    assert table in sweep.load_tables() or on_disk in sweep.load_tables()


@pytest.mark.slow
def test_toy_sweep_stopped_early_keeps_what_it_has_and_resumes(tmp_path, monkeypatch, one_thread, capsys):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    cut = sweep.run_sweep(get_grid("toy"), budget_seconds=120, log=lambda m: None, stop_after=20)
    assert all(r["status"] == "incomplete" and r["steps"] == 20 and r["standard_status"] == "incomplete"
               for r in cut["rows"])
    assert all(r["final_ood_atomic_exact_match"] is not None for r in cut["rows"])   # its curve so far
    assert "4 of 4 runs did not finish" in cut["note"]
    assert (tmp_path / "sweep" / "toy" / "table.csv").exists()
    store, toy = Store(tmp_path / "sweep"), get_grid("toy")
    resumable = [store.checkpoint_dir(c.key()) / "last.pt" for c in toy.configs()]
    assert weights_to_commit_printed(capsys) == resumable                 # every run: its resumable checkpoint
    done = sweep.run_sweep(toy, budget_seconds=120, log=lambda m: None)
    assert all(r["status"] == "complete" and r["steps"] == 40 for r in done["rows"])
    finals = [store.checkpoint_dir(c.key()) / "final.pt" for c in toy.configs()]
    printed = weights_to_commit_printed(capsys)
    assert [f for f in printed if f.name == "final.pt"] == finals          # every run's final weights, the
    assert all(f.name.startswith("snapshot_") for f in printed if f not in finals)  # standard one's too


def weights_to_commit_printed(capsys) -> list[Path]:
    """What `sweep --weights-to-commit` prints for the toy grid, each path checked to exist."""
    from grokcircuits.__main__ import main
    capsys.readouterr()
    assert main(["sweep", "--grid", "toy", "--weights-to-commit"]) == 0
    paths = [Path(line) for line in capsys.readouterr().out.splitlines() if line]
    assert all(p.exists() for p in paths)
    return paths


def test_toy_sweep_with_no_time_starts_nothing_and_still_writes_its_table(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    table = sweep.run_sweep(get_grid("toy"), budget_seconds=1e-6, log=lambda m: None)
    assert {r["status"] for r in table["rows"]} == {"not started"} and table["choice"] is None
    assert json.loads((tmp_path / "sweep" / "toy" / "table.json").read_text())["rows"][0]["steps"] == 0


def test_sweep_command_rejects_an_unknown_grid(capsys):
    from grokcircuits.__main__ import main
    assert main(["sweep", "--grid", "nope", "--budget-seconds", "1"]) == 2
    assert "grid" in capsys.readouterr().err


def test_sweep_command_plans_without_training(capsys):
    from grokcircuits.__main__ import main
    assert main(["sweep", "--grid", "first", "--plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert sorted(p["runs"] for p in plan) == [1, 6] and all(p["estimated_seconds"] > 0 for p in plan)


# --- the CPU grid and the choice of the cpu profile --------------------------------------------------
CPU_GRID = get_grid("cpu")


def test_cpu_grid_holds_five_regimes_and_trains_the_decisive_ones_first():
    from grokcircuits.config import REGIMES, get_profile
    assert sorted(c.data.regime for c in CPU_GRID.recursive) == sorted(REGIMES)
    first, rest = CPU_GRID.waves()
    assert sorted(c.data.regime for c in first) == ["both_full", "natural", "natural"]   # + the standard transformer
    assert [c.model.architecture for c in first].count("gpt") == 1 and len(rest) == 3
    assert all(CPU_GRID.standard_for(c) is CPU_GRID.standard[0] for c in CPU_GRID.recursive)
    # the cpu profile is the grid's point at weight decay 0.3 (the grid `cpu_wd03`), with its standard transformer
    cpu = get_profile("cpu")
    at_01 = replace(cpu, trm_train=replace(cpu.trm_train, weight_decay=0.1))
    assert [at_01.run("trm", r, 0) for r in REGIMES] == list(CPU_GRID.recursive)
    assert cpu.run("gpt", "natural", 0) == CPU_GRID.standard[0]
    # its graph leaves (head, relation) pairs free for the transfer experiment's new facts
    assert cpu.data.n_relations > cpu.data.relations_per_entity


def test_the_next_cpu_grid_continues_condition_b_at_more_weight_decay_and_reuses_the_standard_transformer():
    nxt = get_grid("cpu_next")
    assert sorted({c.train.weight_decay for c in nxt.recursive}) == [0.3, 1.0]
    assert {c.data.regime for c in nxt.recursive} == {"natural", "both_full"}
    assert all(c.train.steps > CPU_GRID.recursive[0].train.steps for c in nxt.recursive)
    assert all(c.data == replace(CPU_GRID.recursive[0].data, regime=c.data.regime) for c in nxt.recursive)
    assert nxt.standard[0].key() == CPU_GRID.standard[0].key()      # trained once, by the grid `cpu`


def regime_row(regime, **changes):
    row = sweep.row_of(replace(POINT, data=replace(POINT.data, regime=regime)), record(), GROKKING, record(), STANDARD)
    row.update(changes)
    return row


def test_cpu_profile_choice_meets_a_and_b_or_a_alone_or_nothing():
    both_full, natural = regime_row("both_full"), regime_row("natural")
    assert both_full["regime"] == "both_full" and natural["steps_to_ood_0.9"] == 2000
    choice = sweep.choose_cpu_profile([both_full, natural])
    assert choice["meets"] == "a and b" and choice["a_steps"] == 2000 and choice["b_steps"] == 1500
    # (b) fails: the standard transformer composes OOD too
    loose = regime_row("natural", standard_ood_exact_match_max=0.3)
    choice = sweep.choose_cpu_profile([both_full, loose])
    assert choice["meets"] == "a only: (b) is open" and not choice["b"]
    assert choice["natural_criteria"]["standard transformer stays <= 0.1 on OOD"] is False
    # (a) fails: both hops full never reaches OOD 0.9
    assert sweep.choose_cpu_profile([regime_row("both_full", **{"steps_to_ood_0.9": None}), natural]) is None
    # the cheaper of two points that meet both
    dear = [regime_row("both_full", lr=3e-3, device_seconds=1000.0), regime_row("natural", lr=3e-3, device_seconds=1000.0)]
    for r in dear:
        r["seconds_to_ood_0.9"] = r["seconds_to_ood_0.5"] = 900.0
    assert sweep.choose_cpu_profile(dear + [both_full, natural])["point"] == sweep.describe_point(natural)


def test_each_seed_of_a_point_is_judged_on_its_own_and_old_tables_read_as_seed_0():
    seed1 = [regime_row("both_full", seed=1, **{"steps_to_ood_0.9": None}), regime_row("natural", seed=1)]
    points = sweep.profile_points([regime_row("both_full"), regime_row("natural")] + seed1)
    assert [(p["a"], p["point"].endswith("seed 1")) for p in points] == [(True, False), (False, True)]
    old = {k: v for k, v in regime_row("both_full").items() if k != "seed"}   # a table from before the column
    assert sweep.point_of(old) == sweep.point_of(regime_row("natural"))
    assert "seed" not in sweep.describe_point(old) and "-" in sweep.format_table(
        {"grid": "g", "description": "d", "rows": [old], "note": "n"})


def test_device_seconds_come_from_the_record_or_from_the_wall_time_shared_by_the_ensemble():
    assert sweep._device_seconds({"device_seconds": 12.0, "gpu_seconds": 0.0, "wall_seconds": 50.0}) == 12.0
    assert sweep._device_seconds({"gpu_seconds": 7.0, "wall_seconds": 50.0}) == 7.0
    assert sweep._device_seconds({"gpu_seconds": 0.0, "wall_seconds": 50.0, "ensemble_size": 2}) == 25.0


def test_a_part_of_the_grid_trains_alone_and_the_whole_grid_is_tabled(tmp_path, monkeypatch, one_thread, capsys):
    from grokcircuits.__main__ import main
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    toy = get_grid("toy")
    assert [c.model.architecture for c in sweep.only(toy, "gpt").configs()] == ["gpt"]
    assert main(["sweep", "--grid", "toy", "--budget-seconds", "120", "--arch", "gpt"]) == 0
    table = json.loads((tmp_path / "sweep" / "toy" / "table.json").read_text())
    assert len(table["rows"]) == 4                                   # the whole grid, not the part
    assert {r["status"] for r in table["rows"]} == {"not started"} and table["rows"][0]["standard_status"] == "complete"
    capsys.readouterr()
    assert main(["sweep", "--grid", "toy", "--table"]) == 0           # trains nothing
    assert "not started" in capsys.readouterr().out
    assert main(["sweep", "--grid", "toy", "--budget-seconds", "1", "--arch", "nope"]) == 2


def test_condition_a_reads_reached_not_reached_not_started_or_not_trained():
    natural = regime_row("natural")
    reached, = sweep.profile_points([regime_row("both_full"), natural])
    assert sweep.a_status(reached) == f"reached at 2000 steps ({reached['a_epochs']} epochs)"
    missed, = sweep.profile_points([regime_row("both_full", **{"steps_to_ood_0.9": None}), natural])
    assert sweep.a_status(missed) == f"not reached in {missed['a_trained_steps']} steps"
    idle, = sweep.profile_points([regime_row("both_full", **{"steps_to_ood_0.9": None, "steps": 0}), natural])
    assert sweep.a_status(idle) == "not started"
    alone, = sweep.profile_points([natural])
    assert sweep.a_status(alone) == "not trained (no both-hops-full run in this grid)"


def test_the_deep_cpu_grid_gives_the_cpu_graph_the_first_grids_recursion():
    deep = get_grid("cpu_deep")
    assert {c.data for c in deep.recursive} == {replace(CPU_GRID.recursive[0].data, regime="natural")}
    assert {(c.model.h_cycles, c.model.l_cycles, c.model.prefix_slots) for c in deep.recursive} == {(2, 6, 4)}
    assert {c.model for c in deep.recursive} == {FIRST.recursive[0].model}
    assert sorted(c.train.weight_decay for c in deep.recursive) == [0.1, 1.0]
    assert deep.standard[0].key() == CPU_GRID.standard[0].key()     # trained once, by the grid `cpu`


def test_the_weight_decay_grid_is_the_cpu_profile_one_hop_regimes_first():
    from grokcircuits.config import REGIMES, get_profile
    wd03 = get_grid("cpu_wd03")
    first, rest = wd03.waves()
    assert sorted(c.data.regime for c in first if c.model.architecture == "trm") == ["hop1_only"] * 3 + ["hop2_only"] * 3
    assert len(rest) == 9 and all(wd03.standard_for(c) is not None for c in wd03.recursive)
    # its runs are the cpu profile's pretraining runs at every seed, seed 0 first: the campaign adopts them
    cpu = get_profile("cpu")
    assert cpu.trm_train.weight_decay == 0.3
    assert [cpu.run("trm", r, s) for s in cpu.seeds for r in REGIMES] == list(wd03.recursive)
    assert [cpu.run("gpt", "natural", s) for s in cpu.seeds] == list(wd03.standard)   # the profile's, not retrained
    assert wd03.standard[0].key() == CPU_GRID.standard[0].key()
    assert not {c.key() for c in wd03.recursive} & {c.key() for c in CPU_GRID.recursive}


def test_the_five_seed_grid_adds_seeds_3_and_4_of_every_regime_as_the_cpu_profile_would_train_them():
    from grokcircuits.config import REGIMES, get_profile
    more, wd03 = get_grid("cpu_wd03_seeds34"), get_grid("cpu_wd03")
    cpu = get_profile("cpu")
    assert [cpu.run("trm", r, s) for s in (3, 4) for r in REGIMES] == list(more.recursive)   # every regime, not one
    assert [cpu.run("gpt", "natural", s) for s in (3, 4)] == list(more.standard)
    assert not {c.key() for c in more.configs()} & {c.key() for c in wd03.configs()}
    first, _ = more.waves()
    assert sorted(c.data.regime for c in first if c.model.architecture == "trm") == ["hop1_only"] * 2 + ["hop2_only"] * 2


def test_a_part_of_the_grid_chosen_by_key_and_an_unknown_key_named():
    toy = get_grid("toy")
    key = toy.recursive[1].key()
    assert [c.key() for c in sweep.only(toy, keys=(key,)).configs()] == [key]
    assert sweep.only(toy, "gpt", keys=(key,)).configs() == []
    with pytest.raises(ConfigError, match="keys=nope are not runs of grid 'toy'"):
        sweep.only(toy, keys=("nope",))
