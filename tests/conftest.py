"""Shared fixtures: a throw-away run store, the CLI as a subprocess, an offline switch.

Every test that writes runs or cached models points TMU_RUNS_DIR at its own tmp_path, so nothing
touches ./runs. Budgets are tiny (see clitools.py) because the suite shares two CPU cores; the tests
check plumbing and invariants, not accuracy.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from clitools import ROOT, start_cli

# One torch thread: on two shared cores, two threads per process oversubscribe the CPU and a 1-second
# training run takes 10 (measured). Subprocesses get OMP_NUM_THREADS=1 from clitools.cli_env.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TMU_NO_WARMUP", "1")  # no UMAP compile in the background of every dashboard test
import torch  # noqa: E402

torch.set_num_threads(1)


# `pytest -m fast` (`make test-fast`): the unit tests, under a minute together on two cores, are marked in their
# own module (`pytestmark = pytest.mark.fast` or `@pytest.mark.fast`). The rest train models, start background
# processes, Ray or a browser, or fit UMAP.


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """A fresh run store for this test (TMU_RUNS_DIR), also seen by in-process calls."""
    path = tmp_path / "runs"
    monkeypatch.setenv("TMU_RUNS_DIR", str(path))
    return path


@pytest.fixture
def cli(runs_dir):
    """Run `python -m tmu_core ARGS` to completion; returns the CompletedProcess (stdout/stderr as text)."""

    def call(*args: str, timeout: float = 180, cwd: Path = ROOT, offline: bool = False) -> subprocess.CompletedProcess:
        proc = start_cli(list(args), runs_dir, cwd=cwd, offline=offline)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"`python -m tmu_core {' '.join(args)}` took over {timeout}s; stderr: {err[-2000:]}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    return call


@pytest.fixture
def block_network(monkeypatch):
    """Make this process offline: every socket connection fails."""
    import socket

    def deny(*args, **kwargs):
        raise OSError("network is disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", deny)
    monkeypatch.setattr(socket, "create_connection", deny)
    monkeypatch.setattr(socket.socket, "connect", deny)


@pytest.fixture(scope="session")
def lasting_runs_dir(request, tmp_path_factory) -> Path:
    """A run store that outlives the session (in pytest's cache folder, git-ignored): decoded image
    folders (`_cache/data`) land here, so the 60k CIFAR-10 JPEGs are decoded once, not at every `make test`."""
    cache = getattr(request.config, "cache", None)
    return cache.mkdir("tmu-runs") if cache is not None else tmp_path_factory.mktemp("tmu-runs")


# ---------------------------------------------------------------- dashboard (test_app.py, test_browser.py)
@pytest.fixture(scope="session")
def synthetic_runs(tmp_path_factory, lasting_runs_dir):
    """A run store written directly with the store's writers (apptools.synthetic_store, a second or two): two
    complete tiny runs, the UMAP map of the first's TMU model and a two-class sweep. Returns (runs_dir, [run
    ids]) in the order a launch would give them. Its compiled-code folder is the lasting store's, so the UMAP
    kernels a background map compiles (minutes on two busy cores) are compiled once, not at every session."""
    from apptools import synthetic_store

    path = tmp_path_factory.mktemp("synthetic") / "runs"
    numba_cache = lasting_runs_dir / "_cache" / "numba"
    numba_cache.mkdir(parents=True, exist_ok=True)
    (path / "_cache").mkdir(parents=True)
    (path / "_cache" / "numba").symlink_to(numba_cache, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMU_RUNS_DIR", str(path))
        ids = synthetic_store()
    return path, ids


@pytest.fixture
def dashboard_runs(synthetic_runs, monkeypatch):
    """Point this test's TMU_RUNS_DIR at the synthetic runs (read them; launch new runs in runs_dir instead)."""
    path, ids = synthetic_runs
    monkeypatch.setenv("TMU_RUNS_DIR", str(path))
    return path, ids


@pytest.fixture(scope="session")
def launched_runs(tmp_path_factory):
    """Two tiny runs launched side by side in background processes, as the Run page does (apptools.launch_pair):
    for the tests about computing them. Made once per session; returns (runs_dir, [run ids]) in launch order."""
    from apptools import launch_pair

    path = tmp_path_factory.mktemp("dashboard") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMU_RUNS_DIR", str(path))
        ids = launch_pair()
    return path, ids


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One complete tiny digits run (TMU and fine-tuning, one epoch each), made in-process once per session;
    returns (runs_dir, run_id). Tests copy it before damaging it."""

    from apptools import tiny_config

    from tmu_core.config import ForgetSpec
    from tmu_core.jobs.pipeline import execute, start

    path = tmp_path_factory.mktemp("finished") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMU_RUNS_DIR", str(path))
        cfg = tiny_config(ForgetSpec(forget_class="8", forget_count=10), "finished")
        run = start(cfg.model_copy(update={"methods": ("tmu", "finetune")}))
        execute(run)
    return path, run.id
