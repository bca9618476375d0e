"""Causal patching of the recursion, built so that it can tell a model that composes two facts
through the bridge entity from one that looks the whole query up.

Two corruptions of an ID two-hop query (h, r1, r2) -> t through the bridge b (`first_hop_corruptions`):

* **bridge-changing**: another first hop (h', r1') -> b' with b' != b, a *training* query
  (h', r1', r2) -> t' != t. Every model that fits its training set changes its answer, so this pair
  can be patched: run the corrupted query, put back the clean query's state at one recursion
  state and one position (prefix slots included), or at all positions of that state at once, and
  read the logit difference LD = logit(t) - logit(t') at the answer slot. The map is TransformerLens's
  normalised metric, (patched - corrupted) / (clean - corrupted) of the mean LD: 0 = patching that
  cell does nothing, 1 = it restores the clean answer's lead fully.
* **bridge-preserving**: another first hop (h', r1') -> b reaching the *same* bridge, such that
  (h', r1', r2) is *not* a training query. A model that composes through b still answers t; a
  lookup keyed on the whole query cannot. It is scored by the **kept rate**: among the queries the
  model answers right, the share whose bridge-preserving partner is still answered t. It has no
  patching map: for a composer the clean and corrupted runs give the same answer, so the
  normalised metric's denominator is zero and there is nothing to restore; where a model keeps
  the information is the bridge-changing map's job.

Two maps are compared by the cosine similarity of their informative cells (`map_similarity`), with
a bootstrap interval over queries and a chance level from shuffled cells. Only the states strictly
between `Init` and the last one are patched: `Init` is the same for every query (patching it
changes nothing) and the last state *is* the output (patching its answer slot restores the answer
in every model, whatever its path).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import torch

from grokcircuits.science.data import Vocab, encode
from grokcircuits.science.hooks import run_with_cache, run_with_hooks

ANSWER_SLOT = 3                       # two-hop queries: the tail is written at token slot 3
TOKEN_SLOTS = ("h", "r1", "r2", "answer", "END")
ALL_POSITIONS = "all"


# --- choosing the corruptions ----------------------------------------------------------------------
@dataclass(frozen=True)
class Corruptions:
    """Clean queries and their two partners, row for row, all (N, 5) rows [h, r1, r2, b, t]."""
    clean: np.ndarray
    preserving: np.ndarray    # (h', r1', r2, b, t): same bridge, same answer, not a training query
    changing: np.ndarray      # (h', r1', r2, b', t'): a training query, another bridge, another answer

    def __len__(self) -> int:
        return len(self.clean)


def _query_ids(rows: np.ndarray, n_relations: int) -> np.ndarray:
    """(N,) one integer per (h, r1, r2)."""
    return (rows[:, 0] * n_relations + rows[:, 1]) * n_relations + rows[:, 2]


def first_hop_corruptions(queries: np.ndarray, id_facts: np.ndarray, trained: np.ndarray, changing_pool: np.ndarray,
                          n: int, rng: np.random.Generator) -> Corruptions:
    """Up to n clean queries drawn at random from `queries`, each with both partners.

    id_facts: the ID atomic facts (N, 5) that a bridge-preserving first hop may use; trained: every
    training query (a bridge-preserving partner must not be one); changing_pool: the training
    queries whose both hops are ID (where a bridge-changing partner is drawn)."""
    n_rel = int(max(id_facts[:, 1].max(), trained[:, 1:3].max(), queries[:, 1:3].max())) + 1
    trained_ids = set(_query_ids(trained, n_rel).tolist())
    into: dict[int, list[tuple[int, int]]] = {}
    for h, r, t in id_facts[:, [0, 1, 4]].tolist():
        into.setdefault(t, []).append((h, r))
    by_r2 = {r2: changing_pool[changing_pool[:, 2] == r2] for r2 in np.unique(changing_pool[:, 2]).tolist()}
    clean, keep, change = [], [], []
    for i in rng.permutation(len(queries)):
        if len(clean) >= n:
            break
        h, r1, r2, b, t = queries[i].tolist()
        firsts = [(h2, q1) for h2, q1 in into.get(b, []) if (h2, q1) != (h, r1)
                  and (h2 * n_rel + q1) * n_rel + r2 not in trained_ids]
        pool = by_r2.get(r2)
        if not firsts or pool is None:
            continue
        pool = pool[(pool[:, 3] != b) & (pool[:, 4] != t)]
        if len(pool) == 0:
            continue
        h2, q1 = firsts[rng.integers(len(firsts))]
        clean.append((h, r1, r2, b, t))
        keep.append((h2, q1, r2, b, t))
        change.append(tuple(pool[rng.integers(len(pool))].tolist()))
    arr = lambda x: np.array(x, dtype=np.int64).reshape(-1, 5)   # noqa: E731
    return Corruptions(arr(clean), arr(keep), arr(change))


# --- running the patches ---------------------------------------------------------------------------
def informative_states(stages: list[str]) -> list[str]:
    """The states worth patching: all but `Init` and the last (see the module docstring)."""
    return list(stages[1:-1])


def position_names(prefix_slots: int) -> list[str]:
    """Every position of a state (prefix slots, then the token slots), then all of them at once."""
    return [f"prefix {i}" for i in range(prefix_slots)] + list(TOKEN_SLOTS) + [ALL_POSITIONS]


def _logit_difference(logits: torch.Tensor, good: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
    """(B, 5, V) logits -> (B,) logit(good) - logit(bad) at the answer slot, in float32."""
    answer = logits[:, ANSWER_SLOT].float()                                        # (B, V)
    return answer.gather(1, good[:, None])[:, 0] - answer.gather(1, bad[:, None])[:, 0]


def _patch_every_position(clean_state: torch.Tensor):
    """A hook that patches position j of variant j (and every position in the last variant): the
    corrupted batch is repeated once per variant, variant-major."""
    b, S, _ = clean_state.shape
    mask = torch.cat([torch.eye(S, dtype=torch.bool), torch.ones(1, S, dtype=torch.bool)]).to(clean_state.device)  # (S+1, S)

    def hook(state, name):                                                         # state ((S+1) b, S, D)
        z = state.view(S + 1, b, S, -1)                                            # (S+1, b, S, D)
        return torch.where(mask[:, None, :, None], clean_state[None], z).reshape(state.shape)
    return hook


@torch.no_grad()
def _sweep_batch(model, clean, changing, preserving, t_clean, t_changed, states) -> dict:
    logits_clean, cache = run_with_cache(model, clean, names=states)               # (b, 5, V), {s: (b, S, D)}
    logits_changed = run_with_hooks(model, changing)                               # (b, 5, V)
    logits_kept = run_with_hooks(model, preserving)                                # (b, 5, V)
    b = clean.shape[0]
    patched = []
    for s in states:
        S = cache[s].shape[1]
        logits = run_with_hooks(model, changing.repeat(S + 1, 1), {s: _patch_every_position(cache[s])})
        ld = _logit_difference(logits, t_clean.repeat(S + 1), t_changed.repeat(S + 1))   # ((S+1) b,)
        patched.append(ld.view(S + 1, b).T)                                        # (b, S+1)
    return {
        "clean_ld": _logit_difference(logits_clean, t_clean, t_changed),
        "corrupt_ld": _logit_difference(logits_changed, t_clean, t_changed),
        "patched_ld": torch.stack(patched, dim=1),                                 # (b, n_states, S+1)
        "clean_right": logits_clean[:, ANSWER_SLOT].argmax(-1) == t_clean,
        "kept": logits_kept[:, ANSWER_SLOT].argmax(-1) == t_clean,
    }


@torch.no_grad()
def patching_sweep(model, c: Corruptions, vocab: Vocab, device, max_rows: int = 4096) -> "PatchingResult":
    """Patch every informative state at every position (and all positions at once) of the
    bridge-changing runs, and score the bridge-preserving runs (module docstring)."""
    if len(c) == 0:
        raise ValueError("no clean query with both a bridge-preserving and a bridge-changing partner")
    states = informative_states(model.stages)
    S = model.config.prefix_slots + len(TOKEN_SLOTS)
    to = lambda rows: torch.as_tensor(encode(rows, vocab)[0], device=device)      # noqa: E731  (N, 5)
    tok = lambda col: torch.as_tensor(vocab.entity_token(col), device=device)     # noqa: E731  (N,)
    clean, changing, preserving = to(c.clean), to(c.changing), to(c.preserving)
    t_clean, t_changed = tok(c.clean[:, 4]), tok(c.changing[:, 4])
    step = max(1, max_rows // (S + 1))
    parts = [_sweep_batch(model, clean[i:i + step], changing[i:i + step], preserving[i:i + step],
                          t_clean[i:i + step], t_changed[i:i + step], states) for i in range(0, len(c), step)]
    cat = {k: torch.cat([p[k] for p in parts]).cpu().numpy() for k in parts[0]}
    return PatchingResult(states=states, positions=position_names(model.config.prefix_slots), queries=c.clean.copy(),
                          **cat)


# --- the result and its scores -----------------------------------------------------------------
def _encode(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}


def _decode(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["data"]), dtype=d["dtype"]).reshape(d["shape"]).copy()


@dataclass
class PatchingResult:
    """Per-query results of one checkpoint's sweep; maps and scores are computed from them, so a
    bootstrap over queries can recompute any of them."""
    states: list[str]
    positions: list[str]
    queries: np.ndarray       # (N, 5) the clean queries
    clean_ld: np.ndarray      # (N,) LD of the clean run
    corrupt_ld: np.ndarray    # (N,) LD of the bridge-changing run
    patched_ld: np.ndarray    # (N, n_states, n_positions) LD with one cell patched
    clean_right: np.ndarray   # (N,) bool: the clean query is answered t
    kept: np.ndarray          # (N,) bool: its bridge-preserving partner is answered t

    def __len__(self) -> int:
        return len(self.queries)

    def normalised_map(self, idx: np.ndarray | None = None) -> np.ndarray:
        """(n_states, n_positions): (patched - corrupted) / (clean - corrupted) of the mean LD over
        the queries `idx` (all by default); NaN where the clean run does not lead the corrupted one."""
        idx = np.arange(len(self)) if idx is None else idx
        clean, corrupt = self.clean_ld[idx].mean(dtype=np.float64), self.corrupt_ld[idx].mean(dtype=np.float64)
        if not clean - corrupt > 1e-6:
            return np.full(self.patched_ld.shape[1:], np.nan)
        return (self.patched_ld[idx].mean(0, dtype=np.float64) - corrupt) / (clean - corrupt)

    def kept_rate(self, idx: np.ndarray | None = None) -> float:
        """Among the queries answered right, the share whose bridge-preserving partner keeps t."""
        idx = np.arange(len(self)) if idx is None else idx
        right = self.clean_right[idx]
        return float(self.kept[idx][right].mean()) if right.any() else float("nan")

    def to_json(self) -> dict:
        arrays = {k: _encode(getattr(self, k)) for k in ("queries", "clean_ld", "corrupt_ld", "patched_ld", "clean_right", "kept")}
        return {"states": self.states, "positions": self.positions, "arrays": arrays,
                "map": np.round(self.normalised_map(), 4).tolist(), "kept_rate": self.kept_rate(),
                "clean_accuracy": float(self.clean_right.mean())}

    @staticmethod
    def from_json(d: dict) -> "PatchingResult":
        return PatchingResult(states=list(d["states"]), positions=list(d["positions"]),
                              **{k: _decode(v) for k, v in d["arrays"].items()})


def informative_cells(m: np.ndarray, positions: list[str]) -> np.ndarray:
    """The one-position cells of a map: the all-positions column is left out, because patching a
    whole late state restores the answer in any model (the corrupted input then no longer matters)."""
    keep = [j for j, p in enumerate(positions) if p != ALL_POSITIONS]
    return np.asarray(m)[:, keep].ravel()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if not (np.isfinite(na) and np.isfinite(nb)) or na == 0 or nb == 0:
        return float("nan")
    return float(a @ b / (na * nb))


def _same_queries(a: PatchingResult, b: PatchingResult) -> bool:
    return a.queries.shape == b.queries.shape and bool(np.all(a.queries == b.queries))


def map_similarity(a: PatchingResult, b: PatchingResult, draws: int = 1000, seed: int = 0) -> dict:
    """Cosine similarity of two maps' informative cells, a 95% bootstrap interval over queries
    (paired when both results patched the same queries, else each resampled on its own), and the
    chance level: the similarity with one map's cells shuffled (its mean and 95th percentile)."""
    if a.states != b.states or a.positions != b.positions:
        raise ValueError("the two results patched different states or positions; they cannot be compared")
    rng = np.random.default_rng(seed)
    cells = lambda r, idx=None: informative_cells(r.normalised_map(idx), r.positions)   # noqa: E731
    point = _cosine(cells(a), cells(b))
    paired = _same_queries(a, b)
    boot = []
    for _ in range(draws):
        ia = rng.integers(0, len(a), len(a))
        ib = ia if paired else rng.integers(0, len(b), len(b))
        boot.append(_cosine(cells(a, ia), cells(b, ib)))
    boot = np.array(boot)
    valid = boot[np.isfinite(boot)]
    ca, cb = cells(a), cells(b)
    shuffled = np.array([_cosine(ca, rng.permutation(cb)) for _ in range(draws)]) if np.isfinite(point) else np.array([np.nan])
    nan = float("nan")
    return {"similarity": point,
            "low": float(np.percentile(valid, 2.5)) if len(valid) else nan,
            "high": float(np.percentile(valid, 97.5)) if len(valid) else nan,
            "chance": float(np.nanmean(shuffled)) if np.isfinite(shuffled).any() else nan,
            "chance_high": float(np.nanpercentile(shuffled, 95)) if np.isfinite(shuffled).any() else nan,
            "valid_draws": int(len(valid)), "paired": paired}


def kept_rate_interval(r: PatchingResult, draws: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(kept rate, low, high): the bridge-preserving score with a 95% bootstrap interval over queries."""
    rng = np.random.default_rng(seed)
    boot = np.array([r.kept_rate(rng.integers(0, len(r), len(r))) for _ in range(draws)])
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return (float("nan"),) * 3
    return (r.kept_rate(), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
