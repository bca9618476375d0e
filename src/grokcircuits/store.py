"""The results store: every run and every probe result keyed by the hash of its configuration.

Layout under `root` (one root per profile, `results/<profile>` by default):

    runs/<key>/record.json    configuration, code version, device, steps, wall and GPU seconds
    runs/<key>/curves.json    one entry per evaluation (small; committed for the GPU and paper profiles)
    memo/<kind>/<key>.json    cached probe results (small; committed likewise)
    checkpoints/<key>/        resumable checkpoint, final and snapshot EMA weights (large; never committed)

Files are written atomically (temporary file, then rename), so an interrupted run never leaves a
half-written result; tensors are loaded with `weights_only=True`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from grokcircuits import __version__
from grokcircuits.config import SCIENCE_VERSION, hash_dict

RESULTS_ENV = "GROKCIRCUITS_RESULTS"   # overrides the base folder `results` (tests point it at a temporary folder)


def results_root(profile: str) -> Path:
    return Path(os.environ.get(RESULTS_ENV, "results")) / profile


def code_version() -> str:
    """Library version plus the git commit of the working tree ('.dirty' when the library's own files
    have changes: results, notebooks and checkpoints that training rewrites do not count)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{__version__}+{commit}{'.dirty' if dirty else ''}" if commit else __version__


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=1, sort_keys=True)))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def save_tensors(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda p: torch.save(obj, p))


def load_tensors(path: Path, device: str | torch.device = "cpu") -> Any:
    return torch.load(path, map_location=device, weights_only=True)



class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- runs ---
    def run_dir(self, key: str) -> Path:
        return self.root / "runs" / key

    def checkpoint_dir(self, key: str) -> Path:
        return self.root / "checkpoints" / key

    def copy_run_from(self, source: "Store", key: str) -> None:
        """Copy run `key` from `source` into this store, replacing what is here: its checkpoints and
        snapshots first, then its curves and record (last: a record marks a run as present)."""
        for folder in (source.checkpoint_dir(key), source.run_dir(key)):
            if folder.exists():
                target = self.root / folder.relative_to(source.root)
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(folder, target)

    def copy_missing_weights_from(self, source: "Store", key: str) -> list[str]:
        """Copy the checkpoint files of run `key` that `source` holds and this store lacks, where both
        hold the same record (a copy of one run, whose weights a fresh clone may hold in only one of
        the two stores); returns the file names copied. Different records copy nothing."""
        ours, theirs = self.run_dir(key) / "record.json", source.run_dir(key) / "record.json"
        if not (ours.exists() and theirs.exists()) or read_json(ours) != read_json(theirs):
            return []
        target, copied = self.checkpoint_dir(key), []
        for f in sorted(source.checkpoint_dir(key).glob("*.pt")):
            if not (target / f.name).exists():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target / f.name)
                copied.append(f.name)
        return copied

    def has_run(self, key: str) -> bool:
        rec = self.run_dir(key) / "record.json"
        return rec.exists() and read_json(rec).get("status") == "complete"

    def record(self, key: str) -> dict:
        return read_json(self.run_dir(key) / "record.json")

    def curves(self, key: str) -> list[dict]:
        return read_json(self.run_dir(key) / "curves.json")

    def save_run(self, key: str, record: dict, curves: list[dict]) -> None:
        write_json(self.run_dir(key) / "curves.json", curves)
        write_json(self.run_dir(key) / "record.json", record)   # written last: its presence marks completion

    def runs(self) -> list[dict]:
        """Every complete run's record (for the cost chapter)."""
        out = []
        for rec in sorted((self.root / "runs").glob("*/record.json")):
            r = read_json(rec)
            if r.get("status") == "complete":
                out.append(r)
        return out

    # --- probe results ---
    def memo_path(self, kind: str, config: dict) -> Path:
        """Where the result for (kind, config) is stored (`memo`); it exists once computed."""
        return self.root / "memo" / kind / f"{hash_dict({'science_version': SCIENCE_VERSION, **config})}.json"

    def memo(self, kind: str, config: dict, compute: Callable[[], Any]) -> Any:
        """Return the stored result for (kind, config); compute and store it if absent. The science
        version is part of the key, so a result made by older probe code is never served."""
        path = self.memo_path(kind, config)
        if path.exists():
            return read_json(path)["result"]
        result = compute()
        write_json(path, {"config": config, "science_version": SCIENCE_VERSION, "code_version": code_version(),
                          "result": result})
        return result
