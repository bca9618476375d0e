"""The GPU kit: its decision rules and its guard (fast), and its whole code path at toy sizes on the
CPU (slow tier). Its numbers mean something only on a GPU, where `make gpu-check` runs it; no test
here times anything against a target."""
import json
import time

import pytest

from grokcircuits.ops import bench


def test_targets_are_met_missed_or_not_measured():
    results = {"ensemble_speedup_largest": 12.0, "gpt_speedup": 5.0, "trm_paper_engine_ms_per_step": None}
    judged = bench.judge_targets(results)
    assert list(judged.values()) == [True, False, None]
    assert list(bench.judge_targets({"trm_paper_engine_ms_per_step": 49.0}).values()) == [None, None, True]
    assert list(bench.judge_targets({"trm_paper_engine_ms_per_step": 51.0}).values()) == [None, None, False]


def test_a_failing_part_is_recorded_and_the_rest_still_run(tmp_path):
    import torch
    kit = bench.Kit(bench.smoke_sizes(), torch.device("cpu"), 60, tmp_path / "k.json", smoke=True)

    def broken(kit):
        raise RuntimeError("out of memory")
    kit.part("broken", 0, broken)
    kit.part("fine", 0, lambda kit: {"gpt_engine_steps_per_s": 3.0})
    kit.part("too_long", 1e9, lambda kit: {"never": True})
    d = json.loads((tmp_path / "k.json").read_text())
    assert d["parts"]["broken"]["status"] == "failed" and "out of memory" in d["parts"]["broken"]["error"]
    assert d["parts"]["fine"]["status"] == "ok" and d["gpt_engine_steps_per_s"] == 3.0
    assert d["parts"]["too_long"]["status"] == "skipped" and "never" not in d
    assert all(key in d for key in bench.REQUIRED)   # present from the start, None until measured


def test_kit_rejects_an_unknown_part_before_any_work(capsys):
    from grokcircuits.__main__ import main
    assert main(["bench", "--smoke", "--parts", "nope", "--out", "/nonexistent/never.json"]) == 2
    err = capsys.readouterr().err
    assert "parts='nope'" in err and "captured_step" in err


def test_kit_called_for_some_parts_keeps_the_figures_of_the_others(tmp_path):
    import torch
    out = tmp_path / "k.json"
    earlier = {"device": bench.device_name(torch.device("cpu")), "smoke": True, "gpt_speedup": 9.0,
               "parts": {"gpt": {"status": "ok"}}, "floors": {"gpt_engine": {"floor_ms": 1.0}}}
    out.write_text(json.dumps(earlier))
    assert bench.main(["--smoke", "--parts", "matmul", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["gpt_speedup"] == 9.0 and d["parts"]["gpt"]["status"] == "ok" and d["parts"]["matmul"]["status"] == "ok"
    assert d["bf16_matmul_tflops"] > 0 and "gpt_engine" in d["floors"]


@pytest.mark.slow
def test_kit_smoke_runs_every_part_and_writes_every_figure(tmp_path):
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # toy models; threads only spin on a shared CPU
    try:
        out = tmp_path / "bench.json"
        start = time.time()
        assert bench.main(["--smoke", "--out", str(out)]) == 0
        seconds = time.time() - start
    finally:
        torch.set_num_threads(threads)
    d = json.loads(out.read_text())
    assert {name: p["status"] for name, p in d["parts"].items()} == {name: "ok" for name in bench.PARTS}
    assert d["smoke"] is True and d["targets"] is None and seconds < 120
    for key in ("device", "gpt_engine_steps_per_s", "trm_paper_plain_ms_per_step", "trm_paper_engine_ms_per_step",
                "gpu_profile_one_run_s", "gpu_profile_k_runs_s", "k", "bf16_matmul_tflops"):
        assert d[key], key
    assert "gpt_reference_steps_per_s" in d   # None where transformers is not importable
    assert set(d["ensemble_model_steps_per_s"]) == {"1", "2", "3"}
    assert d["captured_step"]["finite"] and d["captured_step"]["loss_fell"]
    assert d["resume"]["interrupted_status"] == "incomplete" and d["resume"]["interrupted_at"] == 3
    assert d["resume"]["weights_equal"] and d["resume"]["curves_equal"]   # the CPU is deterministic
    for name in ("ensemble_1", "ensemble_3", "trm_paper_plain", "trm_paper_engine", "gpt_engine"):
        assert d["floors"][name]["floor_ms"] > 0 and d["floors"][name]["times_floor"] > 0


def test_kit_refuses_full_size_without_a_gpu(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert bench.main([]) == 2
    assert "no GPU" in capsys.readouterr().out


# --- the CPU benchmark (cpu_bench.py) -------------------------------------------------------------
def test_cpu_benchmark_smoke_writes_every_figure_against_its_gemm_peak(tmp_path):
    from grokcircuits.__main__ import main
    out = tmp_path / "cpu.json"
    assert main(["bench", "--cpu", "--smoke", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["device"] and d["profile"] == "tiny" and d["gate"] == 0.4
    for arch in ("trm", "gpt"):
        for m in ("1", "2"):
            fig = d["steps"][arch]["eager"][m]["threads"]["1"]
            assert fig["model_steps_per_s"] > 0 and fig["gemm_peak_gflops"] > 0
            g, peak = fig["gflops"], fig["gemm_peak_gflops"]
            rounding = 5e-4 + 0.05 / peak + 0.05 * g / peak ** 2 + 1e-9   # share to 3 places, GFLOP/s to 1
            assert abs(fig["share_of_peak"] - g / peak) <= rounding
    assert d["gate_met"] == (d["trm_best_share_of_peak"] >= 0.4)
    assert d["fastest"]["trm"]["model_steps_per_s"] == max(
        e["threads"]["1"]["model_steps_per_s"] for e in d["steps"]["trm"]["eager"].values())


def test_cpu_benchmark_judges_the_gate_and_names_the_fastest_setting():
    from grokcircuits.ops import cpu_bench
    entries = {"eager": {"1": {"threads": {"1": {"model_steps_per_s": 9.0, "share_of_peak": 0.3}}}},
               "compiled": {"1": {"threads": {"1": {"model_steps_per_s": 13.0, "share_of_peak": 0.45},
                                              "2": {"model_steps_per_s": 11.0, "share_of_peak": 0.2}}}}}
    fastest = cpu_bench.best(entries)
    assert (fastest["mode"], fastest["threads"], fastest["members"]) == ("compiled", 1, 1)
    assert cpu_bench.largest_matmul(cpu_bench.get_profile("cpu").run("trm")) == (6 * 128, 128, 704)
    assert cpu_bench.largest_matmul(cpu_bench.get_profile("cpu").run("gpt")) == (4 * 128, 128, 512)
