"""Runs and sweeps in the store: create, read, write and list them, only through named accessors.

A run folder holds its config, status, results, per-sample table, activations and weights (file names in
`paths`). Readers trust a run's results only when its status says complete; a damaged file makes the run
read as 'damaged' with the reason, and every other run still lists.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
import secrets
import shutil
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TMUError
from . import paths as P
from . import schema
from .io import (
    TABLE_LIMIT,
    WEIGHTS_LIMIT,
    atomic_savez,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    load_arrays,
    load_state,
    open_regular,
    read_bytes,
    read_json,
    read_tail,
    save_state,
    write_csv,
)
from .process import pid_start, run_process_alive, this_host

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # used with fullmatch: no trailing newline slips through
STATES = schema.STATES


def lock_timeout() -> float:
    """Seconds to wait for a cached model another process is building (TMU_LOCK_TIMEOUT; default 3 hours,
    longer than the slowest CPU recipe trains)."""
    try:
        return max(0.0, float(os.environ.get("TMU_LOCK_TIMEOUT") or 3 * 3600))
    except ValueError:
        raise TMUError(
            f"TMU_LOCK_TIMEOUT must be a number of seconds, not {os.environ['TMU_LOCK_TIMEOUT']!r}"
        ) from None


@contextmanager
def model_lock(key: str):
    """Hold a file lock while a cached model is built, so concurrent runs build it once. The wait has a limit
    (`lock_timeout`), and a lock file that cannot be used (a folder, no permission) is one TMUError line."""
    from filelock import FileLock, Timeout

    path = P.model_lock_file(key)
    if path.exists() and not path.is_file():
        raise TMUError(f"the model cache lock {path} is not a file; remove it")
    lock = FileLock(str(path), timeout=lock_timeout())
    try:
        lock.acquire()
    except Timeout:
        raise TMUError(
            f"waited {lock_timeout():.0f} s for another process building cached model {key} (lock "
            f"{path}); check `python -m tmu_core runs` for a run still training it, or raise "
            f"TMU_LOCK_TIMEOUT"
        ) from None
    except OSError as exc:
        raise TMUError(
            f"cannot lock the model cache at {path}: {exc.strerror or exc}; remove that file or make it writable"
        ) from None
    try:
        yield
    finally:
        lock.release()


def tail_lines(path: Path, lines: int) -> str:
    """The last `lines` lines of a text file ('' when it cannot be read)."""
    text = read_tail(path)  # a FIFO or a huge log is never read whole
    return "\n".join(text.rstrip().splitlines()[-lines:])


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise TMUError(
            f"{run_id!r} is not a valid run id: use letters, digits, '.', '_' and '-' "
            f"(no '/', no '..', at most 128 characters)"
        )
    return run_id


class Run:
    """One run folder. Construct with `Run.create` or `open_run`."""

    def __init__(self, run_id: str, root: Path | None = None):
        self.id = check_run_id(run_id)
        self.root = Path(root) if root is not None else P.runs_root()
        self.dir = self.root / self.id

    # --- creation
    @classmethod
    def create(cls, hint: str, config: dict, root: Path | None = None) -> Run:
        slug = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", hint)).strip("-.")[:60].strip("-.") or "run"
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run = cls(f"{slug}-{stamp}-{secrets.token_hex(2)}", root)
        ensure_dir(run.root)
        try:
            run.dir.mkdir()
        except FileExistsError:
            return cls.create(hint, config, root)
        except OSError as exc:
            raise TMUError(
                f"cannot create a run in {run.root}: {exc.strerror}; set TMU_RUNS_DIR to a writable folder"
            ) from exc
        try:
            run.write_json(P.CONFIG, config)
            run.set_status(state="queued", stage="queued", progress=0.0)
        except BaseException:  # a full disk: no empty folder is left to list as damaged forever
            shutil.rmtree(run.dir, ignore_errors=True)
            raise
        return run

    # --- named files
    def config(self) -> dict:
        """config.json, checked in shape and values (a mismatch raises TMUError: the run is damaged)."""
        return schema.check_config(self.read_json(P.CONFIG), self._what(P.CONFIG))

    def metrics(self) -> dict:
        """metrics.json as stored (a dict), checked against the schema."""
        return schema.check_metrics(self.read_json(P.METRICS), self._what(P.METRICS))

    def metrics_model(self) -> schema.MetricsFile:
        """metrics.json as the schema's typed model (fields, not string keys); damage is a TMUError."""
        return schema.read_metrics(self.read_json(P.METRICS), self._what(P.METRICS))

    def _what(self, name: str) -> str:
        return f"{name} in run {self.id}"

    def save_metrics(self, result: schema.MetricsFile | dict) -> None:
        """metrics.json: a run's typed result as it dumps itself (the fields it was built with)."""
        if isinstance(result, schema.MetricsFile):
            result = result.model_dump(mode="json", exclude_unset=True)
        self.write_json(P.METRICS, result)

    def samples(self):
        df = self.load_table(P.SAMPLES)
        schema.check_samples(df, self.metrics(), self._what(P.SAMPLES))
        return df

    def check_samples_fit(self, df, n_samples: int) -> None:
        """The per-sample table's ids lie within the run's data set of `n_samples` (TMUError naming the damage):
        a reader that indexes the data with them checks this once it has loaded the data."""
        schema.check_sample_ids(df, n_samples, self._what(P.SAMPLES))

    def save_samples(self, df) -> None:
        self.save_table(df, P.SAMPLES)

    def embeddings(self) -> dict[str, np.ndarray]:
        arrays = self.load_arrays(P.EMBEDDINGS)
        schema.check_embeddings(arrays, self._what(P.EMBEDDINGS))
        return arrays

    def save_embeddings(self, **arrays) -> None:
        self.save_arrays(P.EMBEDDINGS, **arrays)

    def embedding_models(self) -> list[str]:
        """Models whose activations the run stored (e.g. original, gold, tmu)."""
        return [k[len("emb_") :] for k in self.embeddings() if k.startswith("emb_")]

    def log_path(self, name: str = P.RUN_LOG) -> Path:
        """A background process's log (run.log, or a UMAP job's log); only process launchers write it."""
        return self.dir / name

    def log_tail(self, name: str = P.RUN_LOG, lines: int = 15) -> str:
        """The last lines of a log ('' when there is none)."""
        return tail_lines(self.dir / name, lines)

    def write_error_log(self, text: str) -> None:
        atomic_write_text(self.dir / P.ERROR_LOG, text)

    def version(self) -> str:
        """A token that changes whenever the run's status or results change (for caches keyed on it)."""
        stamps = []
        for name in (P.STATUS, P.METRICS):
            try:
                st = (self.dir / name).stat()
                stamps.append(f"{st.st_mtime_ns}:{st.st_size}")
            except OSError:
                stamps.append("-")
        return "/".join(stamps)

    # --- UMAP maps of one model (the Embeddings page)
    def umap_map(self, model: str) -> dict[str, np.ndarray] | None:
        """The stored map, or None when absent or unreadable (it is then computed again)."""
        path = self.dir / P.umap_files(check_run_id(model))[0]
        try:
            arrays = load_arrays(path)
            schema.check_umap_map(arrays, self._what(path.name))
            return arrays
        except (TMUError, OSError):
            return None

    def save_umap_map(self, model: str, **arrays) -> None:
        atomic_savez(self.dir / P.umap_files(check_run_id(model))[0], **arrays)

    def umap_version(self, model: str) -> str | None:
        """A token that changes when the stored map changes; None while there is no map."""
        try:
            st = (self.dir / P.umap_files(check_run_id(model))[0]).stat()
        except OSError:
            return None
        return f"{st.st_mtime_ns}:{st.st_size}"

    def umap_job(self, model: str) -> dict | None:
        try:
            name = P.umap_files(check_run_id(model))[1]
            return schema.check_umap_job(read_json(self.dir / name), self._what(name))
        except TMUError:
            return None

    def set_umap_job(self, model: str, **state) -> None:
        atomic_write_json(self.dir / P.umap_files(check_run_id(model))[1], state)

    def umap_log_name(self, model: str) -> str:
        return P.umap_files(check_run_id(model))[2]

    # --- generic files (names from `paths`)
    def write_json(self, name: str, obj) -> None:
        atomic_write_json(self.dir / name, obj)

    def read_json(self, name: str):
        return read_json(self.dir / name)

    def exists(self, name: str) -> bool:
        return (self.dir / name).exists()

    def weights_path(self, model: str) -> Path:
        return self.dir / "weights" / f"{check_run_id(model)}.pt"

    def unlearned_path(self, ext: str = "pt") -> Path:
        """Where a run on the user's own model writes its unlearned model (the input's format)."""
        return self.dir / "weights" / f"{P.UNLEARNED}.{ext}"

    def unlearned_file(self, stored: str | None) -> tuple[str, bytes] | None:
        """(file name, bytes) of the unlearned model metrics.json names (`stored`), for a download; None when it
        names nothing, or a file outside this run's folder or no longer there."""
        if not stored:
            return None
        path = Path(stored)
        try:
            inside = path.resolve().is_relative_to(self.dir.resolve())
        except OSError:
            return None
        if not inside or not path.is_file():
            return None
        return path.name, path.read_bytes()

    def save_weights(self, model: str, state_dict: dict) -> None:
        save_state(self.weights_path(model), state_dict)

    def load_weights(self, model: str) -> dict:
        return load_state(self.weights_path(model))

    def save_table(self, df, name: str = P.SAMPLES) -> None:
        write_csv(self.dir / name, df)

    def load_table(self, name: str = P.SAMPLES):
        import pandas as pd

        try:
            return pd.read_csv(io.BytesIO(read_bytes(self.dir / name, TABLE_LIMIT)))
        except TMUError:
            raise
        except FileNotFoundError as exc:
            raise TMUError(f"{name} is missing in run {self.id}") from exc
        except Exception as exc:
            raise TMUError(f"{name} in run {self.id} is damaged ({exc.__class__.__name__})") from exc

    def save_arrays(self, name: str, **arrays) -> None:
        atomic_savez(self.dir / name, **arrays)

    def load_arrays(self, name: str = P.EMBEDDINGS) -> dict[str, np.ndarray]:
        try:
            return load_arrays(self.dir / name, what=self._what(name))
        except FileNotFoundError as exc:
            raise TMUError(f"{name} is missing in run {self.id}") from exc
        except OSError as exc:
            raise TMUError(f"{name} in run {self.id} is damaged ({exc.strerror or exc.__class__.__name__})") from exc

    # --- status
    def status(self) -> dict:
        """The run's status; a 'running' run whose process has died reads as 'interrupted'."""
        try:
            st = schema.check_status(read_json(self.dir / P.STATUS), self._what(P.STATUS))
        except TMUError as exc:
            return {"state": "damaged", "stage": "", "progress": 0.0, "error": str(exc)}
        if st.get("state") in ("running", "queued") and st.get("pid") is not None and not run_process_alive(st):
            st["state"] = "interrupted"
            st["error"] = st.get("error") or f"the process stopped during '{st.get('stage')}'"
        return st

    def status_model(self) -> schema.RunStatus:
        """`status` as the schema's typed model (fields, not string keys)."""
        return schema.RunStatus.model_validate(self.status())

    def set_status(self, **changes) -> dict:
        try:
            st = read_json(self.dir / P.STATUS)
        except TMUError:
            st = {}
        st = st if isinstance(st, dict) else {}
        if "pid" in changes and "pid_start" not in changes:
            changes = {**changes, "pid_start": pid_start(changes["pid"]), "host": this_host()}
        st.update(changes)
        st["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
        self.write_json(P.STATUS, st)
        return st

    @contextmanager
    def executing(self):
        """Hold the run's execute lock: one run, one executor. A second process is refused at once."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.dir / P.EXECUTE_LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise TMUError(
                f"run {self.id} is already being executed by another process; wait for it to end or cancel it"
            ) from None
        except OSError as exc:
            raise TMUError(f"cannot lock run {self.id}: {exc.strerror or exc}") from exc
        try:
            yield
        finally:
            lock.release()

    def request_cancel(self) -> None:
        atomic_write_bytes(self.dir / P.CANCEL, b"1")

    def cancel_requested(self) -> bool:
        return (self.dir / P.CANCEL).is_file()

    def clear_cancel(self) -> None:
        path = self.dir / P.CANCEL
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.exists():
            raise TMUError(f"{path} is not a file (a folder?); remove it, then execute run {self.id} again")

    def damage(self) -> str | None:
        """Why a complete run's results cannot be trusted (a stored file unreadable or of the wrong shape),
        or None. Remembered per file version, so listing runs does not re-read unchanged files."""
        stamps = []
        for f in sorted([*(self.dir / n for n in (P.METRICS, P.SAMPLES, P.EMBEDDINGS)), *self._weight_files()]):
            try:
                st = f.stat()
                stamps.append((f.name, st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append((f.name, None))
        key = (str(self.dir.resolve()), tuple(stamps))
        if key not in _DAMAGE:
            _DAMAGE.clear() if len(_DAMAGE) > 512 else None
            _DAMAGE[key] = self._find_damage()
        return _DAMAGE[key]

    def _weight_files(self) -> list[Path]:
        try:
            return list((self.dir / "weights").glob("*.pt"))
        except OSError:
            return []

    def _find_damage(self) -> str | None:
        try:
            metrics = self.metrics()  # named first: samples.csv is read against it
            if isinstance(metrics.get("own"), dict):  # a run on the user's own model keeps audit.csv instead
                if metrics["own"].get("audit_csv"):
                    self.load_table(P.AUDIT)
            else:
                schema.check_same_forget_set(self.samples(), self.embeddings(), self._what(P.SAMPLES))
        except TMUError as exc:
            return str(exc)
        for w in sorted(self._weight_files()):
            try:  # torch.save writes a zip; a truncated or foreign file is not one (nor a FIFO: never opened)
                with open_regular(w, WEIGHTS_LIMIT) as fh:
                    ok = zipfile.is_zipfile(fh)
            except (TMUError, OSError):
                ok = False
            if not ok:
                return f"weights file {w.name} in run {self.id} is damaged"
        return None


_DAMAGE: dict[tuple, str | None] = {}


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
    root = Path(root) if root is not None else P.runs_root()
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if not d.is_dir() or d.name.startswith(("_", ".")) or not RUN_ID.fullmatch(d.name):
            continue
        run = Run(d.name, root)
        if not _inside_root(run):
            continue
        out.append(_info(run))
    return sorted(out, key=lambda r: (r.updated, r.run_id), reverse=True)


def _info(run: Run) -> RunInfo:
    st = run.status()
    try:
        cfg = run.config()
    except TMUError as exc:
        cfg, st = None, {**st, "state": "damaged", "error": str(exc)}
    if st.get("state") == "complete":
        why = run.damage()
        if why:
            st = {**st, "state": "damaged", "error": why}
    return RunInfo(
        run.id,
        st.get("state", "damaged"),
        str(st.get("stage", "")),
        float(st.get("progress", 0.0)),
        st.get("error"),
        str(st.get("updated", "")),
        cfg,
    )
