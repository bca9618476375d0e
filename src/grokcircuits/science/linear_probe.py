"""A linear probe for the bridge entity: a second reading of the circuit, beside the logit lens.

The logit lens asks whether the *output head* reads the bridge entity off a state. A model can
hold the bridge in a state in a form the head does not read (at the `cpu` profile's width the lens
stayed below 0.1 on a both-hops-full model that answered every OOD query). The linear probe asks
whether the bridge can be read off a state *linearly* at all:

* **fit** one ridge-regression readout (state -> one-hot bridge entity) per named state and token
  slot on ID two-hop queries, leaving out every query whose first hop (h, r1) is the first hop of
  a query it is tested on, so that the probe cannot memorise the test queries' first hops;
* **test** it on the OOD compositions: their first hops are OOD atomic facts, which no fitted
  query used, so a readout that decodes their bridge reads a bridge the model computed;
* **choose** the state and slot on one half of the test queries (the even rows) and **report**
  the decoding accuracy on the other half (the odd rows), so that picking the best of many cells
  does not inflate the number; only slots whose state has seen the whole query are chosen
  (`whole_query_slots`: in the causal standard transformer the state at r1 is the atomic query
  (h, r1)'s and holds its tail, the bridge; at the tiny profile it was decoded there at 0.33 in a
  model that never composes, at the slots after r2 at 0.02).

Its controls (`grokcircuits.science.controls`, and an untrained model): the hand-built composer writes the
bridge one-hot at the answer slot and must be decoded (near 1); the lookup never computes a bridge
and an untrained network has none to show, and both must stay near chance (1 / entities). Beside
these toys, two trained models without the circuit (`trained_negative_controls`): the natural run
at its earliest stored snapshot with the OOD atomic facts stored but the held-out ID compositions not
yet answered, and the standard transformer (read through its named states, `models.gpt`).
"""
from __future__ import annotations

import numpy as np
import torch

from grokcircuits.science.data import TwoHopData
from grokcircuits.science.hooks import run_with_hooks
from grokcircuits.science.probes import _batches, EncodedSet, path_summary
from grokcircuits.science.controls import Composer, Lookup
from grokcircuits.science.models import build_model
from grokcircuits.science.runs import dataset, default_device

RIDGE = 1e-3   # the penalty, as a share of the mean diagonal of the states' Gram matrix
N_SLOTS = 5


def _first_hops(examples: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, examples[:, :2].tolist()))


def probe_queries(data: TwoHopData) -> tuple[np.ndarray, np.ndarray]:
    """(fit, test) two-hop examples: fit = the ID compositions of the probe sets (trained and
    held out) without any whose first hop is a first hop of a test query; test = the OOD ones
    whose bridge is the bridge of some fitted query (a readout can only name entities it was fitted
    to name)."""
    sets = data.probe_sets()
    test = sets["test_inferred_ood"]
    fit = np.concatenate([sets["train_inferred"], sets["test_inferred_iid"]])
    banned = _first_hops(test)
    fit = fit[np.array([tuple(row) not in banned for row in fit[:, :2].tolist()], dtype=bool)]
    return fit, test[np.isin(test[:, 3], fit[:, 3])]


def _slot_states(state: torch.Tensor, prefix: int) -> torch.Tensor:
    """(B, 5, F) the state at the token slots in float64, with a constant 1 for the readout's bias."""
    x = state[:, prefix:prefix + N_SLOTS].double()                                  # (B, 5, D)
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)                      # (B, 5, D+1)


@torch.no_grad()
def fit_readouts(model, fit: EncodedSet, n_entities: int, ridge: float = RIDGE,
                 batch_size: int = 512) -> torch.Tensor:
    """(n_stages, 5, F, E) ridge readouts of the bridge, one per named state and token slot, from
    Gram matrices summed over batches (no cache of every state is ever held)."""
    stages, prefix = list(model.stages), model.config.prefix_slots
    gram: dict[str, torch.Tensor] = {}
    cross: dict[str, torch.Tensor] = {}
    for rows in _batches(len(fit), batch_size):
        target = torch.nn.functional.one_hot(fit.bridge[rows], n_entities).double()  # (b, E)

        def accumulate(state, name):
            x = _slot_states(state, prefix).transpose(0, 1)                         # (5, b, F)
            g, c = x.transpose(1, 2) @ x, x.transpose(1, 2) @ target                # (5, F, F), (5, F, E)
            gram[name] = gram[name] + g if name in gram else g
            cross[name] = cross[name] + c if name in cross else c
        run_with_hooks(model, fit.inputs[rows], {n: accumulate for n in stages})
    g = torch.stack([gram[n] for n in stages])                                      # (n_stages, 5, F, F)
    c = torch.stack([cross[n] for n in stages])                                     # (n_stages, 5, F, E)
    scale = g.diagonal(dim1=-2, dim2=-1)[..., :-1].mean(-1).clamp(min=1e-12)        # (n_stages, 5)
    eye = torch.eye(g.shape[-1], dtype=g.dtype, device=g.device)
    return torch.linalg.solve(g + ridge * scale[..., None, None] * eye, c)         # (n_stages, 5, F, E)


@torch.no_grad()
def decoded(model, readouts: torch.Tensor, test: EncodedSet, batch_size: int = 512) -> torch.Tensor:
    """(N, n_stages, 5) whether each readout's top entity is the query's bridge."""
    stages, prefix = list(model.stages), model.config.prefix_slots
    out = []
    for rows in _batches(len(test), batch_size):
        hits: dict[str, torch.Tensor] = {}
        bridge = test.bridge[rows]                                                  # (b,)

        def read(state, name):
            x = _slot_states(state, prefix)                                         # (b, 5, F)
            scores = torch.einsum("bsf,sfe->bse", x, readouts[stages.index(name)])  # (b, 5, E)
            hits[name] = scores.argmax(-1) == bridge[:, None]                       # (b, 5)
        run_with_hooks(model, test.inputs[rows], {n: read for n in stages})
        out.append(torch.stack([hits[n] for n in stages], dim=1))                   # (b, n_stages, 5)
    return torch.cat(out)


def choose_and_report(hits: torch.Tensor, stages: list[str], slots=None) -> dict:
    """The cell with the best accuracy on the even test rows, and its accuracy on the odd rows;
    `slots` (None: every one) the token slots the cell may be chosen from."""
    if hits.shape[0] < 2:
        raise ValueError(f"the linear probe needs at least 2 test queries to choose and report; got {hits.shape[0]}")
    choose, report = hits[0::2].double().mean(0), hits[1::2].double().mean(0)      # (n_stages, 5) each
    if slots is not None:
        allowed = torch.zeros(hits.shape[2], dtype=torch.bool)
        allowed[list(slots)] = True
        choose = torch.where(allowed, choose, torch.full_like(choose, -1.0))       # (n_stages, 5)
    best = int(choose.flatten().argmax())
    stage, slot = divmod(best, hits.shape[2])
    return {"bridge_decoded": float(report[stage, slot]), "stage": stages[stage], "slot": slot,
            "chosen_on": int(hits[0::2].shape[0]), "reported_on": int(hits[1::2].shape[0]),
            "decoded_map": hits.double().mean(0).tolist()}                          # [n_stages][5], all rows


def whole_query_slots(model):
    """The token slots whose state has seen the whole two-hop query: all of them in the recursive
    model (its slots mix both ways), those at r2 and after in the standard transformer (causal: its
    state at r1 is the atomic query's and holds the first hop's tail, the bridge, in any model that
    stores the facts); None = every slot."""
    return getattr(model, "whole_query_slots", None)


def encoded_probe_queries(data: TwoHopData, device) -> tuple[EncodedSet, EncodedSet]:
    """`probe_queries` encoded on `device`: (fit, test)."""
    fit_rows, test_rows = probe_queries(data)
    return EncodedSet.build(fit_rows, data.vocab, device), EncodedSet.build(test_rows, data.vocab, device)


def bridge_probe(model, data: TwoHopData, device, ridge: float = RIDGE,
                 queries: tuple[EncodedSet, EncodedSet] | None = None) -> dict:
    """Fit on ID compositions, choose on half the OOD compositions, report on the other half.
    `queries`: `encoded_probe_queries(data, device)`, where several models are probed on one graph."""
    fit, test = queries or encoded_probe_queries(data, device)
    readouts = fit_readouts(model, fit, data.vocab.n_entities, ridge)
    out = choose_and_report(decoded(model, readouts, test), list(model.stages), whole_query_slots(model))
    out.update(fitted_on=len(fit), tested_on=len(test), ood_queries=len(data.test_inferred_ood),   # the probe set holds all of them
               chance=1.0 / data.vocab.n_entities)
    return out


def split_by_first_hop(s: EncodedSet, seed: int = 0) -> tuple[EncodedSet, EncodedSet]:
    """(fit, held out): the queries of half the distinct first hops (h, r1), drawn at random, and
    those of the other half, so that no held-out query shares a first hop with a fitted one."""
    hops = [tuple(h) for h in s.inputs[:, :2].tolist()]
    distinct = sorted(set(hops))
    order = torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed)).tolist()
    held = {distinct[i] for i in order[: len(distinct) // 2]}
    in_held = torch.tensor([h in held for h in hops], device=s.inputs.device)       # (N,)
    return s.select(~in_held), s.select(in_held)


def bridge_reference(model, data: TwoHopData, device, ridge: float = RIDGE) -> dict:
    """The probe's reference on the ID path beside its reading of the OOD compositions: readouts
    fitted on the ID compositions of half the first hops, then (id) chosen and reported on the ID
    compositions of the other half, which share no first hop with the fit, and (ood) on the OOD
    compositions (both kept to bridges the fit has seen), at their own best cell and at the ID's.
    Where the model computes the bridge of ID compositions and not of OOD ones, `id` is high and
    both OOD readings stay near chance."""
    fit, test = encoded_probe_queries(data, device)
    fit_half, held = split_by_first_hop(fit)
    held = held.select(torch.isin(held.bridge, fit_half.bridge))     # a readout names only the bridges it was fitted to
    test = test.select(torch.isin(test.bridge, fit_half.bridge))
    readouts = fit_readouts(model, fit_half, data.vocab.n_entities, ridge)
    stages = list(model.stages)
    slots = whole_query_slots(model)
    on_id = choose_and_report(decoded(model, readouts, held), stages, slots)
    ood_hits = decoded(model, readouts, test)                                       # (N, n_stages, 5)
    on_ood = choose_and_report(ood_hits, stages, slots)
    cell = (stages.index(on_id["stage"]), on_id["slot"])
    return {"id": {k: on_id[k] for k in ("bridge_decoded", "stage", "slot", "reported_on")},
            "ood": {k: on_ood[k] for k in ("bridge_decoded", "stage", "slot", "reported_on")},
            "ood_at_id_cell": float(ood_hits[1::2, cell[0], cell[1]].double().mean()),
            "fitted_on": len(fit_half), "chance": 1.0 / data.vocab.n_entities}


# --- on runs, memoised; and the controls every circuit probe must pass ------------------------------
def run_probe(run, device=None) -> dict:
    """The linear probe on a finished run's final EMA weights, stored in the run's store (a re-render
    reads it; the weights are needed only the first time)."""
    device = device or default_device()
    config = _probe_key(run, None)
    return run.store.memo("linear_probe", config,
                          lambda: bridge_probe(run.load_model(None, device), dataset(run.config.data), device))


@torch.no_grad()
def circuit_probe_controls(run_config, device=None, seed: int = 0) -> dict[str, dict[str, float]]:
    """{probe metric: {control: value}} on the OOD compositions of `run_config`'s graph, for the
    logit lens at the answer/END slot and the linear probe: the hand-built composer (must be found),
    the hand-built lookup and an untrained network of the run's shape (must not)."""
    device = device or default_device()
    data = dataset(run_config.data)
    torch.manual_seed(seed)
    models = {"composer": Composer(data).to(device), "lookup": Lookup(data).to(device),
              "untrained": build_model(run_config.model, data.vocab.size).to(device).eval()}
    ood = EncodedSet.build(data.probe_sets()["test_inferred_ood"], data.vocab, device)
    queries = encoded_probe_queries(data, device)
    return {"bridge_found_tail_slots": {k: path_summary(m, ood, True)["bridge_found_tail_slots"] for k, m in models.items()},
            "bridge_decoded": {k: bridge_probe(m, data, device, queries=queries)["bridge_decoded"]
                               for k, m in models.items()}}


# --- trained negative controls --------------------------------------------------------------------
EARLY_FACTS_AT = 0.5    # the OOD atomic facts stored at least this well (the first hop is there to use)
EARLY_ID_BELOW = 0.9    # the held-out ID compositions answered below this (no path formed yet)


def earliest_negative_snapshot(run, facts_at: float = EARLY_FACTS_AT, id_below: float = EARLY_ID_BELOW) -> int | None:
    """The earliest snapshot of `run` whose weights are stored (or whose probe result is), at which
    the OOD atomic facts are stored (exact match at least `facts_at`) while the held-out ID
    compositions are answered below `id_below`; None if there is none."""
    by_step = {e["step"]: e for e in run.curves}
    for step in sorted(run.snapshot_steps()):
        e = by_step.get(step)
        if e is None or not (e["ood_atomic"]["exact_match"] >= facts_at and e["test_inferred_iid"]["exact_match"] < id_below):
            continue
        if (run.store.checkpoint_dir(run.key) / f"snapshot_{step}.pt").exists() or \
                run.store.memo_path("linear_probe", _probe_key(run, step)).exists():
            return step
    return None


def _probe_key(run, step: int | None) -> dict:
    return {"run": run.key, "weights": "final" if step is None else f"snapshot_{step}", "ridge": RIDGE}


def _lens_tail(run, device) -> float:
    """The logit lens's bridge at the answer/END slot on the OOD compositions, final weights, memoised."""
    def compute():
        data = dataset(run.config.data)
        ood = EncodedSet.build(data.probe_sets()["test_inferred_ood"], data.vocab, device)
        return path_summary(run.load_model(None, device), ood, True)["bridge_found_tail_slots"]
    return run.store.memo("lens_tail", {"run": run.key, "weights": "final"}, compute)


def _final_measurable(run) -> bool:
    """Whether the final weights are stored, or both probe results computed from them are."""
    memos = (("linear_probe", _probe_key(run, None)), ("lens_tail", {"run": run.key, "weights": "final"}))
    return run.has_weights() or all(run.store.memo_path(kind, key).exists() for kind, key in memos)


def trained_negative_controls(natural: list, standard: list, device=None) -> dict[str, dict[str, dict[int, float]]]:
    """{probe metric: {trained negative: {seed: value}}} for verdicts.circuit_probe: the natural runs
    at `earliest_negative_snapshot` (the lens read from the run's own evaluation at that step, the
    linear probe from its snapshot weights) and the standard transformers at their end. A run whose
    weights are not stored, and whose result is not either, is left out (not measured at that seed)."""
    device = device or default_device()
    lens: dict[str, dict[int, float]] = {"natural, earliest snapshot": {}, "standard transformer": {}}
    linear: dict[str, dict[int, float]] = {"natural, earliest snapshot": {}, "standard transformer": {}}
    for run in natural:
        step = earliest_negative_snapshot(run)
        if step is None:
            continue
        seed = run.config.train.seed
        lens["natural, earliest snapshot"][seed] = next(e for e in run.curves if e["step"] == step)[
            "test_inferred_ood"]["bridge_found_tail_slots"]
        linear["natural, earliest snapshot"][seed] = run.store.memo("linear_probe", _probe_key(run, step), lambda: bridge_probe(
            run.load_model(step, device), dataset(run.config.data), device))["bridge_decoded"]
    for run in standard:
        if not _final_measurable(run):
            continue
        seed = run.config.train.seed
        lens["standard transformer"][seed] = _lens_tail(run, device)
        linear["standard transformer"][seed] = run_probe(run, device)["bridge_decoded"]
    return {"bridge_found_tail_slots": lens, "bridge_decoded": linear}
