"""Probes on a hand-built model whose inference path is known: the bridge is written at stage
"S1", slot 3, and the answer is read from there at stage "S2". (Causal patching and its
controls: tests/test_patching.py.)"""
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from grokcircuits.science.data import Vocab
from grokcircuits.science.probes import EncodedSet, lens_top1, path_summary

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


def test_lens_reads_the_controls_paths():
    """The hand-built controls of the patching measurement: the lens sees the composer's bridge at
    the answer slot between its two hops, and never sees a bridge in the lookup."""
    from grokcircuits.config import get_profile
    from grokcircuits.science.controls import Composer, Lookup
    from grokcircuits.science.data import build_dataset
    data = build_dataset(get_profile("tiny").data)
    s = EncodedSet.build(data.probe_sets()["train_inferred"][:50], data.vocab, "cpu")   # a random sample
    composer, lookup = Composer(data), Lookup(data)
    c, k = path_summary(composer, s, with_lens=True), path_summary(lookup, s, with_lens=True)
    assert c["exact_match"] == 1.0 and k["exact_match"] == 1.0
    bridge = np.array(c["bridge_map"])                                        # (n_stages, 5)
    between = [composer.stages.index(n) for n in ("H0_L1", "H0_L2", "H0_commit", "H1_L0")]
    assert np.all(bridge[between, 3] == 1.0) and c["bridge_found_tail_slots"] == 1.0
    assert np.array(k["bridge_map"])[:, 3].max() < 0.1     # only by accident (an empty slot reads as token 0, or t = b)
