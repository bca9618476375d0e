"""Many models of one shape computed as one: weights with a leading member axis M, batched matmuls.

An ensemble of M independent runs that share an architecture and its shapes keeps every weight as
one tensor whose first axis is the member, and every matmul is a `torch.bmm` over that axis, so M
small models fill a GPU that one alone would leave waiting on kernel launches. The forward passes
here compute, member by member, what the plain `TRM` and `GPT` modules compute (tests/test_ensemble.py
checks outputs and gradients against them). The plain modules stay what the probes and
`Run.load_model` use: weights move between the two forms as ordinary state dicts
(`stack_state_dicts`, `member_state_dict`).

The only deliberate difference is dropout (the standard transformer): its masks come from a
counter-based hash of (member seed, member step, site, element), so a run's randomness depends on
nothing but itself -- not on which other runs share its ensemble -- and a resumed run draws the
same masks as an uninterrupted one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from grokcircuits.config import ModelConfig, attention_heads
from grokcircuits.science.losses import at_least_float32
from grokcircuits.science.models.trm import on_tape, rms_norm


# --- plain state dict <-> stacked tensors -----------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How a plain model's state dict maps onto stacked tensors."""
    parameters: tuple[str, ...]     # trainable tensors, tied weights once (named_parameters order)
    buffers: tuple[str, ...]        # fixed tensors (the recursive model's start states)
    aliases: dict[str, str]         # every state-dict key -> the parameter or buffer it reads
    ndim: dict[str, int]            # dimensions of each tensor in the plain model

    @staticmethod
    def of(model: torch.nn.Module) -> "Layout":
        names = {id(p): n for n, p in model.named_parameters()}
        names.update({id(b): n for n, b in model.named_buffers()})
        aliases = {k: names[id(v)] for k, v in model.state_dict(keep_vars=True).items()}
        params = tuple(n for n, _ in model.named_parameters())
        buffers = tuple(n for n, _ in model.named_buffers())
        ndim = {n: t.dim() for n, t in list(model.named_parameters()) + list(model.named_buffers())}
        return Layout(params, buffers, aliases, ndim)


def stack_state_dicts(states: list[dict[str, torch.Tensor]], layout: Layout) -> dict[str, torch.Tensor]:
    """M plain state dicts -> {name: (M, ...)} for every parameter and buffer."""
    return {name: torch.stack([s[name] for s in states]) for name in layout.parameters + layout.buffers}


def member_state_dict(stacked: dict[str, torch.Tensor], layout: Layout, m: int) -> dict[str, torch.Tensor]:
    """Member m as a plain state dict (every key of the plain model, tied weights included), on the CPU."""
    return {key: stacked[name][m].detach().to("cpu", copy=True) for key, name in layout.aliases.items()}


# --- per-member layers --------------------------------------------------------------------------
def bmm_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A Linear layer per member: x (M, ..., n_in), weight (M, n_out, n_in), bias (M, n_out) -> (M, ..., n_out).
    The fp32 weight is cast to the input's dtype, as the plain models do."""
    M, n_in = x.shape[0], x.shape[-1]
    flat = x.reshape(M, -1, n_in)                                                   # (M, N, n_in)
    w_t = weight.to(x.dtype).transpose(1, 2)                                        # (M, n_in, n_out)
    if bias is None:
        y = torch.bmm(flat, w_t)                                                    # (M, N, n_out)
    else:
        y = torch.baddbmm(bias.to(x.dtype).unsqueeze(1), flat, w_t)                 # (M, N, n_out)
    return y.reshape(*x.shape[:-1], weight.shape[1])


def member_view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-member (M, D) tensor shaped to broadcast against `like` (M, ..., D)."""
    return v.reshape(v.shape[0], *([1] * (like.dim() - 2)), v.shape[-1])


def embedding(tokens: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """tokens (M, ...) ids, weight (M, V, D) -> (M, ..., D): each member reads its own table."""
    M, V, D = weight.shape
    offsets = torch.arange(M, device=tokens.device).reshape(M, *([1] * (tokens.dim() - 1))) * V
    return F.embedding(tokens + offsets, weight.reshape(M * V, D))


# --- dropout from a counter-based hash ----------------------------------------------------------
_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32), in int64 without overflow (the constant split in halves)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A well-mixed 32-bit integer hash ("lowbias32", C. Wellons) of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


@dataclass
class HashDropout:
    """Inverted dropout whose mask is a function of (member seed, member step, site, element) only."""
    p: float
    seeds: torch.Tensor    # (M,) int64
    steps: torch.Tensor    # (M,) int64
    shard: int = 0         # this process's slice of the global batch: elements count from shard * n

    def __call__(self, x: torch.Tensor, site: int) -> torch.Tensor:   # (M, ...) -> (M, ...)
        if self.p <= 0:
            return x
        key = hash32(hash32(hash32(self.seeds & _MASK32) ^ (self.steps & _MASK32)) ^ site)      # (M,)
        n = x[0].numel()
        element = torch.arange(self.shard * n, (self.shard + 1) * n, device=x.device)           # (n,)
        bits = hash32(hash32(element[None, :] ^ key[:, None]) ^ hash32(key + 1)[:, None])        # (M, n)
        keep = (bits >= int(self.p * 2 ** 32)).reshape(x.shape)                                  # (M, ...)
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


# --- the recursive model ---------------------------------------------------------------------------
# The stream is kept position-major, (M, S, B, D), so that every matmul reads and writes contiguous
# memory: the token MLP (the same weights for every channel) is one matmul per member over the
# position axis, W (2h, S) @ z (S, B*D), whose gate and up halves are contiguous row blocks; the
# channel MLP is z (S*B, D) @ W^T. The plain `TRM` keeps (B, S, D); the arithmetic is the same.
def _token_mlp(z: torch.Tensor, w: dict, name: str) -> torch.Tensor:   # (M, S, B, D) -> (M, S, B, D)
    M, S, B, D = z.shape
    gate_up = w[f"{name}.gate_up.weight"]                                           # (M, 2h, S)
    u = torch.bmm(gate_up.to(z.dtype), z.reshape(M, S, B * D))                      # (M, 2h, B*D)
    hidden = gate_up.shape[1] // 2
    h = F.silu(u[:, :hidden]) * u[:, hidden:]                                       # (M, h, B*D)
    return torch.bmm(w[f"{name}.down.weight"].to(z.dtype), h).view(M, S, B, D)     # (M, S, B, D)


def _channel_mlp(z: torch.Tensor, w: dict, name: str) -> torch.Tensor:   # (M, S, B, D) -> (M, S, B, D)
    gate, up = bmm_linear(z, w[f"{name}.gate_up.weight"]).chunk(2, dim=-1)         # (M, S, B, h) each
    return bmm_linear(F.silu(gate) * up, w[f"{name}.down.weight"])


def _self_attention(z: torch.Tensor, w: dict, name: str) -> torch.Tensor:   # (M, S, B, D) -> (M, S, B, D)
    """`trm.SelfAttention` per member, on the position-major stream."""
    M, S, B, D = z.shape
    heads = attention_heads(D)
    qkv = bmm_linear(z, w[f"{name}.qkv.weight"])                                   # (M, S, B, 3D)
    q, k, v = (y.permute(0, 2, 1, 3).reshape(M * B, S, heads, D // heads).transpose(1, 2)
               for y in qkv.split(D, dim=-1))                                       # (M*B, heads, S, D/heads) each
    y = F.scaled_dot_product_attention(q, k, v)                                     # (M*B, heads, S, D/heads)
    y = y.transpose(1, 2).reshape(M, B, S, D).permute(0, 2, 1, 3)                   # (M, S, B, D)
    return bmm_linear(y, w[f"{name}.out.weight"])


def _trm_block(z: torch.Tensor, w: dict, name: str, mixer: str = "mlp") -> torch.Tensor:   # (M, S, B, D)
    if mixer == "attention":
        z = rms_norm(z + _self_attention(z, w, f"{name}.attention"))               # normalised over channels
    else:
        z = rms_norm(z + _token_mlp(z, w, f"{name}.token_mlp"), dim=1)             # normalised over positions
    return rms_norm(z + _channel_mlp(z, w, f"{name}.channel_mlp"))                 # normalised over channels


def _trm_f(z: torch.Tensor, injection: torch.Tensor, w: dict, blocks: int, mixer: str = "mlp") -> torch.Tensor:
    z = z + injection                                                               # (M, S, B, D)
    for i in range(blocks):
        z = _trm_block(z, w, f"f.blocks.{i}", mixer)
    return z


def _reembed(z: torch.Tensor, head: torch.Tensor, embed: torch.Tensor, P: int, D: int) -> torch.Tensor:
    """`TRM.reembed` per member: z (M, S, B, D) += softmax(head(z)) @ E * sqrt(D) at the token slots."""
    M, S, B, _ = z.shape
    probs = bmm_linear(z[:, P:], head).float().softmax(-1).to(z.dtype)             # (M, 5, B, V)
    written = torch.bmm(probs.reshape(M, -1, probs.shape[-1]), embed.to(z.dtype))  # (M, 5*B, D)
    return torch.cat([z[:, :P], z[:, P:] + written.view(M, S - P, B, D) * math.sqrt(D)], dim=1)


def trm_forward(w: dict[str, torch.Tensor], config: ModelConfig, inputs: torch.Tensor,
                compute_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor | None]:
    """inputs (M, B, 5) -> logits (M, B, 5, V), halting logit (M, B) or None: `TRM.forward` per member."""
    M, B, _ = inputs.shape
    D, P = config.width, config.prefix_slots
    x = embedding(inputs.transpose(1, 2), w["embed_tokens.weight"]).to(compute_dtype)   # (M, 5, B, D)
    if P > 0:
        vector = w["prefix_vector"].to(x.dtype)[:, None, None, :].expand(M, 1, B, D)  # (M, 1, B, D)
        x = torch.cat([vector, x.new_zeros(M, P - 1, B, D), x], dim=1)              # (M, P + 5, B, D)
    if config.token_mixer == "attention":
        x = x + w["position_embedding"].to(x.dtype)[:, :, None, :]                  # (M, P + 5, B, D)
    x = x * math.sqrt(D)
    S = x.shape[1]
    z_H = w["z_H_init"].to(x.dtype)[:, None, None, :].expand(M, S, B, D)            # (M, S, B, D)
    z_L = w["z_L_init"].to(x.dtype)[:, None, None, :].expand(M, S, B, D)            # (M, S, B, D)
    H, L = config.h_cycles, config.l_cycles
    head = w["embed_tokens.weight"] if config.tied_embeddings else w["head.weight"]   # (M, V, D)
    for h in range(H):
        with torch.set_grad_enabled(torch.is_grad_enabled() and on_tape(config, h)):
            for _ in range(L):
                z_L = _trm_f(z_L, z_H + x, w, config.blocks, config.token_mixer)
            z_H = _trm_f(z_H, z_L, w, config.blocks, config.token_mixer)
            if config.reembed and h < H - 1:
                z_H = _reembed(z_H, head, w["embed_tokens.weight"], P, D)
    logits = bmm_linear(z_H[:, P:], head).transpose(1, 2)                           # (M, B, 5, V)
    halt = None
    if config.halting_head:
        halt = at_least_float32(bmm_linear(z_H[:, 0], w["halt_head.weight"], w["halt_head.bias"])[..., 0])   # (M, B)
    return logits, halt


# --- the standard transformer ---------------------------------------------------------------------
def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:   # (M, ..., D)
    y = F.layer_norm(x, (x.shape[-1],), eps=1e-5)
    return y * member_view(weight, y) + member_view(bias, y)


def _attention(x: torch.Tensor, w: dict, name: str, heads: int, dropout: HashDropout | None,
               site: int) -> torch.Tensor:   # (M, B, T, C)
    M, B, T, C = x.shape
    q, k, v = bmm_linear(x, w[f"{name}.qkv.weight"], w[f"{name}.qkv.bias"]).split(C, dim=-1)   # (M, B, T, C) each
    q, k, v = (y.reshape(M * B, T, heads, C // heads).transpose(1, 2) for y in (q, k, v))       # (M*B, nh, T, hs)
    if dropout is None or dropout.p <= 0:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)                             # (M*B, nh, T, hs)
    else:   # explicit, so that the attention dropout draws from the hash
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // heads))                     # (M*B, nh, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        probs = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        probs = dropout(probs.reshape(M, B, heads, T, T), site).reshape(M * B, heads, T, T)
        y = probs @ v                                                                            # (M*B, nh, T, hs)
    y = y.transpose(1, 2).reshape(M, B, T, C)                                                   # (M, B, T, C)
    return bmm_linear(y, w[f"{name}.proj.weight"], w[f"{name}.proj.bias"])


def gpt_forward(w: dict[str, torch.Tensor], config: ModelConfig, labels: torch.Tensor,
                dropout: HashDropout | None = None) -> tuple[torch.Tensor, None]:
    """labels (M, B, 5) -> logits (M, B, 5, V) aligned to the label slots: `GPT.forward` per member.
    `dropout` None is evaluation mode."""
    drop = dropout if dropout is not None else (lambda x, site: x)
    tokens = labels[..., :-1]                                                      # (M, B, 4) teacher forcing
    T = tokens.shape[-1]
    x = embedding(tokens, w["tok_emb.weight"]) + w["pos_emb.weight"][:, None, :T]  # (M, B, 4, D)
    x = drop(x, 0)
    for i in range(config.layers):
        name = f"blocks.{i}"
        h = _layer_norm(x, w[f"{name}.ln1.weight"], w[f"{name}.ln1.bias"])
        x = x + drop(_attention(h, w, f"{name}.attn", config.heads, dropout, 3 * i + 1), 3 * i + 2)
        h = _layer_norm(x, w[f"{name}.ln2.weight"], w[f"{name}.ln2.bias"])
        h = F.gelu(bmm_linear(h, w[f"{name}.mlp.0.weight"], w[f"{name}.mlp.0.bias"]), approximate="tanh")
        x = x + drop(bmm_linear(h, w[f"{name}.mlp.2.weight"], w[f"{name}.mlp.2.bias"]), 3 * i + 3)
    logits = bmm_linear(_layer_norm(x, w["ln_f.weight"], w["ln_f.bias"]), w["tok_emb.weight"])   # (M, B, 4, V) tied head
    return F.pad(logits, (0, 0, 1, 0)), None                                         # (M, B, 5, V)


def stacked_forward(w: dict[str, torch.Tensor], config: ModelConfig, inputs: torch.Tensor, labels: torch.Tensor,
                    compute_dtype: torch.dtype = torch.float32, dropout: HashDropout | None = None):
    """Either architecture: (M, B, 5) inputs and labels -> logits (M, B, 5, V), halting logit (M, B) or None."""
    if config.architecture == "trm":
        return trm_forward(w, config, inputs, compute_dtype)
    return gpt_forward(w, config, labels, dropout)
