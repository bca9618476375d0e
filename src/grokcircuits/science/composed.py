"""Which OOD compositions a model answers, split by whether each of the query's two facts was itself
composed in training.

An OOD test query (h, r1, r2) rests on two OOD atomic facts: its first hop (h, r1) -> b and its
second hop (b, r2) -> t. The natural data never compose an OOD fact; the augmented regimes compose
some of them with ID facts (the first hop, the second, or both); a fact counts as composed in the
role the query gives it (a first hop as the first hop of a training composition, a second hop as the
second hop of one). A model that composes *as a rule*
answers OOD queries whatever its facts' history; a model that learnt composition *fact by fact*
answers only those whose facts it saw composed. The four cells (both hops composed in training, the
first only, the second only, neither) tell them apart, and the first cell is the split's own
positive control: a model that does not answer the queries whose facts it was trained to compose
cannot show which of the two it is.
"""
from __future__ import annotations

import numpy as np
import torch

from grokcircuits.science.data import TwoHopData
from grokcircuits.science.losses import exact_match
from grokcircuits.science.probes import EncodedSet
from grokcircuits.science.runs import dataset, default_device

CELLS = ("both hops composed", "first hop only", "second hop only", "neither composed")


def composed_hops(data: TwoHopData, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, second), (N,) bool each: whether each query's first hop (h, r1) is the first hop of some
    training composition, and whether its second hop (b, r2) is the second hop of one. `queries` are
    two-hop rows [h, r1, r2, b, t] (N, 5)."""
    first, second = fact_roles(data, queries)                                   # (N,) each
    return first == OWN, second == OWN


def cell_of(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(N,) index into CELLS of each query."""
    return np.where(first & second, 0, np.where(first, 1, np.where(second, 2, 3)))


def split_exact_match(correct: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict[str, dict]:
    """{cell: {"n": queries in the cell, "exact_match": share answered (NaN when empty)}}, from each
    query's correctness (N,) bool and its composed hops."""
    cells = cell_of(first, second)                                              # (N,)
    out = {}
    for i, name in enumerate(CELLS):
        hit = correct[cells == i]
        out[name] = {"n": int(hit.size), "exact_match": float(hit.mean()) if hit.size else float("nan")}
    return out


# --- the finer split: a fact composed in its own role, only in the other, or never -------------------
# Both hops half composes some OOD facts as first hops and some as second hops, so a fact outside its
# role's cell may still have been composed in the other role. A hop that answers facts *never*
# composed in any role reads them from the stored atomic facts: that hop composes as a rule.
OWN, OTHER, NEVER = 0, 1, 2     # a fact's status: composed in its own role, only in the other, never
ROLE_CELLS = {"both in their roles": (OWN, OWN),
              "first never composed, second in its role": (NEVER, OWN),
              "first in its role, second never composed": (OWN, NEVER),
              "first composed as a second hop only, second in its role": (OTHER, OWN),
              "first in its role, second composed as a first hop only": (OWN, OTHER),
              "both never composed": (NEVER, NEVER)}


def fact_roles(data: TwoHopData, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, second), (N,) int each: whether each query's first fact (h, r1) is the first hop of some
    training composition (OWN), else the second hop of one (OTHER), else neither (NEVER); the same for
    its second fact (b, r2) with the roles swapped. `queries` are rows [h, r1, r2, b, t] (N, 5)."""
    train = data.train_inferred                                                 # (T, 5) [h, r1, r2, b, t]
    as_first = {(int(h), int(r)) for h, r in train[:, [0, 1]]}
    as_second = {(int(b), int(r)) for b, r in train[:, [3, 2]]}

    def status(pairs: np.ndarray, own: set, other: set) -> np.ndarray:       # (N, 2) -> (N,)
        return np.array([OWN if (int(a), int(b)) in own else OTHER if (int(a), int(b)) in other else NEVER
                         for a, b in pairs], dtype=np.int64)
    return status(queries[:, [0, 1]], as_first, as_second), status(queries[:, [3, 2]], as_second, as_first)


def split_by_roles(correct: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict[str, dict]:
    """{cell of ROLE_CELLS: {"n", "exact_match" (NaN when empty)}} from each query's correctness (N,)
    and its facts' statuses (N,) each."""
    out = {}
    for name, (a, b) in ROLE_CELLS.items():
        hit = correct[(first == a) & (second == b)]
        out[name] = {"n": int(hit.size), "exact_match": float(hit.mean()) if hit.size else float("nan")}
    return out


def ood_by_roles(model, data: TwoHopData, device) -> dict[str, dict]:
    """The OOD test compositions' exact match in each cell of ROLE_CELLS."""
    queries = data.test_inferred_ood                                           # (N, 5)
    return split_by_roles(correct_per_query(model, queries, data, device), *fact_roles(data, queries))


def run_role_split(run, device=None) -> dict[str, dict]:
    """`ood_by_roles` on a finished run's final EMA weights, memoised beside `run_split`."""
    device = device or default_device()
    return run.store.memo("composed_roles", _memo_key(run),
                          lambda: ood_by_roles(run.load_model(None, device), dataset(run.config.data), device))


@torch.no_grad()
def correct_per_query(model, queries: np.ndarray, data: TwoHopData, device) -> np.ndarray:
    """(N,) bool: exact match of each query (every supervised slot), one forward pass a batch."""
    s = EncodedSet.build(queries, data.vocab, device)
    right = []
    for i in range(0, len(s), 1024):
        sl = slice(i, i + 1024)
        logits, _ = model(s.inputs[sl], s.labels[sl])                           # (b, 5, V)
        right.append(exact_match(logits, s.labels[sl], s.mask[sl]).cpu())       # (b,)
    return torch.cat(right).numpy() if right else np.zeros(0, dtype=bool)


def ood_by_composed(model, data: TwoHopData, device) -> dict[str, dict]:
    """The OOD test compositions' exact match in each cell of CELLS."""
    queries = data.test_inferred_ood                                           # (N, 5)
    first, second = composed_hops(data, queries)
    return split_exact_match(correct_per_query(model, queries, data, device), first, second)


def _memo_key(run) -> dict:
    return {"run": run.key, "weights": "final"}


def can_split(run) -> bool:
    """Whether the run's final weights are stored, or the split computed from them is."""
    return run.has_weights() or run.store.memo_path("composed_split", _memo_key(run)).exists()


def run_split(run, device=None) -> dict[str, dict]:
    """`ood_by_composed` on a finished run's final EMA weights, memoised in the run's store (a re-render
    reads it; the weights are needed only the first time)."""
    device = device or default_device()
    return run.store.memo("composed_split", _memo_key(run),
                          lambda: ood_by_composed(run.load_model(None, device), dataset(run.config.data), device))
