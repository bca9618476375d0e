"""Which checkpoints claim 1 compares, on synthetic curves: the pre-grokking checkpoint is memorised
and not grokked, strictly before the first grokked evaluation, or there is none (never a
substitute); and the similarity table the verdict reads."""
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from grokcircuits.science import inference_paths as ip
from grokcircuits.config import ConfigError, get_profile
from grokcircuits.science.data import build_dataset


@dataclass
class FakeRun:
    """What the checkpoint rules read from a Run: curves, snapshot steps, the memorisation threshold."""
    curves: list
    snapshots: list
    seed: int = 0
    memorised_at: float = 0.9
    lost: tuple = ()                   # recorded snapshot steps whose weights are gone
    config: SimpleNamespace = field(init=False)

    def __post_init__(self):
        self.config = SimpleNamespace(train=SimpleNamespace(snapshot_at_training_accuracy=self.memorised_at, seed=self.seed))
        self.record = {"snapshot_steps": list(self.snapshots), "steps": self.curves[-1]["step"]}

    def snapshot_steps(self):
        return list(self.record["snapshot_steps"])

    def has_snapshot(self, step):
        return step not in self.lost


def curves(train_acc, ood_em, every=100):
    return [{"step": (i + 1) * every, "training_accuracy": a, "test_inferred_ood": {"exact_match": o}}
            for i, (a, o) in enumerate(zip(train_acc, ood_em))]


def entry(run, step):
    return next(e for e in run.curves if e["step"] == step)


def test_pre_checkpoint_is_the_latest_memorised_one_before_grokking():
    #            100   200   300   400   500   600   700   800
    acc = [0.2, 0.6, 0.92, 0.95, 0.97, 0.99, 1.0, 1.0]
    ood = [0.0, 0.0, 0.02, 0.05, 0.10, 0.30, 0.6, 0.9]
    run = FakeRun(curves(acc, ood), snapshots=[100, 300, 400, 600, 700, 800])
    assert ip.pre_grok_step(run, 0.5) == 600
    assert ip.first_grokked_step(run, 0.5) == 700 and ip.grokked(run, 0.5)
    assert ip.pre_grok_step(run, 0.25) == 400                               # a stricter criterion: earlier
    assert ip.pre_grok_step(run, 0.95) == 700 and not ip.grokked(run, 0.95)


def test_grokking_before_memorising_has_no_pre_checkpoint():
    acc = [0.2, 0.5, 0.7, 0.95, 0.99]
    ood = [0.1, 0.6, 0.7, 0.8, 0.9]
    run = FakeRun(curves(acc, ood), snapshots=[100, 200, 300, 400, 500])
    assert ip.pre_grok_step(run, 0.5) is None and ip.grokked(run, 0.5)


def test_never_memorising_has_no_pre_checkpoint():
    run = FakeRun(curves([0.1, 0.3, 0.5, 0.6], [0.0, 0.0, 0.0, 0.0]), snapshots=[100, 200, 300, 400])
    assert ip.pre_grok_step(run, 0.5) is None and not ip.grokked(run, 0.5)


def test_never_grokking_gives_a_pre_checkpoint_before_the_end_and_grokked_false():
    run = FakeRun(curves([0.5, 0.95, 0.97, 0.99], [0.0, 0.1, 0.2, 0.3]), snapshots=[100, 200, 300, 400])
    assert ip.pre_grok_step(run, 0.5) == 300                                # never the end itself
    assert not ip.grokked(run, 0.5)


def test_a_dip_after_grokking_is_not_a_pre_checkpoint():
    acc = [0.95, 0.97, 0.99, 1.0, 1.0]
    ood = [0.1, 0.2, 0.6, 0.3, 0.8]                                          # dips below 0.5 at 400
    run = FakeRun(curves(acc, ood), snapshots=[100, 400, 500])
    assert ip.pre_grok_step(run, 0.5) == 100


def test_snapshots_without_an_evaluation_are_ignored():
    run = FakeRun(curves([0.95, 0.97, 0.99], [0.1, 0.2, 0.9]), snapshots=[150, 200, 300])
    assert ip.pre_grok_step(run, 0.5) == 200


def test_random_curves_never_give_a_grokked_or_unmemorised_pre_checkpoint():
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(300):
        n = int(rng.integers(3, 12))
        acc, ood = np.clip(np.cumsum(rng.random(n) * 0.3), 0, 1), rng.random(n) * rng.random()
        run = FakeRun(curves(acc.tolist(), ood.tolist()), snapshots=sorted(rng.choice(np.arange(1, n + 1) * 100, size=3).tolist()))
        crit = float(rng.choice([0.2, 0.5, 0.8]))
        pre, first = ip.pre_grok_step(run, crit), ip.first_grokked_step(run, crit)
        if pre is None:
            continue
        found += 1
        e = entry(run, pre)
        assert pre in run.snapshot_steps() and pre < run.curves[-1]["step"]
        assert e["training_accuracy"] >= 0.9 and e["test_inferred_ood"]["exact_match"] < crit
        assert first is None or pre < first
        later = [s for s in run.snapshot_steps() if pre < s < run.curves[-1]["step"] and (first is None or s < first)]
        assert all(entry(run, s)["training_accuracy"] < 0.9 or entry(run, s)["test_inferred_ood"]["exact_match"] >= crit
                   for s in later)                                           # the latest such
    assert found > 30


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "half", True])
def test_a_bad_grokking_criterion_is_refused(bad):
    run = FakeRun(curves([0.95], [0.1]), snapshots=[100])
    with pytest.raises(ConfigError, match="grokking_criterion"):
        ip.pre_grok_step(run, bad)


def test_checkpoints_to_patch_leave_out_a_missing_pre_checkpoint():
    memorised = FakeRun(curves([0.95, 0.97, 0.99], [0.1, 0.2, 0.9]), snapshots=[100, 200])
    never = FakeRun(curves([0.1, 0.2, 0.3], [0.0, 0.0, 0.0]), snapshots=[100, 200])
    both = FakeRun(curves([1.0], [1.0]), snapshots=[])
    assert [(label, step) for label, _, step in ip.checkpoints_to_patch(memorised, both)] == [
        ("natural, pre-grokking", 200), ("natural, end", None), ("both hops full, end", None)]
    assert [label for label, _, _ in ip.checkpoints_to_patch(never, both)] == ["natural, end", "both hops full, end"]


def test_similarity_table_has_the_verdicts_columns_and_compares_pre_with_end(monkeypatch):
    data = build_dataset(get_profile("tiny").data)
    controls = ip.control_patching(data, "train_inferred", 80, seed=0)
    composer, lookup = controls["composer (hand-built)"], controls["lookup (hand-built)"]
    grok = curves([0.5, 0.95, 0.99, 1.0], [0.0, 0.1, 0.3, 0.9])
    runs = [FakeRun(grok, [100, 200, 300], seed=0),                          # pre looks up, end composes
            FakeRun(grok, [100, 200, 300], seed=1),                          # the same path before and after
            FakeRun(curves([0.2, 0.3, 0.4, 0.5], [0.0] * 4), [100, 200, 300], seed=2)]   # never memorised
    paths = {(0, 300): lookup, (0, None): composer, (1, 300): composer, (1, None): composer}
    calls = []

    def fake_patching(run, step, set_, n):
        calls.append((run.config.train.seed, step, set_, n))
        return paths[(run.config.train.seed, step)]
    monkeypatch.setattr(ip, "patching", fake_patching)
    table = ip.path_similarity_table(runs, "train_inferred", 80, grokking_criterion=0.5, draws=200)
    assert list(table.columns) == ["seed", "grokked", "pre_step", "similarity", "low", "high", "chance_high"]
    assert table["grokked"].dtype == bool and table["grokked"].tolist() == [True, True, False]
    assert table["pre_step"].tolist() == [300, 300, None] and type(table["pre_step"][0]) is int
    assert set(calls) == {(0, 300, "train_inferred", 80), (0, None, "train_inferred", 80),
                          (1, 300, "train_inferred", 80), (1, None, "train_inferred", 80)}
    lookup_then_compose, same = table.iloc[0], table.iloc[1]
    assert lookup_then_compose["high"] < 0.6 and same["low"] == pytest.approx(1.0)
    assert same["similarity"] > same["chance_high"]
    assert table.iloc[2][["similarity", "low", "high", "chance_high"]].isna().all()
    assert isinstance(table, pd.DataFrame) and len(table) == 3


def test_the_iid_variant_judges_grokking_on_the_held_out_id_compositions():
    # the shape measured at the cpu profile: ID generalisation lags memorisation by one evaluation,
    # the OOD compositions never come
    acc = [0.47, 0.83, 0.94, 0.98, 1.0]
    iid = [0.14, 0.39, 0.73, 0.91, 1.0]
    ood = [0.03, 0.02, 0.03, 0.04, 0.03]
    run = FakeRun([{**e, "test_inferred_iid": {"exact_match": i}} for e, i in zip(curves(acc, ood), iid)],
                  snapshots=[100, 200, 300, 400])
    assert not ip.grokked(run, 0.5) and ip.pre_grok_step(run, 0.5) == 400     # the paper's: never grokked
    assert ip.grokked(run, 0.9, "iid") and ip.first_grokked_step(run, 0.9, "iid") == 400
    assert ip.pre_grok_step(run, 0.9, "iid") == 300                          # memorised, ID not yet 0.9
    assert ip.pre_grok_step(run, 0.5, "iid") is None                         # ID 0.5 came before memorising
    table = ip.checkpoint_table([run], 0.9, "iid")
    assert table.loc[0, "held-out ID exact match then"] == 0.73 and bool(table.loc[0, "grokked"])
    with pytest.raises(ConfigError, match="grokking_set='OOD' is not allowed; allowed values: 'ood', 'iid'"):
        ip.grokked(run, 0.5, "OOD")


def test_an_earlier_memorisation_threshold_finds_a_checkpoint_the_runs_own_misses():
    # memorisation and ID generalisation come together: no evaluation has training accuracy 0.9
    # before held-out ID exact match 0.9, but one has 0.8 (the cpu profile's seeds 0 and 2)
    run = FakeRun(curves([0.45, 0.86, 0.94, 0.97], [0.0, 0.0, 0.0, 0.0]), snapshots=[100, 200, 300, 400])
    for e, iid in zip(run.curves, [0.16, 0.54, 0.92, 0.98]):
        e["test_inferred_iid"] = {"exact_match": iid}
    assert ip.pre_grok_step(run, 0.9, "iid") is None                   # memorised at 0.9 only once generalised
    assert ip.pre_grok_step(run, 0.9, "iid", memorised_at=0.8) == 200
    assert ip.pre_grok_step(run, 0.9, "iid", memorised_at=0.9) is None
    for bad in (0, 1.5, True, "high"):
        with pytest.raises(ConfigError, match="memorised_at="):
            ip.pre_grok_step(run, 0.9, "iid", memorised_at=bad)


def test_a_recorded_snapshot_whose_weights_are_gone_is_never_the_pre_checkpoint():
    acc, ood = [0.2, 0.92, 0.95, 0.97, 1.0], [0.0, 0.0, 0.1, 0.2, 0.9]
    assert ip.pre_grok_step(FakeRun(curves(acc, ood), snapshots=[200, 300, 400])) == 400
    assert ip.pre_grok_step(FakeRun(curves(acc, ood), snapshots=[200, 300, 400], lost=(400,))) == 300
    assert ip.pre_grok_step(FakeRun(curves(acc, ood), snapshots=[200, 300, 400], lost=(200, 300, 400))) is None
