"""The sweep: where does the recursive model grok, and what does it cost?

    python -m grokcircuits sweep --grid first --budget-seconds 375    # make sweep GRID=first BUDGET=375

Trains a named grid (`grids.py`) as ensembles (configurations that share shapes train together),
under one wall-clock budget: at the budget every unfinished run is stored as "incomplete" with the
steps it reached and its curves so far, and the table is written and printed all the same. The
table (results/sweep/<grid>/table.json and .csv) gives for every point the steps and epochs to each
threshold, the final OOD atomic exact match beside the OOD curve (OOD compositions need the OOD
facts stored first), the standard transformer's OOD exact match at the same graph, the cost and the
device. `choose_gpu_profile` reads a table and names the cheapest point that shows the contrast.
Plain Python (torch and numpy only), for bare GPU machines.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import replace
from pathlib import Path

from grokcircuits.config import ConfigError, RunConfig
from grokcircuits.ops.grids import Grid
from grokcircuits.science.stats import first_crossing
from grokcircuits.store import Store, read_json, results_root, write_json
from grokcircuits.science.models.trm import swiglu_hidden
from grokcircuits.science.runs import default_device, load_run
from grokcircuits.training import group_by_shape, model_flops_per_step, train_group
from grokcircuits.training.state import load_checkpoint

# What the table reads from one curve entry (an evaluation): None where the set was not evaluated.
def _training(e):
    return e.get("training_accuracy")


def _metric(set_name: str, metric: str = "exact_match"):
    return lambda e: e.get(set_name, {}).get(metric)


_id, _ood, _ood_atomic = _metric("test_inferred_iid"), _metric("test_inferred_ood"), _metric("ood_atomic")
_bridge = _metric("test_inferred_ood", "bridge_found")

# (column, reader, threshold): the first crossings the table reports, in steps and in epochs
CROSSINGS = (("training_0.9", _training, 0.9), ("id_0.9", _id, 0.9), ("ood_0.5", _ood, 0.5),
             ("ood_0.9", _ood, 0.9), ("bridge_0.5", _bridge, 0.5))
# The contrast a GPU profile must show (choose_gpu_profile): recursive model groks, standard one does not.
RECURSIVE_OOD_AT_LEAST = 0.5
STANDARD_OOD_AT_MOST = 0.1
ID_ABOVE = 0.9
NEXT_GRID = "the next grid follows: longer, larger lr, more entities"


def sweep_root() -> Path:
    """results/sweep (or under GROKCIRCUITS_RESULTS): the runs' store, and one folder per grid's table."""
    return results_root("sweep")


def table_dir(grid_name: str) -> Path:
    return sweep_root() / grid_name


# --- reading the store ---------------------------------------------------------------------------
def stored(store: Store, config: RunConfig) -> tuple[dict | None, list[dict]]:
    """(record, curves) of a run, complete or incomplete; for a run that is training now (or whose
    process was ended) with no record yet, its last checkpoint's progress ("in progress"); (None, [])
    if it never started."""
    key = config.key()
    if (store.run_dir(key) / "record.json").exists():
        return store.record(key), store.curves(key)
    resumed = load_checkpoint(store.checkpoint_dir(key))
    if resumed is None:
        return None, []
    progress = resumed[0]
    return {"status": "in progress", "steps": progress.step, "wall_seconds": round(progress.wall_seconds, 2),
            "device_seconds": round(progress.gpu_seconds, 2), "config": config.to_dict()}, progress.curves


def _final(curves: list[dict], read) -> float | None:
    return read(curves[-1]) if curves else None


def _steps_per_epoch(record: dict) -> float | None:
    n = record.get("dataset", {}).get("train_examples")
    batch = record.get("config", {}).get("train", {}).get("batch_size")
    if n and batch:
        return n // min(batch, n)
    return record["steps"] / record["epochs"] if record.get("epochs") else None


def _epochs(steps: int | None, per_epoch: float | None) -> float | None:
    return round(steps / per_epoch, 1) if steps is not None and per_epoch else None


def knobs(config: RunConfig) -> dict:
    """The grid's axes of one point, as the table names them."""
    t = config.train
    return {"regime": config.data.regime, "seed": t.seed, "n_entities": config.data.n_entities,
            "width": config.model.width, "lr": t.lr, "weight_decay": t.weight_decay, "grokfast": "on" if t.grokfast_lambda > 0 else "off",
            "steps_planned": t.steps}


def row_of(config: RunConfig, record: dict | None, curves: list[dict],
           standard_record: dict | None, standard_curves: list[dict]) -> dict:
    """One line of the table: a recursive-model point and the standard transformer at its graph."""
    row = {"key": config.key(), **knobs(config), "status": record["status"] if record else "not started"}
    per_epoch = _steps_per_epoch(record) if record else None
    row["steps"] = record["steps"] if record else 0
    row["epochs"] = _epochs(row["steps"], per_epoch)
    steps = [e["step"] for e in curves]
    for name, read, threshold in CROSSINGS:
        hit = first_crossing(steps, [read(e) for e in curves], threshold)
        row[f"steps_to_{name}"], row[f"epochs_to_{name}"] = hit, _epochs(hit, per_epoch)
    row.update(
        final_training_accuracy=_final(curves, _training),
        final_id_exact_match=_final(curves, _id),
        final_ood_exact_match=_final(curves, _ood),
        final_ood_atomic_exact_match=_final(curves, _ood_atomic),
        final_bridge_found=_final(curves, _bridge),
        standard_status=standard_record["status"] if standard_record else "not started",
        standard_id_exact_match=_final(standard_curves, _id),
        standard_ood_exact_match=_final(standard_curves, _ood),
        standard_ood_exact_match_max=max((v for v in map(_ood, standard_curves) if v is not None), default=None),
        wall_seconds=record.get("wall_seconds") if record else None,
        gpu_seconds=record.get("gpu_seconds") if record else None,
        device_seconds=_device_seconds(record) if record else None,
        device=record.get("device") if record else None,
    )
    for name, _, _ in CROSSINGS:
        row[f"seconds_to_{name}"] = _seconds_to(row, row[f"steps_to_{name}"])
    return row


def _device_seconds(record: dict) -> float | None:
    """The run's share of its device (the ensemble's time split among its members): recorded as
    `device_seconds` (GPU- or CPU-seconds); records older than that field give GPU-seconds where
    measured, else their wall seconds over the ensemble's size."""
    if record.get("device_seconds") is not None:
        return record["device_seconds"]
    if record.get("gpu_seconds"):
        return record["gpu_seconds"]
    wall = record.get("wall_seconds")
    return round(wall / max(record.get("ensemble_size") or 1, 1), 2) if wall is not None else None


def _seconds_to(row: dict, step: int | None) -> float | None:
    """The run's share of the device until `step` (`device_seconds`), in proportion of the steps."""
    cost = row["device_seconds"]
    if step is None or not cost or not row["steps"]:
        return None
    return round(cost * step / row["steps"], 2)


def sweep_table(grid: Grid, store: Store) -> list[dict]:
    rows = []
    for c in grid.recursive:
        standard = grid.standard_for(c)
        rows.append(row_of(c, *stored(store, c), *stored(store, standard)))
    return rows


# --- the choice of a GPU profile -----------------------------------------------------------------
def criteria(row: dict) -> dict[str, bool]:
    """The contrast the book's GPU profile must show, criterion by criterion."""
    def at_least(v, x):
        return v is not None and v >= x

    def above(v, x):
        return v is not None and v > x
    return {
        "recursive model reaches OOD exact match >= 0.5": at_least(row["final_ood_exact_match"], RECURSIVE_OOD_AT_LEAST),
        "recursive model exceeds 0.9 on ID": above(row["final_id_exact_match"], ID_ABOVE),
        "standard transformer stays <= 0.1 on OOD": (row["standard_ood_exact_match_max"] is not None
                                                     and row["standard_ood_exact_match_max"] <= STANDARD_OOD_AT_MOST),
        "standard transformer exceeds 0.9 on ID": above(row["standard_id_exact_match"], ID_ABOVE),
    }


def choose_gpu_profile(table) -> dict | None:
    """The cheapest point (device seconds to OOD exact match 0.5, then steps) in which the recursive
    model on natural data reaches OOD exact match >= 0.5 and the standard transformer at the same
    graph stays <= 0.1 on OOD, both above 0.9 on ID; None if no point does. `table` is a table
    (dict with "rows") or its list of rows."""
    rows = table["rows"] if isinstance(table, dict) else table
    ok = [r for r in rows if r.get("regime", "natural") == "natural" and all(criteria(r).values())]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["seconds_to_ood_0.5"] if r["seconds_to_ood_0.5"] is not None else float("inf"),
                                  r["steps_to_ood_0.5"] if r["steps_to_ood_0.5"] is not None else float("inf")))


# --- the choice of a CPU profile: a point whose five regimes show the claims -----------------------
BOTH_FULL_OOD_AT_LEAST = 0.9   # (a) the both-hops-full recursive model composes OOD: a mature circuit for claim 3


def point_of(row: dict) -> tuple:
    """A grid point at one seed: the knobs of a row without its data regime (tables written before
    the seed was a column hold seed 0 only)."""
    return tuple((k, row.get(k, 0) if k == "seed" else row[k])
                 for k in ("n_entities", "width", "lr", "weight_decay", "grokfast", "steps_planned", "seed"))


def profile_points(rows: list[dict]) -> list[dict]:
    """Per grid point that has both-hops-full or natural rows: (a) the both-hops-full recursive model
    reaches OOD exact match >= 0.9; (b) the natural one shows the contrast (`criteria`); with the steps,
    epochs and device seconds to each, None where not reached; `a_trained_steps` the steps the
    both-hops-full run trained (0: not started; None: the grid has no such run)."""
    points: dict[tuple, dict] = {}
    for r in rows:
        p = points.setdefault(point_of(r), {"point": describe_point(r), "a": False, "b": False,
                                            "a_steps": None, "a_epochs": None, "a_seconds": None,
                                            "b_steps": None, "b_epochs": None, "b_seconds": None,
                                            "a_trained_steps": None, "natural_criteria": None})
        if r.get("regime") == "both_full":
            p["a_trained_steps"] = r["steps"]
            if r["steps_to_ood_0.9"] is not None:
                p.update(a=True, a_steps=r["steps_to_ood_0.9"], a_epochs=r["epochs_to_ood_0.9"],
                         a_seconds=_seconds_to(r, r["steps_to_ood_0.9"]))
        if r.get("regime", "natural") == "natural":
            p["natural_criteria"] = criteria(r)
            if all(p["natural_criteria"].values()):
                p.update(b=True, b_steps=r["steps_to_ood_0.5"], b_epochs=r["epochs_to_ood_0.5"],
                         b_seconds=r["seconds_to_ood_0.5"])
    return list(points.values())


def a_status(point: dict) -> str:
    """Condition (a) of a point in words: reached, not reached in the steps trained, or not trained."""
    if point["a"]:
        return f"reached at {point['a_steps']} steps ({point['a_epochs']} epochs)"
    trained = point.get("a_trained_steps")
    if trained is None:
        return "not trained (no both-hops-full run in this grid)"
    return f"not reached in {trained} steps" if trained else "not started"


def choose_cpu_profile(rows: list[dict]) -> dict | None:
    """The cheapest point (device seconds to both thresholds) that meets (a) and (b); failing that, the
    cheapest that meets (a) alone (the profile is then set from (a), with (b) open); None if none does."""
    def cost(p):
        return (p["a_seconds"] or 0) + (p["b_seconds"] or 0)
    points = profile_points(rows)
    both = [p for p in points if p["a"] and p["b"]]
    if both:
        return {**min(both, key=cost), "meets": "a and b"}
    only_a = [p for p in points if p["a"]]
    return {**min(only_a, key=cost), "meets": "a only: (b) is open"} if only_a else None


def note_for(choice: dict | None, rows: list[dict]) -> str:
    if not rows:
        return f"no point of this grid has been trained yet; {NEXT_GRID}"
    incomplete = sum(r["status"] != "complete" for r in rows)
    tail = f" ({incomplete} of {len(rows)} runs did not finish within the budget)" if incomplete else ""
    if choice is None:
        return (f"no point shows the contrast (recursive model OOD >= {RECURSIVE_OOD_AT_LEAST} and ID > {ID_ABOVE}; "
                f"standard transformer OOD <= {STANDARD_OOD_AT_MOST} and ID > {ID_ABOVE}){tail}: {NEXT_GRID}")
    return (f"cheapest point that shows the contrast: {describe_point(choice)}, OOD exact match 0.5 after "
            f"{choice['steps_to_ood_0.5']} steps ({choice['seconds_to_ood_0.5']} device seconds){tail}")


def describe_point(row: dict) -> str:
    return (f"{row['n_entities']} entities, width {row['width']}, lr {row['lr']:g}, weight decay "
            f"{row['weight_decay']:g}, Grokfast {row['grokfast']}" + (f", seed {row['seed']}" if row.get("seed") else ""))


# --- the table on disk and on screen -------------------------------------------------------------
def make_table(grid: Grid, store: Store, **about) -> dict:
    rows = sweep_table(grid, store)
    choice = choose_gpu_profile(rows)
    devices = sorted({r["device"] for r in rows if r["device"]})
    cpu_choice = choose_cpu_profile(rows)
    return {"grid": grid.name, "description": grid.description, "left_out": grid.left_out, "devices": devices,
            "on_gpu": any(r.get("gpu_seconds") for r in rows), **about, "rows": rows,
            "choice": choice["key"] if choice else None, "note": note_for(choice, rows),
            "points": profile_points(rows), "cpu_profile_choice": cpu_choice}


def write_table(table: dict, folder: Path) -> None:
    write_json(folder / "table.json", table)
    buf = io.StringIO()
    rows = table["rows"]
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (folder / "table.csv").write_text(buf.getvalue())


PRINTED = (("regime", "regime"), ("seed", "seed"), ("n_entities", "ent"), ("width", "D"), ("lr", "lr"), ("weight_decay", "wd"), ("grokfast", "gf"),
           ("status", "status"), ("steps", "steps"), ("steps_to_training_0.9", "train.9"), ("steps_to_id_0.9", "id.9"),
           ("steps_to_ood_0.5", "ood.5"), ("steps_to_ood_0.9", "ood.9"), ("steps_to_bridge_0.5", "bridge.5"),
           ("final_ood_exact_match", "ood"), ("final_ood_atomic_exact_match", "oodatom"),
           ("standard_ood_exact_match", "std_ood"), ("wall_seconds", "wall_s"), ("device_seconds", "dev_s"))


def format_table(table: dict) -> str:
    def cell(v):
        if v is None:
            return "-"
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = [[h for _, h in PRINTED]] + [[cell(r.get(k)) for k, _ in PRINTED] for r in table["rows"]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(PRINTED))]
    text = "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)
    devices = ", ".join(table.get("devices") or []) or "none yet"
    return f"grid {table['grid']}: {table['description']}\ndevice: {devices}\n{text}\nnote: {table['note']}"


def load_tables() -> list[dict]:
    """Every sweep table written so far (for the cost chapter)."""
    return [read_json(p) for p in sorted(sweep_root().glob("*/table.json"))]


# --- planning: a rough cost model (the GPU kit measures the real rates) ---------------------------
PLANNING = {   # assumed on one H100, for planning only
    "matmul_flops_per_s": 400e12,    # half the measured 800 TFLOP/s bf16 peak: small batched matrices
    "bytes_per_s": 2.5e12,           # of the 3.0 TB/s a device-to-device copy reaches
    "launch_floor_s": {"trm": 1.5e-3, "gpt": 0.5e-3},   # one replay of the step's CUDA graph (hundreds of kernels)
    "compile_s": 60.0,               # torch.compile and CUDA-graph capture of one ensemble's step
    "cpu_flops_per_s": 5e10,
}


def trm_traffic_bytes(config: RunConfig) -> float:
    """Activation bytes one step of the recursive model moves through device memory (bf16, unfused
    matmul outputs written and read once): per block application and sample, the token MLP's
    gate/up output and product (6 D x hidden), the channel MLP's (6 S x hidden), the residuals and
    norms (8 S x D); the backward pass counted like the FLOPs (twice, on the applications with
    gradient). At the first grid's width 128 the token MLP dominates and a step is memory-bound."""
    m, B = config.model, config.train.batch_size
    S, D = m.prefix_slots + 5, m.width
    ht, hc = swiglu_hidden(S, m.expansion, m.token_multiple), swiglu_hidden(D, m.expansion, m.token_multiple)
    per_application = 2 * B * (6 * D * ht + 6 * S * hc + 8 * S * D)
    return per_application * (m.h_cycles * (m.l_cycles + 1) * m.blocks + 2 * (m.l_cycles + 1) * m.blocks)


def seconds_per_step(configs: list[RunConfig], device_type: str) -> float:
    """Planning estimate of one step of `configs` as one ensemble: the larger of its launch floor, its
    FLOPs at the assumed matmul rate and (recursive model) its activation traffic at the assumed bandwidth."""
    flops = sum(model_flops_per_step(c) for c in configs)
    if device_type != "cuda":
        return flops / PLANNING["cpu_flops_per_s"]
    arch = configs[0].model.architecture
    traffic = sum(trm_traffic_bytes(c) for c in configs) if arch == "trm" else 0.0
    return max(PLANNING["launch_floor_s"][arch], flops / PLANNING["matmul_flops_per_s"], traffic / PLANNING["bytes_per_s"])


def estimate_seconds(configs: list[RunConfig], device_type: str) -> float:
    """Planning estimate of training `configs` as one ensemble: a compile, then the longest run's steps
    (evaluations, data building and process start left out)."""
    compiled = device_type == "cuda" and any(c.train.compile for c in configs)
    steps = max(c.train.steps for c in configs)
    return (PLANNING["compile_s"] if compiled else 0.0) + steps * seconds_per_step(configs, device_type)


def plan(grid: Grid, device_type: str = "cuda") -> list[dict]:
    """The ensembles the grid trains as and their estimated seconds (`sweep --plan`)."""
    return [{"runs": len(g), "architecture": g[0].model.architecture, "width": g[0].model.width,
             "steps": max(c.train.steps for c in g), "ms_per_step": round(1e3 * seconds_per_step(g, device_type), 2),
             "estimated_seconds": round(estimate_seconds(g, device_type))} for g in group_by_shape(grid.configs())]


# --- running it ----------------------------------------------------------------------------------
def only(grid: Grid, architecture: str | None = None, regimes: tuple[str, ...] = (), keys: tuple[str, ...] = ()) -> Grid:
    """The grid restricted to one architecture, some data regimes and/or some runs by key (`sweep --arch`,
    `--regimes`, `--keys`): to train its runs in separate processes, one a core, each writing its own
    runs to the same store. On a CPU an ensemble adds little (`results/bench/cpu.json`: 14.4
    model-steps/s for one run, 15.9 for three as one ensemble, at one thread), so two runs in two
    processes, one a core, train nearly twice as fast as the two as one ensemble in one process."""
    unknown = sorted(set(keys) - {c.key() for c in grid.configs()})
    if unknown:
        raise ConfigError(f"keys={','.join(unknown)} are not runs of grid {grid.name!r}; its runs: "
                          f"{', '.join(c.key() for c in grid.configs())}")
    keep = lambda c: ((architecture is None or c.model.architecture == architecture)
                      and (not regimes or c.model.architecture != "trm" or c.data.regime in regimes)
                      and (not keys or c.key() in keys))
    return replace(grid, recursive=tuple(c for c in grid.recursive if keep(c)),
                    standard=tuple(c for c in grid.standard if keep(c)))


def write_current_table(grid: Grid, **about) -> dict:
    """The table of what the store holds now, written and returned; trains nothing (`sweep --table`).
    The budget and elapsed time of the last training call are kept from the table it wrote."""
    earlier = table_dir(grid.name) / "table.json"
    if earlier.exists():
        kept = read_json(earlier)
        about = {**{k: kept[k] for k in ("budget_seconds", "elapsed_seconds") if k in kept}, **about}
    table = make_table(grid, Store(sweep_root()), **about)
    write_table(table, table_dir(grid.name))
    return table


def run_sweep(grid: Grid, budget_seconds: float, device=None, log=print, stop_after: int | None = None,
              table_grid: Grid | None = None) -> dict:
    """Train the grid within `budget_seconds` of wall time, then write and print its table (the table of
    `table_grid`, the whole grid, where `grid` is a part of it: `only`). A later call resumes the runs
    left incomplete (and loads the finished ones).

    The grid's waves (`Grid.waves`: the runs that decide a profile first) train in turn; within a
    wave, groups of one shape train as one ensemble each, cheapest first, and each group gets the
    share of the time left that its estimated cost bears to the cost of the wave's groups still to
    come, so a group that finishes early leaves its time to the next and every group gets some time.
    `stop_after` stops every ensemble after that many steps of this call, as the budget would."""
    start = time.time()
    deadline = start + budget_seconds
    device = device or default_device()
    store = Store(sweep_root())
    waves = [[c for c in wave if load_run(c, store) is None] for wave in grid.waves()]
    waves = [sorted(group_by_shape(w), key=lambda g: estimate_seconds(g, device.type)) for w in waves if w]
    n_runs, n_groups = sum(len(g) for w in waves for g in w), sum(len(w) for w in waves)
    log(f"sweep {grid.name}: {n_runs} of {len(grid.configs())} runs to train in {n_groups} ensemble(s), "
        f"budget {budget_seconds:.0f} s on {device}")
    number = 0
    for groups in waves:
        costs = [estimate_seconds(g, device.type) for g in groups]
        for i, group in enumerate(groups):
            number += 1
            left = deadline - time.time()
            if left <= 0:
                log(f"  budget spent: {n_groups - number + 1} ensemble(s) not started")
                break
            group_deadline = min(deadline, time.time() + left * costs[i] / sum(costs[i:]))
            log(f"  ensemble {number}/{n_groups}: {len(group)} {group[0].model.architecture} run(s), estimated "
                f"{costs[i]:.0f} s, given until {group_deadline - start:.0f} s of the budget")
            train_group(group, store, device=device, log=log, deadline=group_deadline, stop_after=stop_after)
    table_grid = table_grid or grid
    table = make_table(table_grid, store, budget_seconds=budget_seconds, elapsed_seconds=round(time.time() - start, 1))
    write_table(table, table_dir(table_grid.name))
    log(format_table(table))
    return table
