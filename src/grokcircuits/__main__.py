"""Plain entry points (no notebook stack needed), e.g. on a bare GPU machine:

    python -m grokcircuits describe --profile paper
    python -m grokcircuits train --profile gpu --regime natural,both_full --seed 0,1,2 --workers 3
    python -m grokcircuits chapter 02 --profile gpu --seeds 0,1,2 --workers 5
"""
from __future__ import annotations

import argparse
import json
import sys

from .config import ARCHITECTURES, REGIMES, ConfigError, check_choice, get_profile
from .store import Store, results_root

CHAPTERS = ("00", "01", "02", "03")


def _list(text: str, cast=str) -> list:
    return [cast(x) for x in text.split(",") if x != ""]


def describe(profile_name: str) -> dict:
    from .engine import dataset, transfer_dataset
    from .models import build_model, count_parameters
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grokcircuits")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="dataset sizes and parameter count of a profile, as JSON")
    d.add_argument("--profile", default="tiny")
    t = sub.add_parser("train", help="train (or load) runs of a profile")
    t.add_argument("--profile", default="tiny")
    t.add_argument("--arch", default="trm", help=f"one of {ARCHITECTURES}")
    t.add_argument("--regime", default="natural", help=f"comma-separated, from {list(REGIMES)}")
    t.add_argument("--seed", default="0", help="comma-separated seeds")
    t.add_argument("--steps", type=int, default=None, help="override the profile's steps")
    t.add_argument("--workers", type=int, default=1, help="runs sharing the device at once")
    c = sub.add_parser("chapter", help="train every run a chapter needs")
    c.add_argument("chapter", choices=CHAPTERS)
    c.add_argument("--profile", default="tiny")
    c.add_argument("--seeds", default=None, help="comma-separated; default: the profile's seeds")
    c.add_argument("--workers", type=int, default=1)
    c.add_argument("--query-set", default="train_inferred", help="chapter 01: the ID queries that are patched")
    c.add_argument("--patching-queries", type=int, default=200, help="chapter 01: queries per patched checkpoint")
    args = ap.parse_args(argv)
    try:
        if args.command == "describe":
            print(json.dumps(describe(args.profile), indent=1))
            return 0
        from . import experiments as ex
        profile = get_profile(args.profile)
        if args.command == "chapter" and args.chapter == "01":
            from .inference_paths import QUERY_SETS
            check_choice("query-set", args.query_set, QUERY_SETS)
        store = Store(results_root(profile.name))
        if args.command == "train":
            overrides = {"steps": args.steps} if args.steps else {}
            configs = [profile.run(args.arch, r, s, **overrides)
                       for r in _list(args.regime) for s in _list(args.seed, int)]
            runs = ex.train_many(configs, store, args.workers)
        else:
            seeds = _list(args.seeds, int) if args.seeds else list(profile.seeds)
            if args.chapter == "03":
                pre, fine = ex.transfer_runs(profile, seeds)
                ex.train_many(pre, store, args.workers)
                runs = ex.train_many(fine, store, args.workers)
            else:
                plan = {"00": ex.task_runs, "01": ex.path_runs, "02": ex.regime_runs}[args.chapter]
                runs = ex.train_many(plan(profile, seeds), store, args.workers)
            if args.chapter == "01":   # the patching results the chapter reads, stored beside the runs
                from . import inference_paths as ip
                both = {r.config.train.seed: r for r in runs.values() if r.config.data.regime == "both_full"}
                for r in runs.values():
                    if r.config.data.regime == "natural":
                        for _, run, step in ip.checkpoints_to_patch(r, both[r.config.train.seed]):
                            ip.patching(run, step, args.query_set, args.patching_queries)
        for key, run in runs.items():
            r = run.record
            print(json.dumps({"key": key, "steps": r["steps"], "wall_seconds": r["wall_seconds"],
                              "device": r["device"], "final": {n: v["exact_match"] for n, v in run.curves[-1].items()
                                                                if isinstance(v, dict)}}))
        return 0
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
