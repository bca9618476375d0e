"""Recover the snapshot weights a finished run recorded but whose files are gone.

A run records the steps of its snapshots (`record["snapshot_steps"]`), but git keeps only the
snapshot files the chapters read (`campaign.weights_to_commit`); a later rule that reads another
snapshot (an earlier memorisation threshold, a trained negative control) finds none. The run's
first steps can be trained again: the batch order is seeded by (seed, epoch) alone, the warm-up
and the optimiser do not depend on the total steps, so a run of the same configuration cut at
`until` steps follows the original's first `until` steps. The replay is trained in a scratch
store, its evaluations are compared with the original's at every common step (each training and
probe set's exact match, at most `tolerance` apart), and only then are its snapshot files copied
into the original run's checkpoint folder, with a note of the replay beside the run
(`recovered_snapshots.json`: steps, largest difference, device, wall time).

    python -m grokcircuits recover-snapshots --profile cpu --regime natural --seeds 0,1,2 --until 2000
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from grokcircuits.config import ConfigError, RunConfig
from grokcircuits.science.runs import default_device, device_name, load_run
from grokcircuits.store import Store, write_json
from grokcircuits.training import train_group

COMPARED_SETS = ("id_atomic", "ood_atomic", "train_inferred", "test_inferred_iid", "test_inferred_ood")
TOLERANCE = 0.02   # the largest difference of exact match allowed between the original and the replay


def replay_config(config: RunConfig, until: int) -> RunConfig:
    """The same run cut at `until` steps, keeping a snapshot at every evaluation."""
    t = config.train
    if not 0 < until <= t.steps:
        raise ConfigError(f"until={until} must lie in (0, {t.steps}], the run's steps")
    return replace(config, train=replace(t, steps=until, snapshots=until // t.eval_every + 1))


def largest_difference(original: list[dict], replayed: list[dict], sets=COMPARED_SETS) -> tuple[float, int]:
    """(largest |exact match difference|, evaluations compared) over the steps both curves hold."""
    by_step = {e["step"]: e for e in original}
    diffs = [abs(e[s]["exact_match"] - by_step[e["step"]][s]["exact_match"])
             for e in replayed if e["step"] in by_step for s in sets if s in e and s in by_step[e["step"]]]
    return (max(diffs) if diffs else float("inf")), len({e["step"] for e in replayed if e["step"] in by_step})


def recover_snapshots(config: RunConfig, store: Store, until: int, tolerance: float = TOLERANCE,
                      scratch: Path | None = None, log=print) -> dict:
    """Replay `config` (complete in `store`) to `until` steps and copy the snapshots it recorded at
    or before `until` whose files are missing, when the replay's evaluations agree with the
    original's within `tolerance`. Returns what was done ("recovered": steps copied)."""
    run = load_run(config, store)
    if run is None:
        raise ConfigError(f"run {config.key()} is not complete in {store.root}: nothing to recover")
    folder = store.checkpoint_dir(run.key)
    wanted = [s for s in run.snapshot_steps() if s <= until and not (folder / f"snapshot_{s}.pt").exists()]
    out = {"run": run.key, "until": until, "wanted": wanted, "recovered": []}
    if not wanted:
        log(f"{run.key}: every snapshot up to step {until} is already stored")
        return out
    short = replay_config(config, until)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        scratch_store, start = Store(Path(tmp)), time.time()
        replayed = train_group([short], scratch_store, log=log)[short.key()]
        diff, compared = largest_difference(run.curves, replayed.curves)
        out.update(replay_key=short.key(), largest_difference=diff, evaluations_compared=compared,
                   wall_seconds=round(time.time() - start, 1), device=device_name(default_device()), tolerance=tolerance)
        if not diff <= tolerance:
            log(f"{run.key}: the replay departs from the original by {diff:.3f} (> {tolerance}): nothing copied")
            return out
        folder.mkdir(parents=True, exist_ok=True)
        for s in wanted:
            source = scratch_store.checkpoint_dir(short.key()) / f"snapshot_{s}.pt"
            if source.exists():
                shutil.copyfile(source, folder / f".snapshot_{s}.pt.tmp")
                (folder / f".snapshot_{s}.pt.tmp").replace(folder / f"snapshot_{s}.pt")   # atomic
                out["recovered"].append(s)
    write_json(store.run_dir(run.key) / "recovered_snapshots.json", out)
    log(f"{run.key}: recovered snapshots {out['recovered']} (replay within {diff:.3f} of the original at "
        f"{compared} evaluations, {out['wall_seconds']:.0f} s)")
    return out
