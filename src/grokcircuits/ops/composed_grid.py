"""A grid's both-hops-half runs read by chapter 02's split (science/composed.py): the OOD queries'
exact match by whether each of their facts was composed in training, one row a run, the model's
departure from the `cpu` profile's model named. `python -m grokcircuits composed --grid NAME` writes
results/sweep/<grid>/composed.json and composed.md."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from grokcircuits.config import ModelConfig, RunConfig
from grokcircuits.ops.grids import CPU_TRM, WD03_TRAIN, Grid, wd03_runs
from grokcircuits.ops.sweep import sweep_root
from grokcircuits.science import composed
from grokcircuits.science.runs import load_run
from grokcircuits.store import Store, write_json


def model_departure(model: ModelConfig, base: ModelConfig = CPU_TRM) -> str:
    """'field=value, ...' where `model` differs from `base`; 'none' where it does not."""
    diff = [f"{f.name}={getattr(model, f.name)}" for f in fields(ModelConfig) if getattr(model, f.name) != getattr(base, f.name)]
    return ", ".join(diff) or "none"


def departure(config: RunConfig) -> str:
    """The model's departure from the `cpu` profile's, and the lr's where it differs from the profile's."""
    model = model_departure(config.model)
    if config.train.lr == WD03_TRAIN.lr:                                   # the reference runs' training
        return model
    return f"{'' if model == 'none' else model + ', '}lr={config.train.lr:g}"


def reference_runs() -> list[RunConfig]:
    """The `cpu` profile's both-hops-half run at seed 0 (the paper's model, 40k steps): the row every
    variant is read against."""
    recursive, _ = wd03_runs((0,))
    return [c for c in recursive if c.data.regime == "both_half"]


REFERENCE_SEEDS = (0, 1, 2, 3, 4)   # the `cpu` profile's both hops half seeds, read by the finer split


def split_row(config: RunConfig, store: Store, device=None, split=composed.run_split) -> dict:
    """One run's row: its model's departure, steps and epochs trained, and each cell's exact match and
    size (`split`: the four cells or the finer split by role); `status` says when the run is missing or
    has no final weights."""
    row = {"key": config.key(), "model": departure(config), "seed": config.train.seed}
    run = load_run(config, store)
    if run is None or run.record.get("status") != "complete" or not run.has_weights():
        return {**row, "status": "not started" if run is None else "not finished"}
    row.update(status="read", steps=run.record.get("steps"), epochs=run.record.get("epochs"))
    for cell, v in split(run, device).items():
        row[cell] = v
    return row


def composed_table(grid: Grid, store: Store | None = None, device=None) -> dict:
    """The four cells for the reference run and the grid's runs; the finer split by role for the `cpu`
    profile's five seeds and the grid's runs."""
    store = store or Store(sweep_root())
    configs = [c for c in grid.recursive if c.data.regime == "both_half"]
    seeds = [c for c in wd03_runs(REFERENCE_SEEDS)[0] if c.data.regime == "both_half"]
    return {"grid": grid.name, "description": grid.description,
            "rows": [split_row(c, store, device) for c in [*reference_runs(), *configs]],
            "role_rows": [split_row(c, store, device, composed.run_role_split) for c in [*seeds, *configs]]}


def _cell(v: dict | None) -> str:
    if not v:
        return "-"
    return "no query" if not v["n"] else f"{v['exact_match']:.2f} (n {v['n']})"


def format_markdown(table: dict) -> str:
    head = ["model and lr (departure from the `cpu` profile's)", "steps", "status", *composed.CELLS]
    lines = [f"# OOD compositions by their facts' history: grid `{table['grid']}`", "", table["description"], "",
             "Exact match on the OOD compositions, split by whether each fact was composed in training in the "
             "role the query gives it (science/composed.py); the first row is the `cpu` profile's both hops "
             "half run at seed 0 (40k steps).", "",
             "| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for r in table["rows"]:
        lines.append("| " + " | ".join([r["model"], str(r.get("steps", "-")), r["status"],
                                        *(_cell(r.get(c)) for c in composed.CELLS)]) + " |")
    return "\n".join(lines + format_roles(table.get("role_rows", []))) + "\n"


def format_roles(rows: list[dict]) -> list[str]:
    """The finer split as markdown lines: a fact composed in its own role, only in the other, or never."""
    if not rows:
        return []
    head = ["model and lr", "seed", "steps", "status", *composed.ROLE_CELLS]
    return ["", "## By role: composed in its own role, only in the other, or never", "",
            "The same queries split by each fact's history in every role (science/composed.py, `ROLE_CELLS`): "
            "a hop that answers facts never composed in any role reads them from the stored atomic facts. "
            "The first rows are the `cpu` profile's both hops half runs (40k steps).", "",
            "| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |",
            *("| " + " | ".join([r["model"], str(r["seed"]), str(r.get("steps", "-")), r["status"],
                                 *(_cell(r.get(c)) for c in composed.ROLE_CELLS)]) + " |" for r in rows)]


def write_composed(table: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "composed.json", table)
    (folder / "composed.md").write_text(format_markdown(table))
