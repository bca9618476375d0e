"""The transfer experiment's data (book/appendix/protocol.md, section 6): retained old examples plus new facts.

The fine-tuning set keeps about `retained_old_examples` old training examples -- whole ID atomic
facts together with every old training query whose two hops are both kept -- and adds `new_facts`
new atomic facts between existing entities. No token is new, no new two-hop query is trained, and
(head, relation) -> tail stays a function over old and new facts because every new fact uses a
(head, relation) pair that no other fact uses. The probe sets compose new and old facts:
new_old (new first hop, old second hop), old_new (old first hop, new second hop) and new_new.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grokcircuits.config import ConfigError, TransferConfig
from grokcircuits.science.data import TwoHopData, Vocab, atomic_rows, compose, join_facts, sample_rows

MIXED_CAP = 3000   # new_old, old_new and new_new are sampled down to this size only if larger
MIXED_SETS = ("new_old", "old_new", "new_new")


@dataclass
class TransferData:
    config: TransferConfig
    vocab: Vocab
    retained_atomic: np.ndarray    # (n, 5) old ID atomic facts kept
    retained_inferred: np.ndarray  # (n, 5) old training queries kept (both hops among retained_atomic)
    new_atomic: np.ndarray         # (new_facts, 5): chained pairs first (a,r1,b) rows, then (b,r2,t) rows, then singles
    new_old: np.ndarray            # (n, 5) new hop 1 -> retained old hop 2 (capped at MIXED_CAP)
    old_new: np.ndarray            # (n, 5) retained old hop 1 -> new hop 2 (capped)
    new_new: np.ndarray            # (n, 5) both hops new (capped)
    mixed_available: dict          # sizes of new_old, old_new, new_new before the cap
    probe_size: int                # the pretraining data's probe size (for old_atomic, old_inferred)

    def train_examples(self) -> np.ndarray:
        """Retained atomic facts, retained queries and the new facts; no new two-hop query."""
        return np.concatenate([self.retained_atomic, self.retained_inferred, self.new_atomic])

    def probe_sets(self) -> dict[str, np.ndarray]:
        """The evaluation sets, each in a seeded random order, so that the first n rows of a set
        (an evaluation's `eval_size`) are a random sample of it, not its lowest head entities."""
        rng = {name: np.random.default_rng([self.config.seed, 0x7EA5, s]) for s, name in enumerate(
            ["old_atomic", "old_inferred", "new_atomic", "new_old", "old_new", "new_new"])}
        whole = lambda name, rows: rows[rng[name].permutation(len(rows))]
        return {
            "new_atomic": whole("new_atomic", self.new_atomic),
            "old_atomic": sample_rows(self.retained_atomic, self.probe_size, rng["old_atomic"]),
            "old_inferred": sample_rows(self.retained_inferred, self.probe_size, rng["old_inferred"]),
            "new_old": whole("new_old", self.new_old),
            "old_new": whole("old_new", self.old_new),
            "new_new": whole("new_new", self.new_new),
        }

    def sizes(self) -> dict[str, int]:
        sizes = {
            "retained_atomic": len(self.retained_atomic),
            "retained_inferred": len(self.retained_inferred),
            "retained_examples": len(self.retained_atomic) + len(self.retained_inferred),
            "new_atomic": len(self.new_atomic),
            "chained_pairs": self.config.chained_pairs,
            "train_examples": len(self.retained_atomic) + len(self.retained_inferred) + len(self.new_atomic),
        }
        for name in MIXED_SETS:
            sizes[name] = len(getattr(self, name))
            sizes[f"{name}_available"] = int(self.mixed_available[name])
        return sizes


def _retain(data: TwoHopData, target: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Add shuffled ID atomic facts one at a time, each with every training query it closes,
    until atomic facts + queries reach `target` (the last fact's queries may overshoot it)."""
    atomic, E, R = data.atomic, data.vocab.n_entities, data.vocab.n_relations
    order = rng.permutation(np.flatnonzero(~data.atomic_is_ood))
    position = np.full(len(atomic), np.iinfo(np.int64).max)   # OOD facts are never retained
    position[order] = np.arange(len(order))
    fact_of = np.full(E * R, -1, dtype=np.int64)               # (h, r) -> fact index
    fact_of[atomic[:, 0] * R + atomic[:, 1]] = np.arange(len(atomic))
    q = data.train_inferred
    hop1, hop2 = fact_of[q[:, 0] * R + q[:, 1]], fact_of[q[:, 3] * R + q[:, 2]]
    closed_at = np.maximum(position[hop1], position[hop2])     # step at which the query's hops are both kept
    closable = closed_at < len(order)
    total = np.arange(1, len(order) + 1) + np.cumsum(np.bincount(closed_at[closable], minlength=len(order)))
    reached = np.flatnonzero(total >= target)
    last = reached[0] if len(reached) else len(order) - 1
    kept = np.sort(order[: last + 1])
    return atomic[kept], q[closable & (closed_at <= last)]


def _new_facts(data: TwoHopData, config: TransferConfig, rng: np.random.Generator) -> np.ndarray:
    """New facts on (head, relation) pairs unused by any old fact, all distinct: first the chained
    pairs (a, r1, b), (b, r2, t), where b is the head of the second pair, then single facts."""
    E, R = data.vocab.n_entities, data.vocab.n_relations
    used = np.zeros(E * R, dtype=bool)
    used[data.atomic[:, 0] * R + data.atomic[:, 1]] = True
    free = np.flatnonzero(~used)
    if config.new_facts > len(free):
        raise ConfigError(f"new_facts={config.new_facts} exceeds the {len(free)} unused (head, relation) pairs")
    pairs = rng.choice(free, size=config.new_facts, replace=False)
    heads, rels = pairs // R, pairs % R
    tails = rng.integers(0, E, size=config.new_facts)
    c = config.chained_pairs
    tails[:c] = heads[c: 2 * c]    # first link of each chain ends where the second link starts
    return atomic_rows(heads, rels, tails)


def build_transfer(data: TwoHopData, config: TransferConfig) -> TransferData:
    """The fine-tuning data and its probe sets for a pretraining dataset (book/appendix/protocol.md, section 6)."""
    config.validate()
    rng_retain, rng_new, rng_cap = (np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3))
    retained_atomic, retained_inferred = _retain(data, config.retained_old_examples, rng_retain)
    new = _new_facts(data, config, rng_new)

    mixed, available = {}, {}
    for name, (first, second) in zip(MIXED_SETS, [(new, retained_atomic), (retained_atomic, new), (new, new)]):
        queries = compose(first, second, *join_facts(first, second))
        available[name] = len(queries)
        mixed[name] = sample_rows(queries, MIXED_CAP, rng_cap)
    return TransferData(
        config=config, vocab=data.vocab, retained_atomic=retained_atomic, retained_inferred=retained_inferred,
        new_atomic=new, mixed_available=available, probe_size=data.config.probe_size, **mixed,
    )
