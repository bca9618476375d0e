"""What a run's checkpoint holds: its progress (host-side bookkeeping) and its tensors, one file per
run (`checkpoints/<key>/last.pt`), written atomically and loaded with weights_only=True.

A checkpoint belongs to one run, not to the ensemble it trained in, so a later call may resume the
run in an ensemble of other runs, or alone. Nothing random needs saving: initialisation is seeded,
the batch order depends only on (seed, epoch) and dropout masks only on (seed, step).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from grokcircuits.store import load_tensors, save_tensors


@dataclass
class Progress:
    """A run's bookkeeping across calls: where it is, its curves, losses since the last evaluation,
    its time, and the state of its snapshot rules."""
    step: int = 0
    curves: list = field(default_factory=list)
    loss_sum: float = 0.0                 # sum of the step losses since the last evaluation
    loss_count: int = 0
    wall_seconds: float = 0.0             # training + evaluation + compilation + checkpoints
    train_seconds: float = 0.0            # the ensemble's wall time over the chunks this run trained in
    eval_seconds: float = 0.0             # its own evaluations and snapshots
    compile_seconds: float = 0.0          # compilation, warm-up and graph capture of its ensemble(s)
    gpu_seconds: float = 0.0              # its share: training / ensemble size, + own evaluation, + compile share
    ensemble_size: int = 1
    snapshot_steps: list = field(default_factory=list)
    reached_training_accuracy: bool = False
    reached_ood_exact_match: bool = False
    previous_eval_step: int = -1          # the latest evaluation, whose EMA weights are held (-1: none yet)


@dataclass
class RunTensors:
    """A run's tensors as plain (unstacked) state dicts on the CPU."""
    model: dict[str, torch.Tensor]        # the trained weights (every key of the plain model's state dict)
    ema: dict[str, torch.Tensor]          # their EMA (what evaluations and the final weights use)
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]
    grad_filter: dict[str, torch.Tensor]  # Grokfast's gradient EMA (empty when off)
    count: float                          # AdamW updates applied
    loss_scale: float
    growth: int
    previous_ema: dict[str, torch.Tensor] = field(default_factory=dict)   # EMA at the last evaluation


def checkpoint_path(ckpt_dir: Path) -> Path:
    return ckpt_dir / "last.pt"


def save_checkpoint(ckpt_dir: Path, progress: Progress, tensors: RunTensors) -> None:
    save_tensors(checkpoint_path(ckpt_dir), {"progress": asdict(progress), "tensors": vars(tensors)})


def load_checkpoint(ckpt_dir: Path) -> tuple[Progress, RunTensors] | None:
    """The run's last checkpoint, loaded to the CPU, or None."""
    path = checkpoint_path(ckpt_dir)
    if not path.exists():
        return None
    state = load_tensors(path, "cpu")
    return Progress(**state["progress"]), RunTensors(**state["tensors"])
