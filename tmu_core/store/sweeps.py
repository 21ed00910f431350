"""Sweeps in the store: one folder per sweep holding its results, its tables and the log of a sweep started in the
background. A folder is owned by one sweep process: its claim file is created exclusively, so no sweep ever
writes into another's folder or replaces its results.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import TMUError
from . import paths as P
from . import schema
from .io import atomic_write_json, atomic_write_text, ensure_dir, read_json, write_csv
from .runs import RUN_ID, check_run_id, tail_lines


def _create_exclusive(path: Path) -> bool:
    """Create `path` only if nothing is there (True), atomically; False when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise TMUError(f"cannot create {path}: {exc.strerror}; set TMU_RUNS_DIR to a writable folder") from exc
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return True


class Sweep:
    """One sweep folder: the results of its runs and the tables made from them."""

    def __init__(self, sweep_id: str, root: Path | None = None):
        self.id = check_run_id(sweep_id)
        self.dir = P.sweeps_root(root) / self.id

    @classmethod
    def claim(cls, sweep_id: str, exact: bool, root: Path | None = None) -> Sweep:
        """Own a sweep folder, atomically: its claim file is created exclusively (O_EXCL), so two sweeps never
        write into one folder. A folder reserved by `reserve` (empty, unclaimed) is taken over. `exact`: the
        user chose the id, and a taken one is refused in one line; otherwise "-2", "-3", ... is appended."""
        check_run_id(sweep_id)
        for n in range(1, 1000):
            sweep = cls(sweep_id if n == 1 else f"{sweep_id[:120]}-{n}", root)
            ensure_dir(sweep.dir)
            taken = any((sweep.dir / name).exists() for name in (P.SWEEP_RESULTS, P.SWEEP_TABLES))  # a sweep
            # written before claim files existed is never taken over either
            if not taken and _create_exclusive(sweep.dir / P.SWEEP_CLAIM):
                return sweep
            if exact:
                raise TMUError(
                    f"sweep '{sweep_id}' already exists in {sweep.dir.parent}; choose another --sweep-id "
                    f"(its results are kept)"
                )
        raise TMUError(f"no free sweep id near '{sweep_id}' in {P.sweeps_root(root)}")

    @classmethod
    def reserve(cls, sweep_id: str, root: Path | None = None) -> Sweep:
        """A new, empty sweep folder whose name no one else has (the folder is created exclusively; on a
        collision, e.g. two launches in one second, "-2", "-3", ... is appended). The sweep process then claims it."""
        check_run_id(sweep_id)
        ensure_dir(P.sweeps_root(root))
        for n in range(1, 1000):
            sweep = cls(sweep_id if n == 1 else f"{sweep_id[:120]}-{n}", root)
            try:
                sweep.dir.mkdir()
                return sweep
            except FileExistsError:
                continue
            except OSError as exc:
                raise TMUError(
                    f"cannot create sweep folder {sweep.dir}: {exc.strerror}; set TMU_RUNS_DIR to a writable folder"
                ) from exc
        raise TMUError(f"no free sweep id near '{sweep_id}' in {P.sweeps_root(root)}")

    def release(self) -> None:
        """Give up a claimed sweep that wrote no results, so its id can be claimed again (its log stays)."""
        if not (self.dir / P.SWEEP_RESULTS).exists():
            (self.dir / P.SWEEP_CLAIM).unlink(missing_ok=True)

    def results(self) -> dict:
        """results.json, checked in shape and meaning (TMUError naming the damage)."""
        return schema.check_sweep_results(
            read_json(self.dir / P.SWEEP_RESULTS), f"{P.SWEEP_RESULTS} of sweep {self.id}"
        )

    def results_model(self) -> schema.SweepFile:
        """results.json as the schema's typed model (TMUError naming the damage)."""
        return schema.SweepFile.model_validate(self.results())

    def save_results(self, obj: dict) -> None:
        atomic_write_json(self.dir / P.SWEEP_RESULTS, obj)

    def save_tables(self, markdown: str, frames: dict) -> tuple[Path, Path]:
        """Write tables.md and one CSV per table; returns the paths of the Markdown and of Table 1's CSV."""
        atomic_write_text(self.dir / P.SWEEP_TABLES, markdown)
        for key, df in frames.items():
            write_csv(self.dir / f"{key}.csv", df)
        return self.dir / P.SWEEP_TABLES, self.dir / "table1.csv"

    def log_path(self) -> Path:
        """The log of a sweep started in the background (only process launchers write it)."""
        ensure_dir(self.dir)
        return self.dir / P.SWEEP_LOG

    def log_tail(self, lines: int = 15) -> str:
        return tail_lines(self.dir / P.SWEEP_LOG, lines)

    def version(self) -> str:
        try:
            st = (self.dir / P.SWEEP_RESULTS).stat()
            return f"{st.st_mtime_ns}:{st.st_size}"
        except OSError:
            return "-"


def list_sweeps(root: Path | None = None, started: bool = False) -> list[str]:
    """Sweep ids with a results file (with `started`, also those with only a log: running, or failed before
    any run ended), the most recently written first."""
    base = P.sweeps_root(root)
    if not base.is_dir():
        return []
    out = []
    for d in base.iterdir():
        if not d.is_dir() or not RUN_ID.fullmatch(d.name):
            continue
        stamps = [f.stat().st_mtime for f in (d / P.SWEEP_RESULTS, d / P.SWEEP_LOG) if f.is_file()]
        if (d / P.SWEEP_RESULTS).is_file() or (started and stamps):
            out.append((max(stamps), d.name))
    return [name for _, name in sorted(out, reverse=True)]
