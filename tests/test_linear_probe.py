"""The linear probe for the bridge: fitted without the test queries' first hops, chosen on one half
of the test queries and reported on the other, and its controls (the hand-built composer is decoded,
the hand-built lookup and an untrained network are not)."""
import pytest
import torch

from grokcircuits.science import linear_probe as lp
from grokcircuits.config import get_profile
from grokcircuits.science.controls import Composer, Lookup
from grokcircuits.science.data import build_dataset

TINY = get_profile("tiny")


@pytest.fixture(scope="module")
def data():
    return build_dataset(TINY.data)


def test_the_fit_never_sees_a_first_hop_of_a_test_query(data):
    fit, test = lp.probe_queries(data)
    assert len(fit) > 0 and len(test) > 0
    assert not lp._first_hops(fit) & lp._first_hops(test)
    assert set(test[:, 3]) <= set(fit[:, 3])          # every tested bridge is an entity the readout can name


def test_the_cell_is_chosen_on_even_rows_and_reported_on_odd_rows():
    hits = torch.zeros(8, 2, 5, dtype=torch.bool)
    hits[0::2, 1, 3] = True          # the chosen cell: right on every even row
    hits[1::2, 1, 3] = torch.tensor([True, False, False, False])
    out = lp.choose_and_report(hits, ["Init", "H0_L0"])
    assert (out["stage"], out["slot"], out["bridge_decoded"]) == ("H0_L0", 3, 0.25)
    assert out["chosen_on"] == out["reported_on"] == 4
    with pytest.raises(ValueError, match="at least 2 test queries"):
        lp.choose_and_report(hits[:1], ["Init", "H0_L0"])


def test_the_composer_is_decoded_where_it_writes_the_bridge_and_the_lookup_is_not(data):
    composer = lp.bridge_probe(Composer(data), data, "cpu")
    assert composer["bridge_decoded"] == 1.0 and (composer["stage"], composer["slot"]) == ("H0_L1", 3)
    lookup = lp.bridge_probe(Lookup(data), data, "cpu")
    assert lookup["bridge_decoded"] < 0.3


def test_the_controls_of_both_circuit_probes(data):
    controls = lp.circuit_probe_controls(TINY.run("trm", "natural", 0), "cpu")
    for probe in ("bridge_found_tail_slots", "bridge_decoded"):
        c = controls[probe]
        assert c["composer"] == 1.0, probe
        assert c["lookup"] < 0.3 and c["untrained"] < 0.3, (probe, c)


def test_the_reference_split_shares_no_first_hop(data):
    fit, _ = lp.encoded_probe_queries(data, "cpu")
    a, b = lp.split_by_first_hop(fit)
    assert len(a) + len(b) == len(fit) and len(a) > 0 and len(b) > 0
    hops = lambda s: set(map(tuple, s.inputs[:, :2].tolist()))
    assert not hops(a) & hops(b)


def test_the_reference_reads_the_composer_on_both_paths_and_the_lookup_on_neither(data):
    composer = lp.bridge_reference(Composer(data), data, "cpu")
    assert composer["id"]["bridge_decoded"] == 1.0 and composer["ood"]["bridge_decoded"] == 1.0
    assert composer["ood_at_id_cell"] == 1.0
    lookup = lp.bridge_reference(Lookup(data), data, "cpu")
    assert lookup["id"]["bridge_decoded"] < 0.3 and lookup["ood"]["bridge_decoded"] < 0.3
