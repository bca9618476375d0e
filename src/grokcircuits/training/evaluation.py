"""Evaluation of a member and the rules that decide which EMA weights are kept as snapshots.

A member is evaluated as a plain `TRM`/`GPT` module holding its EMA weights, with the probes'
`path_summary`, in float32: the curves then give the same numbers a later probe of the same
weights gives.

Snapshots (book/appendix/protocol.md, section 5; claim 1): log-spaced evaluations (dense early, where the circuit
forms), the first evaluation where training accuracy reaches `snapshot_at_training_accuracy`
(memorised), the evaluation just before and the first at which OOD exact match reaches
`snapshot_at_ood_exact_match` (grokked), and the end.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from grokcircuits.config import TrainConfig
from grokcircuits.science.models.stacked import Layout
from grokcircuits.science.probes import EncodedSet, path_summary
from grokcircuits.science.runs import TRAINING_SETS

OOD_SET = "test_inferred_ood"


def evaluate(model: torch.nn.Module, probe_sets: dict[str, EncodedSet], with_lens: bool) -> dict:
    model.eval()
    out = {name: path_summary(model, s, with_lens) for name, s in probe_sets.items()}
    if all(n in out for n in TRAINING_SETS):
        out["training_accuracy"] = float(np.mean([out[n]["exact_match"] for n in TRAINING_SETS]))
    return out


@torch.no_grad()
def load_member_(model: torch.nn.Module, stacked: dict[str, torch.Tensor], layout: Layout, m: int) -> torch.nn.Module:
    """Copy member m of stacked weights into a plain module (on the same device), in place."""
    for key, value in model.state_dict().items():
        value.copy_(stacked[layout.aliases[key]][m])
    return model


def evaluation_steps(steps: int, eval_every: int) -> list[int]:
    """The steps after which a run is evaluated (besides step 0): every eval_every, and the last."""
    return sorted(set(range(eval_every, steps, eval_every)) | {steps})


def log_spaced(n: int, k: int) -> list[int]:
    """k distinct integers in 1..n, geometrically spaced from 1 to n (all of them if k >= n)."""
    if k <= 0:
        return []
    if k >= n:
        return list(range(1, n + 1))
    out: list[int] = []
    for i in range(k):
        ideal = n ** (i / (k - 1)) if k > 1 else n
        out.append(max(int(math.floor(ideal + 0.5)), out[-1] + 1 if out else 1))
    return out


def log_snapshot_steps(train: TrainConfig) -> list[int]:
    """The log-spaced evaluations kept as snapshots (`train.snapshots` of them, the end included)."""
    evals = evaluation_steps(train.steps, train.eval_every)
    return [evals[i - 1] for i in log_spaced(len(evals), train.snapshots)]


def snapshots_due(train: TrainConfig, progress, step: int, entry: dict) -> list[int]:
    """Which steps' EMA weights to keep after the evaluation `entry` at `step`: `step` itself and/or
    `progress.previous_eval_step` (the evaluation just before the first that reaches the OOD threshold).
    Updates the rule state in `progress`."""
    due = set()
    if step in log_snapshot_steps(train):
        due.add(step)
    if not progress.reached_training_accuracy and entry.get("training_accuracy", 0.0) >= train.snapshot_at_training_accuracy:
        progress.reached_training_accuracy = True
        due.add(step)
    ood = entry.get(OOD_SET, {}).get("exact_match", 0.0)
    if not progress.reached_ood_exact_match and ood >= train.snapshot_at_ood_exact_match:
        progress.reached_ood_exact_match = True
        due.add(step)
        if progress.previous_eval_step >= 0:
            due.add(progress.previous_eval_step)
    return sorted(due)
