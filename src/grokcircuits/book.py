"""What every chapter of the book does around its science: validated parameters, the header,
the verdict (printed for nbval, written as JSON), provenance and package versions."""
from __future__ import annotations

import ast
import datetime as _dt
import json
import platform
import sys
import time
import types
from dataclasses import dataclass, field
from importlib import metadata

from .config import PROFILES, REGIMES, ConfigError, get_profile
from .engine import default_device, device_name
from .inference_paths import QUERY_SETS
from .store import Store, code_version, results_root, write_json

# The parameters each chapter accepts: name -> (type, check). A chapter's parameters cell holds
# their defaults; `parameters()` rejects any other name before any work starts.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def _seeds(name, v):
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not (isinstance(v, list) and v and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)):
        raise ConfigError(f"{name}={v!r} must be a non-empty list of non-negative ints, e.g. [0, 1, 2]")
    if len(set(v)) != len(v):
        raise ConfigError(f"{name}={v!r} repeats a seed")
    return v


def _regimes(name, v):
    if isinstance(v, str):
        v = [v]
    if not (isinstance(v, list) and v):
        raise ConfigError(f"{name}={v!r} must be a non-empty list; allowed values: {', '.join(map(repr, REGIMES))}")
    for r in v:
        if r not in REGIMES:
            raise ConfigError(f"{name} holds {r!r}, which is not a regime; allowed values: {', '.join(map(repr, REGIMES))}")
    return v


def _profile(name, v):
    if v not in PROFILES:
        raise ConfigError(f"{name}={v!r} is not allowed; allowed values: {', '.join(map(repr, PROFILES))}")
    return v


def _positive_int(name, v):
    if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
        raise ConfigError(f"{name}={v!r} must be a positive int")
    return v


def _query_set(name, v):
    allowed = QUERY_SETS
    if v not in allowed:
        raise ConfigError(f"{name}={v!r} is not allowed; allowed values: {', '.join(map(repr, allowed))}")
    return v


CHECKS = {"query_set": _query_set, "profile": _profile, "seeds": _seeds, "regimes": _regimes, "pretrain_regimes": _regimes,
          "workers": _positive_int, "patching_queries": _positive_int}

CHAPTER_PARAMETERS = {
    "00_task": ("profile", "seeds", "workers"),
    "01_identical_paths": ("profile", "seeds", "workers", "query_set", "patching_queries"),
    "02_accuracy_vs_circuit": ("profile", "seeds", "workers", "regimes"),
    "03_limited_transfer": ("profile", "seeds", "workers", "pretrain_regimes"),
    "04_cost": ("profile",),
}


def _coerce(v):
    """papermill's `-p name value` passes lists as text: read '[0, 1]' or '0,1' back into a list."""
    if isinstance(v, str) and (v.startswith("[") or "," in v):
        try:
            parsed = ast.literal_eval(v if v.startswith("[") else f"[{v}]")
        except (ValueError, SyntaxError):
            if v.startswith("["):
                return v
            parsed = [x.strip() for x in v.split(",") if x.strip()]   # natural,hop2_only
        return list(parsed) if isinstance(parsed, (list, tuple)) else v
    return v


@dataclass
class Chapter:
    name: str
    params: dict
    started: float = field(default_factory=time.perf_counter)
    started_utc: str = ""
    header_handle: object = None

    def __getattr__(self, item):   # parameters read as attributes: ch.seeds, ch.profile
        try:
            return self.__dict__["params"][item]
        except KeyError:
            raise AttributeError(item) from None

    @property
    def profile_obj(self):
        return get_profile(self.params["profile"])

    @property
    def store(self) -> Store:
        return Store(results_root(self.params["profile"]))


def parameters(chapter: str, namespace: dict) -> Chapter:
    """Validate the notebook's parameters (defaults and papermill's injected values) at once."""
    if chapter not in CHAPTER_PARAMETERS:
        raise ConfigError(f"chapter={chapter!r} is unknown; allowed values: {', '.join(CHAPTER_PARAMETERS)}")
    allowed = CHAPTER_PARAMETERS[chapter]
    user = {k for k, v in namespace.items() if not k.startswith("_") and k not in _IPYTHON_NAMES
            and not isinstance(v, types.ModuleType) and not callable(v)}
    unknown = sorted(user - set(allowed))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for chapter {chapter}; "
                          f"allowed parameters: {', '.join(allowed)}")
    missing = [k for k in allowed if k not in namespace]
    if missing:
        raise ConfigError(f"chapter {chapter} is missing parameter(s) {missing}")
    params = {k: CHECKS[k](k, _coerce(namespace[k])) for k in allowed if not (k == "seeds" and namespace[k] is None)}
    if "seeds" in allowed and "seeds" not in params:   # None: the profile's default seeds
        params["seeds"] = list(get_profile(params["profile"]).seeds)
    return Chapter(chapter, {k: params[k] for k in allowed})


def setup_charts() -> None:
    """Static SVG charts: rendered offline and kept in the built book."""
    import altair as alt
    alt.renderers.enable("svg")


def _header_text(ch: Chapter, wall: str) -> str:
    p = ch.profile_obj
    params = ", ".join(f"`{k}={v!r}`" for k, v in ch.params.items())
    return (f"**Profile** `{p.name}`: {p.description}.  \n"
            f"**Executed on** {device_name(default_device())} · **library** grokcircuits {code_version()} · "
            f"**started** {ch.started_utc} UTC · **wall time** {wall}  \n"
            f"**Parameters** {params}  \n"
            f"Training runs are loaded from `{ch.store.root}` when present there, else trained now; "
            f"the provenance cell at the end gives the device and time of each.")


def header(ch: Chapter) -> None:
    """The page's header; `provenance()` fills in the wall time when the page has run."""
    from IPython.display import Markdown, display
    ch.started_utc = f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M}"
    ch.header_handle = display(Markdown(_header_text(ch, "(running)")), display_id=True)


def _rounded(x, digits=2):
    if isinstance(x, float):
        return round(x, digits)
    if isinstance(x, (list, tuple)):
        return [_rounded(v, digits) for v in x]
    if isinstance(x, dict):
        return {k: _rounded(v, digits) for k, v in x.items()}
    return x


def verdict(ch: Chapter, claim: str, holds: bool | None, numbers: dict, runs=(), note: str = "") -> None:
    """Print the verdict (rounded, stable: nbval checks it) and write it to results/<profile>/verdicts."""
    devices = sorted({r.record["device"] for r in runs}) or [device_name(default_device())]
    record = {
        "chapter": ch.name, "claim": claim, "holds": holds, "numbers": _rounded(numbers, 4),
        "seeds": ch.params.get("seeds"), "profile": ch.params["profile"], "device": devices,
        "wall_seconds": round(time.perf_counter() - ch.started, 1), "code_version": code_version(),
        "note": note,
    }
    write_json(ch.store.root / "verdicts" / f"{ch.name}.json", record)
    verdict_word = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT SHOWN AT THIS SCALE"}[holds]
    print(f"Claim: {claim}")
    seeds = f" with seeds {ch.params['seeds']}" if "seeds" in ch.params else ""
    print(f"Verdict at profile '{ch.params['profile']}'{seeds}: {verdict_word}")
    for k, v in numbers.items():
        print(f"  {k}: {_rounded(v)}")
    if note:
        print(f"Note: {note}")


def provenance(ch: Chapter, runs=()) -> None:
    """Which device and profile produced the runs this page shows, and how long this page took."""
    runs = list(runs)
    by_device: dict[str, list] = {}
    for r in runs:
        by_device.setdefault(r.record["device"], []).append(r)
    wall = time.perf_counter() - ch.started
    print(f"Profile: {ch.params['profile']}; this page executed on {device_name(default_device())} "
          f"in {wall:.1f} s (library {code_version()}).")
    if ch.header_handle is not None:
        from IPython.display import Markdown
        ch.header_handle.update(Markdown(_header_text(ch, f"{wall:.0f} s")))
    for dev, rs in by_device.items():
        train_wall = sum(r.record["wall_seconds"] for r in rs)
        steps = sum(r.record["steps"] for r in rs)
        print(f"  {len(rs)} run(s) trained on {dev}: {steps:,} steps, {train_wall:,.1f} s of training wall time, "
              f"code {', '.join(sorted({r.record['code_version'] for r in rs}))}")


def package_versions() -> None:
    names = ["torch", "numpy", "pandas", "altair", "vl-convert-python", "papermill", "jupyter-book", "nbval"]
    vers = {}
    for n in names:
        try:
            vers[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            vers[n] = "not installed"
    print(f"python {platform.python_version()} ({sys.platform}); grokcircuits {code_version()}")
    print(json.dumps(vers, indent=1))
