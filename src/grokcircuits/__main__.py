"""Plain entry points (no notebook stack needed), e.g. on a bare GPU machine:

    python -m grokcircuits describe --profile paper
    python -m grokcircuits train --profile gpu --regime natural,both_full --seed 0,1,2
    torchrun --nproc_per_node=4 -m grokcircuits train --profile paper --regime natural --seed 0 --distributed
    python -m grokcircuits chapter 02 --profile gpu --seeds 0,1,2
    python -m grokcircuits chapter 02 --profile paper --launcher slurm --partition gpu --time-min 1440
    python -m grokcircuits sweep --grid first --budget-seconds 375     # where the recursive model groks
    python -m grokcircuits campaign --profile cpu --budget-seconds 36000  # every chapter's runs, resumable
    python -m grokcircuits bench                                         # the GPU kit (make gpu-check)
    python -m grokcircuits stability --grid stability --budget-seconds 7200   # does natural data keep composition?
    python -m grokcircuits composed --grid cpu_composed       # which OOD facts a variant composes (chapter 02's split)

Each command imports the layers it uses inside its branch, unlike the rest of the package: the
training and sweep commands must run on a machine with torch and numpy only, without the notebook
stack (pandas, altair) that the pages import (tests/test_layers.py checks it).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from grokcircuits.config import ARCHITECTURES, REGIMES, ConfigError, check_choice, get_profile
from grokcircuits.pages import chapters
from grokcircuits.store import Store, results_root



def _list(text: str, cast=str) -> list:
    return [cast(x) for x in text.split(",") if x != ""]


def _add_launcher_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("jobs (submitit)", "train the runs as cluster or local jobs instead of in this process")
    g.add_argument("--launcher", default="inprocess", help="inprocess (default), local (submitit's local "
                   "processes) or slurm (one job per ensemble group of runs, requeued until done)")
    g.add_argument("--partition", default=None, help="slurm: the partition (required)")
    g.add_argument("--time-min", type=float, default=1440.0, help="a job's time limit in minutes; longer runs "
                   "are requeued and resume from their checkpoint")
    g.add_argument("--gpus-per-job", type=int, default=1, help="GPUs of a job; its runs are split over them")
    g.add_argument("--runs-per-job", type=int, default=None, help="at most this many runs in one job "
                   "(default: a whole ensemble group)")
    g.add_argument("--max-requeues", type=int, default=20, help="time-outs after which a job is requeued")
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a further sbatch parameter in submitit's names, e.g. account=abc or mem=64G (repeatable)")
    g.add_argument("--no-wait", action="store_true", help="submit, print the job ids and how to collect, return")


def _trainer(args, store: Store, argv: list[str]):
    """configs -> {key: Run}: in this process (train_many) or as jobs; None when jobs were submitted
    and not waited for. The launcher options are checked here, before any training or submission."""
    from grokcircuits.pages import experiments as ex
    from grokcircuits.ops.launch import LaunchOptions, collect_hint, launch, parse_slurm_options
    options = LaunchOptions(launcher=args.launcher, partition=args.partition, time_min=args.time_min,
                            gpus_per_job=args.gpus_per_job, runs_per_job=args.runs_per_job,
                            max_requeues=args.max_requeues, wait=not args.no_wait,
                            slurm_options=parse_slurm_options(args.slurm_option)).validate()

    budget = getattr(args, "budget_seconds", None)
    if budget is not None and (budget <= 0 or options.launcher != "inprocess"):
        raise ConfigError(f"budget-seconds={budget}: must be > 0, and only with launcher=inprocess "
                          f"(jobs have the scheduler's time limit)")
    deadline = None if budget is None else time.time() + budget

    def train_all(configs):
        if options.launcher == "inprocess":
            runs = ex.train_many(configs, store, args.workers, deadline=deadline)
            unfinished = [k for k, r in runs.items() if r is None]
            if unfinished:
                print(f"{len(unfinished)} of {len(runs)} runs unfinished at the budget; their resumable "
                      f"checkpoints are stored and the same command resumes them: {', '.join(unfinished)}")
                return None
            return runs
        launched = launch(configs, store, options)
        if launched.runs is None:
            again = shlex.join(["python", "-m", "grokcircuits"] + [a for a in argv if a != "--no-wait"])
            print(collect_hint(launched, again))
        return launched.runs
    return train_all


def _train_distributed(args, configs, store: Store) -> dict:
    """`train --distributed`, in each of torchrun's processes; the runs on rank 0, {} on the others."""
    if args.launcher != "inprocess":
        raise ConfigError(f"launcher={args.launcher}: --distributed trains in torchrun's processes; "
                          "allowed: inprocess")
    from grokcircuits.training.no_train import refuse_training_if_disabled
    from grokcircuits.training.distributed import train_from_cli
    refuse_training_if_disabled(configs, store)
    return train_from_cli(configs, store)


def _campaign(args) -> int:
    import torch
    from grokcircuits.ops.campaign import run_campaign
    profile = get_profile(args.profile)
    if args.weights_to_commit:
        from grokcircuits.ops.campaign import all_runs, planned_waves, weights_to_commit
        print("\n".join(map(str, weights_to_commit(all_runs(planned_waves(profile)), Store(results_root(profile.name))))))
        return 0
    if args.budget_seconds is None or args.budget_seconds <= 0:
        raise ConfigError(f"budget-seconds={args.budget_seconds} must be given and > 0")
    if args.threads < 1:
        raise ConfigError(f"threads={args.threads} must be >= 1")
    torch.set_num_threads(args.threads)
    rows = run_campaign(profile, args.budget_seconds, log=lambda m: print(m, flush=True),
                        seeds=_list(args.seeds, int) if args.seeds else None,
                        waves=_list(args.waves) if args.waves else None, workers=args.workers)
    return 0 if all(r["status"] == "complete" for r in rows) else 3


def _stability(args) -> int:
    from grokcircuits.ops.grids import get_screen
    from grokcircuits.ops.stability import format_markdown, run_screen, stability_table, write_stability
    from grokcircuits.ops.sweep import sweep_root, table_dir
    screen = get_screen(args.grid)
    if args.weights_to_commit:
        from grokcircuits.ops.campaign import weights_to_commit
        print("\n".join(map(str, weights_to_commit(screen.configs(), Store(sweep_root())))))
        return 0
    if args.plan:
        from grokcircuits.ops.stability import cost_plan, format_plan
        print(format_plan(cost_plan(screen, Store(sweep_root()))))
        return 0
    if args.table:
        table = stability_table(screen, Store(sweep_root()))
        write_stability(table, table_dir(screen.name))
    else:
        names = tuple(_list(args.points))
        part = screen.only(names) if names else screen
        table = run_screen(part, args.budget_seconds, log=lambda m: print(m, flush=True), table_screen=screen)
    print(format_markdown(table))
    return 0


def _composed(args) -> int:
    from grokcircuits.ops.composed_grid import composed_table, format_markdown, write_composed
    from grokcircuits.ops.grids import get_grid
    from grokcircuits.ops.sweep import table_dir
    table = composed_table(get_grid(args.grid))
    write_composed(table, table_dir(args.grid))
    print(format_markdown(table))
    return 0


def main(argv=None) -> int:
    from grokcircuits.science.inference_paths import DEFAULT_GROKKING_CRITERION
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:   # the kit parses its own options (bench --help)
        from grokcircuits.ops.bench import main as bench_main
        return bench_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m grokcircuits")
    sub = ap.add_subparsers(dest="command", required=True)
    q = sub.add_parser("chapters", help="the book's chapter names, space-separated (the Makefile's and CI's list)")
    q.add_argument("--variants", action="store_true", help="instead: the variant pages' names, space-separated")
    q.add_argument("--variant", metavar="PAGE", help="instead: that variant page's papermill parameters (-p NAME VALUE ...)")
    q.add_argument("--source", action="store_true", help="with --variant: the chapter the variant page executes")
    d = sub.add_parser("describe", help="dataset sizes and parameter count of a profile, as JSON")
    d.add_argument("--profile", default="tiny")
    t = sub.add_parser("train", help="train (or load) runs of a profile")
    t.add_argument("--profile", default="tiny")
    t.add_argument("--arch", default="trm", help=f"one of {ARCHITECTURES}")
    t.add_argument("--regime", default="natural", help=f"comma-separated, from {list(REGIMES)}")
    t.add_argument("--seed", default="0", help="comma-separated seeds")
    t.add_argument("--steps", type=int, default=None, help="override the profile's steps")
    t.add_argument("--workers", type=int, default=None, help="most runs trained together as one ensemble (default 16)")
    t.add_argument("--distributed", action="store_true", help="split each run's batch over the processes of "
                   "torchrun (torchrun --nproc_per_node=G -m grokcircuits train ... --distributed)")
    t.add_argument("--budget-seconds", type=float, default=None, help="wall-clock budget (in-process "
                   "training): runs unfinished at it keep resumable checkpoints and the same command resumes them")
    _add_launcher_options(t)
    c = sub.add_parser("chapter", help="train every run a chapter needs")
    c.add_argument("chapter", choices=list(chapters.by_number()))
    c.add_argument("--profile", default="tiny")
    c.add_argument("--seeds", default=None, help="comma-separated; default: the profile's seeds")
    c.add_argument("--workers", type=int, default=None, help="most runs trained together as one ensemble (default 16)")
    c.add_argument("--query-set", default="train_inferred", help="chapter 01: the ID queries that are patched")
    c.add_argument("--patching-queries", type=int, default=200, help="chapter 01: queries per patched checkpoint")
    c.add_argument("--grokking-criterion", type=float, default=DEFAULT_GROKKING_CRITERION, help="chapter 01: OOD exact match at which a run counts as grokked")
    c.add_argument("--pretrain-regimes", default=None, help="chapter 03: the pretrained models that are fine-tuned "
                   f"(comma-separated, from {list(REGIMES)}; default: the profile's transfer_regimes)")
    c.add_argument("--finetune", default="profile", help="chapter 03: the fine-tuning, profile (the profile's own) "
                   "or paper_like (weight decay 1.0, EMA, a small lr, longer)")
    c.add_argument("--budget-seconds", type=float, default=None, help="wall-clock budget (in-process "
                   "training): runs unfinished at it keep resumable checkpoints and the same command resumes them")
    _add_launcher_options(c)
    w = sub.add_parser("sweep", help="train a named grid as ensembles within a budget; write and print its table")
    w.add_argument("--grid", default="toy", help="a grid named in grokcircuits.grids (first, toy)")
    w.add_argument("--budget-seconds", type=float, default=360.0, help="wall-clock budget; unfinished runs are "
                   "stored as incomplete and the table is written all the same")
    w.add_argument("--plan", action="store_true", help="print the ensembles and their estimated seconds on one "
                   "H100, train nothing")
    w.add_argument("--table", action="store_true", help="write and print the table of what is stored, train nothing")
    w.add_argument("--arch", default=None, help=f"train only this architecture's runs ({', '.join(ARCHITECTURES)}): "
                   "one process a core, each on its part of the grid")
    w.add_argument("--regimes", default="", help="train only the recursive model's runs on these regimes (comma-separated)")
    w.add_argument("--keys", default="", help="train only these runs (comma-separated keys, as in the table): one "
                   "run a process, one process a core")
    w.add_argument("--weights-to-commit", action="store_true", help="print the checkpoint files of the grid's runs "
                   "that git must hold (git add -f them) for a fresh clone to resume them, or for a campaign to "
                   "adopt them with their weights; train nothing")
    st = sub.add_parser("stability", help="the stability screen: fit both hops full, continue on the natural data; "
                        "writes results/sweep/<grid>/stability.json and stability.md")
    st.add_argument("--grid", default="toy_stability", help="a screen named in grokcircuits.grids.SCREENS")
    st.add_argument("--budget-seconds", type=float, default=3600.0, help="wall-clock budget; unfinished runs keep "
                    "resumable checkpoints and the same command resumes them")
    st.add_argument("--points", default="", help="train only these points (comma-separated names), in the screen's order")
    st.add_argument("--table", action="store_true", help="write and print the table of what is stored, train nothing")
    st.add_argument("--plan", action="store_true", help="print each point's CPU cost left (seconds a step measured, "
                    "or scaled from the first point's by width squared and blocks), train nothing")
    st.add_argument("--weights-to-commit", action="store_true", help="print the checkpoint files of the screen's runs "
                    "that git must hold (git add -f them) for a fresh clone to resume the screen; train nothing")
    cs = sub.add_parser("composed", help="a grid's both-hops-half runs split by whether each OOD fact was composed "
                        "in training (chapter 02's split); writes results/sweep/<grid>/composed.json and composed.md")
    cs.add_argument("--grid", default="cpu_composed", help="a grid named in grokcircuits.grids")
    p = sub.add_parser("probe", help="where a sweep run's OOD compositions fail: exact match, the lens and the "
                       "linear probe's bridge (ID and OOD) on its stored weights at one step; prints and stores "
                       "results/sweep/<grid>/probes/<key>_<step>.json")
    p.add_argument("--grid", required=True, help="a grid named in grokcircuits.grids")
    p.add_argument("--key", required=True, help="a recursive run of the grid (its key, as in the table)")
    p.add_argument("--step", type=int, default=None, help="a snapshot step (default: final, else the latest)")
    g = sub.add_parser("campaign", help="train every run the chapters plan at a profile within a budget; resumable")
    g.add_argument("--profile", default="cpu")
    g.add_argument("--budget-seconds", type=float, default=None, help="wall-clock budget (required to train); "
                   "unfinished runs are checkpointed and the same command resumes them")
    g.add_argument("--weights-to-commit", action="store_true", help="print the checkpoint files git must hold "
                   "(git add -f them) for a fresh clone to resume the campaign and render the book; train nothing")
    g.add_argument("--threads", type=int, default=1, help="torch threads (default 1, so that work can go on beside it)")
    g.add_argument("--seeds", default=None, help="comma-separated; default: the profile's seeds")
    g.add_argument("--waves", default=None, help="comma-separated, from first, transfer, standard, regimes, transfer_regimes: train "
                   "only those waves (one process a core); default: all, in that order")
    g.add_argument("--workers", type=int, default=None, help="most runs trained together as one ensemble "
                   "(default 16); fewer finish sooner, so that a session ends with complete runs")
    rc = sub.add_parser("recover-snapshots", help="train a finished run's first steps again in a scratch store and, "
                        "where its evaluations agree with the original's, copy the snapshot files it recorded "
                        "but lacks (grokcircuits.ops.replay)")
    rc.add_argument("--profile", default="cpu")
    rc.add_argument("--arch", default="trm", help=f"one of {ARCHITECTURES}")
    rc.add_argument("--regime", default="natural", help=f"one of {list(REGIMES)}")
    rc.add_argument("--seeds", default="0", help="comma-separated seeds")
    rc.add_argument("--until", type=int, required=True, help="the last step replayed (the latest snapshot wanted)")
    rc.add_argument("--store", default="profile", help="profile (results/<profile>) or sweep (results/sweep)")
    sub.add_parser("bench", add_help=False, help="the GPU kit: engine throughput, ensembles, resume, floors "
                   "(results/bench); `bench --help` lists its options")
    args = ap.parse_args(argv)
    try:
        if args.command == "chapters":
            if args.variant:
                v = chapters.variant(args.variant)
                print(v.chapter if args.source else v.papermill_arguments())
            else:
                print(" ".join(v.page for v in chapters.VARIANTS) if args.variants else " ".join(chapters.names()))
            return 0
        if args.command == "recover-snapshots":
            from grokcircuits.ops.replay import recover_snapshots
            check_choice("store", args.store, ("profile", "sweep"))
            profile = get_profile(args.profile)
            store = Store(results_root(args.profile if args.store == "profile" else "sweep"))
            for seed in (int(s) for s in args.seeds.split(",")):
                recover_snapshots(profile.run(args.arch, args.regime, seed), store, args.until)
            return 0
        if args.command == "describe":
            from grokcircuits.pages.experiments import describe
            print(json.dumps(describe(args.profile), indent=1))
            return 0
        if args.command == "sweep":
            from grokcircuits.ops.grids import get_grid
            from grokcircuits.ops.sweep import run_sweep
            from grokcircuits.ops.sweep import format_table, only, write_current_table
            grid = get_grid(args.grid)
            if args.budget_seconds <= 0:
                raise ConfigError(f"budget-seconds={args.budget_seconds} must be > 0")
            if args.plan:
                from grokcircuits.ops.sweep import plan
                print(json.dumps(plan(grid), indent=1))
                return 0
            if args.table:
                print(format_table(write_current_table(grid)))
                return 0
            if args.weights_to_commit:
                from grokcircuits.ops.campaign import weights_to_commit
                print("\n".join(map(str, weights_to_commit(grid.configs(), Store(results_root("sweep"))))))
                return 0
            if args.arch is not None:
                check_choice("arch", args.arch, ARCHITECTURES)
            regimes = tuple(_list(args.regimes))
            for r in regimes:
                check_choice("regimes", r, list(REGIMES))
            keys = tuple(_list(args.keys))
            part = only(grid, args.arch, regimes, keys) if args.arch or regimes or keys else grid
            run_sweep(part, args.budget_seconds, log=lambda m: print(m, flush=True), table_grid=grid)
            return 0
        if args.command == "campaign":
            return _campaign(args)
        if args.command == "stability":
            return _stability(args)
        if args.command == "composed":
            return _composed(args)
        if args.command == "probe":
            from grokcircuits.ops.grids import get_grid
            from grokcircuits.ops.sweep_probe import probe_and_store
            print(json.dumps(probe_and_store(get_grid(args.grid), args.key, args.step), indent=1))
            return 0
        from grokcircuits.pages import experiments as ex
        profile = get_profile(args.profile)
        if args.command == "chapter" and args.chapter == "01":
            from grokcircuits.science.inference_paths import QUERY_SETS, check_grokking_criterion
            check_choice("query-set", args.query_set, QUERY_SETS)
            check_grokking_criterion(args.grokking_criterion)
        store = Store(results_root(profile.name))
        train_all = _trainer(args, store, list(sys.argv[1:] if argv is None else argv))
        if args.command == "train":
            overrides = {"steps": args.steps} if args.steps else {}
            configs = [profile.run(args.arch, r, s, **overrides)
                       for r in _list(args.regime) for s in _list(args.seed, int)]
            runs = _train_distributed(args, configs, store) if args.distributed else train_all(configs)
            if runs is None:
                return 0
        else:
            seeds = _list(args.seeds, int) if args.seeds else list(profile.seeds)
            if args.chapter == "03":
                pre, fine = ex.transfer_runs(profile, seeds, _list(args.pretrain_regimes) if args.pretrain_regimes
                                             else list(profile.transfer_regimes), args.finetune)
                if train_all(pre) is None:
                    print("the fine-tuning runs start from these runs' weights: once they are complete, the "
                          "same command trains the fine-tuning")
                    return 0
                runs = train_all(fine)
            else:
                runs = train_all(chapters.by_number()[args.chapter].plan(profile, seeds))
            if runs is None:
                return 0
            if args.chapter == "01":   # the patching results the chapter reads, stored beside the runs
                from grokcircuits.science import inference_paths as ip
                both = {r.config.train.seed: r for r in runs.values() if r.config.data.regime == "both_full"}
                for r in runs.values():
                    if r.config.data.regime == "natural":
                        for _, run, step in ip.checkpoints_to_patch(r, both[r.config.train.seed], args.grokking_criterion):
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
