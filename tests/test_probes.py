"""Probes on a hand-built model whose inference path is known: the bridge is written at stage
"S1", slot 3, and the answer is read from there at stage "S2"."""
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from grokcircuits.data import Vocab
from grokcircuits.probes import EncodedSet, corrupt_first_hop, lens_top1, path_summary, patching_map

VOCAB = Vocab(n_entities=20, n_relations=4, n_special=2)
V = VOCAB.size
BRIDGE_OF = {h: (h + 7) % 20 for h in range(20)}         # (h, r1) -> b ignores r1 in this toy
TARGET_OF = {b: (3 * b + 1) % 20 for b in range(20)}     # (b, r2) -> t ignores r2


class KnownPathModel(nn.Module):
    """States are one-hot token vectors per slot (B, 5, V); the head reads them as they are."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(prefix_slots=0)
        self.stages = ["Init", "S1", "S2"]

    def readout(self, z):
        return z

    def forward(self, inputs, labels=None, visit=None):
        visit = visit or (lambda n, z: z)
        oh = lambda t: nn.functional.one_hot(t, V).float()
        z = visit("Init", torch.zeros(inputs.shape[0], 5, V))
        s1 = oh(inputs.clone())                                              # copies h, r1, r2 (and PAD)
        s1[:, 3] = oh(torch.tensor([BRIDGE_OF[int(h)] for h in inputs[:, 0]]))
        s1 = visit("S1", s1)
        bridge = s1[:, 3].argmax(-1)                                         # the answer depends on slot 3 only
        s2 = s1.clone()
        s2[:, 3] = oh(torch.tensor([TARGET_OF[int(b)] for b in bridge]))
        s2[:, 4] = oh(torch.full((inputs.shape[0],), VOCAB.end))
        s2 = visit("S2", s2)
        return s2, None


def queries(heads):
    rows = []
    for h in heads:
        b = BRIDGE_OF[h]
        rows.append([h, 0, 1, b, TARGET_OF[b]])
    return np.array(rows, dtype=np.int64)


def test_lens_and_path_summary_find_the_bridge_where_it_is():
    model = KnownPathModel()
    s = EncodedSet.build(queries(range(5)), VOCAB, "cpu")
    top = lens_top1(model, s.inputs)
    assert top.shape == (5, 3, 5)
    assert torch.equal(top[:, 1, 3], s.bridge) and torch.equal(top[:, 2, 3], s.target)
    out = path_summary(model, s, with_lens=True)
    assert out["exact_match"] == 1.0 and out["bridge_found"] == 1.0 and out["target_found"] == 1.0
    bridge_map = np.array(out["bridge_map"])
    assert bridge_map[1, 3] == 1.0 and bridge_map.sum() == 1.0               # only at S1, slot 3
    assert out["bridge_found_tail_slots"] == 1.0


def test_patching_restores_the_answer_only_where_the_bridge_lives():
    model = KnownPathModel()
    clean, corrupt = queries(range(0, 5)), queries(range(10, 15))
    res = patching_map(model, EncodedSet.build(clean, VOCAB, "cpu"), EncodedSet.build(corrupt, VOCAB, "cpu"))
    r = np.array(res["restoration"])
    assert res["clean_baseline"] == 1.0 and res["corrupt_baseline"] == 0.0 and res["n_right"] == 5
    assert r[1, 3] == 1.0 and r[2, 3] == 1.0                                   # the bridge slot, then the answer slot
    assert r[0].sum() == 0 and r[1, [0, 1, 2, 4]].sum() == 0                   # nothing else carries the answer


def test_corrupted_partner_changes_the_bridge_and_the_answer():
    rng = np.random.default_rng(0)
    facts = []
    for h in range(30):                                          # two relations per entity, a function
        for r in (0, 1):
            facts.append([h, r, -1, -1, (h * 7 + r * 3 + 1) % 30])
    facts = np.array(facts, dtype=np.int64)
    fact = {(h, r): t for h, r, _, _, t in facts}
    qs = np.array([[h, 0, 1, fact[(h, 0)], fact[(fact[(h, 0)], 1)]] for h in range(10)], dtype=np.int64)
    clean, corrupt = corrupt_first_hop(qs, facts, rng)
    assert len(clean) > 0 and clean.shape == corrupt.shape
    for (h, r1, r2, b, t), (h2, r1b, r2b, b2, t2) in zip(clean, corrupt):
        assert (r1, r2) == (r1b, r2b) and h != h2 and b != b2 and t != t2
        assert fact[(h2, r1)] == b2 and fact[(b2, r2)] == t2                   # a real path of the graph
