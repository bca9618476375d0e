"""The runs each chapter needs, a way to train many of them (as ensembles on one device), and what a
profile holds (`describe`)."""
from __future__ import annotations

from grokcircuits.config import REGIMES, Profile, RunConfig, check_choice, get_profile
from grokcircuits.science.models import build_model, count_parameters
from grokcircuits.science.runs import Run, dataset, load_run, transfer_dataset
from grokcircuits.training import MAX_MEMBERS, group_by_shape, train_group
from grokcircuits.training.no_train import refuse_training_if_disabled
from grokcircuits.store import Store

PRETRAIN_REGIMES_FOR_TRANSFER = ("natural", "both_full")


def task_runs(profile: Profile, seeds) -> list[RunConfig]:
    """Chapter 00: the standard transformer and the recursive model on the natural data."""
    return [profile.run(arch, "natural", s) for arch in ("gpt", "trm") for s in seeds]


def path_runs(profile: Profile, seeds) -> list[RunConfig]:
    """Chapter 01: the natural run (checkpoints before and after its own curve rises) and both-hops-full."""
    return [profile.run("trm", r, s) for r in ("natural", "both_full") for s in seeds]


def regime_runs(profile: Profile, seeds, regimes=tuple(REGIMES)) -> list[RunConfig]:
    """Chapter 02: every data regime."""
    for r in regimes:
        check_choice("regimes", r, list(REGIMES))
    return [profile.run("trm", r, s) for r in regimes for s in seeds]


def transfer_runs(profile: Profile, seeds, regimes=None,
                  protocol: str = "profile") -> tuple[list[RunConfig], list[RunConfig]]:
    """Chapter 03: pretraining runs of `regimes` (None: the profile's `transfer_regimes`), then
    fine-tuning of each (`protocol`: config.FINETUNE_PROTOCOLS) plus one from-scratch control per seed."""
    pre = regime_runs(profile, seeds, profile.transfer_regimes if regimes is None else regimes)
    fine = ([profile.transfer_run(p, p.train.seed, protocol) for p in pre]
            + [profile.transfer_run(None, s, protocol) for s in seeds])
    return pre, fine


def train_many(configs: list[RunConfig], store: Store, workers: int | None = None, log=print,
               max_members: int = MAX_MEMBERS, deadline: float | None = None) -> dict[str, Run | None]:
    """Train (or load) every configuration: runs of one shape train together as one ensemble
    (`group_by_shape`, at most `workers` each, or `max_members` when `workers` is None), parents
    before their fine-tuning runs. The size of an ensemble never changes a run's result (the
    equivalence tests), only how many runs share one batched step.
    Returns {key: Run}, None for a run a `deadline` left incomplete."""
    refuse_training_if_disabled(configs, store)   # publishing renders committed runs, never trains
    todo = [c for c in dict((c.key(), c) for c in configs).values() if load_run(c, store) is None]
    if todo:
        log(f"training {len(todo)} run(s) of {len(configs)}; the others come from {store.root}")
    groups = group_by_shape(todo, max_members=workers or max_members)
    for i, group in enumerate(groups):
        c = group[0]
        log(f"  ensemble {i + 1}/{len(groups)}: {len(group)} run(s) of {c.model.architecture}"
            + (" (transfer)" if c.transfer else ""))
        train_group(group, store, deadline=deadline)
    return {c.key(): load_run(c, store) for c in configs}


def describe(profile_name: str) -> dict:
    """A profile's dataset sizes (pretraining and transfer) and parameter counts, as JSON-able numbers."""
    p = get_profile(profile_name)
    data = dataset(p.data)
    sizes = data.sizes()
    model = build_model(p.trm, data.vocab.size)
    out = {
        "profile": p.name, "description": p.description,
        "atomic": sizes["atomic"], "ood_atomic": sizes["ood_atomic"], "train_inferred": sizes["train_inferred"],
        "test_inferred_iid": sizes["test_inferred_iid"], "test_inferred_ood": sizes["test_inferred_ood"],
        "train_examples": sizes["train_examples"], "vocabulary": data.vocab.size,
        "parameters": count_parameters(model), "prefix_parameters": p.trm.width if p.trm.prefix_slots else 0,
        "gpt_parameters": count_parameters(build_model(p.gpt, data.vocab.size)),
        "transfer": transfer_dataset(p.data, p.transfer).sizes(),
    }
    return out
