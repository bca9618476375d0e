"""The stability screen: does the natural objective keep a solution that composes OOD facts?

    python -m grokcircuits stability --grid stability --budget-seconds 7200

At one point (graph, model, training), the recursive model is first trained on the both-hops-full
data until it is fitted and composes (`config.COMPOSED_RULE`: training accuracy and OOD atomic facts
at least 0.99, OOD exact match at least 0.9, at two evaluations in a row; or the point's step cap,
reported). Its final EMA weights then continue on the same graph's natural data for a fixed number
of natural-data epochs (optimiser state and warm-up start afresh), evaluated every few epochs. A fall
of OOD exact match while the OOD atomic facts stay stored says the natural objective pulls the model
off composition; a start from a half-fitted model would confound that fall with forgetting. The
control continues the same weights, for the same steps, on the both-hops-full data: it separates
the natural objective's doing from the restart's. A point *retains* when OOD exact match is at
least RETAINS_AT at the last reported epoch (+40 by default).

Runs live in the sweep's store (results/sweep/runs), so they are cached, resumable and committed
like any sweep run; the table goes to results/sweep/<screen>/stability.json and stability.md.
"""
from __future__ import annotations

import time
from pathlib import Path

from grokcircuits.config import RunConfig, check_positive
from grokcircuits.science.runs import default_device, load_run
from grokcircuits.ops.screen import Screen, StabilityPoint
from grokcircuits.store import code_version, read_json, Store, write_json
from grokcircuits.ops.sweep import stored, sweep_root, table_dir
from grokcircuits.science.linear_probe import run_probe
from grokcircuits.training import train_group
from grokcircuits.training.ensemble import composed

RETAINS_AT = 0.5     # OOD exact match at the last reported epoch (the continuation's end) for a point to retain
OOD, OOD_ATOMIC, ID = "test_inferred_ood", "ood_atomic", "test_inferred_iid"


# --- reading curves ------------------------------------------------------------------------------
def _exact(entry: dict, name: str) -> float | None:
    return entry.get(name, {}).get("exact_match")


def at_epoch(curves: list[dict], epoch: float, per_epoch: int) -> dict | None:
    """The evaluation nearest to `epoch` epochs (of `per_epoch` steps), None past the last evaluation."""
    if not curves or curves[-1]["step"] < epoch * per_epoch - per_epoch / 2:
        return None
    return min(curves, key=lambda e: abs(e["step"] - epoch * per_epoch))


def fit_summary(record: dict | None, curves: list[dict], cap: int) -> dict:
    """Where the fitting phase ended: `fitted` (the composed rule held), `capped` (the step cap came
    first), `unfinished` or `not started`; its steps, epochs, seconds and final values."""
    if record is None:
        return {"status": "not started"}
    last = curves[-1] if curves else {}
    done = record.get("status") == "complete"
    steps = record.get("steps", 0)
    status = "unfinished" if not done else ("capped" if steps >= cap and not _composed_at_end(curves) else "fitted")
    return {"status": status, "steps": steps, "epochs": record.get("epochs"),
            "cpu_seconds": record.get("device_seconds", record.get("wall_seconds")),
            "training_accuracy": last.get("training_accuracy"), "ood_atomic": _exact(last, OOD_ATOMIC),
            "ood": _exact(last, OOD), "id": _exact(last, ID)}


def _composed_at_end(curves: list[dict]) -> bool:
    return composed(curves)


def continuation_summary(record: dict | None, curves: list[dict], per_epoch: int, epochs: tuple[int, ...]) -> dict:
    """OOD exact match and OOD atomic facts at each of `epochs`, ID and training accuracy at the end."""
    if record is None:
        return {"status": "not started"}
    out = {"status": record.get("status"), "steps": record.get("steps", 0),
           "cpu_seconds": record.get("device_seconds", record.get("wall_seconds"))}
    for e in epochs:
        entry = at_epoch(curves, e, per_epoch)
        out[f"ood_{e}"] = _exact(entry, OOD) if entry else None
        out[f"ood_atomic_{e}"] = _exact(entry, OOD_ATOMIC) if entry else None
    last = curves[-1] if curves else {}
    out.update(id_end=_exact(last, ID), training_accuracy_end=last.get("training_accuracy"),
               curve=[{"epoch": round(c["step"] / per_epoch, 2), "ood": _exact(c, OOD),
                       "ood_atomic": _exact(c, OOD_ATOMIC), "id": _exact(c, ID)} for c in curves])
    return out


def retains(natural: dict, last_epoch: int, at_least: float = RETAINS_AT) -> bool | None:
    """Whether OOD exact match is at least `at_least` at `last_epoch`; None before it is reached."""
    value = natural.get(f"ood_{last_epoch}")
    return None if value is None else value >= at_least


def verdict_of(fit: dict, natural: dict, last_epoch: int) -> str:
    """The point's reading: `retains`, `falls` (composition lost while the facts stay stored), `falls
    with forgetting` (the OOD atomic facts fell below 0.9 too), `confounded` (the fitting phase was
    capped before the model fitted and composed), or `open` (not yet measured to the end)."""
    if fit.get("status") == "capped":
        return "confounded"
    kept = retains(natural, last_epoch)
    if fit.get("status") != "fitted" or kept is None:
        return "open"
    if kept:
        return "retains"
    atomic = natural.get(f"ood_atomic_{last_epoch}")
    return "falls" if atomic is not None and atomic >= 0.9 else "falls with forgetting"


# --- the table -----------------------------------------------------------------------------------
def bridge_at_end(config: RunConfig, store: Store, device=None) -> float | None:
    """The linear probe's OOD bridge decoded on a complete run's final weights (memoised), else None."""
    run = load_run(config, store)
    if run is None or run.record.get("status") != "complete" or not run.has_weights():
        return None
    return run_probe(run, device)["bridge_decoded"]


def point_row(point: StabilityPoint, store: Store, probe: bool = True) -> dict:
    fit_config, per_epoch, epochs = point.fit(), point.steps_per_epoch(), point.report_epochs()
    fit = fit_summary(*stored(store, fit_config), cap=point.train.steps)
    natural_config = point.continuation("natural")
    natural = continuation_summary(*stored(store, natural_config), per_epoch, epochs)
    row = {"point": point.name, "n_entities": point.data.n_entities, "n_relations": point.data.n_relations,
           "ood_fraction": point.data.ood_fraction, "width": point.model.width, "blocks": point.model.blocks,
           "h_cycles": point.model.h_cycles, "l_cycles": point.model.l_cycles, "lr": point.train.lr,
           "weight_decay": point.train.weight_decay, "grokfast": point.train.grokfast_lambda > 0,
           "steps_per_epoch": per_epoch, "fit_key": fit_config.key(), "fit": fit,
           "natural_key": natural_config.key(), "natural": natural, "retains": retains(natural, epochs[-1]),
           "verdict": verdict_of(fit, natural, epochs[-1])}
    if probe and natural.get("status") == "complete":
        row["natural"]["bridge_end"] = bridge_at_end(natural_config, store)
    if point.control:
        control_config = point.continuation("both_full")
        row["control_key"] = control_config.key()
        row["control"] = continuation_summary(*stored(store, control_config), per_epoch, epochs)
    return row


def stability_table(screen: Screen, store: Store, probe: bool = True) -> dict:
    return {"screen": screen.name, "description": screen.description, "left_out": screen.left_out,
            "retains_at": RETAINS_AT, "report_epochs": list(screen.points[0].report_epochs()) if screen.points else [],
            "code_version": code_version(),
            "rows": [point_row(p, store, probe) for p in screen.points]}


def _cell(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def format_markdown(table: dict) -> str:
    """The table as markdown: one line a point, the curves left to stability.json."""
    e = table["report_epochs"]
    head = (["point", "entities", "width", "blocks", "lr", "Grokfast", "fit: status", "fit: epochs", "fit: OOD", "fit: CPU-s"]
            + [f"natural +{x}: OOD (atomic)" for x in e] + ["natural: ID at end", "bridge at end"]
            + [f"control +{x}: OOD" for x in e] + ["verdict"])
    lines = [f"# Stability screen `{table['screen']}`", "", table["description"], "",
             f"A point retains when OOD exact match is at least {table['retains_at']} at +{e[-1]} natural-data "
             "epochs. Values are exact match on the probe sets (OOD compositions; in brackets the OOD atomic facts).",
             "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in table["rows"]:
        fit, nat, ctl = r["fit"], r["natural"], r.get("control", {})
        cells = ([r["point"], r["n_entities"], r["width"], r["blocks"], f"{r['lr']:g}", "on" if r["grokfast"] else "off",
                  fit.get("status"), fit.get("epochs"), fit.get("ood"), fit.get("cpu_seconds")]
                 + [f"{_cell(nat.get(f'ood_{x}'))} ({_cell(nat.get(f'ood_atomic_{x}'))})" for x in e]
                 + [nat.get("id_end"), nat.get("bridge_end")] + [ctl.get(f"ood_{x}") for x in e] + [r["verdict"]])
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if table.get("left_out"):
        lines += ["", f"Left out: {table['left_out']}"]
    return "\n".join(lines) + "\n"


def write_stability(table: dict, folder: Path) -> None:
    write_json(folder / "stability.json", table)
    (folder / "stability.md").write_text(format_markdown(table))


# --- training ------------------------------------------------------------------------------------
def train_point(point: StabilityPoint, store: Store, deadline: float, device=None, log=print) -> None:
    """Fit, then continue (the natural run and its control as one ensemble), within `deadline`."""
    fit = point.fit()
    if load_run(fit, store) is None:
        log(f"point {point.name}: fitting {fit.key()} (both hops full, at most {point.train.steps} steps)")
        train_group([fit], store, device=device, log=log, deadline=deadline)
    fitted = load_run(fit, store)
    if fitted is None or time.time() >= deadline:
        return
    todo = [c for c in point.continuations() if load_run(c, store) is None]
    if todo and not fitted.has_weights():
        log(f"point {point.name}: its fit {fit.key()} is complete but its final weights are not on this machine "
            f"(not committed); the continuations need them: remove {store.run_dir(fit.key())} to fit it again")
        return
    if todo:
        log(f"point {point.name}: continuing {', '.join(c.key() for c in todo)} for {point.epochs} epochs")
        train_group(todo, store, device=device, log=log, deadline=deadline)


def run_screen(screen: Screen, budget_seconds: float, device=None, log=print, table_screen: Screen | None = None) -> dict:
    """Train the screen's points in order within `budget_seconds`, then write and return the table of
    `table_screen` (the whole screen, where `screen` is a part of it). A later call resumes."""
    check_positive("budget-seconds", budget_seconds)
    deadline = time.time() + budget_seconds
    store = Store(sweep_root())
    device = device or default_device()
    for point in screen.points:
        if time.time() >= deadline:
            log(f"budget spent before point {point.name}")
            break
        train_point(point, store, deadline, device, log)
    table = stability_table(table_screen or screen, store)
    write_stability(table, table_dir((table_screen or screen).name))
    return table


# --- what the book shows -----------------------------------------------------------------------------
def load_stability(screen_name: str = "stability") -> dict | None:
    """The committed table of a screen (results/sweep/<screen>/stability.json), None where there is none."""
    path = table_dir(screen_name) / "stability.json"
    return read_json(path) if path.exists() else None


def retention_curves(table: dict) -> "pd.DataFrame":
    """One row per evaluation of every continuation: point, data ('natural' or 'both hops full, control'),
    epoch, OOD exact match and OOD atomic facts."""
    import pandas as pd
    rows = []
    for r in table["rows"]:
        for name, label in (("natural", "natural data"), ("control", "both hops full (control)")):
            for c in r.get(name, {}).get("curve", []):
                rows.append({"point": r["point"], "data": label, "epoch": c["epoch"], "ood": c["ood"],
                             "ood_atomic": c["ood_atomic"]})
    return pd.DataFrame(rows, columns=["point", "data", "epoch", "ood", "ood_atomic"])


def retention_table(table: dict) -> "pd.DataFrame":
    """One row a point: what it moved, the fitting phase, OOD exact match (OOD atomic facts) at each
    report epoch of the natural continuation and the control, the bridge at the end, the reading."""
    import pandas as pd
    epochs = table["report_epochs"]
    rows = []
    for r in table["rows"]:
        nat, ctl, fit = r["natural"], r.get("control", {}), r["fit"]
        row = {"point": r["point"], "entities": r["n_entities"], "width": r["width"], "blocks": r["blocks"],
               "lr": r.get("lr"), "Grokfast": "on" if r["grokfast"] else "off", "fitted": fit.get("status"),
               "fit epochs": fit.get("epochs")}
        for e in epochs:
            row[f"natural +{e}"] = _pair(nat.get(f"ood_{e}"), nat.get(f"ood_atomic_{e}"))
        row["bridge at end"] = nat.get("bridge_end")
        for e in epochs:
            row[f"control +{e}"] = ctl.get(f"ood_{e}")
        row["reading"] = r["verdict"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("point")


def graph_label(row: dict) -> str:
    """The graph a point ran on, in words: entities, relation types, OOD share."""
    return (f"{row['n_entities']} entities, {row['n_relations']} relation types, "
            f"{row['ood_fraction']:.0%} OOD")


def retention_by_point(table: dict) -> "pd.DataFrame":
    """One row per point and report epoch of the natural continuation, for points measured there:
    the graph, the point labelled with its reading, OOD exact match and OOD atomic facts. The book's
    summary of where (graph size, model) the natural objective keeps composition."""
    import pandas as pd
    rows = []
    for r in table["rows"]:
        for e in table["report_epochs"]:
            ood = r["natural"].get(f"ood_{e}")
            if ood is not None:
                rows.append({"graph": graph_label(r), "entities": r["n_entities"],
                             "point": f"{r['point']} ({r['verdict']})", "epoch": f"+{e}", "ood": ood,
                             "ood_atomic": r["natural"].get(f"ood_atomic_{e}"), "reading": r["verdict"]})
    columns = ["graph", "entities", "point", "epoch", "ood", "ood_atomic", "reading"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["entities", "graph"], kind="stable").reset_index(drop=True)


def _pair(ood, atomic) -> str:
    return "-" if ood is None else f"{ood:.2f} ({_cell(atomic)})"


def summary_line(table: dict) -> str:
    """How many points were measured to the end, how many retain, and how the others read."""
    last = table["report_epochs"][-1]
    readings = [r["verdict"] for r in table["rows"]]
    measured = [v for v in readings if v != "open"]
    to_end = [r for r in table["rows"] if retains(r["natural"], last) is not None]
    short = len(measured) - len(to_end)   # read without reaching the end (a capped fit is confounded at once)
    retained = [r["point"] for r in table["rows"] if r["verdict"] == "retains"]
    counts = {v: measured.count(v) for v in dict.fromkeys(measured)}
    return (f"{len(to_end)} of {len(readings)} points measured to +{last} epochs"
            + (f" ({short} more read before it)" if short else "") + "; "
            f"{len(retained)} retain{' (' + ', '.join(retained) + ')' if retained else ''}; readings: "
            + (", ".join(f"{v} {n}" for v, n in counts.items()) or "none yet"))


# --- what a point will cost, before it runs ----------------------------------------------------------
TYPICAL_FIT_EPOCHS = 35   # the fitted points took 23-60 epochs of the natural data's size; the cap bounds it


def _seconds_per_step(summary: dict) -> float | None:
    steps, seconds = summary.get("steps"), summary.get("cpu_seconds")
    return seconds / steps if steps and seconds else None


def _scale(point: StabilityPoint, reference: StabilityPoint) -> float:
    """How much more a step of `point` costs than one of `reference`: the matmul work (width squared,
    blocks) at one batch size; the graph changes the steps an epoch, not a step."""
    return ((point.model.width / reference.model.width) ** 2 * point.model.blocks / reference.model.blocks)


def cost_plan(screen: Screen, store: Store, reference: str | None = None) -> list[dict]:
    """Per point: the CPU seconds a step measured where it ran (fit and continuation), else those of a
    measured point with the same model (a step's cost does not depend on the graph), else scaled from
    the `reference` point's (the screen's first by default) by `_scale`; the steps left (the fit at
    TYPICAL_FIT_EPOCHS epochs, at most its cap; the continuations in full) and the CPU-hours they take."""
    rows = {p.name: point_row(p, store, probe=False) for p in screen.points}
    ref = next(p for p in screen.points if p.name == (reference or screen.points[0].name))

    def rates(p: StabilityPoint) -> tuple[float | None, float | None, str]:
        own = (_seconds_per_step(rows[p.name]["fit"]), _seconds_per_step(rows[p.name]["natural"]))
        if own[0]:
            return own[0], own[1] or own[0], "measured"
        twin = next((q for q in screen.points if q.model == p.model and _seconds_per_step(rows[q.name]["fit"])), None)
        if twin is not None:
            fit, cont = _seconds_per_step(rows[twin.name]["fit"]), _seconds_per_step(rows[twin.name]["natural"])
            return fit, cont or fit, f"as {twin.name}"
        fit, cont = _seconds_per_step(rows[ref.name]["fit"]), _seconds_per_step(rows[ref.name]["natural"])
        return (fit and fit * _scale(p, ref)), (cont and cont * _scale(p, ref)), f"scaled from {ref.name}"

    plan = []
    for p in screen.points:
        r, per_epoch = rows[p.name], p.steps_per_epoch()
        fit_rate, cont_rate, source = rates(p)
        fit_left = 0 if r["fit"]["status"] in ("fitted", "capped") else \
            max(0, min(p.train.steps, TYPICAL_FIT_EPOCHS * per_epoch) - r["fit"].get("steps", 0))
        cont_total = p.epochs * per_epoch
        cont_left = sum(cont_total - (r[k].get("steps", 0) if r[k].get("status") != "complete" else cont_total)
                        for k in ("natural", "control") if k in r) if r["fit"]["status"] != "not started" \
            else cont_total * (2 if p.control else 1)
        seconds = (fit_left * (fit_rate or 0)) + cont_left * (cont_rate or 0)
        plan.append({"point": p.name, "steps_per_epoch": per_epoch, "fit_s_per_step": fit_rate,
                     "continuation_s_per_step": cont_rate, "fit_steps_left": fit_left,
                     "continuation_steps_left": cont_left, "cpu_hours_left": seconds / 3600 if fit_rate else None,
                     "rates": source})
    return plan


def format_plan(plan: list[dict]) -> str:
    head = ["point", "steps/epoch", "s/step fit", "s/step continuation", "fit steps left",
            "continuation steps left", "CPU-h left", "rates"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in plan:
        cells = [r["point"], r["steps_per_epoch"], r["fit_s_per_step"], r["continuation_s_per_step"], r["fit_steps_left"],
                 r["continuation_steps_left"], r["cpu_hours_left"], r["rates"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    total = sum(r["cpu_hours_left"] or 0 for r in plan)
    return "\n".join(lines) + f"\n\nCPU-hours left in all: {total:.1f} (one core at 1 thread)\n"
