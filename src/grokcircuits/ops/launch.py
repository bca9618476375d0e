"""Training many runs as cluster jobs with submitit: one job per ensemble group of runs.

    python -m grokcircuits chapter 02 --profile paper --launcher slurm --partition gpu --time-min 1440
    python -m grokcircuits chapter 00 --profile tiny --launcher local      # the same jobs, as local processes

submitit (the Slurm launcher of the PyTorch/FAIR research code) pickles a callable, submits it with
sbatch and, when Slurm signals a time-out or a preemption, calls the callable's `checkpoint()` and
requeues what it returns. Our callable, `TrainJob`, holds nothing but the run configurations and
the path of the results store: the engine checkpoints atomically and resumes a run from its last
checkpoint by itself, so the resubmission is the same job again. A job also stops its runs (with a
checkpoint) shortly before its time limit and asks for its requeue at once, so a time-out loses no
steps; a preemption loses the steps since the last checkpoint.

Results go to the shared store (a path every node sees, passed to the job explicitly); submitit's
pickles and logs go to `<store>/jobs/`, which ignores itself in git. `jobs/submitted.json` remembers
which job trains which run, so running the same command again waits for jobs still queued or
running instead of submitting them twice, and loads the runs that are done.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grokcircuits.config import ConfigError, RunConfig, check_choice, check_positive
from grokcircuits.training.no_train import refuse_training_if_disabled
from grokcircuits.science.runs import Run, default_device, load_run
from grokcircuits.store import Store, read_json, write_json
from grokcircuits.training import group_by_shape, train_group

LAUNCHERS = ("inprocess", "local", "slurm")   # inprocess: train_many in this process (no jobs)
SUBMITTED = "submitted.json"


@dataclass(frozen=True)
class LaunchOptions:
    """How the runs are launched. `runs_per_job` None: a whole ensemble group per job (the engine's
    groups: runs of one shape, at most 16); with several GPUs per job, the job's runs are split over
    them, one task per GPU."""
    launcher: str = "inprocess"
    partition: str | None = None
    time_min: float = 1440.0          # the job's time limit; a longer run is requeued and resumes
    gpus_per_job: int = 1
    runs_per_job: int | None = None
    max_requeues: int = 20            # time-outs a job may be requeued after (preemptions do not count)
    signal_delay_s: int = 120         # Slurm signals the job this long before its time limit
    cpus_per_gpu: int = 8
    wait: bool = True
    slurm_options: dict = field(default_factory=dict)   # further sbatch parameters, submitit's names

    def validate(self) -> "LaunchOptions":
        check_choice("launcher", self.launcher, LAUNCHERS)
        if not self.wait and self.launcher == "inprocess":
            raise ConfigError("no-wait needs jobs to leave running: launcher must be one of 'local', 'slurm'")
        if self.launcher == "slurm" and not self.partition:
            raise ConfigError("partition is required with launcher='slurm'; allowed values: a partition "
                              "name of the cluster (`sinfo -s` lists them)")
        check_positive("time-min", self.time_min)
        if self.launcher == "slurm" and self.time_min < 1:
            raise ConfigError(f"time-min={self.time_min} must be >= 1 with launcher='slurm' (whole minutes)")
        check_positive("gpus-per-job", self.gpus_per_job)
        if self.runs_per_job is not None:
            check_positive("runs-per-job", self.runs_per_job)
        check_positive("max-requeues", self.max_requeues, allow_zero=True)
        check_positive("cpus-per-gpu", self.cpus_per_gpu)
        if self.launcher != "inprocess":
            _submitit()
        if self.launcher == "slurm":
            from submitit import SlurmExecutor
            if SlurmExecutor.affinity() <= 0:
                raise ConfigError("launcher='slurm' needs the Slurm commands (sbatch, srun) on this machine; "
                                  "allowed values here: 'inprocess', 'local'")
        if self.slurm_options:
            from submitit import SlurmExecutor
            for name in self.slurm_options:
                check_choice("slurm-option", name, sorted(SlurmExecutor._valid_parameters()))
        return self


def _submitit():
    try:
        import submitit
    except ImportError as e:
        raise ConfigError("the launchers 'local' and 'slurm' need submitit (`pip install submitit`, listed in "
                          "environment.yml); allowed values without it: launcher='inprocess'") from e
    return submitit


def parse_slurm_options(pairs: list[str]) -> dict:
    """['account=abc', 'mem=64G'] -> {'account': 'abc', 'mem': '64G'}; whole numbers become ints."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"slurm-option={pair!r} must be KEY=VALUE, e.g. account=myproject")
        out[name] = int(value) if value.isdigit() else value
    return out


# --- the engine: one ensemble per group of runs sharing shapes --------------------------------
def job_batches(configs: list[RunConfig], runs_per_job: int | None) -> list[list[RunConfig]]:
    """The runs of each job: the engine's ensembles (runs of one shape, parents before their
    fine-tuning runs), at most `runs_per_job` runs each, split evenly."""
    if not configs:
        return []
    return group_by_shape(configs, max_members=runs_per_job) if runs_per_job else group_by_shape(configs)


def _train_share(configs: list[RunConfig], store: Store, device, deadline: float | None,
                 stop_after: int | None, log) -> bool:
    """Train these runs as ensembles; True when all are complete, False when the engine stopped them
    with a checkpoint (at `deadline` or after `stop_after` steps)."""
    out = train_group(configs, store, device=device, log=log, deadline=deadline, stop_after=stop_after)
    return all(run is not None for run in out.values())


# --- the job ------------------------------------------------------------------------------------
def _job_environment():
    """(global rank, number of tasks, local rank, submitit's job environment or None outside a job)."""
    try:
        import submitit
        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):
        return 0, 1, 0, None
    return env.global_rank, env.num_tasks, env.local_rank, env


try:   # the job needs submitit; the in-process path works without it
    from submitit.helpers import Checkpointable
except ImportError:
    Checkpointable = object


class TrainJob(Checkpointable):
    """One cluster job: train these runs into the store at `store_root`. In a job of T tasks (one per
    GPU), task r trains runs r, r + T, r + 2T, ... `stop_after` interrupts the runs once at that step,
    as a preemption would (tests); the resubmission runs to the end."""

    def __init__(self, configs: list[dict], store_root: str, time_min: float, signal_delay_s: int = 120,
                 stop_after: int | None = None, poll_s: float = 30.0):
        self.configs = configs
        self.store_root = str(Path(store_root).resolve())
        self.time_min = time_min
        self.signal_delay_s = signal_delay_s
        self.stop_after = stop_after
        self.poll_s = poll_s

    def deadline(self, started: float) -> float:
        """When the engine stops with a checkpoint: before the scheduler's signal, with a margin for
        the evaluation and checkpoint in flight."""
        limit = 60 * self.time_min
        return started + max(0.5 * limit, limit - self.signal_delay_s - min(300.0, 0.05 * limit))

    def requeue_after(self, started: float) -> float:
        """When task 0, its own runs done, requeues a job whose other tasks' runs are not: halfway from
        the deadline to the scheduler's signal, once the other tasks have written their checkpoints."""
        signal_at = started + 60 * self.time_min - self.signal_delay_s
        return self.deadline(started) + max(0.0, signal_at - self.deadline(started)) / 2

    def __call__(self) -> dict[str, bool]:
        started = time.time()
        rank, tasks, local_rank, env = _job_environment()
        store = Store(self.store_root)
        configs = [RunConfig.from_dict(d) for d in self.configs]
        share = configs[rank::tasks]
        device = default_device()
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)     # one GPU per task
        log = lambda msg: print(msg, flush=True)  # noqa: E731 (the job's log file)
        log(f"task {rank}/{tasks}: {len(share)} of {len(configs)} run(s) on {device}, store {self.store_root}")
        finished = _train_share(share, store, device, self.deadline(started), self.stop_after, log) if share else True
        if rank != 0:       # task 0 requeues the whole job if any run of it is unfinished
            return self.status(share, store)
        if not finished:
            return self._requeue(env, configs, store)
        while not self._all_complete(configs, store):      # the other tasks' runs
            if time.time() >= self.requeue_after(started):
                return self._requeue(env, configs, store)
            time.sleep(self.poll_s)
        return self.status(configs, store)

    def _all_complete(self, configs, store) -> bool:
        return all(store.has_run(c.key()) for c in configs)

    def status(self, configs, store) -> dict[str, bool]:
        return {c.key(): store.has_run(c.key()) for c in configs}

    def _requeue(self, env, configs, store) -> dict[str, bool]:
        """Ask submitit for this job's requeue now, as its time-out signal would (submitit calls
        `checkpoint()` and requeues the job); outside a job, return the incomplete status."""
        if env is None:
            return self.status(configs, store)
        import signal
        print("runs stopped with a checkpoint before the time limit: requeueing", flush=True)
        os.kill(os.getpid(), env._usr_sig())       # submitit's handler requeues and exits the process
        for _ in range(600):
            time.sleep(0.1)
        raise RuntimeError(f"the requeue signal {signal.Signals(env._usr_sig()).name} was not handled")

    def checkpoint(self, *args, **kwargs):
        """The resubmission: the same runs, into the same store; the engine resumes each one from its
        last checkpoint. The one-off interruption `stop_after` is not carried over."""
        from submitit.helpers import DelayedSubmission
        again = TrainJob(self.configs, self.store_root, self.time_min, self.signal_delay_s, None, self.poll_s)
        return DelayedSubmission(again, *args, **kwargs)


# --- executors ------------------------------------------------------------------------------------
def jobs_folder(store: Store) -> Path:
    """submitit's pickles and logs, beside the results; the folder ignores itself in git."""
    folder = store.root.resolve() / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return folder


def make_executor(options: LaunchOptions, folder: Path):
    """submitit's executor for the launcher, with the job's time limit, GPUs (one task each) and
    requeue budget."""
    submitit = _submitit()
    gpus = options.gpus_per_job
    if options.launcher == "local":
        ex = submitit.LocalExecutor(folder, max_num_timeout=options.max_requeues)
        ex.update_parameters(timeout_min=options.time_min, tasks_per_node=gpus,
                             signal_delay_s=options.signal_delay_s,
                             gpus_per_node=gpus if _cuda_count() else 0)
        return ex
    ex = submitit.SlurmExecutor(folder, max_num_timeout=options.max_requeues)
    ex.update_parameters(job_name="grokcircuits", partition=options.partition, time=int(options.time_min),
                         nodes=1, ntasks_per_node=gpus, gpus_per_node=gpus, cpus_per_task=options.cpus_per_gpu,
                         signal_delay_s=options.signal_delay_s, **options.slurm_options)
    return ex


def local_gpus(job_index: int, gpus_per_job: int, available: int) -> tuple[int, ...]:
    """The GPUs of the job_index-th local job: consecutive blocks round the machine's GPUs, so local
    jobs (which all run at once) spread over the machine instead of all sharing the first GPUs."""
    if available == 0:
        return ()
    if gpus_per_job > available:
        raise ConfigError(f"gpus-per-job={gpus_per_job} exceeds the {available} GPU(s) of this machine; "
                          f"allowed values: 1 to {available}")
    start = (job_index * gpus_per_job) % available
    return tuple((start + i) % available for i in range(gpus_per_job))


def _cuda_count() -> int:
    return torch.cuda.device_count() if default_device().type == "cuda" else 0


# --- the ledger of submitted jobs ---------------------------------------------------------------
def _ledger(folder: Path) -> dict:
    path = folder / SUBMITTED
    return read_json(path) if path.exists() else {}


def _active(submitit, folder: Path, entry: dict, live: dict) -> bool:
    """Whether the job is still queued or running (a job of this process: its handle says so)."""
    if entry["job_id"] in live:
        return not live[entry["job_id"]].done()
    if entry["launcher"] == "slurm":
        return not submitit.SlurmJob(folder, entry["job_id"]).done(force_check=True)
    try:                                    # a local job of an earlier command: its controller's process
        pid = int(entry["job_id"])
        try:
            os.waitpid(pid, os.WNOHANG)         # reaps it if it is a finished child of this process
        except ChildProcessError:
            pass
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return not (folder / f"{entry['job_id']}_0_result.pkl").exists()


@dataclass
class Launched:
    """What `launch` did: the jobs it submitted and those it found still running, by id."""
    submitted: list[str]
    running: list[str]
    folder: Path
    runs: dict[str, Run] | None     # None when it did not wait


def launch(configs: list[RunConfig], store: Store, options: LaunchOptions, log=print) -> Launched:
    """Submit one job per batch of runs that are not in the store yet (runs already being trained by
    a queued or running job are not submitted again), then wait for every such job unless
    `options.wait` is False. Returns the runs, all complete, when it waited."""
    options.validate()
    refuse_training_if_disabled(configs, store)   # publishing renders committed runs, never submits
    submitit = _submitit()
    unique = list(dict((c.key(), c) for c in configs).values())
    todo = [c for c in unique if load_run(c, store) is None]
    folder = jobs_folder(store)
    ledger = _ledger(folder)
    live: dict = {}
    running = {c.key(): ledger[c.key()] for c in todo
               if c.key() in ledger and _active(submitit, folder, ledger[c.key()], live)}
    fresh = [c for c in todo if c.key() not in running]
    submitted = []
    if fresh:
        batches = job_batches(fresh, options.runs_per_job)
        gpus = [local_gpus(i, options.gpus_per_job, _cuda_count()) for i in range(len(batches))] \
            if options.launcher == "local" else [None] * len(batches)
        executor = make_executor(options, folder)
        log(f"submitting {len(batches)} job(s) for {len(fresh)} run(s) of {len(unique)} ({options.launcher}); "
            f"{len(running)} run(s) already in jobs, the others come from {store.root}")
        for batch, visible in zip(batches, gpus):
            if visible:
                executor.update_parameters(visible_gpus=visible, gpus_per_node=len(visible))
            job = executor.submit(TrainJob([c.to_dict() for c in batch], str(store.root), options.time_min,
                                           options.signal_delay_s))
            live[job.job_id] = job
            submitted.append(job.job_id)
            for c in batch:
                ledger[c.key()] = {"job_id": job.job_id, "launcher": options.launcher}
        write_json(folder / SUBMITTED, ledger)
    already = sorted({e["job_id"] for e in running.values()})
    if not options.wait:
        return Launched(submitted, already, folder, None)
    _wait(submitit, folder, [ledger[c.key()] for c in todo], live, log)
    missing = [c for c in unique if load_run(c, store) is None]
    if missing:
        logs = ", ".join(str(folder / f"{ledger[c.key()]['job_id']}_0_log.err") for c in missing)
        raise RuntimeError(f"{len(missing)} run(s) are not complete after their jobs {submitted + already} "
                           f"ended; see {logs}")
    return Launched(submitted, already, folder, {c.key(): load_run(c, store) for c in configs})


def _wait(submitit, folder: Path, entries: list[dict], live: dict, log, poll_s: float | None = None) -> None:
    pending = {e["job_id"]: e for e in entries}
    poll_s = poll_s or (60.0 if any(e["launcher"] == "slurm" for e in entries) else 1.0)
    if pending:
        log(f"waiting for job(s) {sorted(pending)}; logs in {folder}")
    while pending:
        for job_id in [j for j, e in pending.items() if not _active(submitit, folder, e, live)]:
            del pending[job_id]
            log(f"job {job_id} ended")
        if pending:
            time.sleep(poll_s)


def collect_hint(launched: Launched, command: str) -> str:
    """What to run to collect the runs of jobs that were not waited for."""
    ids = launched.submitted + launched.running
    return (f"job(s) {ids} submitted or still running (logs and pickles in {launched.folder}); "
            f"`squeue -j {','.join(ids)}` shows them on Slurm. Collect with the same command without "
            f"--no-wait: it submits nothing twice, waits for these jobs and loads the finished runs:\n  {command}")
