"""The campaign: every run the chapters plan at a profile, trained over as many stretches as it takes.

    python -m grokcircuits campaign --profile cpu --budget-seconds 36000 [--threads 1]
    make campaign PROFILE=cpu BUDGET=36000

Plain Python. The runs of chapters 00-03 with their default parameters (the profile's seeds) train
in waves, in the order that answers claims soonest: the recursive model on both hops full and on the
natural data (chapters 01 and 03's pretraining), then the transfer runs that start from them and the
from-scratch controls (chapter 03), then the standard transformer (chapter 00), then the other three
regimes (chapter 02), then the fine-tuning from those three where the profile's chapter 03 asks for it
(`Profile.transfer_regimes`). Runs already trained by the sweep whose configuration is the profile's (the
`cpu` profile's recursive runs are the grid `cpu_wd03`'s) are adopted from the sweep's store, not trained
again. Every evaluation prints a progress line (run, step, epoch, the curves, time left). At the
budget the campaign stops at a step boundary, stores every unfinished run with its resumable
checkpoint, and prints what remains with an estimate of the time it needs; the same command resumes
exactly there, on this machine or on a fresh clone of a commit that holds the checkpoints.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from grokcircuits.pages import experiments as ex
from grokcircuits.config import ConfigError, Profile, RunConfig
from grokcircuits.science.runs import load_run, Run
from grokcircuits.store import Store, read_json, results_root
from grokcircuits.pages import chapters
from grokcircuits.science import inference_paths as ip
from grokcircuits.science.linear_probe import earliest_negative_snapshot
from grokcircuits.training import group_by_shape, MAX_MEMBERS, train_group

FIRST_REGIMES = ex.PRETRAIN_REGIMES_FOR_TRANSFER   # both hops full and natural: chapters 01 and 03


@dataclass(frozen=True)
class Wave:
    key: str    # what --waves names it by
    name: str
    runs: tuple[RunConfig, ...]





WAVES = (   # (key, name, which planned runs): every run the chapters plan falls in exactly one
    ("first", "recursive model: both hops full and natural data (chapters 01, 03)",
     lambda c: c.transfer is None and c.model.architecture == "trm" and c.data.regime in FIRST_REGIMES),
    ("transfer", "transfer: fine-tuning from the first wave and from-scratch controls (chapter 03)",
     lambda c: c.transfer is not None and (c.init_from is None or c.init_regime in FIRST_REGIMES)),
    ("standard", "standard transformer on the natural data (chapter 00)", lambda c: c.model.architecture == "gpt"),
    ("regimes", "recursive model: the other regimes (chapter 02)",
     lambda c: c.transfer is None and c.model.architecture == "trm" and c.data.regime not in FIRST_REGIMES),
    ("transfer_regimes", "transfer: fine-tuning from the other regimes (chapter 03, after their pretraining)",
     lambda c: c.transfer is not None and c.init_from is not None and c.init_regime not in FIRST_REGIMES),
)


def planned_waves(profile: Profile, seeds=None) -> list[Wave]:
    """Every run the chapters plan at `profile` (`chapters.planned_runs`, default parameters), in the
    campaign's order: the waves of WAVES, each run once, in the order the chapters plan them."""
    runs = list({c.key(): c for cs in chapters.planned_runs(profile, seeds).values() for c in cs}.values())
    return [Wave(key, name, tuple(c for c in runs if member(c))) for key, name, member in WAVES]


WAVE_KEYS = tuple(key for key, _, _ in WAVES)   # the campaign's order


def check_wave_keys(keys) -> list[str]:
    """`keys` as a list, each one of `WAVE_KEYS`; a clear error before any training otherwise."""
    keys = list(keys)
    for k in keys:
        if k not in WAVE_KEYS:
            raise ConfigError(f"waves={k!r} is not a wave; allowed: {', '.join(WAVE_KEYS)}")
    return keys


def all_runs(waves: list[Wave]) -> list[RunConfig]:
    return list({c.key(): c for w in waves for c in w.runs}.values())


def name_of(config: RunConfig) -> str:
    """How a progress line names a run: architecture, regime or transfer role, seed."""
    if config.transfer is not None:
        role = f"fine-tuned from {config.init_regime}" if config.init_from else "from scratch"
        return f"transfer {role} s{config.train.seed}"
    return f"{config.model.architecture} {config.data.regime} s{config.train.seed}"


def adopt(configs: list[RunConfig], store: Store, source: Store) -> list[str]:
    """Copy into `store` every run of `configs` that `source` holds (records, curves, checkpoints and
    snapshots) and `store` lacks or holds fewer steps of; returns the keys copied."""
    copied = []
    for c in configs:
        key = c.key()
        theirs = source.run_dir(key) / "record.json"
        if not theirs.exists():
            continue
        ours = store.run_dir(key) / "record.json"
        if ours.exists() and read_json(ours)["steps"] >= read_json(theirs)["steps"]:
            store.copy_missing_weights_from(source, key)    # a fresh clone may hold them in `source` only
            continue
        store.copy_run_from(source, key)
        copied.append(key)
    return copied


def status(configs: list[RunConfig], store: Store) -> list[dict]:
    """Each planned run: name, key, status (complete, incomplete, not started), steps done and planned."""
    out = []
    for c in configs:
        path = store.run_dir(c.key()) / "record.json"
        record = read_json(path) if path.exists() else None
        done = load_run(c, store) is not None
        share = record.get("device_seconds") if record else None
        out.append({"run": name_of(c), "key": c.key(), "kind": run_kind(c),
                    "status": "complete" if done else record["status"] if record else "not started",
                    "steps": record["steps"] if record else 0, "steps_planned": c.train.steps,
                    "steps_per_device_second": record["steps"] / share if share else None})
    return out


def run_kind(config: RunConfig) -> str:
    """What a run's step costs depend on: its architecture, and whether it pretrains or transfers."""
    return f"{config.model.architecture} {'pretraining' if config.transfer is None else 'transfer'}"


def remaining_seconds(rows: list[dict]) -> float:
    """Estimated device-seconds (CPU-seconds on a CPU) to finish every unfinished run, one at a time,
    at the rate runs of the same kind measured: steps over each run's share of its ensemble's time
    (`device_seconds`), so that an ensemble of N does not read as N times slower. A kind with no
    measurement yet takes the slowest measured rate."""
    rates = {}
    for r in rows:
        if r["steps_per_device_second"]:
            rates.setdefault(r["kind"], []).append(r["steps_per_device_second"])
    slowest = min((min(v) for v in rates.values()), default=None)
    total = 0.0
    for r in rows:
        if r["status"] == "complete":
            continue
        rate = min(rates[r["kind"]]) if r["kind"] in rates else slowest
        if rate:
            total += (r["steps_planned"] - r["steps"]) / rate
    return total


def weights_to_commit(configs: list[RunConfig], store: Store) -> list:
    """The checkpoint files of `store` that git must hold for the campaign to resume, and for the book
    to render, on a fresh clone (`campaign --weights-to-commit`; the store ignores *.pt, so they are
    force-added): of every finished pretraining run, its final weights (the transfer runs start from
    the recursive model's, the linear probe reads them, and the standard transformer's are a trained
    negative control of the probes) and, of a natural-data run, the snapshots chapter 01 patches
    (before OOD grokking, and before ID generalisation for its variant) and the one chapter 02's probes
    take as a trained negative control (linear_probe.earliest_negative_snapshot); of every unfinished
    run, its resumable checkpoint and, of a natural-data pretraining run, the snapshots chapters 01
    and 02 could pick so far (its ID pre-generalisation snapshot, its earliest negative one and the
    latest)."""
    iid = chapters.IID_VARIANT.parameters
    variant = (iid["grokking_criterion"], iid["grokking_set"], iid["memorised_at"])
    files = []
    for c in configs:
        folder, record_path = store.checkpoint_dir(c.key()), store.run_dir(c.key()) / "record.json"
        pretraining = c.model.architecture == "trm" and c.transfer is None
        pretraining_natural = pretraining and c.data.regime == "natural"
        run = load_run(c, store)
        if run is not None:
            if pretraining or c.model.architecture == "gpt":
                files.append(folder / "final.pt")
            steps = ({ip.pre_grok_step(run), ip.pre_grok_step(run, *variant), earliest_negative_snapshot(run)}
                     if pretraining_natural else set())
            files += [folder / f"snapshot_{s}.pt" for s in sorted(steps - {None})]
        elif (folder / "last.pt").exists():
            files.append(folder / "last.pt")
            if pretraining_natural:
                steps = sorted(int(f.stem.split("_")[1]) for f in folder.glob("snapshot_*.pt"))[-1:]
                if record_path.exists():
                    so_far = Run(c, read_json(record_path), store.curves(c.key()), store)
                    steps += [ip.pre_grok_step(so_far, *variant), earliest_negative_snapshot(so_far)]
                files += [folder / f"snapshot_{s}.pt" for s in sorted(set(steps) - {None})]
    return [f for f in files if f.exists()]


def summary(rows: list[dict]) -> str:
    done = [r for r in rows if r["status"] == "complete"]
    lines = [f"{len(done)} of {len(rows)} planned runs complete"]
    for r in rows:
        if r["status"] != "complete":
            lines.append(f"  {r['run']:<40} {r['status']:<12} {r['steps']:>7} / {r['steps_planned']} steps  ({r['key']})")
    left = remaining_seconds(rows)
    if len(done) < len(rows):
        lines.append(f"estimated to finish: {left / 3600:.1f} device-hours (CPU-hours on a CPU: one run a core "
                     f"at the measured rates; two processes side by side take about half that in wall time)"
                     if left else "no rate measured yet: no estimate")
    return "\n".join(lines)


def run_campaign(profile: Profile, budget_seconds: float, store: Store | None = None, log=print,
                 sweep_store: Store | None = None, stop_after: int | None = None, seeds=None,
                 waves: list[str] | None = None, workers: int | None = None) -> list[dict]:
    """Train the planned runs within `budget_seconds`; returns `status` of every planned run.
    `waves` (keys of `WAVE_KEYS`) trains only those waves, so that two processes can share the
    campaign a core each; the status still covers every planned run. `workers` caps the runs of
    one ensemble (default `MAX_MEMBERS`): on a CPU the runs of one ensemble finish together, so a
    smaller ensemble completes runs within a shorter session. `stop_after` stops every ensemble
    after that many steps of this call, as the budget would."""
    if workers is not None and workers < 1:
        raise ConfigError(f"workers={workers} must be >= 1 (the most runs trained together as one ensemble)")
    start = time.time()
    deadline = start + budget_seconds
    store = store or Store(results_root(profile.name))
    chosen = check_wave_keys(WAVE_KEYS if waves is None else waves)
    waves = planned_waves(profile, seeds)
    configs = all_runs(waves)
    source = sweep_store or Store(results_root("sweep"))
    if source.root.exists():
        for key in adopt(configs, store, source):
            log(f"adopted {key} from {source.root}")
    names = {c.key(): name_of(c) for c in configs}

    def progress(message: str) -> None:
        key = message.split(" ", 1)[0]
        left = max(deadline - time.time(), 0)
        log(f"[{left / 60:5.1f} min left] " + (names[key] + message[len(key):] if key in names else message))

    for wave in (w for w in waves if w.key in chosen):
        todo = [c for c in wave.runs if load_run(c, store) is None]
        waiting = [c for c in todo if c.init_from is not None and not store.has_run(c.init_from)]
        todo = [c for c in todo if c not in waiting]
        if waiting:
            log(f"wave: {wave.name}: {len(waiting)} run(s) wait for their pretraining runs to finish")
        if not todo:
            continue
        if time.time() >= deadline:
            break
        log(f"wave: {wave.name}: {len(todo)} run(s) to train")
        for group in group_by_shape(todo, max_members=workers or MAX_MEMBERS):
            if time.time() >= deadline:
                break
            train_group(group, store, log=progress, deadline=deadline, stop_after=stop_after)
    rows = status(configs, store)
    log(summary(rows))
    return rows
