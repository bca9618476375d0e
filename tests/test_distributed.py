"""Data-parallel training over processes (torch.distributed, gloo on the CPU) against one process.

Two processes, each on half of the global batch (128 rows of the tiny profile), must give the losses
and weights of one process training on the whole batch. Only the order of the sums differs (two
half-batch means averaged instead of one mean), so the runs are built in float64 (the engine computes
in its parameters' dtype on the CPU), where reordered sums differ by about 1e-16 and the tolerance,
relative 1e-10 of each tensor's largest value, holds on any CPU's kernels. Every process runs one
torch thread; the processes talk over loopback only.
"""
import os
import socket
import subprocess
import sys

import pytest
import torch

from grokcircuits.__main__ import main
from grokcircuits.config import ConfigError, get_profile
from grokcircuits.science.models.stacked import HashDropout
from grokcircuits.science.runs import load_run
from grokcircuits.store import Store, load_tensors
from grokcircuits.training.distributed import check_batches
from grokcircuits.training.state import checkpoint_path

RELATIVE_TOLERANCE = 1e-10
STEPS = 50
STOP_AT = 30

WORKER = """
import sys, torch
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
from grokcircuits.config import get_profile
from grokcircuits.store import Store
root, mode, stop_after, late_rank = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None, int(sys.argv[4])
config = get_profile("tiny").run("trm", "natural", 0, steps=%d, eval_every=1, checkpoint_every=1000)
if mode == "plain":
    from grokcircuits.training import train_group
    train_group([config], Store(root), stop_after=stop_after)
else:
    import torch.distributed as dist
    from grokcircuits.training.distributed import init_world, train_distributed
    world = init_world()
    if world.rank != 0:   # only rank 0 may write: any write elsewhere fails the run
        import grokcircuits.training.ensemble as engine
        def refuse(*args, **kwargs):
            raise RuntimeError("a process other than rank 0 wrote to the store")
        engine.save_tensors = engine.save_checkpoint = refuse
        Store.save_run = refuse
    deadline = 1.0 if world.rank == late_rank else None   # this one process's deadline has passed
    train_distributed([config], Store(root), world, stop_after=stop_after, deadline=deadline)
    dist.destroy_process_group()
""" % STEPS


def config():
    return get_profile("tiny").run("trm", "natural", 0, steps=STEPS, eval_every=1, checkpoint_every=1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(root, processes: int, stop_after: int = 0, late_rank: int = -1) -> None:
    """Train the test run in `processes` processes (0: the plain engine, no process group) into `root`;
    the process of rank `late_rank` alone gets a deadline that has passed."""
    port, world = free_port(), max(processes, 1)
    base = {**os.environ, "GROKCIRCUITS_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), "WORLD_SIZE": str(world), "GLOO_SOCKET_IFNAME": "lo"}
    mode = "distributed" if processes else "plain"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), mode, str(stop_after), str(late_rank)],
                              env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}, stderr=subprocess.PIPE, text=True)
             for r in range(world)]
    errors = [p.communicate(timeout=150)[1] for p in procs]
    for p, err in zip(procs, errors):
        assert p.returncode == 0, err[-3000:]


def relative_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12)) for k in a)


def final_weights(root) -> dict:
    return load_tensors(Store(root).checkpoint_dir(config().key()) / "final.pt", "cpu")


def step_losses(root) -> torch.Tensor:
    run = load_run(config(), Store(root))
    return torch.tensor([e["train_loss"] for e in run.curves[1:]], dtype=torch.float64)   # (STEPS,)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_process")
    launch(root, 0)
    return root


@pytest.mark.slow
def test_two_processes_match_one_process(one_process, tmp_path):
    launch(tmp_path, 2)
    ref, two = step_losses(one_process), step_losses(tmp_path)
    assert len(ref) == len(two) == STEPS
    loss_diff = float(((two - ref).abs() / ref.abs()).max())
    weight_diff = relative_difference(final_weights(tmp_path), final_weights(one_process))
    print(f"\nmax relative difference over {STEPS} steps: losses {loss_diff:.2e}, final weights {weight_diff:.2e}")
    assert loss_diff <= RELATIVE_TOLERANCE
    assert weight_diff <= RELATIVE_TOLERANCE
    record = load_run(config(), Store(tmp_path)).record
    assert record["world_size"] == 2 and record["steps"] == STEPS and record["status"] == "complete"


@pytest.mark.slow
def test_checkpoint_of_two_processes_resumes_in_one(one_process, tmp_path):
    launch(tmp_path, 2, stop_after=STOP_AT)
    ckpt_dir = Store(tmp_path).checkpoint_dir(config().key())
    halfway = load_tensors(checkpoint_path(ckpt_dir), "cpu")
    assert halfway["progress"]["step"] == STOP_AT
    launch(tmp_path, 0)   # the plain engine, one process, resumes it
    assert load_run(config(), Store(tmp_path)).record["steps"] == STEPS
    diff = relative_difference(final_weights(tmp_path), final_weights(one_process))
    control = relative_difference(halfway["tensors"]["ema"], final_weights(one_process))
    print(f"\nresumed at world size 1: max relative weight difference {diff:.2e} (control, step {STOP_AT}: "
          f"{control:.2e})")
    assert diff <= RELATIVE_TOLERANCE
    assert control > 100 * RELATIVE_TOLERANCE   # the comparison can tell 20 steps apart


@pytest.mark.slow
def test_one_process_past_its_deadline_stops_them_all(tmp_path):
    launch(tmp_path, 2, late_rank=1)   # were the processes not to agree, rank 0 would wait for rank 1 forever
    record = Store(tmp_path).record(config().key())
    assert record["status"] == "incomplete" and record["steps"] == 0
    launch(tmp_path / "control", 2)    # control: no deadline, the run finishes
    assert load_run(config(), Store(tmp_path / "control")).record["steps"] == STEPS


def test_global_batch_must_divide_over_the_processes():
    check_batches([config()], 2)   # 128 rows: 64 a process
    with pytest.raises(ConfigError, match="batch_size=128"):
        check_batches([config()], 3)


def test_dropout_masks_of_the_shards_are_the_global_batch_mask():
    x = torch.ones(2, 8, 4, 3)                                                       # (M, B, S, D)
    seeds, steps = torch.tensor([0, 7]), torch.tensor([5, 9])
    whole = HashDropout(0.5, seeds, steps)(x, site=3)
    halves = [HashDropout(0.5, seeds, steps, shard=r)(x[:, 4 * r:4 * (r + 1)], site=3) for r in range(2)]
    assert torch.equal(torch.cat(halves, dim=1), whole)
    assert not torch.equal(halves[0], halves[1])   # control: the shards draw different masks


def test_distributed_cli_refuses_without_torchrun(monkeypatch, capsys):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    assert main(["train", "--profile", "tiny", "--steps", "2", "--distributed"]) == 2
    assert "torchrun" in capsys.readouterr().err
    assert main(["train", "--profile", "tiny", "--steps", "2", "--distributed", "--launcher", "local"]) == 2
    assert "launcher=local" in capsys.readouterr().err
