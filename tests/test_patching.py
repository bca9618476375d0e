"""Causal patching that can tell composing from looking up: the two corruptions, the normalised
map, the similarity with its bootstrap interval and chance level, and the controls (a hand-built
composer and a hand-built lookup must come out clearly different; a model compared with itself
comes out the same)."""
import numpy as np
import pytest
import torch

from grokcircuits.science import inference_paths as ip
from grokcircuits.config import ModelConfig, get_profile
from grokcircuits.science.controls import Composer, Lookup
from grokcircuits.science.data import build_dataset, encode
from grokcircuits.science.hooks import run_with_cache, run_with_hooks
from grokcircuits.science.models import build_model
from grokcircuits.science.patching import ALL_POSITIONS, PatchingResult, first_hop_corruptions, kept_rate_interval, map_similarity, patching_sweep

SAME_PATH_AT = 0.8   # the similarity at which chapter 01 calls two paths the same


@pytest.fixture(scope="module")
def data():
    return build_dataset(get_profile("tiny").data)


@pytest.fixture(scope="module")
def controls(data):
    return ip.control_patching(data, "train_inferred", 120, seed=0)


def facts_of(data):
    return {(h, r): t for h, r, t in data.atomic[:, [0, 1, 4]].tolist()}


def test_corruptions_keep_or_change_the_bridge_as_promised(data):
    c = ip.patching_corruptions(data, "train_inferred", 150, seed=0)
    assert len(c) == 150 and c.clean.shape == c.preserving.shape == c.changing.shape == (150, 5)
    fact = facts_of(data)
    id_fact = {(h, r) for (h, r, _, _, _), o in zip(data.atomic.tolist(), data.atomic_is_ood) if not o}
    trained = {tuple(q) for q in data.train_inferred[:, :3].tolist()}
    for (h, r1, r2, b, t), (h1, q1, s2, b1, t1), (h2, q2, u2, b2, t2) in zip(c.clean, c.preserving, c.changing):
        assert (h, r1, r2) in trained and fact[(h, r1)] == b and fact[(b, r2)] == t
        # bridge-preserving: another ID first hop into the same bridge, same answer, not a training query
        assert (h1, q1) != (h, r1) and (h1, q1) in id_fact and fact[(h1, q1)] == b
        assert (s2, b1, t1) == (r2, b, t) and (h1, q1, r2) not in trained
        # bridge-changing: a training query with the same second relation, another bridge and answer
        assert u2 == r2 and (h2, q2, r2) in trained and b2 != b and t2 != t
        assert fact[(h2, q2)] == b2 and fact[(b2, r2)] == t2


def test_patching_queries_are_a_seeded_random_sample(data):
    a = ip.patching_corruptions(data, "train_inferred", 100, seed=0)
    again = ip.patching_corruptions(data, "train_inferred", 100, seed=0)
    other = ip.patching_corruptions(data, "train_inferred", 100, seed=1)
    np.testing.assert_array_equal(a.clean, again.clean)
    np.testing.assert_array_equal(a.changing, again.changing)
    assert not np.array_equal(a.clean, other.clean)
    heads, all_heads = a.clean[:, 0], data.train_inferred[:, 0]
    assert not np.all(np.diff(heads) >= 0)                                    # not in sorted order
    assert heads.max() - heads.min() > 0.8 * (all_heads.max() - all_heads.min())   # not the lowest heads
    held_out = ip.patching_corruptions(data, "test_inferred_iid", 20, seed=0)
    assert {tuple(q) for q in held_out.clean.tolist()} <= {tuple(q) for q in data.test_inferred_iid.tolist()}


def test_corruptions_skip_queries_without_both_partners():
    facts = np.array([[0, 0, -1, -1, 5], [1, 0, -1, -1, 5], [5, 1, -1, -1, 7], [2, 0, -1, -1, 6], [6, 1, -1, -1, 8]])
    q = np.array([[0, 0, 1, 5, 7], [2, 0, 1, 6, 8]])
    # (1, 0, 1) reaches bridge 5 untrained, so query 0 has a preserving partner; query 1 has none
    c = first_hop_corruptions(q, facts, trained=q, changing_pool=q, n=10, rng=np.random.default_rng(0))
    assert c.clean.tolist() == [[0, 0, 1, 5, 7]]
    assert c.preserving.tolist() == [[1, 0, 1, 5, 7]] and c.changing.tolist() == [[2, 0, 1, 6, 8]]
    none = first_hop_corruptions(q, facts, trained=np.concatenate([q, [[1, 0, 1, 5, 7]]]), changing_pool=q, n=10,
                                 rng=np.random.default_rng(0))
    assert len(none) == 0                                   # the only preserving first hop is trained
    with pytest.raises(ValueError, match="no clean query"):
        patching_sweep(Composer.__new__(Composer), none, None, "cpu")


def test_the_controls_know_their_answers(data, controls):
    for r in controls.values():
        assert r.clean_right.all()                          # both answer every training query
        assert np.all(r.clean_ld > 0) and np.all(r.corrupt_ld < 0)


def test_composer_keeps_the_answer_when_only_the_bridge_is_kept_and_lookup_does_not(controls):
    composer, lookup = controls["composer (hand-built)"], controls["lookup (hand-built)"]
    rate, low, high = kept_rate_interval(composer)
    assert rate == 1.0 and low == 1.0
    rate, low, high = kept_rate_interval(lookup)
    assert rate == 0.0 and high == 0.0


def test_the_maps_show_where_each_model_keeps_the_path(controls):
    composer, lookup = controls["composer (hand-built)"], controls["lookup (hand-built)"]
    states, pos = composer.states, composer.positions
    c, k = composer.normalised_map(), lookup.normalised_map()
    carry = [states.index(s) for s in ("H0_L1", "H0_L2", "H0_commit", "H1_L0")]   # between reading and answering
    h, r1, answer, everything = pos.index("h"), pos.index("r1"), pos.index("answer"), pos.index(ALL_POSITIONS)
    assert pos[0] == "prefix 0" and pos[-1] == ALL_POSITIONS               # prefix slots are patched too
    np.testing.assert_allclose(c[carry, answer], 1.0)                       # the composer holds the bridge there
    np.testing.assert_allclose(c[carry][:, [h, r1]], 0.0)
    np.testing.assert_allclose(k[carry, answer], 0.0)                       # the lookup holds the query there
    assert np.all(k[carry][:, [h, r1]].sum(1) > 0.9)
    np.testing.assert_allclose(c[:, everything], 1.0)                       # a whole state restores in both
    np.testing.assert_allclose(k[:, everything], 1.0)
    assert np.all(np.abs(c[:, pos.index("prefix 0")]) < 1e-9)


def test_composer_and_lookup_maps_are_clearly_different(controls):
    composer, lookup = controls["composer (hand-built)"], controls["lookup (hand-built)"]
    between = map_similarity(composer, lookup, draws=300, seed=0)
    assert between["paired"] and between["valid_draws"] == 300
    assert between["low"] <= between["similarity"] <= between["high"]
    assert between["high"] < SAME_PATH_AT - 0.2                             # clearly not "the same path"
    itself = map_similarity(composer, composer, draws=300, seed=0)
    assert itself["similarity"] == pytest.approx(1.0) and itself["low"] == pytest.approx(1.0)
    assert itself["chance_high"] < 0.7                                       # shuffled cells are far from 1
    assert map_similarity(lookup, lookup, draws=100)["low"] == pytest.approx(1.0)


def test_similarity_is_seeded_and_unpaired_for_different_queries(data):
    a = ip.control_patching(data, "train_inferred", 60, seed=0)["composer (hand-built)"]
    b = ip.control_patching(data, "train_inferred", 60, seed=1)["composer (hand-built)"]
    s = map_similarity(a, b, draws=200, seed=3)
    assert not s["paired"] and s["similarity"] > 0.95                       # the same model on other queries
    assert s == map_similarity(a, b, draws=200, seed=3)
    with pytest.raises(ValueError, match="different states or positions"):
        map_similarity(a, PatchingResult(**{**a.__dict__, "positions": a.positions[1:]}))


def test_no_clean_lead_gives_no_map(controls):
    r = controls["composer (hand-built)"]
    flat = PatchingResult(**{**r.__dict__, "clean_ld": r.corrupt_ld.copy()})
    assert np.isnan(flat.normalised_map()).all()
    s = map_similarity(flat, r, draws=20)
    assert np.isnan(s["similarity"]) and np.isnan(s["chance_high"])


def test_result_round_trips_through_json(controls):
    import json
    r = controls["lookup (hand-built)"]
    back = PatchingResult.from_json(json.loads(json.dumps(r.to_json())))
    for k in ("queries", "clean_ld", "corrupt_ld", "patched_ld", "clean_right", "kept"):
        np.testing.assert_array_equal(getattr(back, k), getattr(r, k))
    assert back.states == r.states and back.positions == r.positions
    assert map_similarity(back, r, draws=50)["similarity"] == pytest.approx(1.0)


@torch.no_grad()
def test_batched_sweep_equals_one_patch_at_a_time_on_the_recursive_model(data):
    """The sweep patches all positions of a state in one batched run; check some cells against a
    plain run with a single patched cell, prefix slots included."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=32, prefix_slots=2, expansion=2.0, token_multiple=8, h_cycles=2, l_cycles=2),
                        data.vocab.size).eval()
    c = ip.patching_corruptions(data, "train_inferred", 7, seed=0)
    res = patching_sweep(model, c, data.vocab, "cpu", max_rows=20)          # several batches
    assert res.patched_ld.shape == (7, len(model.stages) - 2, 2 + 5 + 1)
    assert res.states == model.stages[1:-1]
    clean = torch.as_tensor(encode(c.clean, data.vocab)[0])
    corrupt = torch.as_tensor(encode(c.changing, data.vocab)[0])
    t, t2 = torch.as_tensor(c.clean[:, 4]), torch.as_tensor(c.changing[:, 4])
    _, cache = run_with_cache(model, clean)
    for state, pos in [("H0_L0", 0), ("H0_L1", 4), ("H0_commit", 1), ("H1_L1", 5), ("H1_L0", 7)]:
        def patch(z, name):
            z = z.clone()
            if pos == 7:
                return cache[name].clone()
            z[:, pos] = cache[name][:, pos]
            return z
        logits = run_with_hooks(model, corrupt, {state: patch})[:, 3]
        ld = logits.gather(1, t[:, None])[:, 0] - logits.gather(1, t2[:, None])[:, 0]
        np.testing.assert_allclose(res.patched_ld[:, res.states.index(state), pos], ld.numpy(), rtol=1e-5, atol=1e-5)
    logits = run_with_hooks(model, corrupt)[:, 3]
    np.testing.assert_allclose(res.corrupt_ld, (logits.gather(1, t[:, None]) - logits.gather(1, t2[:, None]))[:, 0].numpy(),
                               rtol=1e-5, atol=1e-5)
