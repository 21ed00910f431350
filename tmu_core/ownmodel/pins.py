"""A run's inputs pinned: at start, a digest of every file the run reads (the weights, the forget list, the
manifest, and the file list of each split) is kept in the run folder (inputs.json); executing the run again
(`tmu execute` after a kill, Resume on the dashboard) is refused, in one line naming what changed, when one of
them no longer matches, so a resumed run finishes the request it started with or none.

A split's digest covers each file's path, label and size, not its pixels (hashing every image would cost as
much as decoding it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import store
from ..config import RunConfig
from ..data.sources import user_path
from ..errors import TMUError
from .layout import SPLITS, _listing
from .userfiles import excerpt

INPUTS = "inputs.json"
FILES = ("original_weights", "gold_weights", "forget_list", "manifest")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return "missing"
    return h.hexdigest()


def digests(cfg: RunConfig) -> dict[str, str]:
    """{input: sha256} for every file a run on the user's model reads, and each split's file list."""
    own, out = cfg.own, {}
    for name in FILES:
        value = getattr(own, name, "") or ""
        if value:
            out[name] = _file_digest(user_path(value))
    listing, _ = _listing(cfg.data, own)
    for split in SPLITS:
        h = hashlib.sha256()
        for e in listing[split]:
            h.update(repr((e.rel, e.label, e.file.stat().st_size)).encode())
        out[f"{split}/ file list"] = h.hexdigest()
    return out


def pin(run: store.Run, cfg: RunConfig) -> None:
    run.write_json(INPUTS, digests(cfg))


def check(run: store.Run, cfg: RunConfig) -> None:
    """Refuse to execute `run` when an input differs from the one pinned at its start (a run without
    inputs.json, from before pinning, is not checked)."""
    if not run.exists(INPUTS):
        return
    pinned = run.read_json(INPUTS)
    if not isinstance(pinned, dict):
        raise TMUError(f"{INPUTS} in run {run.id} is damaged; start a new run")
    try:
        now = digests(cfg)
    except TMUError as exc:
        raise TMUError(f"run {run.id} cannot be executed again: its inputs changed since it started ({exc})") from None
    changed = [k for k, v in pinned.items() if now.get(k) != v]
    if changed:
        where = {k: getattr(cfg.own, k, "") for k in FILES}
        named = [f"{k.replace('_', ' ')} {excerpt(where[k])}" if where.get(k) else k for k in changed]
        raise TMUError(
            f"run {run.id} cannot be executed again: its {', '.join(named)} changed since it started "
            f"(digests in {INPUTS}); start a new run to use the changed input"
        )
