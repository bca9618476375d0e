"""The stability screen: the composed rule, the readings of the fitting phase and the continuation
(every branch of the point's verdict, on synthetic curves), run keys unchanged by the later field,
early stopping in the engine, and the toy screen end to end on a CPU."""
from dataclasses import replace

import pytest

from grokcircuits.ops import stability
from grokcircuits.config import CPU, ConfigError
from grokcircuits.ops.grids import get_screen
from grokcircuits.store import Store
from grokcircuits.training import ensemble, train_group


def entry(step, train=1.0, ood=1.0, ood_atomic=1.0, iid=1.0):
    return {"step": step, "training_accuracy": train, "ood_atomic": {"exact_match": ood_atomic},
            "test_inferred_ood": {"exact_match": ood}, "test_inferred_iid": {"exact_match": iid}}


def test_later_field_keeps_stored_keys_and_enters_the_key_when_set():
    run = CPU.run("trm", "both_full", 0)
    assert run.key() == "c7c58492f7696925"     # the committed cpu_wd03 run (results/sweep/runs)
    stopping = replace(run, train=replace(run.train, stop_when_composed=True))
    assert stopping.key() != run.key()


def test_composed_needs_two_evaluations_in_a_row():
    assert ensemble.composed([entry(500), entry(1000)])
    assert not ensemble.composed([entry(1000)])                                   # one evaluation only
    assert not ensemble.composed([entry(500, ood=0.85), entry(1000)])             # OOD below 0.9 once
    assert not ensemble.composed([entry(500), entry(1000, ood_atomic=0.98)])      # a fact not stored
    assert not ensemble.composed([entry(500), entry(1000, train=0.95)])           # not fitted


def test_at_epoch_reads_the_nearest_evaluation_and_nothing_past_the_end():
    curves = [entry(0), entry(256, ood=0.8), entry(512, ood=0.4), entry(1024, ood=0.1)]
    assert stability.at_epoch(curves, 2, 128)["step"] == 256
    assert stability.at_epoch(curves, 8, 128)["step"] == 1024
    assert stability.at_epoch(curves, 20, 128) is None


def fit(status="complete", steps=3000, curves=None):
    curves = curves or [entry(2500), entry(3000)]
    return stability.fit_summary({"status": status, "steps": steps, "epochs": steps / 128, "wall_seconds": 9.0},
                                 curves, cap=10_000)


def test_fit_summary_branches():
    assert fit()["status"] == "fitted"
    assert fit(steps=10_000, curves=[entry(9500, ood=0.3), entry(10_000, ood=0.4)])["status"] == "capped"
    assert fit(steps=10_000)["status"] == "fitted"        # composed exactly at the cap
    assert fit(status="incomplete")["status"] == "unfinished"
    assert stability.fit_summary(None, [], cap=10)["status"] == "not started"


def natural(ood_end, atomic_end=1.0):
    curves = [entry(0), entry(1280, ood=0.6), entry(2560, ood=0.4), entry(5120, ood=ood_end, ood_atomic=atomic_end)]
    return stability.continuation_summary({"status": "complete", "steps": 5120}, curves, 128, (10, 20, 40))


def test_continuation_reads_each_report_epoch():
    n = natural(0.1)
    assert (n["ood_10"], n["ood_20"], n["ood_40"], n["ood_atomic_40"]) == (0.6, 0.4, 0.1, 1.0)
    assert [c["epoch"] for c in n["curve"]] == [0.0, 10.0, 20.0, 40.0]


def test_verdict_every_branch():
    assert stability.verdict_of(fit(), natural(0.7), 40) == "retains"
    assert stability.verdict_of(fit(), natural(0.5), 40) == "retains"              # the threshold itself retains
    assert stability.verdict_of(fit(), natural(0.1), 40) == "falls"
    assert stability.verdict_of(fit(), natural(0.1, atomic_end=0.6), 40) == "falls with forgetting"
    capped = fit(steps=10_000, curves=[entry(9500, ood=0.3), entry(10_000, ood=0.4)])
    assert stability.verdict_of(capped, natural(0.7), 40) == "confounded"
    assert stability.verdict_of(fit(status="incomplete"), natural(0.7), 40) == "open"
    short = stability.continuation_summary({"status": "incomplete", "steps": 2560}, [entry(0), entry(2560)], 128, (10, 20, 40))
    assert stability.verdict_of(fit(), short, 40) == "open"


def test_screens_validate_and_name_their_points():
    screen = get_screen("stability")
    assert screen.points[0].name == "cpu" and screen.points[0].control
    assert screen.points[0].report_epochs() == (10, 20, 40)
    with pytest.raises(ConfigError, match="points=nope"):
        screen.only(("nope",))
    with pytest.raises(ConfigError, match="grid='nope'"):
        get_screen("nope")
    cpu = screen.points[0]
    assert cpu.continuation().init_from == cpu.fit().key()
    assert cpu.continuation().train.steps == 40 * cpu.steps_per_epoch()


def test_engine_stops_a_run_once_composed(monkeypatch, tmp_path, one_thread):
    point = get_screen("toy_stability").points[0]
    monkeypatch.setattr(ensemble, "composed", lambda curves: len(curves) >= 2)   # composed at the first evaluation
    store = Store(tmp_path)
    run = train_group([point.fit()], store)[point.fit().key()]
    assert run.record["status"] == "complete"
    assert run.record["steps"] == point.train.eval_every < point.train.steps


def test_toy_screen_end_to_end(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    screen = get_screen("toy_stability")
    table = stability.run_screen(screen, budget_seconds=300)
    row = table["rows"][0]
    assert row["fit"]["status"] == "capped" and row["verdict"] == "confounded"   # a toy never composes
    store = Store(tmp_path / "sweep")
    fitted = store.curves(row["fit_key"])[-1]
    for name in ("natural", "control"):
        start = row[name]["curve"][0]
        assert start["epoch"] == 0.0 and start["ood_atomic"] == fitted["ood_atomic"]["exact_match"]   # starts from the fit
        assert row[name]["status"] == "complete"
    assert (tmp_path / "sweep" / "toy_stability" / "stability.md").read_text().count("| toy |") == 1


def test_a_fit_whose_weights_were_lost_is_named_and_the_screen_goes_on(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    point = get_screen("toy_stability").points[0]
    store = Store(tmp_path / "sweep")
    store.save_run(point.fit().key(), {"status": "complete", "steps": 8}, [entry(8)])   # a record, no final.pt
    lines = []
    stability.train_point(point, store, deadline=float("inf"), device="cpu", log=lines.append)
    assert any("final weights are not on this machine" in line and str(store.run_dir(point.fit().key())) in line
               for line in lines)
    assert all(stability.load_run(c, store) is None for c in point.continuations())     # nothing trained


def test_the_book_reads_the_table_as_frames_and_a_chart(tmp_path, monkeypatch, one_thread):
    from grokcircuits.pages import charts
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    stability.run_screen(get_screen("toy_stability"), budget_seconds=300)
    table = stability.load_stability("toy_stability")
    curves = stability.retention_curves(table)
    assert set(curves["data"]) == {"natural data", "both hops full (control)"}
    summary = stability.retention_table(table)
    assert summary.loc["toy", "reading"] == "confounded" and "natural +4" in summary.columns
    assert charts.retention(curves, "title").to_dict()["facet"]["field"] == "point"
    by_point = stability.retention_by_point(table)
    assert list(by_point["epoch"]) == ["+1", "+2", "+4"] and set(by_point["point"]) == {"toy (confounded)"}
    assert by_point["graph"].iloc[0] == stability.graph_label(table["rows"][0])
    spec = charts.retention_summary(by_point, table["retains_at"], "title").to_dict()
    assert spec["facet"]["row"]["field"] == "graph" and spec["spec"]["layer"][1]["encoding"]["x"]["datum"] == 0.5
    assert stability.load_stability("nothing_here") is None
    assert stability.summary_line(table).startswith("1 of 1 points measured to +4 epochs; 0 retain; readings: confounded 1")


def test_the_cost_plan_measures_where_a_point_ran_and_borrows_or_scales_where_not(tmp_path, monkeypatch, one_thread):
    from dataclasses import replace
    from grokcircuits.ops.screen import Screen
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    toy = get_screen("toy_stability")
    base = toy.points[0]
    wide = replace(base, name="wide", model=replace(base.model, width=2 * base.model.width))
    bigger = replace(base, name="bigger_graph", data=replace(base.data, seed=base.data.seed + 1))   # same model
    screen = Screen(name="toy_plan", description="", points=(base, bigger, wide)).validate()
    store = Store(tmp_path / "sweep")
    before = {r["point"]: r for r in stability.cost_plan(screen, store)}
    assert before["toy"]["cpu_hours_left"] is None                        # nothing measured yet: no estimate
    stability.run_screen(screen.only(("toy",)), budget_seconds=300, table_screen=screen)
    plan = {r["point"]: r for r in stability.cost_plan(screen, store)}
    assert plan["toy"]["rates"] == "measured" and plan["toy"]["cpu_hours_left"] == 0
    assert plan["bigger_graph"]["rates"] == "as toy" and plan["bigger_graph"]["fit_s_per_step"] == plan["toy"]["fit_s_per_step"]
    assert plan["wide"]["rates"] == "scaled from toy"
    assert plan["wide"]["fit_s_per_step"] == pytest.approx(4 * plan["toy"]["fit_s_per_step"])   # width squared
    assert plan["wide"]["continuation_steps_left"] == 2 * base.epochs * base.steps_per_epoch()   # natural and control
    assert "CPU-hours left in all" in stability.format_plan(list(plan.values()))


def test_the_summary_counts_only_points_read_to_the_last_epoch_as_measured_to_it():
    def row(point, verdict, natural):
        return {"point": point, "verdict": verdict, "natural": natural}
    table = {"report_epochs": [10, 20, 40], "rows": [
        row("fell", "falls", {"ood_40": 0.02, "ood_atomic_40": 1.0}),
        row("kept", "retains", {"ood_40": 0.7, "ood_atomic_40": 1.0}),
        row("capped early", "confounded", {"ood_10": 0.05}),          # a capped fit reads confounded at once
        row("running", "open", {})]}
    assert stability.summary_line(table) == ("2 of 4 points measured to +40 epochs (1 more read before it); "
                                             "1 retain (kept); readings: falls 1, retains 1, confounded 1")
    table["rows"] = table["rows"][:2]
    assert stability.summary_line(table) == "2 of 2 points measured to +40 epochs; 1 retain (kept); readings: falls 1, retains 1"
