"""Hand-built models whose inference path is known: the controls of the patching measurement.

Both read a two-hop query and answer it over the named states of a small recursion with the
recursive model's interface (`stages`, `config.prefix_slots`, `readout`, `forward(inputs, labels,
visit)`). A state holds one one-hot token vector per position, (B, P + 5, V), and the head reads
it as it is, so the logits are the tokens a state holds.

* `Composer` composes two facts through the bridge: the first H-cycle writes the bridge b at the
  answer slot, the second reads b and r2 there and writes the tail t. It answers every query of the
  graph, trained or not.
* `Lookup` cannot compose: it carries the query (h, r1, r2) unchanged through the recursion and
  looks the answer up in a table of the *training* queries in the second H-cycle. It answers the
  training queries, and nothing else.

A fact or query a model does not know gives PAD at the answer slot (no answer). If the patching
measurement works, the two maps differ (the composer keeps the bridge at the answer slot, the
lookup keeps the query at the h and r1 slots), the composer keeps t on bridge-preserving
corruptions and the lookup does not.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from grokcircuits.science.data import TwoHopData
from grokcircuits.science.models.trm import stage_names

H_CYCLES, L_CYCLES = 2, 3


class _Table:
    """A vectorised map from integer keys to token ids (missing keys give `missing`)."""

    def __init__(self, keys, values, missing: int):
        keys, values = torch.as_tensor(keys, dtype=torch.int64), torch.as_tensor(values, dtype=torch.int64)
        order = torch.argsort(keys)
        self.keys, self.values, self.missing = keys[order], values[order], missing

    def __call__(self, key: torch.Tensor) -> torch.Tensor:                         # (B,) -> (B,)
        i = torch.searchsorted(self.keys, key).clamp(max=len(self.keys) - 1)
        return torch.where(self.keys[i] == key, self.values[i], torch.full_like(key, self.missing))


class _KnownPath(nn.Module):
    """The shared recursion: Init, then each named state computed from the previous one."""

    def __init__(self, data: TwoHopData, prefix_slots: int = 1):
        super().__init__()
        self.vocab = data.vocab
        self.config = SimpleNamespace(prefix_slots=prefix_slots)
        self.stages = stage_names(H_CYCLES, L_CYCLES)
        V, E, R = data.vocab.size, data.vocab.n_entities, data.vocab.n_relations
        self.n_entities, self.n_relations = E, R
        facts = data.atomic
        self.fact = _Table(facts[:, 0] * R + facts[:, 1], facts[:, 4], data.vocab.pad)   # (h, r) -> t token
        q = data.train_inferred
        self.query = _Table((q[:, 0] * R + q[:, 1]) * R + q[:, 2], q[:, 4], data.vocab.pad)
        self.V = V

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, self.config.prefix_slots:]                                     # (B, 5, V)

    def _token(self, z: torch.Tensor, slot: int) -> torch.Tensor:
        return z[:, self.config.prefix_slots + slot].argmax(-1)                    # (B,)

    def _write(self, z: torch.Tensor, slot: int, token: torch.Tensor) -> torch.Tensor:
        """A new state: z with `token` (B,) one-hot at `slot`."""
        z, pos = z.clone(), self.config.prefix_slots + slot
        z[:, pos] = 0
        z[torch.arange(z.shape[0], device=z.device), pos, token] = 1
        return z

    def _key(self, entity: torch.Tensor, *relations: torch.Tensor) -> torch.Tensor:
        """(B,) the table key of an entity token and relation tokens; -1 where a token is of the
        wrong kind (then no table holds the key and the model gives no answer)."""
        E, R = self.n_entities, self.n_relations
        ok = (entity >= 0) & (entity < E)
        key = entity.clone()
        for r in relations:
            ok &= (r >= E) & (r < E + R)
            key = key * R + (r - E)
        return torch.where(ok, key, torch.full_like(key, -1))

    def step(self, name: str, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, labels=None, visit=None):
        """inputs (B, 5) -> (logits (B, 5, V), None)."""
        visit = visit or (lambda name, z: z)
        B, P = inputs.shape[0], self.config.prefix_slots
        z = visit("Init", torch.zeros(B, P + 5, self.V, device=inputs.device))      # (B, P+5, V)
        read = torch.zeros_like(z)
        rows = torch.arange(B, device=inputs.device)
        for slot in range(3):                                                      # the query's tokens
            read[rows, P + slot, inputs[:, slot]] = 1
        for name in self.stages[1:]:
            z = visit(name, read if name == "H0_L0" else self.step(name, z))
        return self.readout(z), None

    def _lookup_fact(self, head_token, relation_token):
        return self.fact(self._key(head_token, relation_token))


class Composer(_KnownPath):
    """H0_L1 writes the bridge at the answer slot; H1_L1 turns (bridge, r2) into the tail."""

    def step(self, name: str, z: torch.Tensor) -> torch.Tensor:
        if name == "H0_L1":
            return self._write(z, 3, self._lookup_fact(self._token(z, 0), self._token(z, 1)))
        if name == "H1_L1":
            z = self._write(z, 3, self._lookup_fact(self._token(z, 3), self._token(z, 2)))
            return self._write(z, 4, torch.full_like(self._token(z, 0), self.vocab.end))
        return z


class Lookup(_KnownPath):
    """Carries (h, r1, r2) unchanged; H1_L1 looks the whole query up among the training queries."""

    def step(self, name: str, z: torch.Tensor) -> torch.Tensor:
        if name == "H1_L1":
            h, r1, r2 = (self._token(z, i) for i in range(3))
            z = self._write(z, 3, self.query(self._key(h, r1, r2)))
            return self._write(z, 4, torch.full_like(h, self.vocab.end))
        return z
