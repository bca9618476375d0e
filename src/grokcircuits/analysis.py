"""Tables the chapters draw and judge: curves as long frames, final values with intervals across
seeds, threshold crossings, and the similarity of two inference-path maps."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import REGIMES
from .stats import first_crossing, mean_interval

METRIC_NAMES = {
    "exact_match": "exact match",
    "bridge_found": "bridge found (any stage, any slot)",
    "bridge_found_tail_slots": "bridge found at the answer/END slot",
    "target_found": "target found anywhere (the paper's 'final answer accuracy')",
}


def condition_of(run) -> str:
    """How the book names a run: the regime as the paper labels it, or the architecture/transfer role."""
    c = run.config
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


def final_values(runs, sets, metrics=("exact_match",)) -> pd.DataFrame:
    """The last evaluation of every run, summarised across seeds per condition."""
    frame = curves_frame(runs, sets, metrics)
    last = frame[frame["step"] == frame.groupby(["condition", "seed"])["step"].transform("max")]
    rows = []
    for (cond, s, m), g in last.groupby(["condition", "set", "metric"], sort=False):
        mean, lo, hi = mean_interval(g["value"])
        rows.append({"condition": cond, "set": s, "metric": m, "mean": mean, "low": max(lo, 0.0),
                     "high": min(hi, 1.0), "seeds": len(g)})
    return pd.DataFrame(rows)


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
