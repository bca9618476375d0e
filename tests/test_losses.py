"""Stablemax cross-entropy against a direct float64 computation; masks and exact match."""
import math

import torch

from grokcircuits.science.losses import exact_match, sequence_loss, supervised_mask


def direct_stablemax_loss(logits, labels, mask):
    total = 0.0
    for b in range(logits.shape[0]):
        per, n = 0.0, 0
        for i in range(logits.shape[1]):
            if not mask[b, i]:
                continue
            s = [x + 1 if x >= 0 else 1 / (1 - x) for x in logits[b, i].double().tolist()]
            per += -math.log(s[labels[b, i]] / sum(s))
            n += 1
        total += per / max(n, 1)
    return total / logits.shape[0]


def test_stablemax_loss_matches_a_direct_float64_computation():
    torch.manual_seed(0)
    logits = torch.randn(4, 5, 11) * 3
    labels = torch.randint(0, 10, (4, 5))
    labels[0, 4] = 10                                       # PAD: not supervised
    mask = supervised_mask(labels, pad=10)
    got = sequence_loss(logits, labels, mask, "stablemax").item()
    assert abs(got - direct_stablemax_loss(logits, labels, mask)) < 1e-6


def test_softmax_loss_matches_cross_entropy():
    torch.manual_seed(1)
    logits, labels = torch.randn(3, 5, 7), torch.randint(0, 6, (3, 5))
    mask = supervised_mask(labels, pad=6)
    want = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(3, 5).mean(1).mean()
    assert torch.allclose(sequence_loss(logits, labels, mask, "softmax"), want, atol=1e-6)


def test_answer_only_mask_and_exact_match():
    labels = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 4, 5, 0]])   # two-hop; atomic with PAD=0 at the end
    mask = supervised_mask(labels, pad=0, answer_slot=torch.tensor([3, 2]))
    assert mask.tolist() == [[False, False, False, True, True], [False, False, True, True, False]]
    logits = torch.nn.functional.one_hot(labels, 6).float()
    logits[0, 0] = torch.nn.functional.one_hot(torch.tensor(2), 6).float()   # wrong, but not checked
    assert exact_match(logits, labels, mask).tolist() == [True, True]
    assert exact_match(logits, labels, supervised_mask(labels, pad=0)).tolist() == [False, True]
