"""Tables the chapters draw and judge: curves as long frames, final values with intervals across
seeds, threshold crossings, and the similarity of two inference-path maps."""
from __future__ import annotations

import numpy as np
import pandas as pd

from grokcircuits.config import REGIMES
from grokcircuits.science import composed, linear_probe
from grokcircuits.science.stats import first_crossing, mean_interval
from grokcircuits.science.verdicts import TRANSFER_SETS
from grokcircuits.pages import chapters
from grokcircuits.science.runs import load_run

METRIC_NAMES = {
    "exact_match": "exact match (every supervised slot)",
    "answer_exact_match": "answer-slot exact match",
    "bridge_found": "bridge found (any stage, any slot)",
    "bridge_found_tail_slots": "bridge found at the answer/END slot",
    "bridge_decoded": "bridge decoded by a linear probe (one state)",
    "target_found": "target found anywhere (the paper's 'final answer accuracy')",
}

SET_NAMES = {
    "train_inferred": "training compositions",
    "test_inferred_iid": "held-out ID compositions",
    "test_inferred_ood": "OOD compositions",
    "id_atomic": "ID atomic facts",
    "ood_atomic": "OOD atomic facts",
    "new_atomic": "new facts",
    "old_atomic": "retained old facts",
    "old_inferred": "retained old compositions",
    "new_old": "new+old (new first hop)",
    "old_new": "old+new (new second hop)",
    "new_new": "new+new",
}


def named(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with query sets and metrics under their names for the page (SET_NAMES, METRIC_NAMES)."""
    out = frame.copy()
    for col, names in (("set", SET_NAMES), ("metric", METRIC_NAMES)):
        if col in out:
            out[col] = out[col].map(lambda k, names=names: names.get(k, k))
    return out


def condition_of(run) -> str:
    """How the book names a run (or a RunConfig): the regime as the paper labels it, or the
    architecture/transfer role."""
    c = getattr(run, "config", run)
    if c.model.architecture == "gpt":
        return "standard transformer"
    if c.transfer is not None:
        if c.init_from is None:
            return "from scratch (control)"
        return f"fine-tuned from {REGIMES[c.init_regime].label}"
    return REGIMES[c.data.regime].label


def curves_frame(runs, sets, metrics=("exact_match",)) -> pd.DataFrame:
    rows = []
    for run in runs:
        cond = condition_of(run)
        for e in run.curves:
            for s in sets:
                for m in metrics:
                    v = e.get(s, {}).get(m)
                    if v is not None:
                        rows.append({"condition": cond, "seed": run.config.train.seed, "step": e["step"],
                                     "set": s, "metric": m, "value": v})
    return pd.DataFrame(rows, columns=["condition", "seed", "step", "set", "metric", "value"])


def mean_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% interval across seeds at every step."""
    def agg(g):
        m, lo, hi = mean_interval(g["value"])
        return pd.Series({"mean": m, "low": max(lo, 0.0), "high": min(hi, 1.0), "seeds": len(g)})
    keys = ["condition", "set", "metric", "step"]
    return frame.groupby(keys)[["value"]].apply(agg).reset_index()


RISING_BY = 0.05    # a curve still rises when it gained this much over the last quarter of its steps


def still_rising(steps, values, by: float = RISING_BY) -> bool:
    """Whether a curve gained at least `by` between 3/4 of its last step and its end: a premise that
    more training could still bring (the verdicts then say NOT SHOWN, never DOES NOT HOLD)."""
    points = [(s, v) for s, v in zip(steps, values) if v is not None]
    if len(points) < 2:
        return False
    end_step, end_value = points[-1]
    earlier = [v for s, v in points if s <= 0.75 * end_step]
    return bool(earlier) and end_value - earlier[-1] >= by


def final_values(runs, sets, metrics=("exact_match",)) -> pd.DataFrame:
    """The last evaluation of every run, summarised across seeds per condition; with whether some
    seed's curve is still rising at its end (`still_rising`) and the most steps and epochs trained."""
    frame = curves_frame(runs, sets, metrics)
    last = frame[frame["step"] == frame.groupby(["condition", "seed"])["step"].transform("max")]
    epochs = {(condition_of(r), r.config.train.seed): (getattr(r, "record", None) or {}).get("epochs") for r in runs}
    rows = []
    for (cond, s, m), g in last.groupby(["condition", "set", "metric"], sort=False):
        mean, lo, hi = mean_interval(g["value"])
        curves = frame[(frame["condition"] == cond) & (frame["set"] == s) & (frame["metric"] == m)]
        rising = any(still_rising(c["step"].tolist(), c["value"].tolist()) for _, c in curves.groupby("seed"))
        trained = [epochs.get((cond, seed)) for seed in g["seed"]]
        rows.append({"condition": cond, "set": s, "metric": m, "mean": mean, "low": max(lo, 0.0),
                     "high": min(hi, 1.0), "seeds": len(g), "rising": rising, "steps": int(g["step"].max()),
                     "epochs": max((e for e in trained if e is not None), default=None)})
    return pd.DataFrame(rows)


SEED_COLUMNS = ["condition", "seed", "set", "metric", "value", "rising", "steps", "epochs"]


def seed_values(runs, sets, metrics=("exact_match",)) -> pd.DataFrame:
    """The last evaluation of every run, one row per (condition, seed, set, metric): its value,
    whether that seed's curve is still rising at its end (`still_rising`), and the steps and
    epochs it trained. The per-seed table the verdicts judge (final_values summarises it)."""
    frame = curves_frame(runs, sets, metrics)
    epochs = {(condition_of(r), r.config.train.seed): (getattr(r, "record", None) or {}).get("epochs") for r in runs}
    rows = []
    for (cond, seed, s, m), g in frame.groupby(["condition", "seed", "set", "metric"], sort=False):
        g = g.sort_values("step")
        rows.append({"condition": cond, "seed": int(seed), "set": s, "metric": m, "value": float(g["value"].iloc[-1]),
                     "rising": still_rising(g["step"].tolist(), g["value"].tolist()), "steps": int(g["step"].iloc[-1]),
                     "epochs": epochs.get((cond, seed))})
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def probe_seed_values(runs, device=None) -> pd.DataFrame:
    """Rows shaped like `seed_values`: the linear probe's bridge decoded on the OOD compositions of
    each run (linear_probe.run_probe, memoised in the run's store)."""
    rows = [{"condition": condition_of(r), "seed": r.config.train.seed, "set": "test_inferred_ood",
             "metric": "bridge_decoded", "value": float(linear_probe.run_probe(r, device)["bridge_decoded"]), "rising": False,
             "steps": int(r.record.get("steps", 0)), "epochs": r.record.get("epochs")} for r in runs]
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def composed_cells(runs, regime: str, device=None) -> pd.DataFrame:
    """One regime's OOD compositions split by whether each hop's fact was composed in training
    (`composed.run_split`, memoised), a row per seed and cell: the table
    `verdicts.composition_beyond_composed_facts` judges. Runs whose weights and memo are both missing
    are left out."""
    rows = []
    for r in runs:
        if r.config.data.regime != regime or not composed.can_split(r):
            continue
        for cell, v in composed.run_split(r, device).items():
            rows.append({"seed": r.config.train.seed, "cell": cell, "n": v["n"], "exact_match": v["exact_match"]})
    return pd.DataFrame(rows, columns=["seed", "cell", "n", "exact_match"])


def composed_listing(by_regime: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The page's table of `composed_cells` for several regimes: a row per regime and seed, a column
    per cell of composed.CELLS, each 'exact match (n queries)', 'no query' where a cell is empty."""
    rows = []
    for regime, t in by_regime.items():
        for seed, g in t.groupby("seed", sort=True):
            cells = {r.cell: (f"{r.exact_match:.2f} (n {int(r.n)})" if r.n else "no query") for r in g.itertuples()}
            rows.append({"regime": REGIMES[regime].label, "seed": int(seed),
                         **{c: cells.get(c, "no query") for c in composed.CELLS}})
    return pd.DataFrame(rows, columns=["regime", "seed", *composed.CELLS]).set_index(["regime", "seed"])


def seed_listing(table: pd.DataFrame, condition: str, set_: str, metric: str, missing: str = "not run") -> str:
    """'seed 0: 0.99, seed 1: 0.98': one condition, set and metric of a `seed_values` table."""
    rows = table[(table["condition"] == condition) & (table["set"] == set_) & (table["metric"] == metric)]
    return ", ".join(f"seed {r.seed}: {format_measure(r.value)}" for r in rows.sort_values("seed").itertuples()) or missing


def lookup(table: pd.DataFrame, condition: str, set_: str, metric: str) -> tuple[float, float, float]:
    row = table[(table["condition"] == condition) & (table["set"] == set_) & (table["metric"] == metric)]
    if row.empty:
        return (float("nan"),) * 3
    r = row.iloc[0]
    return (float(r["mean"]), float(r["low"]), float(r["high"]))


def crossings(runs, set_: str, metric: str, thresholds=(0.5, 0.9)) -> pd.DataFrame:
    """Per condition and threshold: how many seeds crossed, and the mean first step among those."""
    rows = []
    by_cond: dict[str, list] = {}
    for run in runs:
        by_cond.setdefault(condition_of(run), []).append(run)
    for cond, rs in by_cond.items():
        for th in thresholds:
            steps = [first_crossing([e["step"] for e in r.curves], [e.get(set_, {}).get(metric) for e in r.curves], th)
                     for r in rs]
            hit = [s for s in steps if s is not None]
            rows.append({"condition": cond, "threshold": th, "seeds_crossed": f"{len(hit)}/{len(rs)}",
                         "mean_first_step": float(np.mean(hit)) if hit else None})
    return pd.DataFrame(rows)


def crossing_summary(runs, set_: str, metrics, thresholds) -> pd.DataFrame:
    """For the page: per condition and metric, when each threshold was first reached, as
    'step 2,000 (2/3 seeds)' (the mean over the seeds that got there) or 'not reached (0/3 seeds)'."""
    cross = pd.concat([crossings(runs, set_, m, thresholds).assign(metric=METRIC_NAMES.get(m, m)) for m in metrics])

    def cell(r):
        hit = f"({r['seeds_crossed']} seeds)"
        return "not reached " + hit if _missing(r["mean_first_step"]) else f"step {r['mean_first_step']:,.0f} {hit}"
    cross["first reached"] = cross.apply(cell, axis=1)
    cross["threshold"] = cross["threshold"].map(lambda th: f"first step at {th:g} or above")
    return cross.pivot_table(index=["condition", "metric"], columns="threshold", values="first reached",
                             aggfunc="first", sort=False)


def memorisation_table(runs, set_: str = "new_atomic", at: float = 0.9, early_share: float = 0.1) -> pd.DataFrame:
    """Per run (condition, seed): the first step at which `set_` reached exact match `at`, as a share
    of the run's steps, and whether that came within its first `early_share` (the paper: new atomic
    facts memorised within the first tenth of fine-tuning)."""
    rows = []
    for r in runs:
        steps = [e["step"] for e in r.curves]
        first = first_crossing(steps, [e.get(set_, {}).get("exact_match") for e in r.curves], at)
        total = r.record.get("steps") or steps[-1]
        rows.append({"condition": condition_of(r), "seed": r.config.train.seed, "steps": total,
                     f"first step at {at:g}": first, "share of the run": None if first is None else first / total,
                     f"within the first {early_share:g}": first is not None and first <= early_share * total})
    return pd.DataFrame(rows).set_index(["condition", "seed"])


def cosine(a, b) -> float:
    """Cosine similarity of two maps (any shape); 1 = the same pattern, 0 = disjoint."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(a @ b / (na * nb))


def map_frame(stage_slot_map, stages, value_name="value") -> pd.DataFrame:
    slots = ["h", "r1", "r2", "answer", "END"]
    arr = np.asarray(stage_slot_map, float)
    return pd.DataFrame([{"stage": st, "slot": slots[j], value_name: float(arr[i, j])}
                         for i, st in enumerate(stages) for j in range(arr.shape[1])])


def last_value(run, set_: str, metric: str = "exact_match") -> float:
    """The value at the run's last evaluation."""
    return float(run.curves[-1][set_][metric])




def transfer_table(pretrained, fine_tuned, metric: str = "exact_match") -> pd.DataFrame:
    """One row per fine-tuning run: its condition and seed, whether it is the from-scratch control,
    the OOD exact match its own pretraining run ended with (NaN for the control), and its final
    `metric` on each transfer set. The per-seed table chapter 03's verdict decides maturity on."""
    pre_by_key = {p.key: p for p in pretrained}
    rows = []
    for f in fine_tuned:
        parent = pre_by_key.get(f.config.init_from)
        if f.config.init_from is not None and parent is None:
            raise ValueError(f"fine-tuned run {f.key} starts from {f.config.init_from}, which is not among the pretrained runs")
        steps = [e["step"] for e in f.curves]
        rows.append({"condition": condition_of(f), "seed": f.config.train.seed, "is_control": parent is None,
                     "pretrain_ood_exact_match": last_value(parent, "test_inferred_ood") if parent else float("nan"),
                     **{s: last_value(f, s, metric) for s in TRANSFER_SETS},
                     "new_old_rising": still_rising(steps, [e.get("new_old", {}).get(metric) for e in f.curves]),
                     "steps": f.record.get("steps"), "epochs": f.record.get("epochs")})
    return pd.DataFrame(rows)


def transfer_by_regime(per_run: pd.DataFrame, grokking_criterion: float) -> pd.DataFrame:
    """Chapter 03 side by side: one row per pretraining condition (the from-scratch control last),
    with its seeds, how many of them start from a mature circuit (their own pretraining reached OOD
    exact match `grokking_criterion`), and per transfer set the mean over seeds with every seed's
    value ("0.42 (s0 0.87, s1 0.16, s2 0.23)"). `per_run`: transfer_table's rows."""
    rows = []
    order = sorted(per_run["condition"].unique(), key=lambda c: (per_run.loc[per_run["condition"] == c, "is_control"].all(), c))
    for condition in order:
        part = per_run[per_run["condition"] == condition].sort_values("seed")
        control = bool(part["is_control"].all())
        mature = part["pretrain_ood_exact_match"].astype(float) >= grokking_criterion
        row = {"condition": condition, "seeds": len(part),
               "mature circuit (pretraining grokked)": "-" if control else f"{int(mature.sum())} of {len(part)}"}
        for s in TRANSFER_SETS:
            values = part[s].astype(float)
            row[SET_NAMES.get(s, s)] = (f"{values.mean():.2f} (" + ", ".join(f"s{int(seed)} {v:.2f}" for seed, v
                                                                           in zip(part["seed"], values)) + ")")
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")


def load_planned(profile, store, seeds=None) -> tuple[list, pd.DataFrame]:
    """(the planned runs at `seeds` found in `store`, each once; a table of which chapters use each
    planned run and whether it is there)."""
    by_key, used_by, rows = {}, {}, []
    for chapter, configs in chapters.planned_runs(profile, seeds).items():
        for c in configs:
            used_by.setdefault(c.key(), []).append(chapter[:2])
            by_key.setdefault(c.key(), c)
    runs = []
    for key, c in by_key.items():
        run = load_run(c, store)
        if run is not None:
            runs.append(run)
        rows.append({"condition": condition_of(c), "seed": c.train.seed, "chapters": ", ".join(used_by[key]),
                     "in the store": run is not None})
    return runs, pd.DataFrame(rows)


def cost_table(runs, criterion: float) -> pd.DataFrame:
    """One row per pretraining run of the recursive model: steps and epochs trained, and the first
    evaluation (in optimiser steps, epochs and seconds of its wall time) at which OOD exact match
    reached `criterion` (NaN when it never did)."""
    rows = []
    for r in runs:
        if r.config.model.architecture != "trm" or r.config.transfer is not None:
            continue
        steps = [e["step"] for e in r.curves]
        hit = first_crossing(steps, [e["test_inferred_ood"]["exact_match"] for e in r.curves], criterion)
        secs = next((e["wall_seconds"] for e in r.curves if e["step"] == hit), None)
        epochs = r.record.get("epochs")
        per_step = float(epochs) / r.record["steps"] if epochs and r.record["steps"] else float("nan")
        rows.append({"regime": r.config.data.regime, "condition": condition_of(r), "seed": r.config.train.seed,
                     "steps_trained": r.record["steps"], "epochs_trained": float("nan") if epochs is None else float(epochs),
                     "final_ood_exact_match": last_value(r, "test_inferred_ood"),
                     "steps_to_criterion": float("nan") if hit is None else float(hit),
                     "epochs_to_criterion": float("nan") if hit is None else hit * per_step,
                     "seconds_to_criterion": float("nan") if secs is None else float(secs), "device": r.record["device"]})
    return pd.DataFrame(rows, columns=COST_TABLE_COLUMNS)


COST_TABLE_COLUMNS = ["regime", "condition", "seed", "steps_trained", "epochs_trained", "final_ood_exact_match",
                      "steps_to_criterion", "epochs_to_criterion", "seconds_to_criterion", "device"]


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _number(x: float, digits: int) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 and np.isfinite(x) else f"{x:.{digits}f}"


def format_measure(v, digits: int = 2, missing: str = "not reached") -> str:
    """A number as a reader wants it: an interval (mean, low, high) as 'mean [low, high]', a
    missing value (None or NaN) as `missing`, text unchanged."""
    if _missing(v):
        return missing
    if isinstance(v, (tuple, list)) and len(v) == 3:
        m, lo, hi = (float("nan") if x is None else float(x) for x in v)
        if np.isnan(m):
            return missing
        if np.isinf(lo) and np.isinf(hi):
            return f"{_number(m, digits)} [no interval from one seed]"
        return f"{_number(m, digits)} [{_number(lo, digits)}, {_number(hi, digits)}]"
    if isinstance(v, float):
        return _number(v, digits)
    return str(v)


def readable(frame: pd.DataFrame, digits: int = 3, missing: str = "not reached") -> pd.DataFrame:
    """A table for the page: floats rounded, None and NaN written as `missing`."""
    def cell(v):
        if _missing(v):
            return missing
        return round(v, digits) if isinstance(v, float) else v
    return frame.map(cell) if hasattr(frame, "map") else frame.applymap(cell)


def probe_values(runs, device=None) -> pd.DataFrame:
    """Rows shaped like final_values: the linear probe's bridge decoded on the OOD
    compositions, mean and 95% interval over seeds, per condition."""
    by_condition: dict[str, list] = {}
    for run in runs:
        by_condition.setdefault(condition_of(run), []).append(run)
    rows = []
    for condition, rs in by_condition.items():
        values = [linear_probe.run_probe(r, device)["bridge_decoded"] for r in rs]
        mean, low, high = mean_interval(values)
        rows.append({"condition": condition, "set": "test_inferred_ood", "metric": "bridge_decoded", "mean": mean,
                     "low": max(low, 0.0), "high": min(high, 1.0), "seeds": len(values), "rising": False,
                     "steps": max(int(r.record.get("steps", 0)) for r in rs),
                     "epochs": max((r.record.get("epochs") or 0) for r in rs) or None})
    return pd.DataFrame(rows)
