"""Where a sweep run's OOD compositions fail: its stored EMA weights probed at one step.

    python -m grokcircuits probe --grid cpu_deep --key 114e4d28e7ea1e3a [--step 14500]

Writes results/sweep/<grid>/probes/<key>_<step>.json (with the device and code version) and
prints it. For a recursive run of a grid, read a snapshot (default: its final weights, else its latest
snapshot) and report exact match on every probe set, the logit lens's bridge on the OOD
compositions, and the linear probe's reference (`linear_probe.bridge_reference`): is the bridge of
ID compositions decodable from a state, and that of OOD ones? A run that has stored its OOD atomic
facts yet decodes no OOD bridge does not compute the OOD first hop inside a composition.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from grokcircuits.config import ConfigError, RunConfig
from grokcircuits.ops.grids import Grid
from grokcircuits.store import Store, code_version, write_json
from grokcircuits.ops.sweep import sweep_root, table_dir
from grokcircuits.science.linear_probe import bridge_reference
from grokcircuits.science.probes import EncodedSet, path_summary
from grokcircuits.science.runs import dataset, default_device, device_name, Run

_SNAPSHOT = re.compile(r"snapshot_(\d+)\.pt$")


def recursive_run(grid: Grid, key: str) -> RunConfig:
    keys = [c.key() for c in grid.recursive]
    if key not in keys:
        raise ConfigError(f"key={key!r} is not a recursive run of grid {grid.name!r}; its recursive runs: {', '.join(keys)}")
    return grid.recursive[keys.index(key)]


def snapshot_steps(store: Store, key: str) -> list[int]:
    found = (_SNAPSHOT.search(p.name) for p in store.checkpoint_dir(key).glob("snapshot_*.pt"))
    return sorted(int(m.group(1)) for m in found if m)


def weights_path(store: Store, key: str, step: int | None):
    """(path, step label): the snapshot at `step`; without a step, final.pt, else the latest snapshot."""
    folder, steps = store.checkpoint_dir(key), snapshot_steps(store, key)
    if step is None and (folder / "final.pt").exists():
        return folder / "final.pt", "final"
    if step is None and steps:
        step = steps[-1]
    if step is None or step not in steps:
        raise ConfigError(f"step={step}: no weights of run {key} at {folder} for that step; stored snapshot "
                          f"steps: {steps or 'none (its checkpoints are not on this machine)'}")
    return folder / f"snapshot_{step}.pt", step


@torch.no_grad()
def diagnose(config: RunConfig, store: Store, step: int | None = None, device=None) -> dict:
    device = device or default_device()
    _, label = weights_path(store, config.key(), step)
    model = Run(config, {}, [], store).load_model(None if label == "final" else label, device)
    data = dataset(config.data)
    summaries = {name: path_summary(model, EncodedSet.build(ex, data.vocab, device), with_lens=name == "test_inferred_ood")
                 for name, ex in data.probe_sets().items()}
    return {"key": config.key(), "step": label, "exact_match": {n: v["exact_match"] for n, v in summaries.items()},
            "lens_bridge_found_tail_slots_ood": summaries["test_inferred_ood"]["bridge_found_tail_slots"],
            "linear_probe": bridge_reference(model, data, device),
            "device": device_name(torch.device(device)), "code_version": code_version()}


def probe_path(grid_name: str, key: str, step) -> Path:
    """results/sweep/<grid>/probes/<key>_<step>.json: where `probe` stores what it measured."""
    return table_dir(grid_name) / "probes" / f"{key}_{step}.json"


def probe_and_store(grid: Grid, key: str, step: int | None = None) -> dict:
    out = diagnose(recursive_run(grid, key), Store(sweep_root()), step)
    write_json(probe_path(grid.name, key, out["step"]), out)
    return out
