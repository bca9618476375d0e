"""The update of every member at once: Grokfast filter, gradient clipping, AdamW, sign-SGD on the
prefix vector, EMA, and (fp16 only) dynamic loss scaling -- each with its own hyperparameters.

Hyperparameters are (M,) float64 tensors on the device and the step counter is a device tensor, so
the whole update runs without a host synchronisation and can be captured in a CUDA graph. Every
coefficient is computed in float64 and cast to the parameters' float32, as `torch.optim.AdamW`
does with its Python-float hyperparameters (tests/test_ensemble.py compares the two).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from grokcircuits.config import RunConfig
from grokcircuits.science.losses import at_least_float32

ADAM_EPS = 1e-8
PREFIX = "prefix_vector"          # trained by sign-SGD, not AdamW (as the authors' sparse embedding)
SCALE_INIT, SCALE_GROWTH, SCALE_BACKOFF, SCALE_INTERVAL = 2.0 ** 16, 2.0, 0.5, 2000   # torch.amp.GradScaler's


@dataclass
class Hyper:
    """Per-member hyperparameters, (M,) float64 on the device."""
    lr: torch.Tensor
    warmup: torch.Tensor
    beta1: torch.Tensor
    beta2: torch.Tensor
    weight_decay: torch.Tensor
    ema_decay: torch.Tensor
    prefix_lr: torch.Tensor
    prefix_weight_decay: torch.Tensor
    grad_clip: torch.Tensor
    grokfast_alpha: torch.Tensor
    grokfast_lambda: torch.Tensor
    halting_weight: torch.Tensor

    @staticmethod
    def of(configs: list[RunConfig], device) -> "Hyper":
        t = [c.train for c in configs]
        values = {
            "lr": [x.lr for x in t], "warmup": [x.warmup_steps for x in t],
            "beta1": [x.betas[0] for x in t], "beta2": [x.betas[1] for x in t],
            "weight_decay": [x.weight_decay for x in t], "ema_decay": [x.ema_decay for x in t],
            "prefix_lr": [x.prefix_lr for x in t], "prefix_weight_decay": [x.prefix_weight_decay for x in t],
            "grad_clip": [x.grad_clip for x in t], "grokfast_alpha": [x.grokfast_alpha for x in t],
            "grokfast_lambda": [x.grokfast_lambda for x in t], "halting_weight": [x.halting_loss_weight for x in t],
        }
        return Hyper(**{k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in values.items()})

    def tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True)
class UpdateSpec:
    """What the update does, fixed when the ensemble is built (a captured graph cannot branch)."""
    adam: tuple[str, ...]          # parameters trained by AdamW
    decayed: frozenset[str]        # ... of which those under weight decay
    prefix: str | None             # the sign-SGD parameter, if the model has one
    clip: bool                     # some member clips its gradient norm
    grokfast: bool                 # some member filters its gradients
    loss_scaling: bool             # fp16: dynamic loss scaling per member


@dataclass
class OptimizerState:
    """Every member's optimiser state, stacked: AdamW moments, Grokfast filter, counters, loss scale."""
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]
    grad_filter: dict[str, torch.Tensor]      # empty when no member uses Grokfast
    count: torch.Tensor                       # (M,) float64: updates applied (bias correction; Grokfast start)
    loss_scale: torch.Tensor                  # (M,) float32 (1 when not scaling)
    growth: torch.Tensor                      # (M,) int64 finite steps since the scale last changed

    def tensors(self) -> list[torch.Tensor]:
        return [*self.exp_avg.values(), *self.exp_avg_sq.values(), *self.grad_filter.values(),
                self.count, self.loss_scale, self.growth]


def lr_factor(step: torch.Tensor, warmup: torch.Tensor) -> torch.Tensor:
    """(M,) float64: linear warm-up over `warmup` steps, then 1 (`engine.lr_factor` on tensors)."""
    ramp = ((step.to(torch.float64) + 1) / warmup.clamp_min(1)).clamp_max(1.0)
    return torch.where(warmup > 0, ramp, torch.ones_like(ramp))


def per_member(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(M,) float64 -> broadcastable against `like` (M, ...), in `like`'s dtype."""
    return v.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def _sum_squares(grads: list[torch.Tensor]) -> torch.Tensor:
    """(M,) sum of squares of every member's gradients; row sums added one tensor at a time, so a
    member's value does not depend on how many members there are (bit for bit on the CPU)."""
    total = None
    for g in grads:
        s = at_least_float32(g.reshape(g.shape[0], -1)).square().sum(1)               # (M,)
        total = s if total is None else total + s
    return total


def _unscale(grads: dict, opt: OptimizerState) -> tuple[dict, torch.Tensor]:
    """Divide by each member's loss scale; a member with an inf/NaN gradient gets zeros and ok=False."""
    inv = 1.0 / opt.loss_scale                                                         # (M,)
    grads = {n: g * per_member(inv, g) for n, g in grads.items()}
    ok = torch.stack([torch.isfinite(g.reshape(g.shape[0], -1)).all(1) for g in grads.values()]).all(0)   # (M,)
    return {n: torch.where(ok.reshape(-1, *([1] * (g.dim() - 1))), g, torch.zeros_like(g)) for n, g in grads.items()}, ok


def _grokfast(grads: dict, opt: OptimizerState, hp: Hyper, ok: torch.Tensor | None) -> dict:
    """Grokfast-EMA (Lee et al. 2024): filter = alpha filter + (1 - alpha) g, then g + lambda filter;
    the filter starts at the first gradient (alpha 0 on the first update), as the authors' code."""
    alpha = torch.where(opt.count == 0, torch.zeros_like(hp.grokfast_alpha), hp.grokfast_alpha)
    if ok is not None:   # a skipped fp16 step leaves the filter as it was
        alpha = torch.where(ok, alpha, torch.ones_like(alpha))
    out = {}
    for n, g in grads.items():
        f = opt.grad_filter[n]
        f.mul_(per_member(alpha, f)).add_(g * per_member(1 - alpha, g))
        out[n] = g + f * per_member(hp.grokfast_lambda, f)
    return out


def _clip(grads: dict, spec: UpdateSpec, hp: Hyper) -> dict:
    """Scale each member's gradients (the prefix vector's excepted) to norm <= grad_clip; 0 = no clipping.
    As `torch.nn.utils.clip_grad_norm_`: coefficient max_norm / (norm + 1e-6), clamped at 1."""
    norm = _sum_squares([grads[n] for n in spec.adam]).sqrt().to(torch.float64)       # (M,)
    coef = (hp.grad_clip / (norm + 1e-6)).clamp_max(1.0)
    coef = torch.where(hp.grad_clip > 0, coef, torch.ones_like(coef))
    return {n: (g * per_member(coef, g) if n != spec.prefix else g) for n, g in grads.items()}


def _adamw_(w: dict, grads: dict, opt: OptimizerState, spec: UpdateSpec, hp: Hyper, lr: torch.Tensor,
            ok: torch.Tensor | None) -> None:
    """AdamW per member, in the arithmetic of `torch.optim.AdamW` (single-tensor path)."""
    beta1, beta2 = hp.beta1, hp.beta2
    count = opt.count + (1.0 if ok is None else ok.to(torch.float64))                 # (M,) this update's number
    bc1 = 1 - beta1 ** count.clamp_min(1)
    bc2 = 1 - beta2 ** count.clamp_min(1)
    neg_step = -(lr / bc1)
    if ok is not None:   # a skipped member keeps parameters and moments exactly
        lr, neg_step = lr * ok, neg_step * ok
        beta1 = torch.where(ok, beta1, torch.ones_like(beta1))
        beta2 = torch.where(ok, beta2, torch.ones_like(beta2))
    bc2_sqrt = bc2.sqrt()
    for n in spec.adam:
        p, g, m, v = w[n], grads[n], opt.exp_avg[n], opt.exp_avg_sq[n]
        if n in spec.decayed:
            p.mul_(per_member(1 - lr * hp.weight_decay, p))
        m.lerp_(g, per_member(1 - beta1, m))
        v.mul_(per_member(beta2, v)).addcmul_(g * per_member(1 - beta2, g), g)
        denom = (v.sqrt() / per_member(bc2_sqrt, v)).add_(ADAM_EPS)
        p.add_((m / denom) * per_member(neg_step, p))


def _sign_sgd_(p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, hp: Hyper) -> None:
    """Sign-SGD with decoupled weight decay for the learned prefix vector (the authors' sparse embedding)."""
    p.mul_(per_member(1 - lr * hp.prefix_weight_decay, p)).add_(g.sign() * per_member(-lr, p))


def _update_loss_scale_(opt: OptimizerState, ok: torch.Tensor) -> None:
    """torch.amp.GradScaler's rule per member: halve on inf/NaN, double after 2000 finite steps."""
    grown = opt.growth + 1
    grow = ok & (grown >= SCALE_INTERVAL)
    opt.loss_scale.copy_(torch.where(ok, torch.where(grow, opt.loss_scale * SCALE_GROWTH, opt.loss_scale),
                                     opt.loss_scale * SCALE_BACKOFF))
    opt.growth.copy_(torch.where(ok & ~grow, grown, torch.zeros_like(grown)))


@torch.no_grad()
def apply_update_(w: dict[str, torch.Tensor], ema: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
                  opt: OptimizerState, spec: UpdateSpec, hp: Hyper, factor: torch.Tensor) -> None:
    """One update of every member, in place. `grads` are the (scaled) gradients of the summed member
    losses; `factor` (M,) is the learning-rate schedule's value at this step."""
    ok = None
    if spec.loss_scaling:
        grads, ok = _unscale(grads, opt)
    if spec.grokfast:
        grads = _grokfast(grads, opt, hp, ok)
    if spec.clip:
        grads = _clip(grads, spec, hp)
    _adamw_(w, grads, opt, spec, hp, hp.lr * factor, ok)
    if spec.prefix is not None:
        plr = hp.prefix_lr * factor
        _sign_sgd_(w[spec.prefix], grads[spec.prefix], plr if ok is None else plr * ok, hp)
    for n, e in ema.items():
        e.lerp_(w[n], per_member(1 - hp.ema_decay, e))
    opt.count.add_(1.0 if ok is None else ok.to(torch.float64))
    if ok is not None:
        _update_loss_scale_(opt, ok)


def new_optimizer_state(w: dict[str, torch.Tensor], spec: UpdateSpec, M: int, device) -> OptimizerState:
    zeros = lambda names: {n: torch.zeros_like(w[n]) for n in names}
    filtered = spec.adam + ((spec.prefix,) if spec.prefix else ())
    return OptimizerState(
        exp_avg=zeros(spec.adam), exp_avg_sq=zeros(spec.adam), grad_filter=zeros(filtered) if spec.grokfast else {},
        count=torch.zeros(M, dtype=torch.float64, device=device),
        loss_scale=torch.full((M,), SCALE_INIT if spec.loss_scaling else 1.0, dtype=torch.float32, device=device),
        growth=torch.zeros(M, dtype=torch.int64, device=device))
