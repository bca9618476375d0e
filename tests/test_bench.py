"""The benchmark's code path runs end to end at toy sizes on any device (its numbers mean
something only on a GPU, where `make bench` runs it at full size)."""
import json

import pytest

from grokcircuits.bench import main


@pytest.mark.slow
def test_bench_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--smoke", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    for key in ("device", "gpt_reference_steps_per_s", "gpt_engine_steps_per_s", "trm_paper_plain_ms_per_step",
                "trm_paper_engine_ms_per_step", "gpu_profile_one_run_s", "gpu_profile_k_runs_s", "k"):
        assert key in d
    assert d["smoke"] is True and d["gpt_engine_steps_per_s"] > 0 and d["trm_paper_engine_ms_per_step"] > 0


def test_bench_refuses_full_size_without_a_gpu(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main([]) == 2
    assert "no GPU" in capsys.readouterr().out
