"""Matrix FLOPs of a training step, to turn measured step rates into hardware utilisation."""
from __future__ import annotations

from grokcircuits.config import RunConfig
from grokcircuits.science.models.trm import SEQ_LEN, on_tape, swiglu_hidden


def model_flops_per_step(config: RunConfig) -> float:
    """Matrix FLOPs of one training step of one run: 2 per multiply-add, and the backward pass twice
    the forward on the work that is on the gradient tape (the recursive model's last H-cycle, or
    every one with `backprop_all_cycles`, and the head). An ensemble's step is its members' sum."""
    m, t, d = config.model, config.train, config.data
    V = d.n_entities + d.n_relations + d.n_special_tokens
    B, D = t.batch_size, m.width
    if m.architecture == "trm":
        S = m.prefix_slots + SEQ_LEN
        token, channel = swiglu_hidden(S, m.expansion, m.token_multiple), swiglu_hidden(D, m.expansion, m.token_multiple)
        per_block = 2 * B * (D * 3 * S * token + S * 3 * D * channel)      # gate_up (2 x hidden) + down, per MLP
        applications = m.h_cycles * (m.l_cycles + 1) * m.blocks
        with_gradient = sum(on_tape(m, h) for h in range(m.h_cycles)) * (m.l_cycles + 1) * m.blocks
        head = 2 * B * SEQ_LEN * D * V
        return float(per_block * (applications + 2 * with_gradient) + 3 * head)
    T = SEQ_LEN - 1                                                        # teacher-forced positions
    per_layer = 2 * B * T * (3 * D * D + D * D + 8 * D * D) + 2 * 2 * B * T * T * D   # qkv, proj, MLP; attention
    head = 2 * B * T * D * V
    return float(3 * (m.layers * per_layer + head))
