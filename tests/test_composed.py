"""The split of OOD compositions by whether each hop's fact was composed in training, and the rule
that judges it: each cell on graphs whose regimes fix the answer, a hand-built model that composes
only what it saw composed against one that composes everything, and every branch of the verdict."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from grokcircuits.config import CPU_DATA
from grokcircuits.science import composed
from grokcircuits.science import verdicts as v
from grokcircuits.science.data import build_dataset, encode

GRAPH = replace(CPU_DATA, probe_size=200)


def _cells(regime: str) -> np.ndarray:
    data = build_dataset(replace(GRAPH, regime=regime))
    return composed.cell_of(*composed.composed_hops(data, data.test_inferred_ood))


def test_the_regimes_put_every_ood_query_in_the_cell_their_injection_says():
    assert (_cells("natural") == 3).all()            # no OOD fact is ever composed
    assert (_cells("both_full") == 0).all()          # every OOD fact composed, in its own role
    assert (_cells("hop1_only") == 1).all()
    assert (_cells("hop2_only") == 2).all()
    half = np.bincount(_cells("both_half"), minlength=4)
    assert (half >= 20).all() and half.sum() == len(build_dataset(replace(GRAPH, regime="both_half")).test_inferred_ood)


def test_split_exact_match_counts_each_cell_and_leaves_an_empty_one_undefined():
    correct = np.array([True, True, False, True, False, False])
    first = np.array([True, True, True, False, False, False])
    second = np.array([True, True, False, True, False, False])
    out = composed.split_exact_match(correct, first, second)
    assert out["both hops composed"] == {"n": 2, "exact_match": 1.0}
    assert out["first hop only"] == {"n": 1, "exact_match": 0.0}
    assert out["second hop only"] == {"n": 1, "exact_match": 1.0}
    assert out["neither composed"] == {"n": 2, "exact_match": 0.0}
    empty = composed.split_exact_match(correct[:1], first[:1], second[:1])
    assert empty["neither composed"]["n"] == 0 and np.isnan(empty["neither composed"]["exact_match"])


class _Answerer(torch.nn.Module):
    """Answers a two-hop query exactly when `knows(h, r1, r2)`; otherwise names a wrong tail."""

    def __init__(self, vocab_size: int, knows):
        super().__init__()
        self.V, self.knows = vocab_size, knows

    def forward(self, inputs, labels):
        out = labels.clone()                                                       # (B, 5)
        miss = torch.tensor([not self.knows(*row[:3].tolist()) for row in inputs], dtype=torch.bool)
        out[miss, 3] = (out[miss, 3] + 1) % 50                                     # another entity
        return torch.nn.functional.one_hot(out.clamp(min=0), self.V).float(), None  # (B, 5, V)


def test_the_split_tells_a_model_bound_to_composed_facts_from_one_that_composes_all():
    data = build_dataset(replace(GRAPH, regime="both_half"))
    first_seen = {(int(h), int(data.vocab.relation_token(r))) for h, r in data.train_inferred[:, [0, 1]]}
    bound = _Answerer(data.vocab.size, lambda h, r1, r2: (h, r1) in first_seen)
    general = _Answerer(data.vocab.size, lambda h, r1, r2: True)
    device = torch.device("cpu")
    b, g = composed.ood_by_composed(bound, data, device), composed.ood_by_composed(general, data, device)
    assert [b[c]["exact_match"] for c in composed.CELLS] == [1.0, 1.0, 0.0, 0.0]
    assert [g[c]["exact_match"] for c in composed.CELLS] == [1.0] * 4
    table = lambda split: pd.DataFrame([{"seed": s, "cell": c, **split[c]} for s in range(5) for c in composed.CELLS])
    assert v.composition_beyond_composed_facts(table(b)).holds is False
    assert v.composition_beyond_composed_facts(table(g)).holds is True


def _table(values, n=40, seeds=range(5)):
    """Rows (seed, cell, n, exact_match): `values` maps a cell to its exact match, the same at each seed,
    or to a list of one value a seed."""
    return pd.DataFrame([{"seed": s, "cell": c, "n": n, "exact_match": x if np.isscalar(x) else x[i]}
                         for i, s in enumerate(seeds) for c, x in values.items()])


@pytest.mark.parametrize("values, n, holds, branch", [
    ({"both hops composed": 1.0, "neither composed": 0.8}, 40, True, "holds"),
    ({"both hops composed": 1.0, "neither composed": 0.02}, 40, False, "does_not_hold:bound_to_composed_facts"),
    ({"both hops composed": 0.5, "neither composed": 0.02}, 40, None, "not_shown:does_not_compose_its_trained_facts"),
    ({"both hops composed": 1.0, "neither composed": 0.8}, 5, None, "not_shown:cells_too_small"),
    ({"both hops composed": 1.0}, 40, None, "not_shown:cells_too_small"),
    ({"both hops composed": 1.0, "neither composed": [0.8, 0.8, 0.8, 0.0, 0.0]}, 40, None, "not_shown:share_straddles"),
])
def test_every_branch_of_composition_beyond_the_composed_facts(values, n, holds, branch):
    verdict = v.composition_beyond_composed_facts(_table(values, n))
    assert (verdict.holds, verdict.branch) == (holds, branch)
    assert verdict.tally.startswith("composition beyond the composed facts:")


def test_too_few_seeds_cannot_decide_it():
    verdict = v.composition_beyond_composed_facts(_table({"both hops composed": 1.0, "neither composed": 0.9},
                                                         seeds=range(3)))
    assert (verdict.holds, verdict.branch) == (None, "not_shown:too_few_seeds")


def test_the_page_lists_each_cell_with_its_size_and_marks_an_empty_one():
    from grokcircuits.pages import analysis
    t = pd.DataFrame([{"seed": 0, "cell": "both hops composed", "n": 12, "exact_match": 0.5},
                      {"seed": 0, "cell": "neither composed", "n": 0, "exact_match": float("nan")}])
    row = analysis.composed_listing({"both_half": t}).iloc[0]
    assert row["both hops composed"] == "0.50 (n 12)"
    assert row["neither composed"] == "no query" and row["first hop only"] == "no query"


def test_the_composed_grid_names_each_variant_and_marks_runs_not_yet_trained(tmp_path):
    from grokcircuits.ops import composed_grid
    from grokcircuits.ops.grids import CPU_TRM, get_grid
    from grokcircuits.store import Store
    assert composed_grid.model_departure(CPU_TRM) == "none"
    assert composed_grid.model_departure(replace(CPU_TRM, l_cycles=6, reembed=True)) == "l_cycles=6, reembed=True"
    grid = get_grid("cpu_composed")
    assert {c.data.regime for c in grid.recursive} == {"both_half"}
    attention = next(c for c in grid.recursive if c.model.token_mixer == "attention")
    assert composed_grid.departure(attention) == "token_mixer=attention, lr=0.0003"
    assert composed_grid.departure(replace(attention, model=CPU_TRM)) == "lr=0.0003"
    assert composed_grid.departure(grid.recursive[0]) == "backprop_all_cycles=True"     # the profile's lr: not named
    table = composed_grid.composed_table(grid, Store(tmp_path))
    assert [r["status"] for r in table["rows"]] == ["not started"] * (1 + len(grid.recursive))
    assert [r["seed"] for r in table["role_rows"]] == [0, 1, 2, 3, 4] + [0] * len(grid.recursive)
    assert {r["status"] for r in table["role_rows"]} == {"not started"}
    text = composed_grid.format_markdown(table)
    assert "| backprop_all_cycles=True | - | not started |" in text and "neither composed" in text
    assert "| backprop_all_cycles=True | 0 | - | not started |" in text and "both never composed" in text


def test_fact_roles_agree_with_the_four_cells_and_name_the_other_role():
    for regime in ("natural", "both_full", "hop1_only", "hop2_only", "both_half"):
        data = build_dataset(replace(GRAPH, regime=regime))
        first, second = composed.fact_roles(data, data.test_inferred_ood)
        own_first, own_second = composed.composed_hops(data, data.test_inferred_ood)
        assert ((first == 0) == own_first).all() and ((second == 0) == own_second).all()
        if regime == "natural":
            assert (first == 2).all() and (second == 2).all()          # no OOD fact composed in any role
        if regime == "hop1_only":                                      # OOD facts composed as first hops only
            assert (first == 0).all() and not (second == 2).all() and (second != 0).all()
    half = build_dataset(replace(GRAPH, regime="both_half"))
    first, second = composed.fact_roles(half, half.test_inferred_ood)
    counts = {name: int(((first == a) & (second == b)).sum()) for name, (a, b) in composed.ROLE_CELLS.items()}
    assert min(counts.values()) >= 5                                   # every cell the split reads is populated


def test_split_by_roles_reads_each_cell_and_leaves_an_empty_one_undefined():
    correct = np.array([True, False, True, True, False])
    first = np.array([0, 0, 2, 1, 2])
    second = np.array([0, 0, 0, 0, 2])
    out = composed.split_by_roles(correct, first, second)
    assert out["both in their roles"] == {"n": 2, "exact_match": 0.5}
    assert out["first never composed, second in its role"] == {"n": 1, "exact_match": 1.0}
    assert out["first composed as a second hop only, second in its role"] == {"n": 1, "exact_match": 1.0}
    assert out["both never composed"] == {"n": 1, "exact_match": 0.0}
    assert out["first in its role, second never composed"]["n"] == 0
    assert np.isnan(out["first in its role, second never composed"]["exact_match"])


def test_the_role_split_tells_a_generic_hop_from_a_bound_one():
    """A hand-built model whose first hop reads every stored fact and whose second hop answers only
    facts composed as second hops: every query with the second fact in its role is right, whatever
    the first fact's history; none with the second fact never composed."""
    data = build_dataset(replace(GRAPH, regime="both_half"))
    queries = data.test_inferred_ood
    first, second = composed.fact_roles(data, queries)
    token = lambda r: int(data.vocab.relation_token(r))                # the model sees token ids
    bound_second = {(h, token(r1), token(r2)) for (h, r1, r2, _, _), s in zip(queries.tolist(), second) if s == 0}
    model = _Answerer(data.vocab.size, lambda h, r1, r2: (h, r1, r2) in bound_second)
    out = composed.ood_by_roles(model, data, "cpu")
    assert out["first never composed, second in its role"]["exact_match"] == 1.0
    assert out["first in its role, second never composed"]["exact_match"] == 0.0
    assert out["both never composed"]["exact_match"] == 0.0
