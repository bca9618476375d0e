"""The two-hop knowledge-graph task (book/appendix/protocol.md, section 2): graph, splits, regimes, encoding.

Every set of examples is an int64 array of shape (N, 5) with columns `COLS = (h, r1, r2, b, t)` in
*index space* (entity 0..n_entities-1, relation 0..n_relations-1). An atomic fact (h, r, t) is the
row `[h, r, -1, -1, t]`; a two-hop query (h, r1, r2) -> t through the bridge b is `[h, r1, r2, b, t]`.
`encode` turns rows into token sequences. Everything is seeded by `DataConfig.seed`; the graph, the
ID/OOD split, the test sets and the phi-sampled training queries use their own random streams, so
the five regimes of one seed share all of them and differ only in the injected queries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grokcircuits.config import REGIMES, DataConfig

COLS = ("h", "r1", "r2", "b", "t")
SEQ_LEN = 5


# --- vocabulary and sequences ------------------------------------------------------------------
@dataclass(frozen=True)
class Vocab:
    """Token ids: entity i -> i; relation r -> n_entities + r; then PAD, END and unused specials."""
    n_entities: int
    n_relations: int
    n_special: int

    @property
    def pad(self) -> int:
        return self.n_entities + self.n_relations

    @property
    def end(self) -> int:
        return self.pad + 1

    @property
    def size(self) -> int:
        return self.n_entities + self.n_relations + self.n_special

    def entity_token(self, idx) -> np.ndarray:
        return np.asarray(idx, dtype=np.int64)

    def relation_token(self, idx) -> np.ndarray:
        return self.n_entities + np.asarray(idx, dtype=np.int64)


def _check_rows(examples: np.ndarray) -> np.ndarray:
    examples = np.asarray(examples)
    if examples.ndim != 2 or examples.shape[1] != len(COLS):
        raise ValueError(f"examples must have shape (N, {len(COLS)}) with columns {COLS}; got {examples.shape}")
    return examples


def is_atomic(examples: np.ndarray) -> np.ndarray:
    """(N,) bool: True for atomic rows [h, r, -1, -1, t]."""
    return _check_rows(examples)[:, 2] < 0


def answer_slot(examples: np.ndarray) -> np.ndarray:
    """(N,) the label slot that holds the tail: 3 for two-hop rows, 2 for atomic rows."""
    return np.where(is_atomic(examples), 2, 3).astype(np.int64)


def encode(examples: np.ndarray, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """inputs, labels: int64 (N, 5) token ids ("maintain prefix"; PAD in labels = not supervised).

    two-hop: inputs [h, r1, r2, PAD, PAD], labels [h, r1, r2, t, END]
    atomic:  inputs [h, r,  PAD, PAD, PAD], labels [h, r,  t, END, PAD]
    """
    ex = _check_rows(examples).astype(np.int64)
    atom = ex[:, 2] < 0
    two = ~atom
    n = len(ex)
    h, r1 = vocab.entity_token(ex[:, 0]), vocab.relation_token(ex[:, 1])
    t = vocab.entity_token(ex[:, 4])
    inputs = np.full((n, SEQ_LEN), vocab.pad, dtype=np.int64)
    labels = np.full((n, SEQ_LEN), vocab.pad, dtype=np.int64)
    inputs[:, 0] = labels[:, 0] = h
    inputs[:, 1] = labels[:, 1] = r1
    r2 = vocab.relation_token(ex[two, 2])
    inputs[two, 2] = labels[two, 2] = r2
    labels[two, 3], labels[two, 4] = t[two], vocab.end
    labels[atom, 2], labels[atom, 3] = t[atom], vocab.end
    return inputs, labels


# --- helpers on fact arrays -----------------------------------------------------------------------
def atomic_rows(h, r, t) -> np.ndarray:
    """Atomic facts as (N, 5) rows [h, r, -1, -1, t]."""
    h = np.asarray(h, dtype=np.int64)
    return np.stack([h, np.asarray(r, dtype=np.int64), np.full_like(h, -1), np.full_like(h, -1),
                     np.asarray(t, dtype=np.int64)], axis=1)


def join_facts(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All two-hop paths first[i] -> second[j] with first[i].t == second[j].h, as index arrays (i, j).

    Vectorised: `second` is sorted by head once, each first fact gets the run of its tail."""
    order = np.argsort(second[:, 0], kind="stable")
    heads = second[order, 0]
    starts = np.searchsorted(heads, first[:, 4], side="left")
    counts = np.searchsorted(heads, first[:, 4], side="right") - starts
    i = np.repeat(np.arange(len(first)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    j = order[np.repeat(starts, counts) + within]
    return i, j


def compose(first: np.ndarray, second: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Two-hop query rows [h, r1, r2, b, t] for the paths first[i] -> second[j]."""
    return np.stack([first[i, 0], first[i, 1], second[j, 1], first[i, 4], second[j, 4]], axis=1).astype(np.int64)


def sample_rows(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to n rows drawn without replacement (all of them if there are fewer), in random order.

    Random order matters: the rows of every set are sorted by head entity, and a reader that takes
    the first k rows of a sample (`EncodedSet.take`) must get a random sample, not the lowest heads."""
    return rows[rng.permutation(len(rows))[:n]]


def _up_to_k_per_group(groups: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to k randomly chosen members of each group (groups: (N,) labels)."""
    if k <= 0 or len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((rng.random(len(groups)), groups))
    g = groups[order]
    run_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    rank = np.arange(len(g)) - np.repeat(run_start, np.diff(np.r_[run_start, len(g)]))
    return np.sort(order[rank < k])


# --- the dataset --------------------------------------------------------------------------------
@dataclass
class TwoHopData:
    config: DataConfig
    vocab: Vocab
    atomic: np.ndarray            # (N_atomic, 5) all atomic facts; all are trained
    atomic_is_ood: np.ndarray     # (N_atomic,) bool
    train_inferred: np.ndarray    # phi-sampled ID-ID queries, then hop-1 injected, then hop-2 injected
    n_injected_hop1: int
    n_injected_hop2: int
    test_inferred_iid: np.ndarray  # all held-out ID-ID queries
    test_inferred_ood: np.ndarray  # all OOD-OOD queries

    def train_examples(self) -> np.ndarray:
        """Atomic facts followed by the training queries, (N, 5)."""
        return np.concatenate([self.atomic, self.train_inferred])

    def probe_sets(self) -> dict[str, np.ndarray]:
        """The evaluation sets of book/appendix/protocol.md, section 2; seeded by config.seed, one stream per set.
        Every set comes in random order (the full ones too), so any prefix is a random sample."""
        n = self.config.probe_size
        full = {
            "id_atomic": (self.atomic[~self.atomic_is_ood], True),
            "ood_atomic": (self.atomic[self.atomic_is_ood], False),
            "train_inferred": (self.train_inferred, True),
            "test_inferred_iid": (self.test_inferred_iid, True),
            "test_inferred_ood": (self.test_inferred_ood, False),
        }
        out = {}
        for stream, (name, (rows, sampled)) in enumerate(full.items()):
            rng = np.random.default_rng([self.config.seed, 0x9B0BE, stream])
            out[name] = sample_rows(rows, n if sampled else len(rows), rng)
        return out

    def sizes(self) -> dict[str, int]:
        return {
            "atomic": len(self.atomic),
            "ood_atomic": int(self.atomic_is_ood.sum()),
            "train_inferred": len(self.train_inferred),
            "injected_hop1": self.n_injected_hop1,
            "injected_hop2": self.n_injected_hop2,
            "test_inferred_iid": len(self.test_inferred_iid),
            "test_inferred_ood": len(self.test_inferred_ood),
            "train_examples": len(self.atomic) + len(self.train_inferred),
            "vocabulary": self.vocab.size,
        }


def build_dataset(config: DataConfig) -> TwoHopData:
    """Generate the graph, the splits and the regime's training set (book/appendix/protocol.md, section 2)."""
    config.validate()
    E, R, k = config.n_entities, config.n_relations, config.relations_per_entity
    rng_graph, rng_ood, rng_split, rng_phi, rng_hop1, rng_hop2 = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(6))

    # Graph: per head k distinct relations (sorted), each with a uniform tail; (h, r) -> t is a function.
    rels = np.sort(np.argsort(rng_graph.random((E, R)), axis=1)[:, :k], axis=1)
    tails = rng_graph.integers(0, E, size=(E, k))
    atomic = atomic_rows(np.repeat(np.arange(E), k), rels.ravel(), tails.ravel())
    n_atomic = len(atomic)
    is_ood = np.zeros(n_atomic, dtype=bool)
    is_ood[rng_ood.choice(n_atomic, size=int(round(config.ood_fraction * n_atomic)), replace=False)] = True

    # Every two-hop path (f1, f2) and its split by the hops' ID/OOD status.
    f1, f2 = join_facts(atomic, atomic)
    ood1, ood2 = is_ood[f1], is_ood[f2]
    idid = np.flatnonzero(~ood1 & ~ood2)
    held_out = rng_split.random(len(idid)) < config.iid_test_fraction
    test_iid, candidates = idid[held_out], idid[~held_out]
    test_ood = np.flatnonzero(ood1 & ood2)

    n_keep = int(round(config.phi * (n_atomic - is_ood.sum())))
    if len(candidates) > n_keep:
        candidates = np.sort(rng_phi.choice(candidates, size=n_keep, replace=False))

    # Regime: re-introduce mixed (one-hop-OOD) queries around OOD hops of the OOD test queries.
    regime = REGIMES[config.regime]

    def inject(universe_of, pick_from, groups_of, ratio, k_per, rng):
        universe = np.unique(universe_of[test_ood])
        chosen = rng.choice(universe, size=int(round(ratio * len(universe))), replace=False)
        cand = np.flatnonzero(pick_from & np.isin(groups_of, chosen))
        return cand[_up_to_k_per_group(groups_of[cand], k_per, rng)]

    inj1 = inject(f1, ood1 & ~ood2, f1, regime.hop1_ratio, regime.hop1_samples, rng_hop1)
    inj2 = inject(f2, ~ood1 & ood2, f2, regime.hop2_ratio, regime.hop2_samples, rng_hop2)
    # Mixed paths are disjoint from the ID-ID and OOD-OOD paths and from each other, and a path
    # determines its query (h, r1, r2), so no injected query is a test query or a duplicate.
    train_paths = np.concatenate([candidates, inj1, inj2])

    def q(idx):
        return compose(atomic, atomic, f1[idx], f2[idx])

    return TwoHopData(
        config=config,
        vocab=Vocab(E, R, config.n_special_tokens),
        atomic=atomic,
        atomic_is_ood=is_ood,
        train_inferred=q(train_paths),
        n_injected_hop1=len(inj1),
        n_injected_hop2=len(inj2),
        test_inferred_iid=q(test_iid),
        test_inferred_ood=q(test_ood),
    )
