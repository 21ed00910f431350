"""Where every file of the run store lives: the one place that spells out folder and file names.

<TMU_RUNS_DIR or ./runs>/
  <run_id>/config.json status.json metrics.json samples.csv embeddings.npz run.log error.log cancel execute.lock
           audit.csv inputs.json weights/unlearned.pt (a run on the user's own model; inputs.json: its inputs' digests)
           weights/<model>.pt   umap-<model>.npz / .json / .log (the Embeddings page's maps)
  _cache/models/<hash>.pt .json .lock   original and gold models keyed by a hash of what made them
  _cache/data/<key>.npz                 decoded image folders
  _cache/uploads/<hash>-<name>          files uploaded on the dashboard (your model's weights, forget list)
  _sweeps/<sweep_id>/claimed results.json tables.md <table>.csv sweep.log
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .io import ensure_dir, read_json
from .schema import check_model_meta

CONFIG, STATUS, METRICS, SAMPLES, EMBEDDINGS = (
    "config.json",
    "status.json",
    "metrics.json",
    "samples.csv",
    "embeddings.npz",
)
RUN_LOG, ERROR_LOG, CANCEL = "run.log", "error.log", "cancel"
EXECUTE_LOCK = "execute.lock"  # held by the one process that executes the run
SWEEP_RESULTS, SWEEP_TABLES, SWEEP_LOG = "results.json", "tables.md", "sweep.log"
SWEEP_CLAIM = "claimed"  # created exclusively by the one sweep process that writes the folder
AUDIT = "audit.csv"  # a run on the user's own model: one row per forgotten file (tmu_core.ownmodel)
UNLEARNED = "unlearned"  # ... and its unlearned model, weights/unlearned.<ext> in the input's format


def runs_root() -> Path:
    return Path(os.environ.get("TMU_RUNS_DIR") or "runs")


def default_data_root(dataset: str) -> Path:
    return Path(os.environ.get("TMU_DATA_DIR") or "data") / dataset


def cache_dir(kind: str) -> Path:
    path = runs_root() / "_cache" / kind
    ensure_dir(path)
    return path


def data_cache_file(key: str) -> Path:
    return cache_dir("data") / f"{key}.npz"


def upload_file(data: bytes, name: str) -> Path:
    """Where a file uploaded on the dashboard (the user's weights or forget list) is kept: named by its content."""

    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name)[-60:].lstrip(".-") or "upload"
    return cache_dir("uploads") / f"{hashlib.sha256(data).hexdigest()[:16]}-{safe}"


def model_cache_file(key: str) -> Path:
    return cache_dir("models") / f"{key}.pt"


def model_meta_file(key: str) -> Path:
    return cache_dir("models") / f"{key}.json"


def read_model_meta(key: str) -> dict:
    """A cached model's metadata, checked in shape (TMUError when damaged: the model is then retrained)."""

    path = model_meta_file(key)
    return check_model_meta(read_json(path), f"cached model metadata {path.name}")


def model_lock_file(key: str) -> Path:
    return cache_dir("models") / f"{key}.lock"


def sweeps_root(root: Path | None = None) -> Path:
    return (Path(root) if root is not None else runs_root()) / "_sweeps"


def umap_files(model: str) -> tuple[str, str, str]:
    """The map, job-state and log file names of one model's UMAP map inside a run folder."""
    return f"umap-{model}.npz", f"umap-{model}.json", f"umap-{model}.log"


def compiled_code_dir() -> Path:
    """Where numba keeps the machine code it compiles for UMAP, so a fresh process loads it instead of
    compiling again (minutes on a busy CPU)."""
    return cache_dir("numba")


def compiled_code_ready() -> bool:
    """Whether numba has cached UMAP's compiled code in this run store (an index file per kernel)."""
    return any(compiled_code_dir().rglob("*.nbi"))


def compiled_code_log() -> Path:
    return compiled_code_dir() / "warm.log"
