"""The text files a user names (a forget list, a manifest) read without trusting them.

A path typed by mistake (`/etc/passwd`, a binary, a 20 MB one-line file) must give one short line that names
the file, the line number and what was expected, never the file's contents: a path that does not look like an
image path is named by its line number alone, and anything quoted is cut to a short excerpt. A byte-order mark
(Excel's "CSV UTF-8") is read as nothing. Paths are compared in one normal form (`norm_path`), whichever side
(forget list, manifest, folder) wrote them.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from ..errors import TMUError

EXCERPT = 80  # the most characters of a user's text quoted in one message
LISTED = 20  # the most items (paths, line numbers) named in one message; the rest are counted
MAX_LIST_BYTES = 64 << 20  # a forget list (a million paths is ~30 MB)
MAX_MANIFEST_BYTES = 256 << 20


def excerpt(text: str, n: int = EXCERPT) -> str:
    """`text` cut to its first `n` characters (the cut said, with the length)."""
    text = str(text)
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def listing(items, n: int = LISTED) -> str:
    """The first `n` items, each a short excerpt, and how many more."""
    items = [excerpt(str(i)) for i in items]
    more = len(items) - n
    return ", ".join(items[:n]) + (f" ... and {more} more" if more > 0 else "")


def line_numbers(numbers) -> str:
    numbers = list(numbers)
    return ("line " if len(numbers) == 1 else "lines ") + listing(numbers)


def read_text_file(path: Path, what: str, limit: int, expected: str) -> str:
    """The text of a user's file, refused in one line naming `what` it is and the `expected` form when it is
    missing, a folder, larger than `limit` bytes, binary or not UTF-8."""
    if path.is_dir():
        raise TMUError(f"{what} {excerpt(path)} is a folder; {expected}")
    if not path.is_file():
        raise TMUError(f"{what} {excerpt(path)} does not exist or is not a file; {expected}")
    try:
        size = path.stat().st_size
        if size > limit:
            raise TMUError(f"{what} {excerpt(path)} is {size / 2**20:.0f} MB, more than {limit >> 20} MB; {expected}")
        data = path.read_bytes()
    except OSError as exc:
        raise TMUError(f"{what} {excerpt(path)} cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    if b"\0" in data:
        raise TMUError(f"{what} {excerpt(path)} is not a text file (it holds binary data); {expected}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TMUError(f"{what} {excerpt(path)} line {line} is not UTF-8 text; save it as UTF-8, {expected}") from None


def norm_path(text: str) -> str:
    """A path as the user wrote it, in one form: separators '/', no '.' parts, no doubled slashes, no trailing
    slash; an absolute path made canonical (`..` resolved). Relative paths keep a leading `train/`."""
    p = text.strip().replace("\\", "/")
    if p.startswith("/"):
        return os.path.normpath(p)
    parts = [s for s in p.split("/") if s not in ("", ".")]
    return posixpath.join(*parts) if parts else ""


def strip_split(key: str) -> str:
    """A relative path's `train/` prefix dropped (forget lists and manifests may name files from the data root)."""
    return key[len("train/") :] if key.startswith("train/") else key
