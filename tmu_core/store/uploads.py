"""The dashboard's files from its users: uploads (a model's weights, a forget list) are kept in the run store's
_cache/uploads/, named by content, only when within their size limit; a refused one is deleted, and any left
longer than TMU_UPLOAD_DAYS (default 7) without being uploaded again expires. A path typed into the dashboard is
read only inside the run store and the folders the operator names in TMU_DASHBOARD_FOLDERS (`check_readable`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import TMUError
from .io import atomic_write_bytes
from .paths import cache_dir, runs_root, upload_file

DEFAULT_DAYS = 7.0
FOLDERS_ENV = "TMU_DASHBOARD_FOLDERS"


def readable_folders() -> list[Path]:
    """The server folders the dashboard reads a typed path from: the run store (uploads are kept there) and
    those the operator names in TMU_DASHBOARD_FOLDERS (separated by the platform's path separator)."""

    extra = [p for p in os.environ.get(FOLDERS_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(p).expanduser().resolve() for p in [runs_root(), *extra]]


def check_readable(text: str, label: str) -> None:
    """Refuse, in one line, a typed server path outside `readable_folders` (links followed: a link inside one
    that points out of it is refused too)."""
    folders = readable_folders()
    try:
        where = Path(text).expanduser().resolve()
    except (RuntimeError, OSError):
        where = None
    if where is None or not any(where == f or where.is_relative_to(f) for f in folders):
        shown = text if len(text) <= 80 else text[:80] + "..."
        raise TMUError(
            f"{label} {shown} is outside the folders this dashboard reads: {', '.join(str(f) for f in folders)}; "
            f"upload the file, or ask the operator to add its folder to {FOLDERS_ENV}"
        )


def max_age_seconds() -> float:
    text = os.environ.get("TMU_UPLOAD_DAYS", "")
    try:
        days = float(text) if text else DEFAULT_DAYS
    except ValueError:
        raise TMUError(f"TMU_UPLOAD_DAYS='{text[:40]}' is not a number of days (e.g. 7)") from None
    return max(days, 0.0) * 86400.0


def uploads_dir() -> Path:
    return cache_dir("uploads")


def expire(now: float | None = None) -> list[Path]:
    """Delete the uploads older than TMU_UPLOAD_DAYS (by the time they were last uploaded); returns them."""

    folder = runs_root() / "_cache" / "uploads"  # not created here: a page that only looks makes no folder
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    limit, gone = max_age_seconds(), []
    for p in folder.iterdir():
        try:
            if p.is_file() and now - p.stat().st_mtime > limit:
                p.unlink()
                gone.append(p)
        except OSError:  # another process removed it first
            pass
    return gone


def keep(data: bytes, name: str, limit: int, what: str) -> tuple[Path, bool]:
    """Store an upload of `what` (e.g. "forget list") unless it is over `limit` bytes (refused in one line,
    nothing written). Returns its path and whether this call created it (an upload of the same content
    already kept is reused and its age restarts)."""
    expire()
    if len(data) > limit:
        raise TMUError(
            f"the uploaded {what} is {len(data) / 2**20:.1f} MB, more than the {limit / 2**20:.0f} MB a {what} may "
            f"have; it was not kept"
        )
    path = upload_file(data, name)
    if path.exists():
        os.utime(path)
        return path, False
    atomic_write_bytes(path, data)
    return path, True


def discard(path) -> bool:
    """Delete a kept upload (a path outside the uploads folder is left alone); True when one was deleted."""
    p = Path(path)
    if p.parent.resolve() != uploads_dir().resolve():
        return False
    try:
        p.unlink()
        return True
    except OSError:
        return False
