"""Probes of the recursion: logit lens over the named states, bridge/target found, and the stage x
slot maps of where they appear (causal patching lives in `patching`).

book/appendix/protocol.md, section 5. "Bridge found" (the authors' definition): the true bridge entity is the
head's top-1 token at any stage and any slot; "target found": the gold tail appears anywhere.
Every probe reads the recursion through the named hooks of `hooks` (one forward call each), so no
hook outlives the probe.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from grokcircuits.science.data import Vocab, answer_slot, encode, is_atomic
from grokcircuits.science.hooks import run_with_hooks
from grokcircuits.science.losses import exact_match, supervised_mask


@dataclass
class EncodedSet:
    """A probe set on the device: token ids plus what each query should produce."""
    inputs: torch.Tensor       # (N, 5)
    labels: torch.Tensor       # (N, 5)
    mask: torch.Tensor         # (N, 5) slots that exact match checks
    bridge: torch.Tensor       # (N,) bridge entity token, -1 for atomic facts
    target: torch.Tensor       # (N,) tail entity token
    two_hop: bool

    @staticmethod
    def build(examples: np.ndarray, vocab: Vocab, device, answer_only: bool = False) -> "EncodedSet":
        inputs, labels = encode(examples, vocab)                                   # (N, 5) each
        to = lambda a: torch.as_tensor(a, device=device)
        labels_t = to(labels)
        slot = to(answer_slot(examples)) if answer_only else None
        atomic = is_atomic(examples)
        bridge = np.where(atomic, -1, vocab.entity_token(np.maximum(examples[:, 3], 0)))
        return EncodedSet(to(inputs), labels_t, supervised_mask(labels_t, vocab.pad, slot), to(bridge),
                          to(vocab.entity_token(examples[:, 4])), bool((~atomic).all()))

    def select(self, rows: torch.Tensor) -> "EncodedSet":
        """The queries at `rows` (a boolean mask or indices)."""
        return EncodedSet(self.inputs[rows], self.labels[rows], self.mask[rows], self.bridge[rows], self.target[rows],
                          self.two_hop)

    def take(self, n: int) -> "EncodedSet":
        return self.select(slice(None, n))

    def __len__(self) -> int:
        return self.inputs.shape[0]


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


@torch.no_grad()
def lens_top1(model, inputs: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """(N, n_stages, 5) top-1 token of the head read at every named state and token slot.
    Read inside a hook rather than from a cache: a cache of every state would hold n_stages
    full-width states per query."""
    out = []
    for sl in _batches(inputs.shape[0], batch_size):
        tops: dict[str, torch.Tensor] = {}

        def read(state, name):                                                     # state (b, S, D)
            tops[name] = model.readout(state).argmax(-1)                           # (b, 5)
        run_with_hooks(model, inputs[sl], {name: read for name in model.stages})
        out.append(torch.stack([tops[n] for n in model.stages], dim=1))            # (b, n_stages, 5)
    return torch.cat(out)


@torch.no_grad()
def exact_match_rate(model, s: EncodedSet, batch_size: int = 1024) -> float:
    hits = 0
    for sl in _batches(len(s), batch_size):
        logits, _ = model(s.inputs[sl], s.labels[sl])
        hits += int(exact_match(logits, s.labels[sl], s.mask[sl]).sum())
    return hits / max(len(s), 1)


@torch.no_grad()
def exact_match_rates(model, s: EncodedSet, batch_size: int = 1024) -> tuple[float, float]:
    """(exact match over the supervised slots, exact match at the answer slot alone), one pass.
    The second has one definition for every model, whatever slots its training supervised (the
    recursive model also copies the prefix; the standard transformer is trained on the answer)."""
    full = answer = 0
    for sl in _batches(len(s), batch_size):
        logits, _ = model(s.inputs[sl], s.labels[sl])                              # (b, 5, V)
        labels, target = s.labels[sl], s.target[sl]                                # (b, 5), (b,)
        full += int(exact_match(logits, labels, s.mask[sl]).sum())
        # the answer slot: 2 for atomic facts (their label slot 2 is the tail), else 3 (slot 2 is r2)
        slot = torch.where(labels[:, 2] == target, 2, 3)                           # (b,)
        predicted = logits.argmax(-1).gather(1, slot[:, None]).squeeze(1)          # (b,)
        answer += int((predicted == target).sum())
    n = max(len(s), 1)
    return full / n, answer / n


@torch.no_grad()
def path_summary(model, s: EncodedSet, with_lens: bool) -> dict:
    """Exact match (over the supervised slots, and at the answer slot alone); for two-hop sets and
    the recursive model also bridge/target found and their maps."""
    full, answer = exact_match_rates(model, s)
    out = {"exact_match": full, "answer_exact_match": answer}
    if with_lens and s.two_hop:
        top = lens_top1(model, s.inputs)                                           # (N, n_stages, 5)
        is_bridge = top == s.bridge[:, None, None]                                 # (N, n_stages, 5)
        is_target = top == s.target[:, None, None]                                 # (N, n_stages, 5)
        out.update(
            bridge_found=float(is_bridge.flatten(1).any(1).float().mean()),
            # stricter: the bridge at the answer or END slot, not in the copied prefix (h, r1, r2)
            bridge_found_tail_slots=float(is_bridge[:, :, 3:].flatten(1).any(1).float().mean()),
            target_found=float(is_target.flatten(1).any(1).float().mean()),
            bridge_map=is_bridge.float().mean(0).tolist(),                         # [n_stages][5]
            target_map=is_target.float().mean(0).tolist(),
        )
    return out
