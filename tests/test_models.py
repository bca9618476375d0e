"""The recursive model and the standard transformer: parameter count, shapes, recursion, causality."""
import pytest
import torch

from grokcircuits.config import ConfigError, ModelConfig, get_profile
from grokcircuits.science.models import STAGES, build_model, count_parameters
from grokcircuits.science.models.trm import stage_names

TINY = get_profile("tiny")
V = 138


def test_paper_model_has_the_authors_parameter_count():
    model = build_model(get_profile("paper").trm, 2206)
    assert count_parameters(model) == 44_560_898
    assert model.prefix_vector.numel() == 1536   # held outside the count, as in the authors' sparse embedding


def test_stage_names_are_the_papers_fifteen_states():
    assert STAGES[0] == "Init" and STAGES[-1] == "H1_commit" and len(STAGES) == 15
    assert STAGES[1:8] == [f"H0_L{i}" for i in range(6)] + ["H0_commit"]


def test_trm_shapes_and_visit_order():
    model = build_model(TINY.trm, V)
    x = torch.randint(0, V, (3, 5))
    seen = []
    logits, halt = model(x, None, visit=lambda n, z: (seen.append((n, tuple(z.shape))), z)[1])
    assert logits.shape == (3, 5, V) and halt.shape == (3,)
    assert [n for n, _ in seen] == stage_names(TINY.trm.h_cycles, TINY.trm.l_cycles)
    assert all(shape == (3, TINY.trm.prefix_slots + 5, TINY.trm.width) for _, shape in seen)


def test_only_the_last_h_cycle_is_on_the_gradient_tape():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=32, prefix_slots=2, h_cycles=3, l_cycles=2, token_multiple=16), V).train()
    x = torch.randint(0, V, (4, 5))
    grads = {}
    logits, _ = model(x, None, visit=lambda n, z: (grads.__setitem__(n, z.requires_grad), z)[1])
    assert not any(grads[n] for n in grads if n.startswith(("H0_", "H1_")))
    assert all(grads[n] for n in grads if n.startswith("H2_"))
    logits.sum().backward()
    assert model.f.blocks[0].channel_mlp.down.weight.grad is not None


def test_patched_state_changes_the_output():
    model = build_model(TINY.trm, V).eval()
    x = torch.randint(0, V, (2, 5))
    base, _ = model(x)
    patched, _ = model(x, None, visit=lambda n, z: z * 0 if n == "H0_L0" else z)
    assert not torch.allclose(base, patched)


def test_gpt_is_causal_and_aligned_to_label_slots():
    torch.manual_seed(0)
    model = build_model(TINY.gpt, V).eval()
    labels = torch.randint(0, V, (2, 5))
    logits, _ = model(labels[:, :3], labels)
    assert logits.shape == (2, 5, V) and torch.all(logits[:, 0] == 0)
    changed = labels.clone()
    changed[:, 3] = (changed[:, 3] + 1) % V          # the answer token only informs the END slot
    logits2, _ = model(changed[:, :3], changed)
    assert torch.allclose(logits[:, :4], logits2[:, :4]) and not torch.allclose(logits[:, 4], logits2[:, 4])


def test_bad_architecture_is_rejected_with_the_allowed_values():
    with pytest.raises(ConfigError, match=r"architecture='rnn'.*'trm', 'gpt'"):
        build_model(ModelConfig(architecture="rnn"), V)


def test_truncated_normal_init_has_the_intended_standard_deviation():
    from grokcircuits.science.models.trm import trunc_normal_
    torch.manual_seed(0)
    w = trunc_normal_(torch.empty(400_000), 0.05)
    assert abs(float(w.std()) / 0.05 - 1) < 0.01          # PyTorch's trunc_normal_ alone gives about 0.88
    assert float(w.abs().max()) <= 2 * 0.05 / 0.8796 + 1e-6
    plain = torch.nn.init.trunc_normal_(torch.empty(400_000), std=0.05, a=-0.1, b=0.1)
    assert abs(float(plain.std()) / 0.05 - 0.88) < 0.01    # the bug this init fixes


def test_trm_linear_weights_have_std_one_over_sqrt_fan_in():
    model = build_model(get_profile("gpu").trm, 600)
    w = model.f.blocks[0].channel_mlp.gate_up.weight
    assert abs(float(w.detach().std()) * w.shape[1] ** 0.5 - 1) < 0.02


def test_bf16_numerics_stream_in_bf16_params_fp32_rmsnorm_in_fp32():
    from grokcircuits.science.models.trm import rms_norm
    model = build_model(TINY.trm, V)
    model.compute_dtype = torch.bfloat16
    x = torch.randint(0, V, (3, 5))
    dtypes = []
    logits, halt = model(x, None, visit=lambda n, z: (dtypes.append(z.dtype), z)[1])
    assert set(dtypes) == {torch.bfloat16}                                  # start states and stream
    assert logits.dtype == torch.bfloat16 and halt.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())        # kept in fp32
    # RMSNorm is computed in fp32 and cast back: the same as normalising the fp32 copy, then casting
    z = torch.randn(4, 7, 64).to(torch.bfloat16)
    assert rms_norm(z).dtype == torch.bfloat16
    assert torch.equal(rms_norm(z), rms_norm(z.float()).to(torch.bfloat16))
    # the fp32 model and the bf16 model agree to bf16 precision
    model.compute_dtype = torch.float32
    ref, _ = model(x, None)
    assert (logits.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_stablemax_loss_is_taken_in_float64_from_bf16_logits():
    from grokcircuits.science.losses import per_slot_nll
    logits = torch.randn(2, 5, 11).to(torch.bfloat16)
    labels = torch.randint(0, 11, (2, 5))
    nll = per_slot_nll(logits, labels, torch.ones(2, 5, dtype=torch.bool), "stablemax")
    assert nll.dtype == torch.float64


def test_the_named_variants_change_the_model_and_only_when_set():
    """Tied embeddings drop the head's own matrix; re-embedding changes the output of the same weights;
    neither is on in the paper's model, and neither changes the key of a run that leaves it off."""
    from dataclasses import replace as _replace
    from grokcircuits.config import get_profile as _profile
    tiny = _profile("tiny")
    base, tied = tiny.trm, _replace(tiny.trm, tied_embeddings=True)
    torch.manual_seed(0)
    plain = build_model(base, 50)
    torch.manual_seed(0)
    shared = build_model(tied, 50)
    assert shared.head.weight is shared.embed_tokens.weight
    assert sum(p.numel() for p in plain.parameters()) - sum(p.numel() for p in shared.parameters()) == 50 * base.width
    torch.manual_seed(0)
    reembedding = build_model(_replace(base, reembed=True), 50)
    reembedding.load_state_dict(plain.state_dict())
    x = torch.randint(0, 44, (4, 5))
    assert not torch.allclose(plain(x)[0], reembedding(x)[0])
    run = tiny.run("trm", "natural", 0)
    assert _replace(run, model=_replace(run.model, reembed=False)).key() == run.key()
    assert _replace(run, model=_replace(run.model, reembed=True)).key() != run.key()


def test_backprop_all_cycles_puts_the_first_h_cycle_on_the_gradient_tape_and_only_when_set():
    """The authors' recursion trains through its last H-cycle only; the variant trains through every
    one: the first cycle's state carries a gradient, and the same weights get other gradients."""
    from dataclasses import replace as _replace
    tiny = get_profile("tiny")
    x = torch.randint(0, 44, (4, 5))
    grads, on_tape = {}, {}
    for every in (False, True):
        torch.manual_seed(0)
        model = build_model(_replace(tiny.trm, backprop_all_cycles=every), 50)
        seen = {}

        def record(name, z):
            seen[name] = z.requires_grad
            return z
        model(x, visit=record)[0].square().mean().backward()
        on_tape[every] = seen
        grads[every] = torch.cat([p.grad.flatten() for p in model.f.parameters()])
    assert on_tape[False]["H0_commit"] is False and on_tape[True]["H0_commit"] is True
    assert on_tape[False]["H1_commit"] is True and on_tape[True]["H1_commit"] is True
    assert not torch.allclose(grads[False], grads[True])
    run = tiny.run("trm", "natural", 0)
    assert _replace(run, model=_replace(run.model, backprop_all_cycles=False)).key() == run.key()
    assert _replace(run, model=_replace(run.model, backprop_all_cycles=True)).key() != run.key()


def test_the_attention_variant_mixes_positions_with_attention_and_checks_its_name():
    from dataclasses import replace as _replace
    tiny = get_profile("tiny").trm
    model = build_model(_replace(tiny, token_mixer="attention"), 50)
    names = {n for n, _ in model.named_parameters()}
    assert "position_embedding" in names and "f.blocks.0.attention.qkv.weight" in names
    assert not any("token_mlp" in n for n in names)
    x = torch.randint(0, 44, (3, 5))
    swapped = x[:, [0, 2, 1, 3, 4]]                         # r1 and r2 exchanged: positions must tell them apart
    assert not torch.allclose(model(x)[0][:, :3], model(swapped)[0][:, [0, 2, 1]])
    with pytest.raises(ConfigError, match="token_mixer='conv'"):
        _replace(tiny, token_mixer="conv").validate()
