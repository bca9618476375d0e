"""Probes of the recursion: logit lens over the named states, bridge/target found, the stage x slot
maps of where they appear, and causal patching between clean and corrupted queries.

PROTOCOL.md section 5. "Bridge found" (the authors' definition): the true bridge entity is the
head's top-1 token at any stage and any slot; "target found": the gold tail appears anywhere.
Every probe hooks the recursion only through the `visit` callback of one forward call, so no
hook outlives the probe.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import Vocab, answer_slot, encode, is_atomic
from .losses import exact_match, supervised_mask


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

    def take(self, n: int) -> "EncodedSet":
        return EncodedSet(self.inputs[:n], self.labels[:n], self.mask[:n], self.bridge[:n], self.target[:n], self.two_hop)

    def __len__(self) -> int:
        return self.inputs.shape[0]


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


@torch.no_grad()
def lens_top1(model, inputs: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """(N, n_stages, 5) top-1 token of the head read at every named state and token slot."""
    out = []
    for sl in _batches(inputs.shape[0], batch_size):
        tops = []
        model(inputs[sl], None, visit=lambda name, z: (tops.append(model.readout(z).argmax(-1)), z)[1])
        out.append(torch.stack(tops, dim=1))                                       # (b, n_stages, 5)
    return torch.cat(out)


@torch.no_grad()
def exact_match_rate(model, s: EncodedSet, batch_size: int = 1024) -> float:
    hits = 0
    for sl in _batches(len(s), batch_size):
        logits, _ = model(s.inputs[sl], s.labels[sl])
        hits += int(exact_match(logits, s.labels[sl], s.mask[sl]).sum())
    return hits / max(len(s), 1)


@torch.no_grad()
def path_summary(model, s: EncodedSet, with_lens: bool) -> dict:
    """Exact match; for two-hop sets and the recursive model also bridge/target found and their maps."""
    out = {"exact_match": exact_match_rate(model, s)}
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


# --- causal patching ------------------------------------------------------------------------
def corrupt_first_hop(queries: np.ndarray, facts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each two-hop query (h, r1, r2, b, t), find a query (h', r1', r2, b', t') from the same
    `facts` with another head entity whose bridge differs and whose answer differs.
    Returns (kept clean queries, their corrupted partners), both (M, 5)."""
    by_head_rel = {(int(h), int(r)): int(t) for h, r, t in facts[:, [0, 1, 4]]}
    heads_by_rel: dict[int, list[tuple[int, int]]] = {}
    for (h, r), t in by_head_rel.items():
        heads_by_rel.setdefault(r, []).append((h, t))
    clean, corrupt = [], []
    for h, r1, r2, b, t in queries:
        cands = heads_by_rel.get(int(r1), [])
        for j in rng.permutation(len(cands)):
            h2, b2 = cands[j]
            t2 = by_head_rel.get((b2, int(r2)))
            if h2 != h and b2 != b and t2 is not None and t2 != t:
                clean.append((h, r1, r2, b, t))
                corrupt.append((h2, r1, r2, b2, t2))
                break
    return np.array(clean, dtype=np.int64).reshape(-1, 5), np.array(corrupt, dtype=np.int64).reshape(-1, 5)


@torch.no_grad()
def patching_map(model, clean: EncodedSet, corrupt: EncodedSet, batch_size: int = 512) -> dict:
    """Run the corrupted query, but replace one named state at one token slot with the clean
    query's state. The restoration rate is how often the answer then becomes the clean answer.

    Only queries whose clean run is answered right count (restoration needs a right answer to restore).
    Returns restoration[n_stages][5], plus the clean and corrupted baselines."""
    P = model.config.prefix_slots
    stages = model.stages
    n_slots = clean.inputs.shape[1]
    hits = torch.zeros(len(stages), n_slots, device=clean.inputs.device)
    base_clean = base_corrupt = 0.0
    answer = 3                                                                     # two-hop answer slot
    for sl in _batches(len(clean), batch_size):
        cached: dict[str, torch.Tensor] = {}
        logits, _ = model(clean.inputs[sl], None, visit=lambda n, z: cached.setdefault(n, z.clone()))
        tgt_clean = clean.target[sl]                                               # (b,)
        right = logits[:, answer].argmax(-1) == tgt_clean                          # (b,) queries that count
        base_clean += float(right.sum())
        logits, _ = model(corrupt.inputs[sl], None)
        base_corrupt += float(((logits[:, answer].argmax(-1) == tgt_clean) & right).sum())
        for si, stage in enumerate(stages):
            for slot in range(n_slots):
                def patch(name, z, stage=stage, slot=slot):
                    if name != stage:
                        return z
                    z = z.clone()
                    z[:, P + slot] = cached[name][:, P + slot]
                    return z
                logits, _ = model(corrupt.inputs[sl], None, visit=patch)
                hits[si, slot] += ((logits[:, answer].argmax(-1) == tgt_clean) & right).sum()
    n_right = max(base_clean, 1.0)
    return {"restoration": (hits / n_right).tolist(), "clean_baseline": base_clean / max(len(clean), 1),
            "corrupt_baseline": base_corrupt / n_right, "n": len(clean), "n_right": int(base_clean), "stages": stages}
