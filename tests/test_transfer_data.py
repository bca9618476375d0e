"""Tests of the transfer data (book/appendix/protocol.md, section 6): retained old examples, new facts, mixed sets."""
from dataclasses import replace

import numpy as np
import pytest

from grokcircuits.science import transfer_data
from grokcircuits.config import ConfigError, DataConfig, TransferConfig
from grokcircuits.science.data import build_dataset, is_atomic
from grokcircuits.science.transfer_data import TransferData, build_transfer

SMALL = DataConfig(n_entities=120, n_relations=12, relations_per_entity=4, ood_fraction=0.2,
                   iid_test_fraction=0.05, phi=4.0, probe_size=200)
TCONF = TransferConfig(retained_old_examples=600, new_facts=120, chained_pairs=60)


@pytest.fixture(scope="module", params=["natural", "both_full"])
def data(request):
    return build_dataset(replace(SMALL, regime=request.param))


@pytest.fixture(scope="module")
def tr(data) -> TransferData:
    return build_transfer(data, TCONF)


def pairs(rows) -> list:
    return [tuple(x) for x in rows[:, :2].tolist()]


def rowset(rows) -> set:
    return set(map(tuple, rows.tolist()))


def brute_paths(first, second) -> set:
    out = set()
    for h, r1, _, _, b in first.tolist():
        for h2, r2, _, _, t in second.tolist():
            if h2 == b:
                out.add((h, r1, r2, b, t))
    return out


def test_function_over_old_and_new(data, tr):
    all_pairs = pairs(data.atomic) + pairs(tr.new_atomic)
    assert len(set(all_pairs)) == len(all_pairs)
    assert not set(pairs(tr.new_atomic)) & set(pairs(data.atomic))       # new facts use new (h, r) pairs
    assert len(tr.new_atomic) == TCONF.new_facts and is_atomic(tr.new_atomic).all()
    assert tr.new_atomic[:, [0, 4]].max() < SMALL.n_entities and tr.new_atomic[:, 1].max() < SMALL.n_relations
    c = TCONF.chained_pairs
    np.testing.assert_array_equal(tr.new_atomic[:c, 4], tr.new_atomic[c:2 * c, 0])   # chained pairs
    assert tr.vocab == data.vocab                                                     # no new tokens


def test_retained_examples(data, tr):
    assert rowset(tr.retained_atomic) <= rowset(data.atomic[~data.atomic_is_ood])   # old ID facts only
    assert rowset(tr.retained_inferred) <= rowset(data.train_inferred)
    kept = {(h, r): t for h, r, t in tr.retained_atomic[:, [0, 1, 4]].tolist()}
    for h, r1, r2, b, t in tr.retained_inferred.tolist():                           # closure
        assert kept[(h, r1)] == b and kept[(b, r2)] == t
    both_kept = [q for q in data.train_inferred.tolist()
                 if kept.get((q[0], q[1])) == q[3] and kept.get((q[3], q[2])) == q[4]]
    assert rowset(np.array(both_kept)) == rowset(tr.retained_inferred)              # every query they close
    n = tr.sizes()["retained_examples"]
    assert TCONF.retained_old_examples <= n < TCONF.retained_old_examples + 50


def test_no_new_two_hop_query_trained(data, tr):
    ex = tr.train_examples()
    assert len(ex) == len(tr.retained_atomic) + len(tr.retained_inferred) + len(tr.new_atomic)
    two_hop = ex[~is_atomic(ex)]
    assert rowset(two_hop) <= rowset(data.train_inferred)
    new = set(pairs(tr.new_atomic))
    assert not {(h, r1) for h, r1 in two_hop[:, :2].tolist()} & new
    assert not {(b, r2) for r2, b in two_hop[:, 2:4].tolist()} & new
    for name in ("new_old", "old_new", "new_new"):
        assert not rowset(getattr(tr, name)) & rowset(two_hop)


def test_mixed_sets_provenance(tr):
    new, old = tr.new_atomic, tr.retained_atomic
    expected = {"new_old": brute_paths(new, old), "old_new": brute_paths(old, new), "new_new": brute_paths(new, new)}
    for name, want in expected.items():
        got = getattr(tr, name)
        assert len(want) <= transfer_data.MIXED_CAP and rowset(got) == want and len(got) == len(want)
        assert tr.sizes()[name] == tr.sizes()[f"{name}_available"] == len(want)
    assert len(tr.new_new) >= TCONF.chained_pairs and len(tr.new_old) > 0 and len(tr.old_new) > 0


def test_mixed_cap(data, monkeypatch):
    monkeypatch.setattr(transfer_data, "MIXED_CAP", 25)
    capped = build_transfer(data, TCONF)
    for name in ("new_old", "old_new", "new_new"):
        assert len(getattr(capped, name)) == 25 < capped.sizes()[f"{name}_available"]
        assert len(rowset(getattr(capped, name))) == 25


def test_probe_sets(tr):
    p = tr.probe_sets()
    assert list(p) == ["new_atomic", "old_atomic", "old_inferred", "new_old", "old_new", "new_new"]
    assert rowset(p["new_atomic"]) == rowset(tr.new_atomic) and len(p["new_atomic"]) == len(tr.new_atomic)
    assert len(p["old_atomic"]) == min(SMALL.probe_size, len(tr.retained_atomic))
    assert len(p["old_inferred"]) == min(SMALL.probe_size, len(tr.retained_inferred))
    assert rowset(p["old_atomic"]) <= rowset(tr.retained_atomic)
    assert rowset(p["old_inferred"]) <= rowset(tr.retained_inferred)
    for name in ("new_old", "old_new", "new_new"):
        assert rowset(p[name]) == rowset(getattr(tr, name)) and len(p[name]) == len(getattr(tr, name))
        assert not is_atomic(p[name]).any()


def test_transfer_probe_sets_come_in_random_order(tr):
    """An evaluation takes a set's first rows: they must be a random sample, not the lowest heads."""
    for name, rows in tr.probe_sets().items():
        if len(rows) > 20:
            assert not np.all(np.diff(rows[:, 0]) >= 0), f"{name} is still sorted by head"


def test_determinism(data, tr):
    again = build_transfer(data, TCONF)
    other = build_transfer(data, replace(TCONF, seed=1))
    for name in ("retained_atomic", "retained_inferred", "new_atomic", "new_old", "old_new", "new_new"):
        np.testing.assert_array_equal(getattr(tr, name), getattr(again, name))
    for key, arr in tr.probe_sets().items():
        np.testing.assert_array_equal(arr, again.probe_sets()[key])
    assert not np.array_equal(tr.new_atomic, other.new_atomic)
    assert not np.array_equal(tr.retained_atomic, other.retained_atomic)


def test_bad_config(data):
    with pytest.raises(ConfigError, match="chained_pairs"):
        build_transfer(data, TransferConfig(retained_old_examples=600, new_facts=100, chained_pairs=60))
    with pytest.raises(ConfigError, match="new_facts"):
        build_transfer(data, TransferConfig(retained_old_examples=600, new_facts=5000, chained_pairs=60))
    with pytest.raises(ConfigError, match="retained_old_examples"):
        build_transfer(data, replace(TCONF, retained_old_examples=0))


@pytest.mark.slow
def test_paper_scale():
    tr = build_transfer(build_dataset(DataConfig()), TransferConfig())
    s = tr.sizes()
    assert s["new_atomic"] == 2000 and s["retained_examples"] >= 8000
    assert s["new_old"] >= 300 and s["old_new"] >= 300 and s["new_new"] >= 1000
    assert max(s["new_old"], s["old_new"], s["new_new"]) <= 3000
    assert s["train_examples"] == s["retained_examples"] + 2000
