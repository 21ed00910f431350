"""2-D UMAP maps of a run's penultimate activations (embeddings.npz), one per model, cached in the run.

The pipeline stores the penultimate activations of the original, gold and TMU models for D_f, D_a and a
sample of D_r; this module maps one model's activations to 2-D with umap-learn (McInnes et al. 2018),
seeded with the run's seed (umap-learn is then single-threaded and reproducible). A map is computed
once per (run, model) and kept as umap-<model>.npz. The first fit in a process takes 10-30 s on a CPU
while numba compiles UMAP's kernels (and, above 4096 points, pynndescent's), so the dashboard runs
`python -m tmu_core.jobs.embedding <run_id> <model>` in the background (jobs.launch) and follows
umap-<model>.json.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings

import numpy as np

from .. import store
from ..errors import TMUError

log = logging.getLogger(__name__)

N_NEIGHBORS = 15
MIN_DIST = 0.1


def _cache_compiled_code() -> None:
    """Make numba keep every UMAP kernel it compiles on disk (in the run store), not only the few that umap-learn
    and pynndescent mark `cache=True`: a fresh process then loads them instead of compiling for 30 s or more.

    Must run before umap is imported (its kernels are compiled with the options of that moment). A kernel numba
    cannot cache (it says so in a warning) is compiled as before.
    """
    if "umap" in sys.modules or getattr(_cache_compiled_code, "done", False):
        return
    import numba

    numba.config.CACHE_DIR = str(store.compiled_code_dir())
    for name in ("njit", "jit"):
        original = getattr(numba, name)

        def caching(*args, _original=original, **kwargs):
            kwargs.setdefault("cache", True)
            return _original(*args, **kwargs)

        setattr(numba, name, caching)
    _cache_compiled_code.done = True


def fit_map(emb: np.ndarray, seed: int) -> np.ndarray:
    """2-D UMAP coordinates (N, 2) of activations `emb` (N, D), seeded (single-threaded, reproducible)."""
    emb = np.asarray(emb, dtype=np.float32)
    _cache_compiled_code()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": seeded runs are serial
        import umap

        reducer = umap.UMAP(n_neighbors=min(N_NEIGHBORS, len(emb) - 1), min_dist=MIN_DIST, random_state=seed)
        return reducer.fit_transform(emb).astype(np.float32)


def models_in(run: store.Run) -> list[str]:
    """Models whose activations the run stored (e.g. original, gold, tmu)."""
    return run.embedding_models()


def compute(run: store.Run, model: str) -> dict[str, np.ndarray]:
    """Fit UMAP on one model's activations and store the map.

    Returns: ids (N,), role (N,) in remain/forget/aux, label (N,) class index, xy (N, 2) float32.
    """
    if run.status().get("state") != "complete":
        raise TMUError(f"run {run.id} is not complete; its embeddings are not ready")
    arrays = run.embeddings()
    key = f"emb_{model}"
    if key not in arrays:
        raise TMUError(f"run {run.id} has no activations of model '{model}'; valid: {', '.join(models_in(run))}")
    seed = int(run.config().get("seed", 0))
    emb = arrays[key]
    t0 = time.perf_counter()
    xy = fit_map(emb, seed)
    log.info("UMAP of %s (%d points) in %.1f s", model, len(emb), time.perf_counter() - t0)
    out = {"ids": arrays["ids"], "role": arrays["role"], "label": arrays["label"], "xy": xy}
    run.save_umap_map(model, **out)
    return out


def load(run: store.Run, model: str) -> dict[str, np.ndarray] | None:
    """The stored map of `model`, or None when it has not been computed (or the file is unreadable)."""
    return run.umap_map(model)


def job_status(run: store.Run, model: str) -> dict:
    """State of the background job for `model`: none, running, complete or failed (with its error)."""
    if run.umap_map(model) is not None:
        return {"state": "complete"}
    job = run.umap_job(model)
    if job is None:
        return {"state": "none"}
    if job.get("state") == "running" and not store.pid_alive(job.get("pid")):
        return {"state": "failed", "error": "the UMAP process stopped before it finished"}
    return job


def start(run: store.Run, model: str) -> int:
    """Compute the map of `model` in a background process; returns its pid."""
    from .launch import spawn

    if model not in models_in(run):
        raise TMUError(f"run {run.id} has no activations of model '{model}'; valid: {', '.join(models_in(run))}")
    proc = spawn(["tmu_core.jobs.embedding", run.id, model], run.log_path(run.umap_log_name(model)))
    run.set_umap_job(model, state="running", pid=proc.pid, started=time.time())
    return proc.pid


def main(argv: list[str]) -> int:
    """`python -m tmu_core.jobs.embedding <run_id> <model>`: compute one map, recording the job's outcome."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if len(argv) != 2:
        print("usage: python -m tmu_core.jobs.embedding <run_id> <model>", file=sys.stderr)
        return 2
    run_id, model = argv
    try:
        run = store.open_run(run_id)
        store.check_run_id(model)
    except TMUError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run.set_umap_job(model, state="running", pid=os.getpid(), started=time.time())
    try:
        compute(run, model)
    except TMUError as exc:
        print(f"error: {exc}", file=sys.stderr)
        run.set_umap_job(model, state="failed", error=str(exc))
        return 2
    except Exception as exc:  # a bug: one line for the page, the traceback in the log
        log.exception("UMAP failed")
        run.set_umap_job(model, state="failed", error=f"unexpected {exc.__class__.__name__}: {exc}")
        return 1
    run.set_umap_job(model, state="complete")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
