"""The engine's model axis: an ensemble of runs trains each run as it trains alone, the stacked model
computes what the plain modules compute, the per-member update is torch's AdamW, members never see
each other, and the snapshot, deadline and grouping rules do what they say."""
import copy
import os
from dataclasses import replace

import pytest
import torch

from grokcircuits.config import ConfigError, get_profile
from grokcircuits.training import lr_factor, train_group, training_loss
from grokcircuits.science.models import build_model
from grokcircuits.science.models.stacked import HashDropout, Layout, member_state_dict, stack_state_dicts, stacked_forward
from grokcircuits.store import Store, load_tensors
from grokcircuits.training import build_step, group_by_shape, model_flops_per_step
from grokcircuits.training import ensemble as ensemble_module
from grokcircuits.training.evaluation import log_snapshot_steps, log_spaced, snapshots_due
from grokcircuits.training.members import load_member_data
from grokcircuits.training.optim import SCALE_INTERVAL, Hyper, UpdateSpec, apply_update_, new_optimizer_state
from grokcircuits.training.state import Progress
from grokcircuits.training import step as step_module
from grokcircuits.training.step import StepRunner

TINY = get_profile("tiny")
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run about ten times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def float64():
    """Models built in float64 (the engine computes in its parameters' dtype on the CPU): an equivalence
    that is exact in principle then holds to about 1e-12 on any CPU's kernels, where float32 rounding of
    reordered sums (1e-7), amplified by training, would make the tolerance depend on the machine."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def quick(arch, regime, seed, steps=100, **overrides):
    """A small run of the tiny profile (batch 32, 20 probe queries per set) for equivalence tests."""
    return TINY.run(arch, regime, seed, **{"steps": steps, "eval_every": steps // 2, "checkpoint_every": steps,
                                          "snapshots": 0, "batch_size": 32, "eval_size": 20, **overrides})


def three(arch, steps=100):
    """Two data regimes (training sets of different sizes) and two learning rates; the third run also
    filters its gradients (Grokfast) and clips them."""
    return [quick(arch, "natural", 0, steps), quick(arch, "both_full", 1, steps),
            quick(arch, "natural", 2, steps, lr=1e-3, grokfast_alpha=0.9, grokfast_lambda=1.0, grad_clip=0.5)]


def relative_difference(a: dict, b: dict) -> float:
    """|a - b| / |b| over every tensor of two state dicts together (L2)."""
    num = sum(float((a[k].double() - b[k].double()).square().sum()) for k in b)
    den = sum(float(b[k].double().square().sum()) for k in b)
    return (num / den) ** 0.5


def final_weights(store, config):
    return load_tensors(store.checkpoint_dir(config.key()) / "final.pt")


def losses_of(run):
    return [e["train_loss"] for e in run.curves[1:]]


def relative_losses(a, b):
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


# --- equivalence ----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["trm", "gpt"])
def test_an_ensemble_trains_each_run_as_it_trains_alone(tmp_path, arch, float64):
    configs = three(arch)
    together = train_group(configs, Store(tmp_path / "together"))
    sizes = [together[c.key()].record["dataset"]["train_examples"] for c in configs]
    assert sizes[0] != sizes[1]                                          # the regimes' sets differ in size
    for c in configs:
        alone = train_group([c], Store(tmp_path / "alone"))[c.key()]
        run = together[c.key()]
        assert run.record["ensemble_size"] == 3 and alone.record["ensemble_size"] == 1
        assert final_weights(Store(tmp_path / "alone"), c)["head.weight" if arch == "trm" else "tok_emb.weight"].dtype == torch.float64
        assert relative_losses(losses_of(run), losses_of(alone)) <= 1e-10
        assert relative_difference(final_weights(Store(tmp_path / "together"), c),
                                   final_weights(Store(tmp_path / "alone"), c)) <= 1e-10
    # control: the members really are different runs
    w = [final_weights(Store(tmp_path / "together"), c) for c in configs]
    assert relative_difference(w[0], w[2]) > 1e-2 and relative_difference(w[0], w[1]) > 1e-2


def reference_training(config, steps):
    """The same run trained by a plain loop: the plain module, torch.optim.AdamW, torch's gradient
    clipping, Grokfast as its authors' code, sign-SGD on the prefix vector, an EMA of the weights.
    Returns (per-step losses, final EMA state dict)."""
    t = config.train
    data = load_member_data(config, CPU)
    torch.manual_seed(t.seed)
    model = build_model(config.model, data.vocab_size).train()
    ema = copy.deepcopy(model)
    named = [(n, p) for n, p in model.named_parameters() if n != "prefix_vector"]
    decayed = lambda p: config.model.architecture == "trm" or p.dim() >= 2
    opt = torch.optim.AdamW([{"params": [p for _, p in named if decayed(p)], "weight_decay": t.weight_decay},
                             {"params": [p for _, p in named if not decayed(p)], "weight_decay": 0.0}],
                            lr=t.lr, betas=t.betas, eps=1e-8)
    loss_fn = training_loss(model, t.loss, t.halting_loss_weight, compiled=False)
    prefix = getattr(model, "prefix_vector", None)
    filtered, losses = {}, []
    for step in range(steps):
        rows = data.order.rows(step, 1)[0]
        factor = lr_factor(step, t.warmup_steps)
        for group in opt.param_groups:
            group["lr"] = t.lr * factor
        loss = loss_fn(data.inputs[rows], data.labels[rows], data.mask[rows])
        loss.backward()
        if t.grokfast_lambda > 0:
            for n, p in model.named_parameters():
                g = p.grad.detach()
                filtered[n] = g.clone() if n not in filtered else filtered[n] * t.grokfast_alpha + g * (1 - t.grokfast_alpha)
                p.grad = p.grad + filtered[n] * t.grokfast_lambda
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for _, p in named], t.grad_clip)
        opt.step()
        with torch.no_grad():
            if prefix is not None:
                lr = t.prefix_lr * factor
                prefix.mul_(1 - lr * t.prefix_weight_decay).add_(prefix.grad.sign(), alpha=-lr)
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1 - t.ema_decay)
        opt.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, ema.state_dict()


@pytest.mark.parametrize("arch", ["trm", "gpt"])
def test_an_ensemble_matches_a_plain_training_loop(tmp_path, arch, float64):
    """30 steps in float64: the plain loop rounds differently (fused lerp kernels, F.linear against bmm),
    and training amplifies such differences (in float32, for the tiny GPT, about 1e-7 after 30 steps and
    5e-5 after 100 at lr 2e-3); in float64 they stay near 1e-12 on any CPU."""
    configs = [quick(arch, "both_full", 1, 30, eval_every=10), three(arch, 30)[2]]
    store = Store(tmp_path)
    runs = train_group(configs, store)
    for c in configs:
        losses, ema = reference_training(c, 30)
        means = [sum(losses[i:i + 10]) / 10 for i in (0, 10, 20)] if c.train.eval_every == 10 else \
            [sum(losses[:15]) / 15, sum(losses[15:]) / 15]
        assert relative_losses(losses_of(runs[c.key()]), means) <= 1e-9
        assert relative_difference(final_weights(store, c), ema) <= 1e-9
    # control: the same loop without Grokfast lands elsewhere, so the comparison can tell
    _, plain = reference_training(replace(configs[1], train=replace(configs[1].train, grokfast_lambda=0.0)), 30)
    assert relative_difference(final_weights(store, configs[1]), plain) > 1e-3


VARIANTS = {"trm": {}, "trm_tied": {"tied_embeddings": True}, "trm_reembed": {"reembed": True},
            "trm_tied_reembed": {"tied_embeddings": True, "reembed": True}, "trm_attention": {"token_mixer": "attention"},
            "trm_backprop_all": {"backprop_all_cycles": True}}


@pytest.mark.parametrize("variant", [*VARIANTS, "gpt"])
def test_stacked_forward_and_gradients_match_the_plain_modules(variant):
    """The same arithmetic in another order (bmm over the member axis, the recursive model's stream
    position-major): checked in float64, where rounding is far below the tolerance on any CPU's kernels
    (in float32 the reordered sums differ by about 1e-6, more or less with the CPU). The recursive
    model's named variants (tied embeddings, re-embedding between H-cycles, attention, every H-cycle on
    the gradient tape) too."""
    V = 138
    arch = "gpt" if variant == "gpt" else "trm"
    config = replace(TINY.trm, **VARIANTS[variant]) if arch == "trm" else TINY.gpt
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model(config, V).train().double()
        if arch == "trm":
            model.compute_dtype = torch.float64
        models.append(model)
    layout = Layout.of(models[0])
    w = stack_state_dicts([m.state_dict() for m in models], layout)
    for n in layout.parameters:
        w[n].requires_grad_(True)
    x, y = torch.randint(0, V - 6, (3, 8, 5)), torch.randint(0, V - 6, (3, 8, 5))
    logits, halt = stacked_forward(w, config, x, y, compute_dtype=torch.float64)   # (3, 8, 5, V)
    assert logits.dtype == torch.float64
    per_member = logits.square().mean(dim=(1, 2, 3)) + (halt.mean(1) if halt is not None else 0)   # (3,)
    per_member.sum().backward()
    close = dict(rtol=1e-10, atol=1e-12)
    for i, m in enumerate(models):
        ref, ref_halt = m(x[i], y[i])
        (ref.square().mean() + (ref_halt.mean() if ref_halt is not None else 0)).backward()
        assert torch.allclose(logits[i], ref, **close)
        if ref_halt is not None:
            assert torch.allclose(halt[i].double(), ref_halt.double(), **close)
        for n, p in m.named_parameters():
            assert torch.allclose(w[n].grad[i], p.grad, rtol=1e-10, atol=1e-12 * float(p.grad.abs().max())), n
        assert set(member_state_dict(w, layout, i)) == set(m.state_dict())   # tied weights and buffers included
    assert not torch.allclose(logits[0], logits[1])                         # control: members differ
    # control: the float64 tolerance tells a real difference (a member's weight moved by 1e-6)
    with torch.no_grad():
        models[0].head.weight[0, 0] += 1e-6 if arch == "trm" else 0.0
        if arch == "gpt":
            models[0].tok_emb.weight[0, 0] += 1e-6
    assert not torch.allclose(logits[0], models[0](x[0], y[0])[0], **close)


def hyper(M, **values):
    base = dict(lr=[1e-3] * M, warmup=[0] * M, beta1=[0.9] * M, beta2=[0.999] * M, weight_decay=[0.0] * M,
                ema_decay=[0.0] * M, prefix_lr=[0.0] * M, prefix_weight_decay=[0.0] * M, grad_clip=[0.0] * M,
                grokfast_alpha=[0.0] * M, grokfast_lambda=[0.0] * M, halting_weight=[0.0] * M)
    base.update(values)
    return Hyper(**{k: torch.tensor(v, dtype=torch.float64) for k, v in base.items()})


def test_per_member_adamw_matches_torch_adamw():
    torch.manual_seed(0)
    lrs, wds, betas = [1e-2, 3e-3], [0.1, 1.0], [(0.9, 0.95), (0.8, 0.999)]
    plain = [{"w": torch.randn(5, 37), "b": torch.randn(37)} for _ in range(2)]
    w = {n: torch.stack([p[n] for p in plain]) for n in ("w", "b")}
    spec = UpdateSpec(adam=("w", "b"), decayed=frozenset({"w"}), prefix=None, clip=False, grokfast=False, loss_scaling=False)
    hp = hyper(2, lr=lrs, weight_decay=wds, beta1=[b[0] for b in betas], beta2=[b[1] for b in betas])
    opt = new_optimizer_state(w, spec, 2, CPU)
    ref = [{n: t.clone().requires_grad_(True) for n, t in p.items()} for p in plain]
    ref_opt = [torch.optim.AdamW([{"params": [r["w"]], "weight_decay": wds[m]}, {"params": [r["b"]], "weight_decay": 0.0}],
                                 lr=lrs[m], betas=betas[m], eps=1e-8) for m, r in enumerate(ref)]
    for _ in range(6):
        grads = {n: torch.randn_like(w[n]) for n in w}
        apply_update_(w, {}, grads, opt, spec, hp, torch.ones(2, dtype=torch.float64))
        for m in range(2):
            for n in w:
                ref[m][n].grad = grads[n][m].clone()
            ref_opt[m].step()
    for m in range(2):
        for n in w:
            assert torch.allclose(w[n][m], ref[m][n].detach(), rtol=1e-6, atol=1e-7)
    assert not torch.allclose(w["w"][0], plain[0]["w"], atol=1e-3)           # control: it moved


def test_fp16_loss_scaling_skips_only_the_member_whose_gradient_overflowed():
    torch.manual_seed(0)
    w = {"w": torch.randn(2, 4, 3)}
    spec = UpdateSpec(adam=("w",), decayed=frozenset({"w"}), prefix=None, clip=False, grokfast=False, loss_scaling=True)
    hp = hyper(2, weight_decay=[0.1, 0.1])
    opt = new_optimizer_state(w, spec, 2, CPU)
    opt.growth[0] = SCALE_INTERVAL - 1
    scale = float(opt.loss_scale[0])
    grads = {"w": torch.randn(2, 4, 3) * scale}
    grads["w"][1, 0, 0] = float("inf")
    before = w["w"].clone()
    apply_update_(w, {}, grads, opt, spec, hp, torch.ones(2, dtype=torch.float64))
    assert torch.equal(w["w"][1], before[1]) and torch.equal(opt.exp_avg["w"][1], torch.zeros(4, 3))
    assert opt.count.tolist() == [1.0, 0.0]
    assert opt.loss_scale.tolist() == [2 * scale, scale / 2]                 # grew after the interval; backed off
    # member 0 took the unscaled step
    plain = {"w": before[:1].clone()}
    unscaled = new_optimizer_state(plain, replace(spec, loss_scaling=False), 1, CPU)
    apply_update_(plain, {}, {"w": grads["w"][:1] / scale}, unscaled, replace(spec, loss_scaling=False),
                  hyper(1, weight_decay=[0.1]), torch.ones(1, dtype=torch.float64))
    assert torch.allclose(w["w"][0], plain["w"][0], rtol=1e-6, atol=0)


# --- members never see each other ------------------------------------------------------------------
def test_hash_dropout_depends_on_seed_step_and_site_only():
    x = torch.ones(2, 64, 256)
    drop = HashDropout(0.1, torch.tensor([3, 4]), torch.tensor([7, 7]))
    y = drop(x, site=1)
    kept = (y > 0).float().mean(dim=(1, 2))
    assert torch.allclose(kept, torch.tensor([0.9, 0.9]), atol=0.01)
    assert torch.allclose(y[y > 0], torch.tensor(1 / 0.9))
    assert torch.equal(y, drop(x, site=1))                                  # a function, not a random draw
    assert not torch.equal(y[0], y[1])                                      # another seed
    assert not torch.equal(y, drop(x, site=2))                              # another site
    assert not torch.equal(y, HashDropout(0.1, torch.tensor([3, 4]), torch.tensor([8, 8]))(x, site=1))   # another step
    alone = HashDropout(0.1, torch.tensor([3]), torch.tensor([7]))(x[:1], site=1)
    assert torch.equal(alone[0], y[0])                                      # the same mask whatever the partners


def test_a_run_with_dropout_does_not_depend_on_its_partners(tmp_path):
    run = lambda seed: replace(quick("gpt", "natural", seed, 20), model=replace(TINY.gpt, dropout=0.1))
    a, b, c = run(0), run(1), run(2)
    train_group([a, b], Store(tmp_path / "ab"))
    train_group([a, c], Store(tmp_path / "ac"))
    wa_b, wa_c = final_weights(Store(tmp_path / "ab"), a), final_weights(Store(tmp_path / "ac"), a)
    assert all(torch.equal(wa_b[k], wa_c[k]) for k in wa_b)
    assert relative_difference(final_weights(Store(tmp_path / "ab"), b), wa_b) > 1e-2   # control


# --- snapshots ------------------------------------------------------------------------------------
def test_log_spaced_evaluations_are_distinct_dense_early_and_end_at_the_last():
    steps = log_spaced(60, 12)                                              # 60 evaluations, 12 snapshots
    assert steps == [1, 2, 3, 4, 5, 6, 9, 14, 20, 29, 41, 60]
    assert steps[0] == 1 and steps[-1] == 60 and steps == sorted(set(steps))
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[0] < gaps[-1]                                               # dense early
    assert log_spaced(5, 8) == [1, 2, 3, 4, 5] and log_spaced(5, 0) == [] and log_spaced(3, 2) == [1, 3]
    assert log_snapshot_steps(TINY.run("trm", "natural", 0, steps=30, eval_every=10, snapshots=2).train) == [10, 30]


def test_snapshot_rules_on_a_synthetic_evaluation_sequence():
    t = TINY.run("trm", "natural", 0, steps=100, eval_every=10, snapshots=2, snapshot_at_training_accuracy=0.9,
                 snapshot_at_ood_exact_match=0.5).train
    training = [0.0, 0.2, 0.95, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    ood = [0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.6, 0.7, 0.4, 0.8, 0.9]
    p, due = Progress(), {}
    for i, (tr, o) in enumerate(zip(training, ood)):
        step = 10 * i
        due[step] = snapshots_due(t, p, step, {"training_accuracy": tr, "test_inferred_ood": {"exact_match": o}})
        p.previous_eval_step = step
    assert {s: d for s, d in due.items() if d} == {10: [10], 20: [20], 60: [50, 60], 100: [100]}
    # control: a run that never reaches either threshold keeps only the log-spaced ones
    p = Progress()
    flat = {"training_accuracy": 0.1, "test_inferred_ood": {"exact_match": 0.0}}
    kept = [snapshots_due(t, p, 10 * i, flat) for i in range(11)]
    assert [d for d in kept if d] == [[10], [100]]


def test_snapshots_keep_the_weights_before_the_ood_threshold_across_a_resume(tmp_path, monkeypatch):
    """Evaluations are replaced by a synthetic sequence (the tiny runs do not grok in a few steps):
    training accuracy crosses 0.9 at step 10, OOD exact match crosses 0.5 at step 30."""
    sequence = {0: (0.0, 0.0), 10: (0.95, 0.0), 20: (0.97, 0.1), 30: (0.99, 0.6), 40: (1.0, 0.7)}
    current_step = [0]

    def synthetic(model, sets, with_lens):
        training, ood = sequence[current_step[0]]
        return {"training_accuracy": training, "test_inferred_ood": {"exact_match": ood}}
    monkeypatch.setattr(ensemble_module, "evaluate", synthetic)
    original = ensemble_module.Ensemble._evaluate

    def tracking(self, i):
        current_step[0] = self.progress[i].step
        original(self, i)
    monkeypatch.setattr(ensemble_module.Ensemble, "_evaluate", tracking)
    config = quick("trm", "natural", 0, 40, eval_every=10, checkpoint_every=10, snapshots=1)
    store = Store(tmp_path)
    assert train_group([config], store, stop_after=25)[config.key()] is None   # stopped between 20 and 30
    run = train_group([config], store)[config.key()]
    assert run.snapshot_steps() == [10, 20, 30, 40]
    shorter = replace(config, train=replace(config.train, steps=20))
    train_group([shorter], store)
    before = load_tensors(store.checkpoint_dir(config.key()) / "snapshot_20.pt")
    assert all(torch.equal(before[k], v) for k, v in final_weights(store, shorter).items())   # the EMA at step 20
    at = load_tensors(store.checkpoint_dir(config.key()) / "snapshot_30.pt")
    assert not torch.equal(at["head.weight"], before["head.weight"])


# --- deadline, grouping ---------------------------------------------------------------------------
@pytest.mark.parametrize("readings", [6, 25])
def test_a_deadline_stops_cleanly_and_a_later_call_resumes_exactly(tmp_path, monkeypatch, readings):
    configs = [quick("trm", "natural", 0, 40, eval_every=10, checkpoint_every=40),
               quick("trm", "hop1_only", 0, 40, eval_every=10, checkpoint_every=40)]
    whole = train_group(configs, Store(tmp_path / "whole"))
    calls = [0]

    def clock():   # the deadline (1.0) passes after some readings of the clock
        calls[0] += 1
        return 0.0 if calls[0] <= readings else 2.0
    monkeypatch.setattr(ensemble_module.time, "time", clock)
    store = Store(tmp_path / "cut")
    cut = train_group(configs, store, deadline=1.0)
    monkeypatch.undo()
    assert all(r is None for r in cut.values())
    for c in configs:
        rec = store.record(c.key())
        assert rec["status"] == "incomplete" and 0 < rec["steps"] < 40 and not store.has_run(c.key())
        assert [e["step"] for e in store.curves(c.key())] == list(range(0, rec["steps"] + 1, 10))
    resumed = train_group(configs, store)
    strip = lambda cs: [{k: v for k, v in e.items() if k != "wall_seconds"} for e in cs]
    for c in configs:
        a, b = final_weights(Store(tmp_path / "whole"), c), final_weights(store, c)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert strip(whole[c.key()].curves) == strip(resumed[c.key()].curves)


def test_group_by_shape_splits_by_shape_and_size_and_puts_parents_first():
    trm = [TINY.run("trm", r, s) for r in ("natural", "both_full", "hop1_only") for s in (0, 1, 2)]
    gpt = [TINY.run("gpt", "natural", s) for s in (0, 1)]
    wide = TINY.run("trm", "natural", 0, batch_size=64)
    groups = group_by_shape(trm + gpt + [wide] + trm[:2], max_members=4)
    assert sorted(len(g) for g in groups) == [1, 2, 3, 3, 3]                # 9 -> 3+3+3, not 4+4+1; duplicates dropped
    for g in groups:
        assert len({(c.model, c.train.batch_size) for c in g}) == 1
    fine = TINY.transfer_run(trm[0], 0)
    order = group_by_shape([fine, trm[0]])
    assert order == [[trm[0]], [fine]]
    with pytest.raises(ConfigError, match="max_members"):
        group_by_shape(trm, max_members=0)


def test_flops_count_more_work_for_the_wider_model():
    small, paper = TINY.run("trm", "natural", 0), get_profile("paper").run("trm", "natural", 0)
    assert model_flops_per_step(paper) > 1e4 * model_flops_per_step(small) > 0
    assert model_flops_per_step(TINY.run("gpt", "natural", 0)) > 0


@pytest.mark.slow
def test_the_compiled_step_gives_the_eager_losses():
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        # Inductor writes C++ for the real CPU; with ATen's capability forced down (emulating an older
        # CPU) that code fails to compile ('at::vec' undeclared, then the engine falls back to eager
        # steps) or, seen with avx2 and one thread, ran for over 20 minutes without finishing a step.
        pytest.skip("torch.compile on the CPU is not reliable under an emulated ATEN_CPU_CAPABILITY")
    configs = three("trm", 10)[:2]
    fallbacks = []
    eager, compiled = build_step(configs, CPU, compiled=False), build_step(configs, CPU, compiled=True, log=fallbacks.append)
    assert compiled.mode == "compiled" and eager.mode == "eager" and compiled.compile_seconds > 0, fallbacks
    for _ in range(3):
        eager()
        compiled()
    le, lc = eager.ensemble.tensors.batches.losses[:3], compiled.ensemble.tensors.batches.losses[:3]
    assert torch.allclose(le, lc, rtol=1e-5) and not torch.equal(le[0], le[2])
    for n, w in eager.ensemble.tensors.weights.items():
        assert torch.allclose(w, compiled.ensemble.tensors.weights[n], rtol=1e-4, atol=1e-6), n


@pytest.mark.parametrize("arch,precision", [("trm", "bf16"), ("gpt", "bf16"), ("gpt", "fp16")])
def test_the_gpu_numerics_run_on_the_cpu_and_stay_close_to_fp32(arch, precision):
    """The GPU's step (the recursive model's bf16 stream; the transformer's autocast, with per-member
    loss scaling in fp16) run on the CPU: a few steps stay within low-precision distance of fp32."""
    configs = [TINY.run(arch, "natural", s, precision=precision, batch_size=32) for s in (0, 1)]
    fp32, low = build_step(configs, CPU), build_step(configs, CPU)
    e = low.ensemble
    spec = replace(ensemble_module.step_spec(configs, e.layout, torch.device("cuda")), device_type="cpu")
    assert (spec.compute_dtype == torch.bfloat16) == (arch == "trm") and spec.update.loss_scaling == (precision == "fp16")
    if spec.update.loss_scaling:
        e.tensors.opt.loss_scale.fill_(2.0 ** 16)
    e.spec, e.runner = spec, StepRunner(e.tensors, spec, compiled=False, graph=False)
    for _ in range(5):
        fp32()
        low()
    a, b = fp32.ensemble.tensors.batches.losses[:5], e.tensors.batches.losses[:5]
    assert torch.allclose(a, b, rtol=5e-3) and not torch.equal(a, b)
    assert all(bool(torch.isfinite(w).all()) for w in e.tensors.weights.values())


def test_a_step_that_fails_to_compile_falls_back_to_eager_and_says_so(monkeypatch):
    def broken(fn, **kwargs):
        def raise_(*args, **kw):
            raise RuntimeError("no compiler here")
        return raise_
    monkeypatch.setattr(step_module.torch, "compile", broken)
    step = build_step([quick("trm", "natural", 0, 10)], CPU, compiled=True)
    assert step.mode == "eager"
    step()
    assert torch.isfinite(step.ensemble.tensors.batches.losses[0]).all()


def test_compiled_steps_on_the_cpu_unless_told_otherwise_or_on_an_emulated_cpu(monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv(step_module.NO_COMPILE_ENV, raising=False)
    heard = []
    assert step_module.compile_supported(CPU, heard.append) and not heard
    assert not step_module.compile_supported(CPU, heard.append, "gpt") and "standard transformer" in heard[-1]
    monkeypatch.setenv(step_module.NO_COMPILE_ENV, "1")
    assert not step_module.compile_supported(CPU, heard.append) and "GROKCIRCUITS_NO_COMPILE" in heard[-1]
    monkeypatch.setenv(step_module.NO_COMPILE_ENV, "0")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert not step_module.compile_supported(CPU, heard.append) and "ATEN_CPU_CAPABILITY" in heard[-1]
    # a run that does not ask for compilation (the tiny profile) steps eagerly, whatever the device
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    assert build_step([quick("trm", "natural", 0, 10)], CPU).mode == "eager"
