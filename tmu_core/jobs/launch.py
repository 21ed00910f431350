"""Start long work in a detached background process, so it outlives the page (or the server) that started it.

A run is executed by `python -m tmu_core execute <run_id>` in its own session (`start_new_session`), with
its output in the run folder's run.log; whoever started it follows it through status.json. Two runs go
side by side as two processes (a cached original/gold model is built once, under a file lock). The UMAP
maps of the Embeddings page run the same way (the hidden command `python -m tmu_core _worker-embedding
<run_id> <model>`). With TMU_RAY_ADDRESS set, the background process is instead a thin Ray driver
(`python -m tmu_core _worker-ray <run_id> <address>`) that runs the run as a task on that cluster;
status.json, cancel and the run list work the same (the run store must be shared with the cluster).
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from .. import store
from ..config import RunConfig
from ..errors import TMUError
from .pipeline import start

# Children of this process: polled now and then so finished ones do not linger as zombies.
_children: list[subprocess.Popen] = []


def reap() -> None:
    """Collect the exit status of finished children (a zombie would still look alive for a moment)."""
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)


def spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    """Run `python -m tmu_core <args>` detached (tmu_core is installed in this Python), output appended to
    `log_path`, with the same run store and data folder as this process: TMU_RUNS_DIR and TMU_DATA_DIR are
    passed as absolute paths, since their defaults (./runs, ./data) are relative to the working directory.
    """
    reap()
    env = dict(
        os.environ,
        TMU_RUNS_DIR=str(store.runs_root().resolve()),
        TMU_DATA_DIR=str(store.default_data_root("").resolve()),
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_NOFOLLOW: a link planted at the log's place is refused, never written through; O_NONBLOCK and the
        # check after it: a FIFO there would block this open until a reader comes
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, f"{log_path.name} is not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tmu_core", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as exc:
        raise TMUError(f"cannot start a background process ({exc.strerror})") from exc
    _children.append(proc)
    return proc


def ray_address() -> str | None:
    """The Ray cluster that dashboard runs go to (TMU_RAY_ADDRESS), or None for local background processes."""
    return os.environ.get("TMU_RAY_ADDRESS", "").strip() or None


def launch(run: store.Run) -> int:
    """Execute a queued run in the background; returns the process id.

    The pid is written to status.json at once, so a process that dies before its first status update
    (a crash at import) reads as 'interrupted' instead of 'queued' forever. The child needs seconds to
    import torch before it writes 'running', so this write does not race with it in practice.
    """
    state = run.status().get("state")
    if state != "queued":
        raise TMUError(f"run {run.id} is {state}; only a queued run can be launched")
    address = ray_address()
    args = ["_worker-ray", run.id, address] if address else ["execute", run.id]
    proc = spawn(args, run.log_path())
    if run.status().get("state") == "queued":
        run.set_status(pid=proc.pid)
    return proc.pid


RESUMABLE = ("cancelled", "interrupted", "failed")


def resume(run: store.Run) -> int:
    """Execute a cancelled, interrupted or failed run again, in the background: the same run (its folder, id and
    config), its cached original and gold models loaded instead of trained. Returns the process id."""
    state = run.status().get("state")
    if state not in RESUMABLE:
        raise TMUError(f"run {run.id} is {state}; only a cancelled, interrupted or failed run can be launched again")
    run.clear_cancel()  # the old request must not stop it at once (a queued run keeps its flag)
    run.set_status(state="queued", stage="queued", progress=0.0, error=None, eta_seconds=None, pid=None)
    return launch(run)


def start_run(cfg: RunConfig) -> store.Run:
    """Validate `cfg`, create its run folder and execute it in the background (on Ray when TMU_RAY_ADDRESS is set)."""

    run = start(cfg)
    launch(run)
    return run


def cancel(run: store.Run, wait: float = 10.0) -> None:
    """Ask a run to stop: it notices the request at its next progress report and ends as 'cancelled'.

    A run still queued (its process is still importing torch, or not started) is stopped at once instead: its
    request is kept (`execute` clears only the old request of a run executed again), but it would be seen
    only at the run's first progress report, after the imports and the data set-up.
    """
    run.request_cancel()
    status = run.status()
    pid = status.get("pid")
    if status.get("state") != "queued" or not store.pid_alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)  # its own session: the group holds the run and nothing else
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + wait
    while store.pid_alive(pid) and time.monotonic() < deadline:
        reap()
        time.sleep(0.05)
    run.set_status(state="cancelled", error="cancelled by the user")


def start_sweep(
    dataset: str,
    classes: list[str],
    seeds: list[int],
    forget_counts: list[int],
    methods: list[str],
    sweep_id: str,
    data_root: str = "",
    epochs: int | None = None,
) -> store.Sweep:
    """Run `python -m tmu_core sweep` detached (on Ray when TMU_RAY_ADDRESS is set); follow it through
    `store.Sweep(sweep_id).results()`, which the sweep rewrites after every run. The returned sweep's id may
    differ from `sweep_id` (a suffix when that id was taken): follow the returned one."""
    store.check_run_id(sweep_id)
    if not classes or not seeds or not forget_counts or not methods:
        raise TMUError("a sweep needs at least one class, seed, forget count and method")
    sweep = store.Sweep.reserve(sweep_id)  # a new folder: a second launch in the same second gets "<id>-2"
    sweep_id = sweep.id
    args = [
        "sweep",
        "--dataset",
        dataset,
        "--classes",
        ",".join(classes),
        "--seeds",
        *map(str, seeds),
        "--forget-counts",
        *map(str, forget_counts),
        "--methods",
        *methods,
        "--sweep-id",
        sweep_id,
        "--quiet",
    ]
    if data_root:
        args += ["--data-root", str(Path(data_root).expanduser().resolve())]
    if epochs is not None:
        args += ["--epochs", str(int(epochs))]
    address = ray_address()
    if address:
        args += ["--executor", "ray", "--ray-address", address]
    spawn(args, sweep.log_path())
    return sweep
