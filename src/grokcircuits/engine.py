"""The training engine: one run (`train`) or many of one shape trained as one ensemble (`train_group`).

A run is cached by the hash of its configuration, checkpointed atomically and resumed exactly after
an interruption. Runs that share an architecture and its shapes train together: their weights carry
a leading member axis and every matmul is batched over it, so one GPU step advances them all; each
keeps its own data, batch order, hyperparameters, optimiser, EMA, evaluations, snapshots and record
(`grokcircuits.training`). On the GPU the whole step is compiled and captured as one CUDA graph; the
recursive model runs its authors' bf16 numerics; AdamW with linear warm-up then a constant rate,
sign-SGD for the learned prefix vector, optional Grokfast, and an EMA of the weights that every
evaluation and saved weight uses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import RunConfig
from .losses import exact_match, sequence_loss
from .runs import TRAINING_SETS, Run, dataset, default_device, device_name, examples_for, load_run, transfer_dataset  # noqa: F401 (re-exported)
from .store import Store
from .training import MAX_MEMBERS, build_step, group_by_shape, model_flops_per_step, train_group  # noqa: F401 (re-exported)
from .training.ensemble import lr_factor  # noqa: F401 (re-exported)

__all__ = ["train", "train_group", "group_by_shape", "build_step", "model_flops_per_step", "MAX_MEMBERS", "lr_factor",
           "training_loss", "Run", "load_run", "dataset", "transfer_dataset", "examples_for", "default_device",
           "device_name", "TRAINING_SETS"]


def train(config: RunConfig, store: Store, device: torch.device | None = None, stop_after: int | None = None,
          log=None, deadline: float | None = None) -> Run | None:
    """Train one run (an ensemble of one), or load it when the store already has it. `stop_after` stops
    (with a checkpoint) after that many steps, as an interruption would; the next call resumes."""
    return train_group([config], store, device=device, log=log, deadline=deadline, stop_after=stop_after)[config.key()]


def training_loss(model, loss_kind: str, halting_weight: float, compiled: bool):
    """The loss of one batch (inputs, labels, mask) -> scalar for a plain module, optionally
    torch.compile'd: the sequence loss plus the weighted halting loss (BCE against "sequence fully
    correct"). The ensemble's per-member loss (`training.step.member_losses`) is the same arithmetic."""
    def loss_fn(x, y, m):
        logits, halt = model(x, y)                                                  # (B, 5, V), (B,)
        loss = sequence_loss(logits, y, m, loss_kind)
        if halt is not None and halting_weight > 0:
            correct = exact_match(logits.detach(), y, m).to(halt.dtype)             # (B,)
            loss = loss + halting_weight * F.binary_cross_entropy_with_logits(halt, correct)
        return loss
    return torch.compile(loss_fn) if compiled else loss_fn
