"""Losses and the per-slot supervision mask."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_mask(labels: torch.Tensor, pad: int, answer_slot: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 5) bool: every non-PAD label slot; with `answer_slot` (B,), only the answer and what follows."""
    mask = labels != pad                                                           # (B, 5)
    if answer_slot is not None:
        slots = torch.arange(labels.shape[1], device=labels.device)               # (5,)
        mask &= slots[None, :] >= answer_slot[:, None]                             # (B, 5)
    return mask


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log of s(x)/sum s(x) with s(x) = x + 1 for x >= 0 and 1/(1 - x) otherwise."""
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """x in float32, or in float64 if it is float64 (the engine's float64 mode for exact equivalence
    tests): half precision is lifted, double precision is never lowered."""
    return x if x.dtype == torch.float64 else x.float()


def loss_dtype(logits: torch.Tensor) -> torch.dtype:
    """The dtype a loss is returned in: float32, or float64 for float64 logits."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def per_slot_nll(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, 5) negative log-likelihood of each label, 0 where unsupervised. Stablemax runs in float64."""
    safe = torch.where(mask, labels, 0)                                            # (B, 5)
    if kind == "stablemax":
        logp = log_stablemax(logits.to(torch.float64))                             # (B, 5, V)
    else:
        logp = F.log_softmax(at_least_float32(logits), dim=-1)                     # (B, 5, V)
    nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)                         # (B, 5)
    return torch.where(mask, nll, torch.zeros_like(nll))


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean over each sequence's supervised slots, then mean over the batch (a scalar)."""
    nll = per_slot_nll(logits, labels, mask, kind)                                 # (B, 5)
    per_sequence = nll.sum(-1) / mask.sum(-1).clamp_min(1)                         # (B,)
    return per_sequence.mean().to(loss_dtype(logits))


def exact_match(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) bool: every supervised slot predicted right (prefix and tail for the recursive model)."""
    right = (logits.argmax(-1) == labels) | ~mask                                  # (B, 5)
    return right.all(-1)
