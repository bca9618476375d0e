"""One member of an ensemble: its run's training set, batch order and probe sets.

Members of one ensemble share shapes but not data: each keeps its own training set (regimes inject
different numbers of queries, so the sizes differ), its own batch order and its own probe sets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from grokcircuits.config import RunConfig
from grokcircuits.science.data import answer_slot, encode
from grokcircuits.science.losses import supervised_mask
from grokcircuits.science.probes import EncodedSet
from grokcircuits.science.runs import examples_for


class BatchOrder:
    """The training rows each step reads: one permutation per epoch from a generator seeded by
    (seed, epoch) alone, so any step's batch is known without replaying the steps before it."""

    def __init__(self, seed: int, n_train: int, batch_size: int):
        self.seed, self.n_train, self.batch_size = seed, n_train, batch_size
        self.steps_per_epoch = n_train // batch_size
        self._epoch, self._perm = -1, None

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n_train, generator=g)
        return self._perm

    def rows(self, start: int, n: int) -> torch.Tensor:
        """(n, B) int64 row indices of steps start .. start + n - 1."""
        B, parts, k = self.batch_size, [], 0
        while k < n:   # one slice per epoch the steps touch
            epoch, offset = divmod(start + k, self.steps_per_epoch)
            count = min(n - k, self.steps_per_epoch - offset)
            parts.append(self.permutation(epoch)[offset * B:(offset + count) * B].view(count, B))
            k += count
        return torch.cat(parts) if parts else torch.empty(0, B, dtype=torch.int64)


@dataclass
class MemberData:
    """A run's training set (on the CPU until the ensemble gathers it) and its probe sets (on the device)."""
    config: RunConfig
    vocab_size: int
    inputs: torch.Tensor                    # (N, 5)
    labels: torch.Tensor                    # (N, 5)
    mask: torch.Tensor                      # (N, 5) supervised slots
    probe_sets: dict[str, EncodedSet]
    sizes: dict
    order: BatchOrder = field(init=False)

    def __post_init__(self):
        t = self.config.train
        self.order = BatchOrder(t.seed, self.n_train, min(t.batch_size, self.n_train))

    @property
    def n_train(self) -> int:
        return self.inputs.shape[0]

    @property
    def batch_size(self) -> int:
        return self.order.batch_size


_PROBES: dict = {}


def _probe_sets(config: RunConfig, probe_examples: dict, vocab, device) -> dict[str, EncodedSet]:
    """Probe sets, shared by the members that read the same data (a regime's seeds, say)."""
    t = config.train
    key = (config.data, config.transfer, t.answer_only_loss, t.eval_size, str(device))
    if key not in _PROBES:
        if len(_PROBES) > 32:
            _PROBES.clear()
        _PROBES[key] = {name: EncodedSet.build(ex, vocab, device, t.answer_only_loss).take(t.eval_size)
                        for name, ex in probe_examples.items()}
    return _PROBES[key]


def load_member_data(config: RunConfig, device: torch.device) -> MemberData:
    vocab, train_examples, probe_examples, sizes = examples_for(config)
    inputs_np, labels_np = encode(train_examples, vocab)                           # (N, 5) each
    labels = torch.as_tensor(labels_np)
    slot = torch.as_tensor(answer_slot(train_examples)) if config.train.answer_only_loss else None
    return MemberData(config, vocab.size, torch.as_tensor(inputs_np), labels, supervised_mask(labels, vocab.pad, slot),
                      _probe_sets(config, probe_examples, vocab, device), sizes)


def gather_training_sets(members: list[MemberData], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Every member's training set in one table on the device: inputs, labels, mask (R, 5) and each
    member's first row (M,), so a batch is one gather of (member offset + row)."""
    offsets = np.cumsum([0] + [m.n_train for m in members[:-1]])
    cat = lambda name: torch.cat([getattr(m, name) for m in members]).to(device)
    return cat("inputs"), cat("labels"), cat("mask"), offsets
