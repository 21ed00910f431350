"""Atomic writes and safe reads for the run store.

Every write goes to a temp file in the same folder and is moved over the target with `os.replace`, so a
killed process never leaves a half-written file a reader would trust, and a link planted at the target
is replaced, never followed. Weights load with `weights_only=True`: a pickle that would run code is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
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
    except IsADirectoryError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise TMUError(f"cannot write {path.name} in {path.parent}: a folder is in its place; remove it") from exc
    except OSError as exc:  # a full disk, a quota: the old file stays as it was
        Path(tmp).unlink(missing_ok=True)
        raise TMUError(
            f"cannot write {path.name} in {path.parent}: {exc.strerror or exc}; free some space "
            f"or set TMU_RUNS_DIR to another folder"
        ) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json_text(obj).encode())


SIGNIFICANT = 6  # digits a stored measurement keeps: float32 arithmetic leaves noise in the 7th (69.9999988, 9.999996)
EXACT_FROM = 1e6  # a number this large (a Unix time) keeps every digit: its last ones are not noise


def json_ready(obj):
    """`obj` as strict JSON holds it: NaN and infinities as null (JSON has no NaN), floats rounded to
    SIGNIFICANT digits (70.0, not 69.9999988), NumPy numbers and arrays as Python ones, paths as text."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if not np.isfinite(x):
            return None
        return x if abs(x) >= EXACT_FROM else float(f"{x:.{SIGNIFICANT}g}")
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def json_text(obj, indent: int = 2) -> str:
    """Strict JSON (`json_ready`): every file the project writes, and the CLI's --json output."""
    return json.dumps(json_ready(obj), indent=indent, allow_nan=False, default=_json_default)


def atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), =cmd|...); OWASP's
# "CSV injection" advice: prefix such a cell with a quote, so it reads as the text it is. Numbers (-3.5) are
# left as they are: a spreadsheet reads them as numbers, not formulas.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def safe_cell(value):
    """`value` as a CSV cell no spreadsheet runs: text starting with = + - @ tab or CR gets a ' prefix."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(df) -> str:
    """A DataFrame as CSV text (no index) with every text cell and column name made safe (`safe_cell`): the one
    way the project writes or offers a CSV."""
    from pandas.api.types import is_numeric_dtype

    out = df.rename(columns=lambda c: safe_cell(str(c)))
    for col in out.columns:
        if not is_numeric_dtype(out[col]):  # text, categories, mixed objects: numbers and booleans are safe as written
            out[col] = out[col].astype(object).map(safe_cell)
    # pandas leaves a lone CR unquoted, which a reader takes as a line break: the text after it would start a row
    # of its own, unescaped. Quoting every text cell then keeps each cell whole.
    has_cr = any(isinstance(v, str) and "\r" in v for col in out.columns for v in out[col].tolist())
    return out.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL)


def write_csv(path: Path, df) -> None:
    """`csv_text(df)` written atomically."""
    atomic_write_bytes(Path(path), csv_text(df).encode())


def save_state(path: Path, state_dict: dict) -> None:
    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


# The most any stored file may hold (bytes; arrays: once decompressed). A file over its limit is damage, and
# it is refused before it is read, so a small crafted file cannot take the memory of a huge one.
JSON_LIMIT = 64 << 20
TABLE_LIMIT = 256 << 20
ARRAYS_LIMIT = 512 << 20
WEIGHTS_LIMIT = 1 << 30
TEXT_TAIL = 64 << 10  # a log's tail: the last 64 KiB


def open_regular(path: Path, limit: int):
    """Open `path` for reading only if it is a regular file of at most `limit` bytes (a binary file object).

    O_NONBLOCK: a FIFO planted in place of a file would block a plain open() until a writer comes, forever;
    a FIFO, a device, a folder or a socket is refused without being read. FileNotFoundError passes through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TMUError(f"{path} is damaged (not a regular file)")
        if st.st_size > limit:
            raise TMUError(f"{path} is damaged (it holds {st.st_size} bytes; at most {limit} are read)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (TMUError otherwise; FileNotFoundError passes)."""
    with open_regular(path, limit) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew while being read
        raise TMUError(f"{path} is damaged (more than {limit} bytes)")
    return data


def read_tail(path: Path, limit: int = TEXT_TAIL) -> str:
    """The last `limit` bytes of a regular text file, decoded ('' when it cannot be read: a log is optional)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ""
        os.lseek(fd, max(0, st.st_size - limit), os.SEEK_SET)
        return os.read(fd, limit).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def load_arrays(path: Path, limit: int | None = None, what: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, refused (TMUError) when any is not a plain array or all together would
    take more than `limit` bytes once decompressed: sizes are read from each array's header first, so
    3 GB of compressed zeros in a 3 MB file is never allocated. FileNotFoundError passes through."""
    import zipfile

    what, limit = what or str(path), limit or ARRAYS_LIMIT
    fmt = np.lib.format
    with open_regular(path, limit) as fh:
        try:
            with zipfile.ZipFile(fh) as zf:
                total = 0
                for info in zf.infolist():
                    total += info.file_size
                    if total <= limit:
                        with zf.open(info) as member:
                            version = fmt.read_magic(member)
                            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                            shape, _, dtype = read(member)
                        if dtype.hasobject:
                            raise TMUError(f"{what} is damaged (an array of Python objects)")
                        total += max(0, int(np.prod(shape, dtype=object)) * dtype.itemsize - info.file_size)
                    if total > limit:
                        raise TMUError(f"{what} is damaged (its arrays would take over {limit >> 20} MB)")
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except TMUError:
            raise
        except Exception as exc:
            raise TMUError(f"{what} is damaged ({exc.__class__.__name__})") from exc


def load_state(path: Path) -> dict:
    """Load a state dict; anything that is not plain tensors (a pickle that runs code) is refused."""
    import torch

    try:
        with open_regular(path, WEIGHTS_LIMIT) as fh:
            state = torch.load(fh, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise TMUError(f"weights file {path} is missing") from exc
    except TMUError:
        raise
    except Exception as exc:
        raise TMUError(
            f"weights file {path} is damaged or not a plain state dict ({exc.__class__.__name__}); it was not loaded"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TMUError(f"weights file {path} does not hold a state dict of tensors; it was not loaded")
    return state


def read_json(path: Path, limit: int | None = None):
    """A JSON file that is a regular file of at most `limit` bytes (TMUError naming the damage otherwise)."""
    try:
        return json.loads(read_bytes(path, limit or JSON_LIMIT).decode())
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
