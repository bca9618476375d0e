"""One run trained alone (`train`), and the loss of one batch for a plain module (`training_loss`).

A run is an ensemble of one: it is cached by the hash of its configuration, checkpointed
atomically and resumed exactly after an interruption (`group.train_group`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from grokcircuits.config import RunConfig
from grokcircuits.science.losses import exact_match, sequence_loss
from grokcircuits.science.runs import Run
from grokcircuits.store import Store
from grokcircuits.training.group import train_group


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
