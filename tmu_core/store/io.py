"""Atomic writes and safe reads for the run store.

Every write goes to a temp file in the same folder and is moved over the target with `os.replace`, so a
killed process never leaves a half-written file a reader would trust, and a link planted at the target
is replaced, never followed. Weights load with `weights_only=True`: a pickle that would run code is refused.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import TMUError


def ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TMUError(f"cannot create {path}: {exc.strerror}; set TMU_RUNS_DIR to a writable folder") from exc

def atomic_write_bytes(path: Path, data: bytes) -> None:
    ensure_dir(path.parent)
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
    except OSError as exc:  # a full disk, a quota: the old file stays as it was
        Path(tmp).unlink(missing_ok=True)
        raise TMUError(f"cannot write {path.name} in {path.parent}: {exc.strerror or exc}; free some space "
                       f"or set TMU_RUNS_DIR to another folder") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise TMUError(f"{path} is damaged (not valid JSON)") from exc
    except OSError as exc:  # a folder, a fifo or an unreadable file where the JSON file should be
        raise TMUError(f"{path} is damaged (cannot be read: {exc.strerror or exc.__class__.__name__})") from exc


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


