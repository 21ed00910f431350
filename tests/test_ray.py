"""The Ray executor on a local Ray instance (2 CPUs, started once for this module; CI has no cluster):
a sweep's metrics equal the local executor's exactly, a shared original model is trained once, a task that
raises is named in the tables while the others finish, cancel stops queued and running tasks, a lost
worker's task is retried, and a dashboard run with TMU_RAY_ADDRESS set goes through Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

from apptools import APP, ROOT, tiny_config, wait_done, wait_for  # noqa: E402

from tmu_core import store  # noqa: E402
from tmu_core.config import ForgetSpec, TrainConfig  # noqa: E402
from tmu_core.errors import TMUError  # noqa: E402
from tmu_core.jobs import launch, ray_executor  # noqa: E402
from tmu_core.jobs.pipeline import start  # noqa: E402
from tmu_core.jobs.sweep import failed_markdown, plan, sweep  # noqa: E402
from tmu_core.store import paths as P  # noqa: E402

# what depends on timing, on which run built a cached model first, or on the run's own folder (its files' paths)
TIMING = (
    "seconds",
    "cached",
    "run_id",
    "cost_ratio",
    "cost_ratio_counts",
    "stage_seconds",
    "original_cached",
    "gold_cached",
    "source",  # a reference's origin, "trained" or "cache": whichever Ray task took the model lock first trained it
    "unlearned_weights",
    "audit_csv",
)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A 2-CPU Ray instance; this process computes with 1 torch thread, so by default each task asks for 1 CPU
    (the same thread count as the local executor: the condition for equal numbers) and two run side by side."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # own, beside any cluster
    yield
    ray.shutdown()
    torch.set_num_threads(threads)


def tiny(methods=("tmu", "finetune"), epochs: int = 3):
    cfg = tiny_config(ForgetSpec(forget_class="8", forget_count=10), "")
    return cfg.model_copy(update={"methods": methods, "train": TrainConfig(epochs=epochs, batch_size=32)})


def diff(a, b, path=""):
    """Print where two results differ (a failing comparison says which field)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            diff(a.get(k), b.get(k), f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]")
    elif a != b and not (a != a and b != b):
        print(path, str(a)[:80], "|", str(b)[:80])


def science(obj):
    """A result without what depends on timing or on which run happened to build a cached model first."""
    if isinstance(obj, dict):
        return {k: science(v) for k, v in obj.items() if k not in TIMING and not k.endswith("seconds")}
    if isinstance(obj, list):
        return [science(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return "nan"  # NaN (an undefined AUC when gold gets all of D_f right) equals itself here
    return obj


def test_ray_sweep_equals_the_local_sweep(tmp_path, monkeypatch):
    out = {}
    for executor in ("local", "ray"):
        monkeypatch.setenv("TMU_RUNS_DIR", str(tmp_path / executor))  # each builds its own cached models
        out[executor] = sweep(tiny(), "8,3", sweep_id=f"sweep-{executor}", executor=executor)
    local, remote = out["local"], out["ray"]
    assert not local["failed"] and not remote["failed"]
    assert [r["forget_class"] for r in remote["results"]] == [8, 3]  # the configs' order, whatever finished first
    diff(science(remote["results"]), science(local["results"]))  # says which field, should they differ
    assert science(remote["results"]) == science(local["results"])
    for key, frame in local["tables"].items():
        assert remote["tables"][key].equals(frame), key
    # both tasks need the same original model: built once under the store's lock, loaded by the other task
    assert sorted(r["cache"]["original_cached"] for r in remote["results"]) == [False, True]
    assert json.loads((tmp_path / "ray" / "_sweeps" / "sweep-ray" / "results.json").read_text())["executor"] == "ray"


def test_a_task_asking_more_cpus_than_the_cluster_has_is_refused_with_what_fits(runs_dir):
    with pytest.raises(TMUError, match="asks for 3 CPUs but the largest Ray node has 2; pass --ray-cpus-per-task"):
        sweep(tiny(("finetune",)), "8", sweep_id="sweep-big", executor="ray", ray_cpus_per_task=3)


def test_cpus_per_task_need_the_ray_executor():
    with pytest.raises(TMUError, match="--executor ray"):
        sweep(tiny(), "8", ray_cpus_per_task=1)


def test_a_task_that_raises_is_named_and_the_others_finish(runs_dir):
    configs = plan(tiny(("finetune",)), [8, 3, 1], [0], [10], "sweep-bad")
    runs = [start(cfg) for cfg in configs]
    broken = runs[1].config()
    broken["train"]["model"] = "no_such_model"  # valid when planned, fails inside its Ray task
    runs[1].write_json(P.CONFIG, broken)
    results = [None] * 3
    ray_executor.run_started(runs, configs, results, ray_executor.RayOptions())
    assert results[1]["failed"] and results[1]["forget_class"] == 3 and results[1]["seed"] == 0
    assert "no_such_model" in results[1]["error"] and "small_cnn" in results[1]["error"]
    assert [r.get("failed", False) for r in results] == [False, True, False]
    assert runs[1].status()["state"] == "failed" and runs[0].status()["state"] == "complete"
    md = failed_markdown([r for r in results if r.get("failed")])
    assert "### Failed runs" in md and "no_such_model" in md and md.count("| 3 | 0 | 10 |") == 1


def test_cancel_stops_queued_and_running_tasks(runs_dir):
    configs = plan(tiny(("finetune",), epochs=200), [8, 3, 1], [0], [10], "sweep-cancel")
    seen = {}

    def stop_once_running():
        seen["states"] = [i.state for i in store.list_runs()]
        return "running" in seen["states"]

    t0 = time.monotonic()
    results = ray_executor.run_on_ray(configs, should_stop=stop_once_running)
    assert "running" in seen["states"] and "queued" in seen["states"]  # 3 tasks on 2 CPUs: one was waiting
    assert all(r["failed"] and r["error"] == "cancelled by the user" for r in results), results
    assert {i.state for i in store.list_runs()} == {"cancelled"}
    assert time.monotonic() - t0 < 120  # 200 epochs would take far longer: the running tasks really stopped
    wait_for(lambda: ray.available_resources().get("CPU", 0) == 2, 30, "the cancelled tasks to free their CPUs")


def test_a_lost_worker_is_retried_once(runs_dir):
    cfg = tiny(("finetune",), epochs=40)
    run = start(cfg)
    results = [None]
    ref = ray_executor.submit(run, cfg, ray_executor.RayOptions())
    st = wait_for(
        lambda: (lambda s: s if s.get("state") == "running" and s.get("stage") == "original" else None)(run.status()),
        120,
        "the task to start training",
    )
    os.kill(st["pid"], signal.SIGKILL)  # the worker process dies mid-task, as on a lost node
    results[0] = ray.get(ref, timeout=300)
    assert run.status()["state"] == "complete" and results[0]["run_id"] == run.id
    assert run.status()["pid"] != st["pid"]  # executed again by another worker


def test_dashboard_run_goes_to_ray_when_the_address_is_set(runs_dir, monkeypatch):
    address = ray.get_runtime_context().gcs_address
    monkeypatch.setenv("TMU_RAY_ADDRESS", address)
    assert launch.ray_address() == address
    run = launch.start_run(tiny(("finetune",)))
    wait_done(run, timeout=240)
    assert [i.state for i in store.list_runs() if i.run_id == run.id] == ["complete"]
    assert run.metrics()["run_id"] == run.id
    # the run was executed by a Ray worker process (they outlive their tasks), not by `tmu_core execute`
    with open(f"/proc/{run.status()['pid']}/cmdline", "rb") as fh:
        cmdline = fh.read().replace(b"\0", b" ").decode()
    assert "ray" in cmdline and "tmu_core execute" not in cmdline, cmdline


def test_tmu_core_imports_no_ray_unless_asked():
    code = (
        "import sys; import tmu_core.cli, tmu_core.jobs.sweep, tmu_core.jobs.launch, tmu_core.jobs.ray_executor; "
        "sys.exit('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


def test_sidebar_shows_the_ray_address_beside_the_device(runs_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not any("Ray" in c.value for c in at.sidebar.caption)
    monkeypatch.setenv("TMU_RAY_ADDRESS", "10.0.0.5:6379")
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert any("Compute device" in c.value and "10.0.0.5:6379" in c.value for c in at.sidebar.caption)


def test_cpus_per_task_come_from_the_flag_then_the_setting_then_the_local_thread_count(monkeypatch):
    import torch

    monkeypatch.delenv("TMU_RAY_CPUS_PER_TASK", raising=False)
    assert ray_executor.threads_per_task(ray_executor.RayOptions()) == torch.get_num_threads()
    monkeypatch.setenv("TMU_RAY_CPUS_PER_TASK", "2")
    assert ray_executor.threads_per_task(ray_executor.RayOptions()) == 2
    assert ray_executor.threads_per_task(ray_executor.RayOptions(num_cpus=1)) == 1
    monkeypatch.setenv("TMU_RAY_CPUS_PER_TASK", "two")
    with pytest.raises(TMUError, match="TMU_RAY_CPUS_PER_TASK.*not two"):
        ray_executor.threads_per_task(ray_executor.RayOptions())


def test_without_an_address_a_new_local_instance_starts_even_beside_a_running_cluster(monkeypatch):
    """Plain ray.init() joins a cluster that `ray start` left on this machine; a sweep without --ray-address
    must start its own instance instead (as the README says), so it asks for address 'local'."""
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw["address"]))
    monkeypatch.setattr(ray_executor, "_use_token_if_any", lambda: None)
    assert ray_executor.connect(None) is True
    assert ray_executor.connect("10.0.0.5:6379") is True
    assert calls == ["local", "10.0.0.5:6379"]
