"""The run store: the one module that knows where files go.

    <TMU_RUNS_DIR or ./runs>/
      <run_id>/config.json status.json metrics.json samples.csv embeddings.npz weights/<model>.pt
      _cache/models/<hash>.pt   original and gold models keyed by a hash of what made them
      _cache/data/<key>.npz     decoded image folders
Writes are atomic (temp file + os.replace), so a killed process never leaves a half-written file that a
reader would trust; readers trust a run's results only when its status says complete. Weights are state
dicts loaded with `weights_only=True`.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
import re
import secrets
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TMUError

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STATES = ("queued", "running", "complete", "failed", "cancelled", "interrupted")


def runs_root() -> Path:
    return Path(os.environ.get("TMU_RUNS_DIR") or "runs")


def default_data_root(dataset: str) -> Path:
    return Path(os.environ.get("TMU_DATA_DIR") or "data") / dataset


def cache_dir(kind: str) -> Path:
    path = runs_root() / "_cache" / kind
    _mkdir(path)
    return path


def data_cache_file(key: str) -> Path:
    return cache_dir("data") / f"{key}.npz"


def model_cache_file(key: str) -> Path:
    return cache_dir("models") / f"{key}.pt"


@contextmanager
def model_lock(key: str):
    """Hold a file lock while a cached model is built, so concurrent runs build it once."""
    from filelock import FileLock

    with FileLock(str(cache_dir("models") / f"{key}.lock")):
        yield


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TMUError(f"cannot create {path}: {exc.strerror}; set TMU_RUNS_DIR to a writable folder") from exc


# ---------------------------------------------------------------- atomic writes and safe reads
def atomic_write_bytes(path: Path, data: bytes) -> None:
    _mkdir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TMUError(f"cannot write in {path.parent}: {exc.strerror}; set TMU_RUNS_DIR to a writable folder") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=_json_default).encode())


def atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def save_state(path: Path, state_dict: dict) -> None:
    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path) -> dict:
    """Load a state dict; anything that is not plain tensors (a pickle that runs code) is refused."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise TMUError(f"weights file {path} is missing") from exc
    except Exception as exc:
        raise TMUError(f"weights file {path} is damaged or not a plain state dict "
                       f"({exc.__class__.__name__}); it was not loaded") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TMUError(f"weights file {path} does not hold a state dict of tensors; it was not loaded")
    return state


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise TMUError(f"{path.name} is missing in {path.parent}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TMUError(f"{path} is damaged (not valid JSON)") from exc


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed child not yet reaped) is not running
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _pid_start(pid) -> int | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None where unknown. Stored next
    to a run's pid, it tells the run's process from a later one that was given the same id."""
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError, TypeError):
        return None


def _run_process_alive(st: dict) -> bool:
    if not pid_alive(st.get("pid")):
        return False
    recorded = st.get("pid_start")
    return recorded is None or _pid_start(st["pid"]) in (None, recorded)


# ---------------------------------------------------------------- runs
def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.match(run_id) or ".." in run_id:
        raise TMUError(f"'{run_id}' is not a valid run id: use letters, digits, '.', '_' and '-' "
                       f"(no '/', no '..', at most 128 characters)")
    return run_id


class Run:
    """One run folder. Construct with `Run.create` or `open_run`."""

    FILES = ("config.json", "status.json", "metrics.json", "samples.csv", "embeddings.npz")

    def __init__(self, run_id: str, root: Path | None = None):
        self.id = check_run_id(run_id)
        self.root = Path(root) if root is not None else runs_root()
        self.dir = self.root / self.id

    # --- creation
    @classmethod
    def create(cls, hint: str, config: dict, root: Path | None = None) -> "Run":
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", hint).strip("-.")[:60] or "run"
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run = cls(f"{slug}-{stamp}-{secrets.token_hex(2)}", root)
        _mkdir(run.root)
        try:
            run.dir.mkdir()
        except FileExistsError:
            return cls.create(hint, config, root)
        except OSError as exc:
            raise TMUError(f"cannot create a run in {run.root}: {exc.strerror}; set TMU_RUNS_DIR to a writable folder") from exc
        run.write_json("config.json", config)
        run.set_status(state="queued", stage="queued", progress=0.0)
        return run

    # --- files
    def path(self, name: str) -> Path:
        return self.dir / name

    def write_json(self, name: str, obj) -> None:
        atomic_write_json(self.dir / name, obj)

    def read_json(self, name: str):
        return read_json(self.dir / name)

    def exists(self, name: str) -> bool:
        return (self.dir / name).exists()

    def weights_path(self, model: str) -> Path:
        return self.dir / "weights" / f"{check_run_id(model)}.pt"

    def save_weights(self, model: str, state_dict: dict) -> None:
        save_state(self.weights_path(model), state_dict)

    def load_weights(self, model: str) -> dict:
        return load_state(self.weights_path(model))

    def save_table(self, df, name: str = "samples.csv") -> None:
        atomic_write_bytes(self.dir / name, df.to_csv(index=False).encode())

    def load_table(self, name: str = "samples.csv"):
        import pandas as pd

        try:
            return pd.read_csv(self.dir / name)
        except FileNotFoundError as exc:
            raise TMUError(f"{name} is missing in run {self.id}") from exc
        except Exception as exc:
            raise TMUError(f"{name} in run {self.id} is damaged ({exc.__class__.__name__})") from exc

    def save_arrays(self, name: str, **arrays) -> None:
        atomic_savez(self.dir / name, **arrays)

    def load_arrays(self, name: str = "embeddings.npz") -> dict[str, np.ndarray]:
        try:
            with np.load(self.dir / name, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except FileNotFoundError as exc:
            raise TMUError(f"{name} is missing in run {self.id}") from exc
        except Exception as exc:
            raise TMUError(f"{name} in run {self.id} is damaged ({exc.__class__.__name__})") from exc

    # --- status
    def status(self) -> dict:
        """The run's status; a 'running' run whose process has died reads as 'interrupted'."""
        try:
            st = read_json(self.dir / "status.json")
        except TMUError as exc:
            return {"state": "damaged", "stage": "", "progress": 0.0, "error": str(exc)}
        if not isinstance(st, dict) or st.get("state") not in STATES:
            return {"state": "damaged", "stage": "", "progress": 0.0,
                    "error": f"status.json in run {self.id} is damaged (no valid state)"}
        if st.get("state") in ("running", "queued") and "pid" in st and not _run_process_alive(st):
            st["state"] = "interrupted"
            st.setdefault("error", None)
            st["error"] = st["error"] or f"the process stopped during '{st.get('stage')}'"
        return st

    def set_status(self, **changes) -> dict:
        try:
            st = read_json(self.dir / "status.json")
        except TMUError:
            st = {}
        st = st if isinstance(st, dict) else {}
        if "pid" in changes and "pid_start" not in changes:
            changes = {**changes, "pid_start": _pid_start(changes["pid"])}
        st.update(changes)
        st["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
        self.write_json("status.json", st)
        return st

    def request_cancel(self) -> None:
        atomic_write_bytes(self.dir / "cancel", b"1")

    def cancel_requested(self) -> bool:
        return (self.dir / "cancel").exists()

    def clear_cancel(self) -> None:
        (self.dir / "cancel").unlink(missing_ok=True)

    def damage(self) -> str | None:
        """Why a complete run's results cannot be trusted (unreadable metrics or weights), or None."""
        try:
            metrics = self.read_json("metrics.json")
        except TMUError as exc:
            return str(exc)
        if not isinstance(metrics, dict):
            return f"metrics.json in run {self.id} is damaged (not a JSON object)"
        for w in sorted((self.dir / "weights").glob("*.pt")):
            if not zipfile.is_zipfile(w):  # torch.save writes a zip; a truncated or foreign file is not one
                return f"weights file {w.name} in run {self.id} is damaged"
        return None


def _inside_root(run: Run) -> bool:
    """False for a run folder that is a link leading out of the runs directory."""
    try:
        return run.dir.resolve().parent == run.root.resolve()
    except OSError:
        return False


def open_run(run_id: str, root: Path | None = None) -> Run:
    run = Run(run_id, root)
    if not run.dir.is_dir():
        raise TMUError(f"no run '{run_id}' in {run.root}")
    if not _inside_root(run):
        raise TMUError(f"run '{run_id}' leads outside {run.root}; it was not opened")
    return run


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    state: str
    stage: str
    progress: float
    error: str | None
    updated: str
    config: dict | None


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """All runs, newest first. A damaged run is listed as 'damaged' with its reason; others still show."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if not d.is_dir() or d.name.startswith(("_", ".")) or not RUN_ID.match(d.name):
            continue
        run = Run(d.name, root)
        if not _inside_root(run):
            continue
        st = run.status()
        try:
            cfg = run.read_json("config.json")
            if not isinstance(cfg, dict):
                raise TMUError(f"config.json in run {run.id} is damaged (not a JSON object)")
        except TMUError as exc:
            cfg, st = None, {**st, "state": "damaged", "error": str(exc)}
        if st.get("state") == "complete":
            why = run.damage()
            if why:
                st = {**st, "state": "damaged", "error": why}
        progress = st.get("progress", 0.0)
        progress = float(progress) if isinstance(progress, (int, float)) else 0.0
        out.append(RunInfo(d.name, st.get("state", "damaged"), str(st.get("stage", "")), progress,
                           st.get("error"), str(st.get("updated", "")), cfg))
    return sorted(out, key=lambda r: (r.updated, r.run_id), reverse=True)


# ---------------------------------------------------------------- sweeps (one forget class after another)
def sweeps_root(root: Path | None = None) -> Path:
    return (Path(root) if root is not None else runs_root()) / "_sweeps"


def sweep_dir(sweep_id: str, root: Path | None = None) -> Path:
    return sweeps_root(root) / check_run_id(sweep_id)


def list_sweeps(root: Path | None = None) -> list[str]:
    """Sweep ids with a results file, newest first."""
    base = sweeps_root(root)
    if not base.is_dir():
        return []
    found = [d for d in base.iterdir() if d.is_dir() and RUN_ID.match(d.name) and (d / "results.json").exists()]
    return [d.name for d in sorted(found, key=lambda d: d.stat().st_mtime, reverse=True)]
