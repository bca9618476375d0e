"""Named-state hooks on the recursive model: the cache holds what the recursion computed, hooks
change it, a misspelled name raises, and nothing stays attached to the model after a call."""
import pytest
import torch

from grokcircuits.config import ModelConfig
from grokcircuits.science.hooks import run_with_cache, run_with_hooks
from grokcircuits.science.models import build_model

V = 40


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(width=32, prefix_slots=2, expansion=2.0, token_multiple=8, h_cycles=2, l_cycles=2), V).eval()


@pytest.fixture(scope="module")
def inputs():
    return torch.randint(0, V, (6, 5), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_cache_holds_every_state_the_recursion_visits(model, inputs):
    seen = {}
    reference, _ = model(inputs, None, visit=lambda n, z: (seen.__setitem__(n, z.clone()), z)[1])
    logits, cache = run_with_cache(model, inputs)
    assert torch.equal(logits, reference)
    assert list(cache) == model.stages
    for name, state in cache.items():
        assert state.shape == (6, 2 + 5, 32) and torch.equal(state, seen[name])
    assert torch.equal(model.readout(cache[model.stages[-1]]), logits)      # the last state is the output


@torch.no_grad()
def test_cache_is_filtered_by_name_or_predicate(model, inputs):
    _, some = run_with_cache(model, inputs, names=["H1_commit", "H0_L1"])
    assert list(some) == ["H0_L1", "H1_commit"]                              # execution order
    _, commits = run_with_cache(model, inputs, names=lambda n: n.endswith("commit"))
    assert list(commits) == ["H0_commit", "H1_commit"]


@torch.no_grad()
def test_hooks_change_the_run_and_none_keeps_it(model, inputs):
    clean = run_with_hooks(model, inputs)
    assert torch.equal(run_with_hooks(model, inputs, {"H0_L0": lambda z, name: None}), clean)
    zeroed = run_with_hooks(model, inputs, {"H1_L1": lambda z, name: torch.zeros_like(z)})
    assert not torch.allclose(zeroed, clean)
    names = []
    run_with_hooks(model, inputs, {n: (lambda z, name: names.append(name)) for n in ("H1_L0", "H0_L0")})
    assert names == ["H0_L0", "H1_L0"]                                       # each hook told its state's name


@torch.no_grad()
def test_cache_sees_the_hooked_state(model, inputs):
    _, cache = run_with_cache(model, inputs, names=["H0_L1"], hooks={"H0_L1": lambda z, name: z * 0 + 1})
    assert torch.equal(cache["H0_L1"], torch.ones_like(cache["H0_L1"]))


@torch.no_grad()
def test_no_hook_outlives_the_call(model, inputs):
    before = model(inputs, None)[0]
    run_with_hooks(model, inputs, {"H0_L0": lambda z, name: torch.zeros_like(z)})
    run_with_cache(model, inputs, names=["H1_commit"])
    assert torch.equal(model(inputs, None)[0], before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_unknown_state_names_and_wrong_shapes_raise(model, inputs):
    with pytest.raises(ValueError, match="H9_L0.*allowed values: Init, H0_L0"):
        run_with_hooks(model, inputs, {"H9_L0": lambda z, name: z})
    with pytest.raises(ValueError, match="H0_L7"):
        run_with_cache(model, inputs, names=["H0_L7"])
    with pytest.raises(ValueError, match="returned shape"):
        run_with_hooks(model, inputs, {"H0_L0": lambda z, name: z[:, :3]})


# --- the standard transformer shows its states in the same layout --------------------------------
@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return build_model(ModelConfig(architecture="gpt", width=32, layers=2, heads=2, prefix_slots=2), V).eval()


@torch.no_grad()
def test_the_standard_transformer_names_its_states_in_the_probes_layout(gpt, inputs):
    logits, cache = run_with_cache(gpt, inputs)
    assert list(cache) == gpt.stages == ["Embed", "Block0", "Block1"]
    assert all(s.shape == (6, 2 + 5, 32) for s in cache.values())                  # prefix + 5 label slots
    assert all((s[:, :3] == 0).all() for s in cache.values())                      # prefix and label slot 0 empty
    # label slot 3 holds the state of token 2 (r2): the one that predicts the answer
    assert torch.allclose(gpt.readout(cache["Block1"])[:, 3], logits[:, 3], atol=1e-5)
    labels = inputs.clone()
    labels[:, 3:] = (inputs[:, 3:] + 1) % V                                         # another answer and END
    with_labels, _ = gpt(inputs, labels)
    assert torch.allclose(with_labels[:, :4], logits[:, :4], atol=1e-6)            # the answer never sees later tokens


@torch.no_grad()
def test_a_hook_on_the_standard_transformer_changes_its_run(gpt, inputs):
    plain = run_with_hooks(gpt, inputs)
    assert torch.equal(run_with_hooks(gpt, inputs, {"Block0": lambda s, n: None}), plain)
    zeroed = run_with_hooks(gpt, inputs, {"Block0": lambda s, n: torch.zeros_like(s)})
    assert not torch.allclose(zeroed[:, 3], plain[:, 3])
    with pytest.raises(ValueError, match="allowed values: Embed, Block0, Block1"):
        run_with_hooks(gpt, inputs, {"Block9": lambda s, n: None})
