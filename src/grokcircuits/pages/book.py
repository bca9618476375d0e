"""What every chapter of the book does around its science: validated parameters, the header,
the verdict (printed for nbval, written as JSON), provenance and package versions."""
from __future__ import annotations

import ast
import datetime as _dt
import json
import math
import platform
import sys
import time
import types
from dataclasses import dataclass, field
from importlib import metadata

from grokcircuits.pages import chapters
from grokcircuits.config import FINETUNE_PROTOCOLS, PROFILES, REGIMES, ConfigError, check_choice, get_profile
from grokcircuits.science.runs import default_device, device_name, load_run
from grokcircuits.science.inference_paths import (QUERY_SETS, check_comparison, check_grokking_criterion, check_grokking_set,
                                                 check_memorised_at)
from grokcircuits.store import Store, code_version, read_json, results_root, write_json
from grokcircuits.science.verdicts import SHARE_AT, Verdict
from grokcircuits.pages import experiments
from grokcircuits.pages.analysis import condition_of, format_measure
from grokcircuits.science.stats import seeds_to_clear, wilson_interval
from grokcircuits.training.no_train import adopt_complete, point_seeds as found_at, run_status, training_disabled

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


def _grokking_criterion(name, v):
    """A share in (0, 1]: the OOD exact match at which a run counts as grokked."""
    return check_grokking_criterion(v)


def _grokking_set(name, v):
    """ood (the paper's grokking) | iid (the variant: in-distribution generalisation)."""
    return check_grokking_set(v)


def _comparison(name, v):
    """grokking (the paper's: one run before and after grokking) | composing (the variant: a composing
    model against a non-composing one)."""
    return check_comparison(v)


def _finetune(name, v):
    """profile (the profile's own fine-tuning) | paper_like (one nearer the paper's)."""
    check_choice(name, v, FINETUNE_PROTOCOLS)
    return v


def _memorised_at(name, v):
    """None (the runs' snapshot_at_training_accuracy) or a share in (0, 1]."""
    return check_memorised_at(None if v in (None, "None") else v)


def _pretrain_regimes(name, v):
    """None (the profile's `transfer_regimes`) or a non-empty list of regimes."""
    return None if v in (None, "None") else _regimes(name, v)


CHECKS = {"memorised_at": _memorised_at, "finetune": _finetune, "comparison": _comparison, "grokking_set": _grokking_set, "query_set": _query_set, "profile": _profile, "seeds": _seeds, "regimes": _regimes, "pretrain_regimes": _pretrain_regimes,
          "workers": _positive_int, "patching_queries": _positive_int, "grokking_criterion": _grokking_criterion}

# The pages' names, parameters and chapter 01's variants are defined once, in `chapters`.
CHAPTER_PARAMETERS = {c.name: c.parameters for c in chapters.CHAPTERS}


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
    default_seeds: bool = False        # `seeds` was None: the profile's, and every other seed found at the point
    seeds_used: list | None = None     # the seeds whose runs the page read (`chapter_runs`)
    seed_report: dict | None = None    # which runs at which seeds were read, found elsewhere, or left out

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
    default = "seeds" in allowed and "seeds" not in params
    if default:   # None: the profile's default seeds (and, by `chapter_runs`, any other at the point)
        params["seeds"] = list(get_profile(params["profile"]).seeds)
    if "pretrain_regimes" in params and params["pretrain_regimes"] is None:   # None: the profile's
        params["pretrain_regimes"] = list(get_profile(params["profile"]).transfer_regimes)
    return Chapter(chapter, {k: params[k] for k in allowed}, default_seeds=default or "seeds" not in allowed)


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


def note(text: str) -> None:
    """A boxed remark under the header (Markdown), e.g. that the page shows a variant of its claim."""
    from IPython.display import Markdown, display
    display(Markdown(f"> {text}"))


def _json_safe(x):
    """Intervals as lists, NaN and infinities as null, numpy scalars as Python numbers."""
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float):
        return round(x, 6) if math.isfinite(x) else None
    return x


def _seeds_of(ch: Chapter) -> list[int]:
    """The seeds whose runs the page read; before that, its `seeds` parameter (a chapter without the
    parameter, 04, the profile's seeds)."""
    if ch.seeds_used is not None:
        return list(ch.seeds_used)
    return list(ch.params.get("seeds") or ch.profile_obj.seeds)


# --- every complete run at the chapter's point ------------------------------------------------------
def sweep_store() -> Store:
    """The sweep's store (`results/sweep`): it trains grids whose points are a profile's."""
    return Store(results_root("sweep"))


def point_seeds(ch: Chapter, plan) -> list[int]:
    """The chapter's seeds (its `seeds` parameter), and, when it was left at None, every other seed
    at which `plan` (seeds -> [RunConfig]) has a complete run in the profile's store or the sweep's;
    the complete runs of all of them that only the sweep holds are adopted into the profile's store
    (no_train.adopt_complete: the same keys)."""
    stores = [ch.store, sweep_store()]
    found = found_at(plan, stores) if ch.default_seeds else []
    seeds = list(ch.params.get("seeds") or ch.profile_obj.seeds)
    seeds += [s for s in found if s not in seeds]
    adopt_complete(plan(seeds), ch.store, stores[1])
    return seeds


def chapter_runs(ch: Chapter, *plans, whole_seeds: bool = False) -> list:
    """Every complete run of `plans` (each seeds -> [RunConfig], trained in order) at the chapter's
    seeds (`point_seeds`). The seeds asked for are trained where missing, except in the no-train mode,
    where only the profile's own seeds must be complete (else no_train.MissingRunsError) and any other
    seed is read where its runs are complete and left out, named on the page (`seeds_note`), where not.
    With `whole_seeds` a seed counts only with every run of it (chapters that pair runs of one seed)."""
    plan = lambda seeds: [c for p in plans for c in p(seeds)]
    seeds = point_seeds(ch, plan)
    asked = list(ch.params.get("seeds") or ch.profile_obj.seeds)
    required = ([s for s in asked if s in ch.profile_obj.seeds] or asked) if training_disabled() else asked
    runs = {}
    for p in plans:
        runs.update(experiments.train_many(p(required), ch.store, ch.params.get("workers")))
    configs = list({c.key(): c for c in plan(seeds)}.values())
    runs.update({c.key(): load_run(c, ch.store) for c in configs if runs.get(c.key()) is None})
    missing = [c for c in configs if runs[c.key()] is None]
    dropped = {c.train.seed for c in missing} if whole_seeds else set()
    used = [runs[c.key()] for c in configs if runs[c.key()] is not None and c.train.seed not in dropped]
    record_seeds(ch, seeds, used, missing, dropped)
    return used


def control_runs(ch: Chapter, plan) -> list:
    """The runs of `plan` (seeds -> [RunConfig]) a page reads as controls beside its point, at the
    seeds it decides from (`chapter_runs` first): trained where missing, except in the no-train mode,
    where those complete in the profile's store or the sweep's are read and the others left out (the
    control then says at which seeds it was measured). They never change the page's seeds."""
    configs = plan(_seeds_of(ch))
    if not training_disabled():
        return [r for r in experiments.train_many(configs, ch.store, ch.params.get("workers")).values() if r is not None]
    adopt_complete(configs, ch.store, sweep_store())
    return [r for r in (load_run(c, ch.store) for c in configs) if r is not None]


def record_seeds(ch: Chapter, seeds, used, missing=(), dropped=()) -> None:
    """What `seeds_note` says: the seeds read (the verdict's seeds), per condition, and what was left out."""
    by_condition: dict[str, list[int]] = {}
    for r in used:
        by_condition.setdefault(condition_of(r), []).append(r.config.train.seed)
    ch.seeds_used = sorted({r.config.train.seed for r in used})
    ch.seed_report = {"asked": list(ch.params.get("seeds") or ch.profile_obj.seeds), "profile": list(ch.profile_obj.seeds),
                      "seeds": list(seeds), "by_condition": {k: sorted(v) for k, v in by_condition.items()},
                      "missing": [f"{condition_of(c)}, seed {c.train.seed} ({run_status(c, [ch.store, sweep_store()])})"
                                  for c in missing], "dropped": sorted(dropped), "default": ch.default_seeds}


def _seed_list(seeds) -> str:
    return f"{', '.join(map(str, seeds))} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})" if seeds else "none"


def seeds_text(ch: Chapter) -> str:
    """The page's account of its seeds: how many and which it read, per condition, where the ones
    beyond the profile's came from, and which runs were left out because they are not complete."""
    rep = ch.seed_report or {"seeds": _seeds_of(ch), "by_condition": {}, "missing": [], "dropped": [],
                             "profile": list(ch.profile_obj.seeds), "asked": _seeds_of(ch), "default": False}
    lines = [f"**Seeds.** This page decides from the runs of {_seed_list(ch.seeds_used or [])}."]
    beyond = [s for s in ch.seeds_used or [] if s not in rep["profile"]]
    if beyond:
        lines.append(f"Beyond the profile's seeds ({', '.join(map(str, rep['profile']))}), seed(s) "
                     f"{', '.join(map(str, beyond))} {'were found' if rep['default'] else 'were asked for'}: complete runs "
                     f"at the identical configuration (the same run keys), read from `{ch.store.root}` or adopted into it "
                     f"from the sweep's store `{sweep_store().root}`.")
    if len({tuple(v) for v in rep["by_condition"].values()}) > 1:
        lines.append("Per condition: " + "; ".join(f"{k}: {_seed_list(v)}" for k, v in rep["by_condition"].items()) + ".")
    if rep["missing"]:
        lines.append("Left out, not complete: " + "; ".join(rep["missing"]) + (
            f" (and with them every run of seed(s) {', '.join(map(str, rep['dropped']))}, which this page pairs)"
            if rep["dropped"] else "") + ".")
    return "  \n".join(lines)


def seeds_note(ch: Chapter) -> None:
    """Show `seeds_text` on the page, boxed."""
    note(seeds_text(ch))


def share_rule_text(share_at: float | None = None) -> str:
    """How every verdict of the book reads its seeds, with the numbers of `share_at`'s Wilson bounds."""
    t = SHARE_AT if share_at is None else share_at
    need = seeds_to_clear(t)
    return (f"**How seeds decide.** Each seed gets a binary outcome (it shows the claim, contradicts it, or is open), "
            f"listed with its values. The claim **holds** when the share of seeds showing it has a 95% Wilson interval "
            f"wholly above {t}, **does not hold** when that interval lies wholly below {t} even with every open seed "
            f"counted as showing it, and is **not shown** otherwise; the verdict always gives k of n seeds. With 3 seeds "
            f"no share's interval clears {t} (3 of 3: lower end {wilson_interval(3, 3)[1]:.2f}); it takes {need} seeds all "
            f"agreeing ({need} of {need}: {wilson_interval(need, need)[1]:.2f}; 5 of 5: {wilson_interval(5, 5)[1]:.2f}).")


def share_rule(share_at: float | None = None) -> None:
    """Show `share_rule_text` on the page, boxed."""
    note(share_rule_text(share_at))


def verdict_record(ch: Chapter, claim: str, v: Verdict, runs=(), variant: str | None = None) -> dict:
    devices = sorted({r.record["device"] for r in runs}) or [device_name(default_device())]
    return {"chapter": ch.name, "variant": variant, "claim": claim, "holds": v.holds, "verdict": v.word, "branch": v.branch,
            "note": v.note, "numbers": _json_safe(v.numbers), "key_numbers": list(v.summary_numbers()),
            "tally": v.tally, "per_seed": v.per_seed, "seed_report": ch.seed_report,
            "seeds": _seeds_of(ch), "profile": ch.params["profile"], "device": devices,
            "wall_seconds": round(time.perf_counter() - ch.started, 1), "code_version": code_version()}


def verdict(ch: Chapter, claim: str, v: Verdict, runs=(), variant: str | None = None) -> None:
    """Print what every machine agrees on (nbval checks it): the claim, the verdict, the rule's
    branch, the profile and seeds, k of n seeds. The numbers, which differ in their last digits between CPUs,
    go to `verdict_numbers` (an unchecked table) and, with the rest, to results/<profile>/verdicts.
    `variant` ('<name>: <what it is>') marks a verdict that answers a variant of the claim: it is
    printed, recorded and names the file (<chapter>.<name>.json), never in place of the claim's own."""
    name = ch.name + (f".{variant.split(':')[0]}" if variant else "")
    write_json(ch.store.root / "verdicts" / f"{name}.json", verdict_record(ch, claim, v, runs, variant))
    print(f"Claim: {claim}")
    if variant:
        print(f"Variant: {variant}")
    print(f"Verdict at profile '{ch.params['profile']}' with seeds {_seeds_of(ch)}: {v.word}")
    print(f"Rule branch: {v.branch}")
    if v.tally:
        print(f"Seeds: {v.tally}")
    if v.note:
        print(f"Why: {v.note}")


def verdict_numbers(v: Verdict):
    """The verdict's numbers, each with its 95% interval across seeds, as a table for the page."""
    import pandas as pd
    return pd.DataFrame({"measured (mean [95% interval])": {k: format_measure(x) for k, x in v.numbers.items()}})


def paper_table(rows, index: str = "", missing: str = "not reached"):
    """'The paper reports / we measured': rows of (what, the paper's report, ours), where ours is a
    number or interval (one 'we measured' column) or a dict of them (one column each)."""
    import pandas as pd

    def measured(ours):
        if isinstance(ours, dict):
            return {f"we measured: {k}": format_measure(x, missing=missing) for k, x in ours.items()}
        return {"we measured": format_measure(ours, missing=missing)}
    return pd.DataFrame([{index: what, "the paper reports": paper, **measured(ours)}
                         for what, paper, ours in rows]).set_index(index)


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


def _executed_profile(notebook) -> str | None:
    """The profile an executed chapter ran with (papermill records its parameters)."""
    try:
        meta = json.loads(notebook.read_text())["metadata"].get("papermill", {})
    except (OSError, ValueError, KeyError):
        return None
    params = meta.get("parameters", {})
    return params.get("profile") or meta.get("default_parameters", {}).get("profile")


def summary_markdown(executed_dir="chapters") -> str:
    """'What this replication found': one row per chapter, read from the verdict file of the
    profile that chapter was executed with (the executed notebooks in `executed_dir`)."""
    from pathlib import Path
    rows = []
    pages = [(name, name, None) for name in CHAPTER_PARAMETERS]
    pages[2:2] = [(v.page, v.verdict, v.title) for v in chapters.VARIANTS]
    for pv in chapters.PAGE_VERDICTS:
        pages.insert(next(i for i, p in enumerate(pages) if p[0] == pv.page) + 1, (pv.page, pv.verdict, pv.title))
    for name, verdict_file, title in pages:
        nb = Path(executed_dir) / f"{name}.ipynb"
        profile = _executed_profile(nb) if nb.exists() else None
        path = results_root(profile) / "verdicts" / f"{verdict_file}.json" if profile else None
        link = f"{{doc}}`{title} </chapters/{name}>`" if title else f"{{doc}}`/chapters/{name}`"
        if path is None or not path.exists():
            rows.append(f"| {link} | {'no verdict recorded' if profile else 'not executed yet'} | | |")
            continue
        v = read_json(path)
        numbers = "; ".join(f"{k}: {format_measure(tuple(v['numbers'][k]) if isinstance(v['numbers'][k], list) else v['numbers'][k])}"
                            for k in v.get("key_numbers", []) if k in v["numbers"])
        seeds = ", ".join(map(str, v["seeds"])) if v.get("seeds") else "the profile's"
        count = f" {len(v['seeds'])} seeds:" if v.get("seeds") else ""
        found = "<br>".join(f"_{x}_" for x in (v.get("tally"), v.get("per_seed")) if x)
        rows.append(f"| {link} | **{v['verdict']}** (`{v['branch']}`) | {'<br>'.join(x for x in (found, numbers) if x)} | "
                    f"profile `{v['profile']}`,{count} {seeds}; {', '.join(v['device'])} |")
    head = ("| claim (its chapter) | verdict (rule branch) | k of n seeds; each seed's outcome; key numbers "
            "| provenance (profile, seeds, device) |\n| --- | --- | --- | --- |")
    return head + "\n" + "\n".join(rows) + "\n"


def write_summary(executed_dir="chapters", out="_summary.md") -> None:
    """Write the summary table that index.md includes (the Makefile runs this before building)."""
    from pathlib import Path
    Path(out).write_text(summary_markdown(executed_dir))
