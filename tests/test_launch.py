"""Launching runs as submitit jobs: bad options stop before any submission, the Slurm script carries
the limits, a chapter's runs trained as local jobs land complete in the store (so train_many then
trains nothing), and an interrupted job's resubmission resumes to the weights of an uninterrupted run."""
import re
from dataclasses import replace

import pytest
import torch

pytest.importorskip("submitit")

from grokcircuits.pages import experiments as ex  # noqa: E402
from grokcircuits.ops import launch  # noqa: E402
from grokcircuits.__main__ import main  # noqa: E402
from grokcircuits.config import ConfigError, get_profile  # noqa: E402
from grokcircuits.ops.launch import LaunchOptions, TrainJob  # noqa: E402
from grokcircuits.science.runs import load_run  # noqa: E402
from grokcircuits.store import Store  # noqa: E402

TINY = get_profile("tiny")
SHORT = {"steps": 24, "eval_every": 8, "checkpoint_every": 8, "snapshots": 1}


def short(config):
    """A chapter's run cut to a few steps (the CPU here is shared)."""
    return replace(config, train=replace(config.train, **SHORT)).validate()


def mini(seed=0):
    return TINY.run("trm", "natural", seed, **SHORT)


@pytest.fixture
def one_thread(monkeypatch):
    """Job processes inherit the environment: one thread each on the shared CPU."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("GROKCIRCUITS_DEVICE", "cpu")


@pytest.fixture(scope="module", autouse=True)
def torch_one_thread():
    """This process trains with one thread too, as the jobs do: the same arithmetic bit for bit (and
    no contention on the shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: `mini()` trained in one go, by the engine the jobs use."""
    store = Store(tmp_path_factory.mktemp("whole"))
    assert launch._train_share([mini()], store, torch.device("cpu"), None, None, log=lambda m: None)
    return load_run(mini(), store)


def weights(run) -> dict:
    return run.load_model(device=torch.device("cpu")).state_dict()


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# --- fast: options, the Slurm script, batching -----------------------------------------------------
@pytest.mark.parametrize("options, named", [
    (LaunchOptions(launcher="sbatch"), "launcher"),
    (LaunchOptions(launcher="slurm"), "partition"),
    (LaunchOptions(launcher="local", time_min=0), "time-min"),
    (LaunchOptions(launcher="local", runs_per_job=0), "runs-per-job"),
    (LaunchOptions(launcher="local", gpus_per_job=0), "gpus-per-job"),
    (LaunchOptions(launcher="inprocess", wait=False), "no-wait"),
    (LaunchOptions(launcher="local", slurm_options={"acount": "x"}), "slurm-option"),
])
def test_bad_launch_options_name_the_parameter(options, named):
    with pytest.raises(ConfigError, match=named):
        options.validate()


def test_cli_rejects_bad_launcher_before_any_submission(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    assert main(["chapter", "00", "--launcher", "sbatch"]) == 2
    err = capsys.readouterr().err
    assert "launcher='sbatch'" in err and "'inprocess', 'local', 'slurm'" in err
    assert main(["chapter", "00", "--launcher", "slurm"]) == 2
    assert "partition is required" in capsys.readouterr().err
    assert main(["train", "--launcher", "local", "--slurm-option", "mem"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "--budget-seconds", "0"]) == 2
    assert "budget-seconds=0.0" in capsys.readouterr().err
    assert main(["chapter", "00", "--launcher", "local", "--budget-seconds", "60"]) == 2
    assert "launcher=inprocess" in capsys.readouterr().err
    assert not any(tmp_path.rglob("*")), "nothing may be written or submitted"


def test_a_spent_budget_leaves_the_run_unfinished_and_says_so(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    assert main(["train", "--profile", "tiny", "--budget-seconds", "1e-9"]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 runs unfinished at the budget" in out and '"steps"' not in out
    assert not list(tmp_path.rglob("record.json"))


def test_slurm_without_slurm_commands_is_a_config_error(monkeypatch):
    import submitit
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: -1))
    with pytest.raises(ConfigError, match="inprocess"):
        LaunchOptions(launcher="slurm", partition="gpu").validate()


def test_slurm_job_script_carries_partition_limit_gpus_and_signal(tmp_path, monkeypatch):
    import submitit
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    options = LaunchOptions(launcher="slurm", partition="h100", time_min=1440, gpus_per_job=2,
                            slurm_options={"account": "grok"}).validate()
    text = launch.make_executor(options, tmp_path)._make_submission_file_text("python -m job", "uid")
    for line in ("--partition=h100", "--time=1440", "--gpus-per-node=2", "--ntasks-per-node=2",
                 "--signal=USR2@120", "--account=grok"):
        assert f"#SBATCH {line}" in text, line


def test_deadline_comes_before_the_schedulers_signal():
    job = TrainJob([], "/tmp", time_min=1440, signal_delay_s=120)
    limit = 1440 * 60
    assert limit / 2 <= job.deadline(0.0) < limit - 120
    assert job.deadline(0.0) < job.requeue_after(0.0) < limit - 120      # task 0 waits for the others' checkpoints
    tiny_job = TrainJob([], "/tmp", time_min=1, signal_delay_s=50)
    assert tiny_job.deadline(100.0) == 130.0        # never less than half the limit
    assert tiny_job.requeue_after(100.0) == 130.0


def test_jobs_follow_the_engines_ensembles():
    configs = [TINY.run(a, "natural", s) for a in ("gpt", "trm") for s in (0, 1, 2)]
    assert launch.job_batches([], None) == []
    batches = launch.job_batches(configs, None)
    assert [{c.model.architecture for c in b} for b in batches] == [{"gpt"}, {"trm"}]
    assert [len(b) for b in launch.job_batches(configs, 2)] == [2, 1, 2, 1]
    paper = [get_profile("paper").run("trm", r, s) for r in ("natural", "both_full") for s in (0, 1, 2)]
    assert [len(b) for b in launch.job_batches(paper, None)] == [6]
    assert [len(b) for b in launch.job_batches(paper, 4)] == [3, 3]          # split evenly
    assert [len(b) for b in launch.job_batches(paper, 1)] == [1] * 6


def test_local_jobs_spread_over_the_machines_gpus():
    assert [launch.local_gpus(i, 1, 4) for i in range(5)] == [(0,), (1,), (2,), (3,), (0,)]
    assert [launch.local_gpus(i, 2, 4) for i in range(3)] == [(0, 1), (2, 3), (0, 1)]
    assert [launch.local_gpus(i, 2, 3) for i in range(3)] == [(0, 1), (2, 0), (1, 2)]
    assert launch.local_gpus(3, 2, 0) == ()                       # CPU: no GPUs to hand out
    with pytest.raises(ConfigError, match="gpus-per-job"):
        launch.local_gpus(0, 3, 2)


# --- slow: real jobs ----------------------------------------------------------------------------
@pytest.mark.slow
def test_chapter_runs_as_local_jobs_are_complete_and_train_many_trains_nothing(tmp_path, one_thread, monkeypatch):
    configs = [short(c) for c in ex.task_runs(TINY, [0])]          # chapter 00, one seed: gpt and trm
    store = Store(tmp_path / "tiny")
    launched = launch.launch(configs, store, LaunchOptions(launcher="local", time_min=10), log=lambda m: None)
    assert len(launched.submitted) == 2 and set(launched.runs) == {c.key() for c in configs}
    assert all(store.has_run(c.key()) and run.record["steps"] == SHORT["steps"] for c, run in
               zip(configs, (launched.runs[c.key()] for c in configs)))
    messages = []
    for trainer in ("train", "train_group"):      # whichever engine train_many calls
        monkeypatch.setattr(ex, trainer, lambda *a, **k: pytest.fail("train_many trained a run the jobs had"),
                            raising=False)
    runs = ex.train_many(configs, store, log=messages.append)
    assert messages == [] and all(runs[c.key()] is not None for c in configs)
    again = launch.launch(configs, store, LaunchOptions(launcher="local", time_min=10), log=lambda m: None)
    assert again.submitted == [] and again.running == []


@pytest.mark.slow
def test_a_failed_job_is_reported_with_its_log_not_taken_as_done(tmp_path, one_thread):
    orphan = replace(TINY.transfer_run(mini(), 0), init_from="0" * 16)     # its parent's weights are nowhere
    store = Store(tmp_path)
    with pytest.raises(RuntimeError, match=r"1 run\(s\) are not complete") as failure:
        launch.launch([orphan], store, LaunchOptions(launcher="local", time_min=10), log=lambda m: None)
    log = re.search(r"see (\S+_0_log\.err)", str(failure.value)).group(1)
    assert "init_from=" + "0" * 16 in open(log).read()        # the job's own error, in the named log
    assert not store.has_run(orphan.key())


@pytest.mark.slow
def test_no_wait_prints_the_jobs_and_the_same_command_collects(tmp_path, one_thread, monkeypatch, capsys):
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(tmp_path))
    argv = ["train", "--regime", "natural", "--steps", "16", "--launcher", "local"]
    assert main(argv + ["--no-wait"]) == 0
    out = capsys.readouterr().out
    assert "Collect with the same command without --no-wait" in out and "--no-wait" not in out.splitlines()[-1]
    assert main(argv) == 0                     # submits nothing twice: waits for that job, loads the run
    out = capsys.readouterr().out
    assert "submitting" not in out and '"steps": 16' in out
    ledger = launch._ledger(tmp_path / "tiny" / "jobs")
    assert len({e["job_id"] for e in ledger.values()}) == 1


@pytest.mark.slow
def test_a_job_with_two_tasks_splits_its_runs_and_task_0_waits_for_both(tmp_path, one_thread):
    store = Store(tmp_path)
    configs = [mini(0), mini(1)]
    executor = launch.make_executor(LaunchOptions(launcher="local", time_min=10, gpus_per_job=2).validate(),
                                    launch.jobs_folder(store))
    job = executor.submit(TrainJob([c.to_dict() for c in configs], str(store.root), time_min=10, poll_s=0.5))
    first, second = job.results()
    assert first == {c.key(): True for c in configs}          # task 0 returns once the whole job is done
    assert second == {configs[1].key(): True}                 # task 1 trained the second run
    assert all(store.has_run(c.key()) for c in configs)
    task_logs = [p.read_text() for p in sorted(launch.jobs_folder(store).glob(f"{job.job_id}_*_log.out"))]
    assert [f"task {r}/2: 1 of 2 run(s)" in log for r, log in enumerate(task_logs)] == [True, True]


@pytest.mark.slow
def test_checkpoint_resubmits_a_job_that_resumes_to_the_same_weights(tmp_path, uninterrupted, capsys):
    store = Store(tmp_path)
    job = TrainJob([mini().to_dict()], str(tmp_path), time_min=10, stop_after=8)
    assert job() == {mini().key(): False}                       # interrupted, as a preemption would
    assert (store.checkpoint_dir(mini().key()) / "last.pt").exists()
    resubmission = job.checkpoint()
    assert isinstance(resubmission.function, TrainJob) and resubmission.function.stop_after is None
    assert resubmission.function.configs == job.configs and resubmission.function.store_root == job.store_root
    assert resubmission.result() == {mini().key(): True}
    assert re.search(r"resumed \w+ at step 8", capsys.readouterr().out)
    assert same_weights(load_run(mini(), store), uninterrupted)


@pytest.mark.slow
def test_local_job_requeues_itself_and_resumes_to_the_same_weights(tmp_path, uninterrupted, one_thread):
    store = Store(tmp_path)
    executor = launch.make_executor(LaunchOptions(launcher="local", time_min=10, max_requeues=2).validate(),
                                    launch.jobs_folder(store))
    job = executor.submit(TrainJob([mini().to_dict()], str(store.root), time_min=10, stop_after=8))
    assert job.result() == {mini().key(): True}
    log = job.stdout()
    assert "Requeued job" in log and re.search(r"resumed \w+ at step 8", log), log
    assert same_weights(load_run(mini(), store), uninterrupted)
