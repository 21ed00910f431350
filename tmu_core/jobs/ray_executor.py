"""Runs on a Ray cluster: each run of a sweep (one forget class, seed and forget count) is one Ray task.

The driver creates every run folder (`pipeline.start`, validated, 'queued') and submits one task per run;
a task executes its run with `pipeline.execute` against the same run store, so results, status.json and
the cached original/gold models (built once per key under the store's file lock) are exactly those of a
local run. This assumes TMU_RUNS_DIR is on a filesystem every node shares: a task that cannot see its run
folder fails with one line saying so. Cancelling marks every run (a queued task then stops as soon as it
starts) and cancels the Ray tasks; a task whose worker is lost is retried once (`max_retries=1`).
Ray is imported only here, and only when a Ray executor is asked for.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import store
from ..config import RunConfig, run_config_from_dict
from ..errors import TMUError
from ..train import Progress
from .pipeline import execute, failure, start

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """Where the tasks go and what each asks for."""

    address: str | None = None  # a running cluster ("auto", "HOST:6379", "ray://HOST:10001"); None: start a local one
    num_cpus: int | None = None  # CPUs (= torch threads) per task; None: TMU_RAY_CPUS_PER_TASK, else this
    # process's torch thread count
    num_gpus: float | None = (
        None  # GPUs per task; None: 1 when the run wants CUDA (device cuda, or auto on a GPU cluster)
    )


def threads_per_task(opts: RayOptions) -> int:
    """The torch threads (and Ray CPUs) of one task. By default this process's own thread count: a task then
    computes exactly what the local executor computes here (float sums depend on how many threads share them),
    and on one machine the tasks run one at a time. Fewer CPUs per task run tasks side by side instead."""
    if opts.num_cpus is None:
        env = os.environ.get("TMU_RAY_CPUS_PER_TASK", "").strip()
        if env:
            return threads_per_task(RayOptions(num_cpus=int(env) if env.isdigit() else -1))
        import torch

        return torch.get_num_threads()
    if int(opts.num_cpus) < 1:
        raise TMUError(
            f"CPUs per Ray task (--ray-cpus-per-task, TMU_RAY_CPUS_PER_TASK) must be a whole number of at "
            f"least 1, not {os.environ.get('TMU_RAY_CPUS_PER_TASK') or opts.num_cpus}"
        )
    return int(opts.num_cpus)


def _execute_task(run_id: str, runs_dir: str, threads: int) -> dict:
    """The body of one Ray task: execute a queued run of the shared run store with `threads` torch threads."""
    import torch

    torch.set_num_threads(threads)
    os.environ["TMU_RUNS_DIR"] = runs_dir
    try:
        run = store.open_run(run_id)
    except TMUError as exc:
        raise TMUError(
            f"{exc} on node {socket.gethostname()}: the Ray executor needs TMU_RUNS_DIR on a filesystem "
            f"shared by every node"
        ) from exc
    return execute(run)


def connect(address: str | None) -> bool:
    """Connect to the cluster at `address`, or start a local instance sized to this machine when it is None.
    Returns True when this call started the connection (the caller then shuts it down). An unreachable
    address is one TMUError line."""
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        probe(address)  # Ray itself retries an unreachable address for minutes
        _use_token_if_any()
    try:  # "local": a new instance even when `ray start` left a cluster running on this machine (plain
        # ray.init() would join that one instead). The workers import tmu_core as this process does: the
        # package is installed (`pip install -e .`) in the Python environment every node runs.
        ray.init(
            address=address or "local",
            include_dashboard=False if address is None else None,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise TMUError(
            f"cannot connect to the Ray cluster at '{address}' ({str(exc).splitlines()[0]}); start one "
            f"with `ray start --head` and pass the address it prints, or leave the address out"
        ) from exc
    return True


CONNECT_TIMEOUT = 10.0  # seconds to reach a Ray cluster's address before giving up


def probe(address: str, timeout: float | None = None) -> None:
    """Raise TMUError in one line unless something accepts connections at `address` ("HOST:PORT" or
    "ray://HOST:PORT") within `timeout` seconds (TMU_RAY_CONNECT_TIMEOUT, default 10). "auto" and other forms
    are left to Ray."""

    m = re.fullmatch(r"(?:ray://)?\[?([^\[\]]+?)\]?:(\d{1,5})", address.strip())
    if not m:
        return
    host, port = m.group(1), int(m.group(2))
    if timeout is None:
        try:
            timeout = float(os.environ.get("TMU_RAY_CONNECT_TIMEOUT") or CONNECT_TIMEOUT)
        except ValueError:
            timeout = CONNECT_TIMEOUT
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or exc.__class__.__name__)
        raise TMUError(
            f"cannot reach the Ray cluster at '{address}' ({why}; waited at most {timeout:g} s): check that "
            f"`ray start --head` runs there and the address is the one it printed, or leave the address "
            f"out for a local Ray instance"
        ) from None


def _use_token_if_any() -> None:
    """Ray (2.52+) starts clusters with token authentication and a token in ~/.ray/auth_token, but a driver
    given an explicit address sends the token only in token mode: turn that mode on (Ray's documented
    RAY_AUTH_MODE=token) when a token is there (RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, or
    ~/.ray/auth_token) and RAY_AUTH_MODE says nothing, as Ray's own `ray.init()` does for the clusters it starts."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_file).is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def _gpus_per_task(cfg: RunConfig, opts: RayOptions) -> float:
    """GPUs one task asks for; a request the cluster can never meet is refused now rather than queued forever."""
    import ray

    have = ray.cluster_resources().get("GPU", 0)
    want = (
        opts.num_gpus
        if opts.num_gpus is not None
        else 1.0
        if cfg.device.startswith("cuda") or (cfg.device == "auto" and have > 0)
        else 0.0
    )
    if want > have:
        raise TMUError(
            f"device {cfg.device} asks for {want:g} GPU per task but the Ray cluster has {have:g}; "
            f"use --device cpu or add GPU nodes"
        )
    return want


def submit(run: store.Run, cfg: RunConfig, opts: RayOptions):
    """Submit one queued run as a Ray task; returns its ObjectRef."""
    import ray

    threads = threads_per_task(opts)
    have = max((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    if threads > have:  # a task runs on one node: more CPUs than the largest node has would wait forever
        raise TMUError(
            f"a task asks for {threads} CPUs but the largest Ray node has {have:g}; pass "
            f"--ray-cpus-per-task (or set TMU_RAY_CPUS_PER_TASK) to {max(1, int(have))} or fewer"
        )
    task = ray.remote(_execute_task).options(
        num_cpus=threads,
        num_gpus=_gpus_per_task(cfg, opts),
        max_retries=1,
        retry_exceptions=False,
        name=f"tmu:{run.id}",
    )
    return task.remote(run.id, str(store.runs_root().resolve()), threads)


def error_text(exc: BaseException) -> str:
    """One line for a task's exception: the run's own error when it raised one, else what Ray says."""
    import ray

    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return "cancelled by the user"
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, TMUError):
            return str(cause)
        if isinstance(cause, KeyboardInterrupt):
            return "cancelled by the user"
        return f"unexpected {cause.__class__.__name__}: {cause}" if cause is not None else str(exc).splitlines()[0]
    if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
        return f"the Ray worker was lost twice (retried once): {exc.__class__.__name__}"
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def cancel_all(runs: list, refs: list) -> None:
    """Stop queued and running tasks: every unfinished run is flagged (it ends as 'cancelled' at its next
    progress report, or at once when it starts) and its Ray task cancelled; what still reads as queued,
    running or interrupted afterwards is marked cancelled."""
    import ray

    for run in runs:
        if run is not None and run.status().get("state") in ("queued", "running"):
            run.request_cancel()
    for ref in refs:
        if ref is not None:
            ray.cancel(ref, force=False)
    pending = [r for r in refs if r is not None]
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
    for run in runs:
        if run is not None and run.status().get("state") in ("queued", "running", "interrupted"):
            run.set_status(state="cancelled", error="cancelled by the user")


def run_on_ray(
    configs: list[RunConfig],
    progress=None,
    on_result=None,
    options: RayOptions | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict]:
    """The Ray executor of a sweep: results in the configs' order; a run that failed is a `failure` dict.

    `should_stop()` is asked every half second; True (or Ctrl-C) cancels every task not yet finished.
    """
    import ray

    opts = options or RayOptions()
    started = connect(opts.address)
    try:
        runs, results = [], []
        for cfg in configs:
            try:
                runs.append(start(cfg))
                results.append(None)
            except TMUError as exc:
                runs.append(None)
                results.append(failure(None, cfg, str(exc)))
        run_started(runs, configs, results, opts, progress, on_result, should_stop)
    finally:
        if started:
            ray.shutdown()
    return results


def run_started(
    runs: list,
    configs: list[RunConfig],
    results: list,
    opts: RayOptions,
    progress=None,
    on_result=None,
    should_stop=None,
) -> None:
    """Submit the queued `runs` (None where `results` already holds a failure) and fill `results` in place."""
    refs: list = [None] * len(runs)
    try:
        for i, run in enumerate(runs):
            if run is not None:
                try:
                    refs[i] = submit(run, configs[i], opts)
                except TMUError as exc:
                    results[i] = failure(run, configs[i], str(exc))
                    run.set_status(state="failed", error=str(exc))
        _collect(configs, runs, refs, results, progress, on_result, should_stop)
    except KeyboardInterrupt:
        cancel_all(runs, refs)
        raise


def _collect(configs, runs, refs, results, progress, on_result, should_stop) -> None:
    """Wait for the tasks, filling `results` as they finish; cancel the rest when asked to stop."""
    import ray

    index = {ref: i for i, ref in enumerate(refs) if ref is not None}
    pending = list(index)
    while pending:
        if should_stop and should_stop():
            cancel_all(runs, refs)
            for i, cfg in enumerate(configs):
                if results[i] is None:
                    results[i] = failure(runs[i], cfg, "cancelled by the user")
            return
        done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
        for ref in done:
            i = index[ref]
            try:
                results[i] = ray.get(ref)
            except Exception as exc:  # the task's own error comes back wrapped by Ray
                results[i] = failure(runs[i], configs[i], error_text(exc))
                log.warning("run %s failed: %s", runs[i].id, results[i]["error"])
            finished = [r for r in results if r is not None]
            if progress:
                progress(Progress("sweep", len(finished) / len(configs), f"{runs[i].id} finished"))
            if on_result:
                on_result(finished)


def run_one(run_id: str, address: str) -> int:
    """Execute one queued run (made by the dashboard) on the cluster at `address` and wait for it.

    This process is the run's driver on the dashboard host: a stop signal cancels the task, and a task
    that fails without saying so in status.json (a lost worker, twice) is marked failed here.
    """
    import ray

    run = store.open_run(run_id)
    cfg = _config_of(run)
    try:
        connect(address)
        ref = submit(run, cfg, RayOptions(address=address))
    except TMUError as exc:
        run.set_status(state="failed", error=str(exc))
        raise
    try:
        ray.get(ref)
    except KeyboardInterrupt:
        cancel_all([run], [ref])
        return 130
    except Exception as exc:
        if run.status().get("state") in ("queued", "running", "interrupted"):
            run.set_status(state="failed", error=error_text(exc))
        print(f"error: {error_text(exc)}", file=sys.stderr)
        return 1
    return 0


def _config_of(run: store.Run) -> RunConfig:

    return run_config_from_dict(run.config())


def worker_main(argv: list[str]) -> int:
    """`python -m tmu_core _worker-ray RUN_ID ADDRESS`: the background driver of a dashboard run (jobs.launch);
    logging, signals and exit codes are tmu_core.entry's."""
    if len(argv) != 2:
        raise TMUError("usage: tmu _worker-ray RUN_ID ADDRESS")
    return run_one(argv[0], argv[1])
