"""The parameter-sharing recursive model (Tiny Recursive Model) as configured by the authors.

One shared module f = two post-norm blocks, applied 28 times per forward pass. Each block mixes
positions with a SwiGLU across the sequence axis (no attention, no positional encoding), then
channels with a SwiGLU across the width. book/appendix/protocol.md, section 3.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from grokcircuits.config import ModelConfig, attention_heads
from grokcircuits.science.losses import at_least_float32

SEQ_LEN = 5   # token slots: [h, r1, r2, PAD, PAD] in, [h, r1, r2, t, END] out


def on_tape(config, h: int) -> bool:
    """Whether H-cycle `h` is on the gradient tape: the last one, or every one with `backprop_all_cycles`."""
    return config.backprop_all_cycles or h == config.h_cycles - 1


def stage_names(h_cycles: int, l_cycles: int) -> list[str]:
    """Init, then z_L after every L-update and z_H after every commit, in execution order."""
    names = ["Init"]
    for h in range(h_cycles):
        names += [f"H{h}_L{l}" for l in range(l_cycles)] + [f"H{h}_commit"]
    return names


STAGES = stage_names(2, 6)   # the paper's 15 recursion states


def swiglu_hidden(n: int, expansion: float, multiple: int) -> int:
    """The authors' hidden width: round(expansion * n * 2/3), rounded up to a multiple."""
    return -(round(expansion * n * 2 / 3) // -multiple) * multiple


def rms_norm(x: torch.Tensor, eps: float = 1e-5, dim: int = -1) -> torch.Tensor:
    """RMSNorm over axis `dim` (the last by default), without weights, computed in float32 at least
    (a bf16 stream is normalised in float32 and cast back; float64 stays float64)."""
    x32 = x if x.dtype == torch.float64 else x.float()
    return (x32 * torch.rsqrt(x32.square().mean(dim, keepdim=True) + eps)).to(x.dtype)


def _truncation_factor(lower: float = -2.0, upper: float = 2.0) -> float:
    """Standard deviation of a unit normal truncated to [lower, upper] (about 0.88 for +-2)."""
    sqrt2, c = math.sqrt(2), (2 * math.pi) ** -0.5
    z = (math.erf(upper / sqrt2) - math.erf(lower / sqrt2)) / 2
    pdf_lower, pdf_upper = c * math.exp(-0.5 * lower ** 2), c * math.exp(-0.5 * upper ** 2)
    return math.sqrt(1 - (upper * pdf_upper - lower * pdf_lower) / z - ((pdf_upper - pdf_lower) / z) ** 2)


@torch.no_grad()
def trunc_normal_(w: torch.Tensor, std: float, lower: float = -2.0, upper: float = 2.0) -> torch.Tensor:
    """Truncated normal whose *truncated* distribution has standard deviation `std`, as the reference
    code (a port of JAX's initialiser). `nn.init.trunc_normal_(std=s, a=-2s, b=2s)` alone gives 0.88 s."""
    if std == 0:
        return w.zero_()
    sqrt2 = math.sqrt(2)
    corrected = std / _truncation_factor(lower, upper)
    w.uniform_(math.erf(lower / sqrt2), math.erf(upper / sqrt2))
    w.erfinv_().mul_(sqrt2 * corrected)
    return w.clip_(lower * corrected, upper * corrected)


class Linear(nn.Linear):
    """Bias-free linear layer with the authors' init (truncated normal, std 1/sqrt(fan_in)) and their
    numerics: the fp32 weight is cast to the input's dtype (bf16 on the GPU) in every matmul."""

    def __init__(self, n_in: int, n_out: int, bias: bool = False):
        super().__init__(n_in, n_out, bias=bias)
        trunc_normal_(self.weight, 1 / math.sqrt(n_in))
        if bias:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (..., n_in) -> (..., n_out)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class SwiGLU(nn.Module):
    def __init__(self, n: int, hidden: int):
        super().__init__()
        self.gate_up = Linear(n, 2 * hidden)
        self.down = Linear(hidden, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (..., n) -> (..., n)
        gate, up = self.gate_up(x).chunk(2, dim=-1)        # (..., hidden) each
        return self.down(F.silu(gate) * up)


class SelfAttention(nn.Module):
    """The variant token mixer: non-causal multi-head self-attention over the positions, bias-free."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = Linear(width, 3 * width)
        self.out = Linear(width, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:   # (B, S, D) -> (B, S, D)
        B, S, D = z.shape
        q, k, v = (y.reshape(B, S, self.heads, D // self.heads).transpose(1, 2)
                   for y in self.qkv(z).split(D, dim=-1))   # (B, heads, S, D/heads) each
        y = F.scaled_dot_product_attention(q, k, v)        # (B, heads, S, D/heads)
        return self.out(y.transpose(1, 2).reshape(B, S, D))


class Block(nn.Module):
    """Post-norm: token MLP over positions (+ RMSNorm over positions), then channel MLP (+ RMSNorm).
    The attention variant mixes positions with self-attention (+ RMSNorm over channels) instead."""

    def __init__(self, width: int, positions: int, config: ModelConfig):
        super().__init__()
        if config.token_mixer == "attention":
            self.attention = SelfAttention(width, attention_heads(width))
        else:
            self.token_mlp = SwiGLU(positions, swiglu_hidden(positions, config.expansion, config.token_multiple))
        self.channel_mlp = SwiGLU(width, swiglu_hidden(width, config.expansion, config.token_multiple))

    def forward(self, z: torch.Tensor) -> torch.Tensor:   # (B, S, D)
        if hasattr(self, "attention"):
            z = rms_norm(z + self.attention(z))            # (B, S, D)
        else:
            zt = z.transpose(1, 2)                         # (B, D, S): the same MLP for every channel
            zt = rms_norm(zt + self.token_mlp(zt))         # normalised over the position axis
            z = zt.transpose(1, 2)                         # (B, S, D)
        return rms_norm(z + self.channel_mlp(z))           # (B, S, D)


class SharedModule(nn.Module):
    """f(z, inj) = block2(block1(z + inj)): the one module every recursion step reuses."""

    def __init__(self, width: int, positions: int, config: ModelConfig):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, positions, config) for _ in range(config.blocks))

    def forward(self, z: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:   # (B, S, D)
        z = z + injection
        for block in self.blocks:
            z = block(z)
        return z


StateVisitor = Callable[[str, torch.Tensor], torch.Tensor]


class TRM(nn.Module):
    """`compute_dtype` is the dtype of the residual stream: float32 (CPU, probes) or bfloat16 (the
    authors' GPU numerics: parameters stay fp32 and are cast in every matmul, the start states and the
    stream are bf16, RMSNorm runs in fp32 and is cast back, the loss is taken in float64)."""

    def __init__(self, config: ModelConfig, vocab_size: int, compute_dtype: torch.dtype | None = None):
        super().__init__()
        self.config = config
        self.compute_dtype = compute_dtype or torch.get_default_dtype()   # float32 unless a test asks for float64
        D, P = config.width, config.prefix_slots
        self.positions = P + SEQ_LEN
        self.stages = stage_names(config.h_cycles, config.l_cycles)
        self.embed_tokens = nn.Embedding(vocab_size, D)
        trunc_normal_(self.embed_tokens.weight, 1 / math.sqrt(D))
        # the attention variant: learned position embeddings (self-attention alone cannot tell r1 from r2)
        self.position_embedding = (nn.Parameter(trunc_normal_(torch.empty(self.positions, D), 1 / math.sqrt(D)))
                                   if config.token_mixer == "attention" else None)
        # slot 0 of the prefix: one learned vector, zero-initialised, trained by sign-SGD
        self.prefix_vector = nn.Parameter(torch.zeros(D)) if P > 0 else None
        self.f = SharedModule(D, self.positions, config)
        self.head = Linear(D, vocab_size)
        if config.tied_embeddings:   # the head reads with the embedding matrix (V, D): one parameter, two uses
            self.head.weight = self.embed_tokens.weight
        self.halt_head = Linear(D, 2, bias=True) if config.halting_head else None
        if self.halt_head is not None:   # the authors' init: never halt at the start
            with torch.no_grad():
                self.halt_head.weight.zero_()
                self.halt_head.bias.fill_(-5)
        # fixed random start states, one D-vector each
        self.register_buffer("z_H_init", trunc_normal_(torch.empty(D), 1.0))
        self.register_buffer("z_L_init", trunc_normal_(torch.empty(D), 1.0))

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        B = inputs.shape[0]
        x = self.embed_tokens(inputs).to(self.compute_dtype)        # (B, 5, D)
        P = self.config.prefix_slots
        if P > 0:
            prefix = x.new_zeros(B, P, x.shape[-1])                 # (B, P, D)
            prefix = torch.cat([self.prefix_vector.to(x.dtype).expand(B, 1, -1), prefix[:, 1:]], dim=1)
            x = torch.cat([prefix, x], dim=1)                       # (B, P + 5, D)
        if self.position_embedding is not None:
            x = x + self.position_embedding.to(x.dtype)             # (B, P + 5, D)
        return x * math.sqrt(self.config.width)

    def recurse(self, x: torch.Tensor, visit: StateVisitor | None = None) -> torch.Tensor:
        """The recursion. H-cycles of L-cycles z_L updates and one z_H commit; only the last H-cycle
        is on the gradient tape (every one with the variant `backprop_all_cycles`). `visit(name, state)`
        sees (and may replace) every named state."""
        B, S, D = x.shape
        z_H = self.z_H_init.to(x.dtype).expand(B, S, D)             # (B, S, D)
        z_L = self.z_L_init.to(x.dtype).expand(B, S, D)             # (B, S, D)
        if visit is not None:
            z_H = visit("Init", z_H)
        H, L = self.config.h_cycles, self.config.l_cycles
        for h in range(H):
            with torch.set_grad_enabled(torch.is_grad_enabled() and on_tape(self.config, h)):
                for l in range(L):
                    z_L = self.f(z_L, z_H + x)                      # (B, S, D)
                    if visit is not None:
                        z_L = visit(f"H{h}_L{l}", z_L)
                z_H = self.f(z_H, z_L)                              # (B, S, D)
                if visit is not None:
                    z_H = visit(f"H{h}_commit", z_H)
                if self.config.reembed and h < H - 1:
                    z_H = self.reembed(z_H)                         # (B, S, D)
        return z_H

    def reembed(self, z: torch.Tensor) -> torch.Tensor:
        """The variant `reembed`: at the token slots, add the embedding of what the head reads there,
        softmax(head(z)) @ E, scaled as `embed` scales inputs. (B, S, D) -> (B, S, D)."""
        P = self.config.prefix_slots
        probs = self.readout(z).float().softmax(-1).to(z.dtype)                   # (B, 5, V)
        written = probs @ self.embed_tokens.weight.to(z.dtype) * math.sqrt(self.config.width)   # (B, 5, D)
        return torch.cat([z[:, :P], z[:, P:] + written], dim=1)

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        """The output head applied to a state's token slots: (B, S, D) -> (B, 5, V) logits."""
        return self.head(z[:, self.config.prefix_slots:])

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None,
                visit: StateVisitor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """inputs (B, 5) token ids -> logits (B, 5, V) at the token slots, halting logit (B,) or None."""
        z_H = self.recurse(self.embed(inputs), visit)               # (B, S, D)
        halt = at_least_float32(self.halt_head(z_H[:, 0])[..., 0]) if self.halt_head is not None else None
        return self.readout(z_H), halt
