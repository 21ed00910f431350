"""2-D UMAP maps of a run's penultimate activations (embeddings.npz), one per model, cached in the run.

The pipeline stores the penultimate activations of the original, gold and TMU models for D_f, D_a and a
sample of D_r; this module maps one model's activations to 2-D with umap-learn (McInnes et al. 2018),
seeded with the run's seed (umap-learn is then single-threaded and reproducible). A map is computed
once per (run, model) and kept as umap-<model>.npz. The first fit in a process takes 10-30 s on a CPU
while numba compiles UMAP's kernels (and, above 4096 points, pynndescent's), so the dashboard runs
`python -m tmu_core _worker-embedding <run_id> <model>` in the background (jobs.launch) and follows
umap-<model>.json; that worker process keeps the compiled kernels on disk (`use_compiled_code_cache`).
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
from .launch import spawn

log = logging.getLogger(__name__)

N_NEIGHBORS = 15
REFERENCE = "original"  # the map the others start from and are aligned to
MIN_DIST = 0.1


def use_compiled_code_cache() -> None:
    """Make numba keep every UMAP kernel it compiles on disk (in the run store), not only the few that umap-learn
    and pynndescent mark `cache=True`: a fresh process then loads them instead of compiling for 30 s or more.

    numba has no setting for "cache by default", so this replaces `numba.njit` / `numba.jit` with versions
    that default to cache=True, for the whole process: only the UMAP worker (`worker_main`), a process of its
    own, calls it; an import of this module changes nothing. Must run before umap is imported (its kernels are
    compiled with the options of that moment). A kernel numba cannot cache (it says so in a warning) is
    compiled as before.
    """
    if "umap" in sys.modules or getattr(use_compiled_code_cache, "done", False):
        return
    import numba

    numba.config.CACHE_DIR = str(store.compiled_code_dir())
    for name in ("njit", "jit"):
        original = getattr(numba, name)

        def caching(*args, _original=original, **kwargs):
            kwargs.setdefault("cache", True)
            return _original(*args, **kwargs)

        setattr(numba, name, caching)
    use_compiled_code_cache.done = True


def fit_map(emb: np.ndarray, seed: int, init: np.ndarray | None = None) -> np.ndarray:
    """2-D UMAP coordinates (N, 2) of activations `emb` (N, D), seeded (single-threaded, reproducible).

    init: a start layout (N, 2), e.g. the original model's map, so another model's map keeps its clusters
    where the original had them (default: UMAP's spectral start)."""
    emb = np.asarray(emb, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": seeded runs are serial
        import umap

        reducer = umap.UMAP(
            n_neighbors=min(N_NEIGHBORS, len(emb) - 1),
            min_dist=MIN_DIST,
            random_state=seed,
            init="spectral" if init is None else np.asarray(init, dtype=np.float64),
        )
        return reducer.fit_transform(emb).astype(np.float32)


def compute(run: store.Run, model: str) -> dict[str, np.ndarray]:
    """Fit UMAP on one model's activations and store the map.

    Returns: ids (N,), role (N,) in remain/forget/aux, label (N,) class index, xy (N, 2) float32.
    """
    if run.status().get("state") != "complete":
        raise TMUError(f"run {run.id} is not complete; its embeddings are not ready")
    arrays = run.embeddings()
    key = f"emb_{model}"
    if key not in arrays:
        raise TMUError(
            f"run {run.id} has no activations of model '{model}'; valid: {', '.join(run.embedding_models())}"
        )
    seed = int(run.config().get("seed", 0))
    emb = arrays[key]
    # Started from the original's map when it is stored: the maps of one run then share their layout.
    reference = run.umap_map(REFERENCE) if model != REFERENCE else None
    init = reference["xy"] if reference is not None and len(reference["xy"]) == len(emb) else None
    t0 = time.perf_counter()
    xy = fit_map(emb, seed, init)
    log.info("UMAP of %s (%d points) in %.1f s", model, len(emb), time.perf_counter() - t0)
    out = {"ids": arrays["ids"], "role": arrays["role"], "label": arrays["label"], "xy": xy}
    run.save_umap_map(model, **out)
    return out


def align(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """`moving` (N, 2) rotated (or mirrored), scaled and shifted onto `reference` (N, 2), rows being the same
    samples: orthogonal Procrustes, so maps of different models share one frame and can sit side by side.
    UMAP's axes mean nothing; only distances do, and this keeps them (up to one common scale)."""
    ref, mov = np.asarray(reference, np.float64), np.asarray(moving, np.float64)
    ref_c, mov_c = ref - ref.mean(0), mov - mov.mean(0)
    u, _, vt = np.linalg.svd(mov_c.T @ ref_c)
    rotation = u @ vt
    # the same spread as the reference (the least-squares scale would shrink a map that fits it badly)
    scale = np.sqrt((ref_c**2).sum() / max((mov_c**2).sum(), 1e-12))
    return (scale * mov_c @ rotation + ref.mean(0)).astype(np.float32)


def aligned(maps: dict[str, dict]) -> dict[str, dict]:
    """The stored maps of several models, each aligned onto the first one's frame (see `align`)."""
    names = list(maps)
    if not names:
        return {}
    ref = maps[names[0]]["xy"]
    return {n: {**m, "xy": m["xy"] if i == 0 else align(ref, m["xy"])} for i, (n, m) in enumerate(maps.items())}


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


def start(run: store.Run, model: str | list[str]) -> int:
    """Compute the map of `model` (or of several, one after another in one process, so numba's kernels are
    loaded once) in a background process; returns its pid."""

    models = [model] if isinstance(model, str) else list(model)
    for m in models:
        if m not in run.embedding_models():
            raise TMUError(
                f"run {run.id} has no activations of model '{m}'; valid: {', '.join(run.embedding_models())}"
            )
    proc = spawn(["_worker-embedding", run.id, *models], run.log_path(run.umap_log_name(models[0])))
    for m in models:
        run.set_umap_job(m, state="running", pid=proc.pid, started=time.time())
    return proc.pid


def warm() -> int | None:
    """Compile UMAP's kernels into the run store's cache in a background process, unless they are there; the
    dashboard calls it once at start, so the first map a user asks for loads them (pid, or None: nothing to do).
    TMU_NO_WARMUP=1 turns it off (the test suite, which shares two cores)."""

    if os.environ.get("TMU_NO_WARMUP") == "1" or store.compiled_code_ready():
        return None
    return spawn(["_worker-embedding", "--warm"], store.compiled_code_log()).pid


def _warm_fit() -> int:
    """Maps of 1200 synthetic 256-d points (the digits demo's size), from UMAP's own start and from a given
    one (as gold's and TMU's maps start from the original's): compiles, and caches, the kernels of both."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (10, 256))
    emb = np.concatenate([c + rng.normal(0, 1, (120, 256)) for c in centres])
    fit_map(emb, 0, fit_map(emb, 0))
    return 0


def worker_main(argv: list[str]) -> int:
    """`python -m tmu_core _worker-embedding <run_id> <model> [<model> ...]` (or `--warm`): compute the maps,
    recording each job's outcome; logging, signals and exit codes are tmu_core.entry's."""
    if argv == ["--warm"]:
        use_compiled_code_cache()
        return _warm_fit()
    if len(argv) < 2:
        raise TMUError("usage: tmu _worker-embedding <run_id> <model> [<model> ...] (or --warm)")
    run_id, models = argv[0], argv[1:]
    run = store.open_run(run_id)
    for model in models:
        store.check_run_id(model)
    use_compiled_code_cache()  # only once the job is valid: a refused call changes nothing in its process
    codes = [_compute_one(run, model) for model in sorted(models, key=lambda m: m != REFERENCE)]
    return max(codes)


def _compute_one(run: store.Run, model: str) -> int:
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
