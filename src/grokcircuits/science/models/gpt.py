"""The standard transformer for the contrast: GPT-2 shape (pre-norm, learned positions, tied head).

It reads the target sequence with teacher forcing; the logits it returns are aligned to the label
slots, so slot i holds the prediction of token i made from tokens 0..i-1 (slot 0 is never predicted).

Its named states (`stages`: `Embed`, then `Block{i}` after each block) are shown to a
`visit(name, state)` callback as the recursive model shows its own (`grokcircuits.science.hooks`), in
the recursive model's layout: (B, prefix_slots + 5, D), the prefix slots and label slot 0 zero and
label slot i holding the state of token i - 1 (the state that predicts token i), so that the
probes read both models at the same slots (slot 3: the state that predicts the answer). Without
labels it reads the query alone (`inputs`: h, r1, r2, PAD), as the probes call it; the answer's
prediction does not depend on later tokens, so it is the same either way.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from grokcircuits.config import ModelConfig

SEQ_LEN = 5


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)                                  # (B, T, C) each
        q, k, v = (y.view(B, T, self.heads, C // self.heads).transpose(1, 2) for y in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))                   # (B, T, C)


class GPTBlock(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * width, width), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (B, T, C)
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.config = config
        D = config.width
        self.tok_emb = nn.Embedding(vocab_size, D)
        self.pos_emb = nn.Embedding(SEQ_LEN, D)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(GPTBlock(D, config.heads, config.dropout) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(D)
        self.head = nn.Linear(D, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight   # tied, as in GPT-2
        self.stages = ["Embed"] + [f"Block{i}" for i in range(config.layers)]
        # the label slots whose state has seen the whole query (h, r1, r2): causal, the states at h and
        # r1 have not, and at r1 the state is the atomic query's (h, r1), which predicts its tail
        self.whole_query_slots = (3, 4)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def _shown(self, visit, name: str, x: torch.Tensor) -> torch.Tensor:
        """x (B, 4, D) -> the state after `visit` saw it in the probes' layout (B, P + 5, D)."""
        if visit is None:
            return x
        skip = self.config.prefix_slots + 1
        state = visit(name, F.pad(x, (0, 0, skip, 0)))                       # (B, P + 5, D)
        return state[:, skip:]                                               # (B, 4, D)

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        """A named state (B, P + 5, D) -> logits (B, 5, V) of the head at the label slots (the lens)."""
        return self.head(self.ln_f(state[:, self.config.prefix_slots:]))

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None, visit=None) -> tuple[torch.Tensor, None]:
        """labels (B, 5) target sequence (None: the query `inputs` alone) -> logits (B, 5, V)
        aligned to the label slots; `visit(name, state)` sees (and may replace) every named state."""
        tokens = (inputs if labels is None else labels)[:, :-1]             # (B, 4) teacher forcing
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self._shown(visit, "Embed", self.drop(self.tok_emb(tokens) + self.pos_emb(pos)))   # (B, 4, D)
        for i, block in enumerate(self.blocks):
            x = self._shown(visit, f"Block{i}", block(x))                    # (B, 4, D)
        logits = self.head(self.ln_f(x))                                     # (B, 4, V)
        return F.pad(logits, (0, 0, 1, 0)), None                             # (B, 5, V): slot 0 unpredicted
