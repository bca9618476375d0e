"""Tests of the two-hop data (book/appendix/protocol.md, section 2): graph, splits, regimes, encoding, probes."""
from dataclasses import replace
import time

import numpy as np
import pytest

from grokcircuits.config import REGIMES, ConfigError, DataConfig
from grokcircuits.science.data import COLS, SEQ_LEN, TwoHopData, Vocab, answer_slot, build_dataset, encode, is_atomic, sample_rows

SMALL = DataConfig(n_entities=120, n_relations=12, relations_per_entity=4, ood_fraction=0.2,
                   iid_test_fraction=0.05, phi=4.0, probe_size=200)


@pytest.fixture(scope="module", params=list(REGIMES))
def data(request) -> TwoHopData:
    return build_dataset(replace(SMALL, regime=request.param))


@pytest.fixture(scope="module")
def natural() -> TwoHopData:
    return build_dataset(SMALL)


def triples(q: np.ndarray) -> set:
    return set(map(tuple, q[:, :3].tolist()))


def facts(d: TwoHopData) -> dict:
    """(h, r) -> (t, is_ood)."""
    return {(h, r): (t, bool(o)) for (h, r, t), o in zip(d.atomic[:, [0, 1, 4]].tolist(), d.atomic_is_ood)}


def hop_status(d: TwoHopData, q: np.ndarray) -> np.ndarray:
    """(N, 2) bool: whether each hop of each query is OOD; asserts the query is a real path."""
    f = facts(d)
    out = []
    for h, r1, r2, b, t in q.tolist():
        (b_, o1), (t_, o2) = f[(h, r1)], f[(b, r2)]
        assert (b_, t_) == (b, t)
        out.append((o1, o2))
    return np.array(out, dtype=bool).reshape(-1, 2)


def test_shapes_and_dtypes(data):
    for name in ("atomic", "train_inferred", "test_inferred_iid", "test_inferred_ood"):
        arr = getattr(data, name)
        assert arr.dtype == np.int64 and arr.ndim == 2 and arr.shape[1] == len(COLS) == SEQ_LEN
    assert is_atomic(data.atomic).all() and not is_atomic(data.train_inferred).any()
    assert data.atomic_is_ood.shape == (len(data.atomic),) and data.atomic_is_ood.dtype == bool


def test_graph_is_a_function(natural):
    c, a = natural.config, natural.atomic
    assert len(a) == c.n_entities * c.relations_per_entity
    assert len({(h, r) for h, r in a[:, :2].tolist()}) == len(a)
    assert np.all(np.bincount(a[:, 0], minlength=c.n_entities) == c.relations_per_entity)
    assert a[:, 1].max() < c.n_relations and a[:, [0, 4]].max() < c.n_entities and a.min() == -1
    assert natural.atomic_is_ood.sum() == round(c.ood_fraction * len(a))


def test_test_queries_never_trained(data):
    train = triples(data.train_inferred)
    assert not train & triples(data.test_inferred_iid)
    assert not train & triples(data.test_inferred_ood)
    assert not triples(data.test_inferred_iid) & triples(data.test_inferred_ood)


def test_test_sets_hop_status(data):
    assert not hop_status(data, data.test_inferred_iid).any()
    assert hop_status(data, data.test_inferred_ood).all()


def test_every_path_accounted_for(natural):
    """Brute force: ID-ID paths are training or iid test, OOD-OOD paths are ood test, mixed discarded."""
    d = natural
    by_head = {}
    for (h, r, t), o in zip(d.atomic[:, [0, 1, 4]].tolist(), d.atomic_is_ood):
        by_head.setdefault(h, []).append((r, t, o))
    idid, oodood = set(), set()
    for h, edges in by_head.items():
        for r1, b, o1 in edges:
            for r2, t, o2 in by_head.get(b, []):
                if o1 == o2:
                    (oodood if o1 else idid).add((h, r1, r2))
    assert triples(d.test_inferred_ood) == oodood
    assert triples(d.test_inferred_iid) | triples(d.train_inferred) == idid   # phi keeps all at this size
    assert len(d.test_inferred_iid) + len(d.train_inferred) == len(idid)


def test_phi_subsamples():
    d = build_dataset(replace(SMALL, phi=1.0))
    n_id = int((~d.atomic_is_ood).sum())
    assert len(d.train_inferred) == n_id
    assert len(triples(d.train_inferred)) == n_id
    assert not hop_status(d, d.train_inferred).any()


def test_injection_provenance_and_counts(data):
    reg = REGIMES[data.config.regime]
    n1, n2 = data.n_injected_hop1, data.n_injected_hop2
    q = data.train_inferred
    status = hop_status(data, q)
    base = len(q) - n1 - n2
    assert not status[:base].any()                                   # phi-sampled: ID-ID only
    assert (status[base:base + n1] == [True, False]).all()           # hop-1: OOD first hop, ID second
    assert (status[base + n1:] == [False, True]).all()               # hop-2: ID first hop, OOD second
    assert len(triples(q)) == len(q)                                  # no duplicates
    t = data.test_inferred_ood
    u1 = {(h, r1) for h, r1 in t[:, :2].tolist()}
    u2 = {(b, r2) for r2, b in t[:, 2:4].tolist()}
    inj1, inj2 = q[base:base + n1], q[base + n1:]
    assert n1 <= round(reg.hop1_ratio * len(u1)) * reg.hop1_samples
    assert n2 <= round(reg.hop2_ratio * len(u2)) * reg.hop2_samples
    hop1_facts = [(h, r1) for h, r1 in inj1[:, :2].tolist()]
    hop2_facts = [(b, r2) for r2, b in inj2[:, 2:4].tolist()]
    assert set(hop1_facts) <= u1 and set(hop2_facts) <= u2
    assert len(set(hop1_facts)) <= round(reg.hop1_ratio * len(u1))
    assert len(set(hop2_facts)) <= round(reg.hop2_ratio * len(u2))
    for used, k in ((hop1_facts, reg.hop1_samples), (hop2_facts, reg.hop2_samples)):
        if used:
            assert max(np.unique(np.array(used), axis=0, return_counts=True)[1]) <= k
    if reg.hop1_ratio > 0 and reg.hop1_samples > 0:
        assert n1 > 0
    if reg.hop2_ratio > 0 and reg.hop2_samples > 0:
        assert n2 > 0


def test_regimes_share_graph_and_test_sets(natural, data):
    for name in ("atomic", "atomic_is_ood", "test_inferred_iid", "test_inferred_ood"):
        np.testing.assert_array_equal(getattr(natural, name), getattr(data, name))
    base = len(data.train_inferred) - data.n_injected_hop1 - data.n_injected_hop2
    np.testing.assert_array_equal(natural.train_inferred, data.train_inferred[:base])


def test_determinism(natural):
    again = build_dataset(SMALL)
    for name in ("atomic", "atomic_is_ood", "train_inferred", "test_inferred_iid", "test_inferred_ood"):
        np.testing.assert_array_equal(getattr(natural, name), getattr(again, name))
    for key, arr in natural.probe_sets().items():
        np.testing.assert_array_equal(arr, again.probe_sets()[key])
    other = build_dataset(replace(SMALL, seed=1))
    assert not np.array_equal(natural.atomic, other.atomic)
    assert not np.array_equal(natural.atomic_is_ood, other.atomic_is_ood)


def test_encode_layout():
    v = Vocab(n_entities=10, n_relations=4, n_special=3)
    assert (v.pad, v.end, v.size) == (14, 15, 17)
    ex = np.array([[3, 1, -1, -1, 7], [2, 0, 3, 5, 9]])
    inputs, labels = encode(ex, v)
    assert inputs.dtype == labels.dtype == np.int64
    np.testing.assert_array_equal(inputs, [[3, 11, 14, 14, 14], [2, 10, 13, 14, 14]])
    np.testing.assert_array_equal(labels, [[3, 11, 7, 15, 14], [2, 10, 13, 9, 15]])
    np.testing.assert_array_equal(answer_slot(ex), [2, 3])
    np.testing.assert_array_equal(is_atomic(ex), [True, False])
    np.testing.assert_array_equal(labels[np.arange(2), answer_slot(ex)], v.entity_token(ex[:, 4]))
    np.testing.assert_array_equal(v.relation_token([0, 3]), [10, 13])
    with pytest.raises(ValueError):
        encode(np.zeros((2, 4), dtype=np.int64), v)


def test_encode_dataset(natural):
    ex = natural.train_examples()
    assert len(ex) == natural.sizes()["train_examples"]
    inputs, labels = encode(ex, natural.vocab)
    assert inputs.max() < natural.vocab.size and labels.max() < natural.vocab.size and inputs.min() >= 0
    assert (labels == natural.vocab.end).sum(axis=1).tolist() == [1] * len(ex)


def test_probe_sets(data):
    p, n = data.probe_sets(), data.config.probe_size
    assert list(p) == ["id_atomic", "ood_atomic", "train_inferred", "test_inferred_iid", "test_inferred_ood"]
    assert len(p["id_atomic"]) == min(n, int((~data.atomic_is_ood).sum()))
    assert len(p["ood_atomic"]) == int(data.atomic_is_ood.sum())
    assert len(p["train_inferred"]) == min(n, len(data.train_inferred))
    assert len(p["test_inferred_iid"]) == min(n, len(data.test_inferred_iid))
    assert triples(p["test_inferred_ood"]) == triples(data.test_inferred_ood)      # all of them
    assert len(p["test_inferred_ood"]) == len(data.test_inferred_ood)
    assert triples(p["train_inferred"]) <= triples(data.train_inferred)
    assert len(triples(p["train_inferred"])) == len(p["train_inferred"])
    ood = {(h, r) for h, r in data.atomic[data.atomic_is_ood][:, :2].tolist()}
    assert not {(h, r) for h, r in p["id_atomic"][:, :2].tolist()} & ood
    assert {(h, r) for h, r in p["ood_atomic"][:, :2].tolist()} == ood


def test_probe_sets_come_in_random_order(natural):
    """The sets are sorted by head entity; a probe set's first rows must be a random sample, not the
    lowest heads: every set (the full ones too) is a seeded permutation."""
    p = natural.probe_sets()
    for name, rows in p.items():
        heads = rows[:, 0]
        assert not np.all(np.diff(heads) >= 0), f"{name} is still sorted by head"
        first = heads[: len(heads) // 4]
        assert first.max() - first.min() > 0.5 * (heads.max() - heads.min()), f"{name}: its first quarter spans few heads"
    again = natural.probe_sets()
    for name in p:
        np.testing.assert_array_equal(p[name], again[name])                     # seeded
    other = build_dataset(replace(SMALL, seed=1)).probe_sets()
    assert not np.array_equal(p["test_inferred_ood"][:20], other["test_inferred_ood"][:20])


def test_sample_rows_is_a_seeded_random_sample_in_random_order():
    rows = np.arange(1000)[:, None] * np.ones((1, 5), dtype=np.int64)      # sorted rows
    a = sample_rows(rows, 100, np.random.default_rng(0))
    assert a.shape == (100, 5) and len(np.unique(a[:, 0])) == 100          # without replacement
    assert not np.all(np.diff(a[:, 0]) > 0)                                 # not kept in order
    np.testing.assert_array_equal(a, sample_rows(rows, 100, np.random.default_rng(0)))
    assert not np.array_equal(a, sample_rows(rows, 100, np.random.default_rng(1)))
    # a prefix is a random sample: over many seeds the first row is spread over the whole range
    firsts = [sample_rows(rows, 100, np.random.default_rng(s))[0, 0] for s in range(200)]
    assert np.mean(firsts) == pytest.approx(500, abs=80) and max(firsts) > 900 and min(firsts) < 100
    every = sample_rows(rows, 5000, np.random.default_rng(0))
    assert sorted(every[:, 0].tolist()) == list(range(1000))               # fewer rows than n: all, shuffled


def test_sizes(data):
    s = data.sizes()
    assert set(s) == {"atomic", "ood_atomic", "train_inferred", "injected_hop1", "injected_hop2",
                      "test_inferred_iid", "test_inferred_ood", "train_examples", "vocabulary"}
    assert s["train_examples"] == s["atomic"] + s["train_inferred"]
    assert s["vocabulary"] == 120 + 12 + SMALL.n_special_tokens


@pytest.mark.parametrize("field,value", [("regime", "bogus"), ("phi", 0.0), ("ood_fraction", 1.5),
                                         ("relations_per_entity", 13), ("n_entities", 0)])
def test_bad_config(field, value):
    with pytest.raises(ConfigError, match=field):
        build_dataset(replace(SMALL, **{field: value}))


@pytest.mark.slow
def test_paper_scale():
    start = time.perf_counter()
    d = build_dataset(DataConfig())
    assert time.perf_counter() - start < 30
    s = d.sizes()
    assert (s["atomic"], s["ood_atomic"], s["train_inferred"], s["vocabulary"]) == (40000, 2000, 684000, 2206)
    assert s["train_examples"] == 724000 and s["injected_hop1"] == s["injected_hop2"] == 0
    assert s["test_inferred_ood"] > 1000 and s["test_inferred_iid"] > 3000
    assert {k: len(v) for k, v in d.probe_sets().items()} == {
        "id_atomic": 3000, "ood_atomic": 2000, "train_inferred": 3000, "test_inferred_iid": 3000,
        "test_inferred_ood": s["test_inferred_ood"]}
    ids = lambda q: (q[:, 0] * 200 + q[:, 1]) * 200 + q[:, 2]  # noqa: E731
    assert len(np.unique(ids(d.train_inferred))) == 684000
    assert not np.isin(ids(d.test_inferred_iid), ids(d.train_inferred)).any()
    full = build_dataset(DataConfig(regime="both_full"))
    assert full.n_injected_hop1 > 0 and full.n_injected_hop2 > 0
    assert len(np.unique(ids(full.train_inferred))) == len(full.train_inferred)
