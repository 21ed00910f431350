"""What a model file is, and how much memory it would take, read from its headers alone: nothing of the file is
unpickled, decompressed or run here.

Formats, told apart by content (not by the file's name):
- `state_dict`: `torch.save` of a dict of tensors (a zip archive, or the legacy pickle);
- `safetensors`: a little-endian header length, a JSON header, then the raw tensor bytes;
- `torchscript` (`torch.jit.save`) and `export` (`torch.export.save`, .pt2): zip archives that hold code. These
  two are executable: they load and run only with the user's opt-in, in a sandboxed child process.

A zip archive declares each entry's uncompressed size in its directory, and a safetensors header declares each
tensor's shape: both are summed and compared with a cap before anything is read, so a small file that would
inflate to gigabytes is refused while it is still small.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from ..errors import TMUError

EXECUTABLE = ("torchscript", "export")
DESCRIPTION = {
    "state_dict": "a state dict",
    "safetensors": "a safetensors state dict",
    "torchscript": "a TorchScript model",
    "export": "a torch.export program (.pt2)",
}
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
    "C128": 16,
}
SAFETENSORS_HEADER_MAX = 100 * 2**20
COMPRESSION_MAX = 16  # a float tensor compresses far less than this; a zip bomb far more


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def _is_safetensors(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n <= min(SAFETENSORS_HEADER_MAX, path.stat().st_size - 8)


def sniff(path: Path) -> str:
    """The file's format (see the module's docstring), from its zip directory or header alone."""
    names = _zip_names(path)
    if names is not None:
        if any(n.endswith("/archive_format") or "/models/" in n and n.endswith(".json") for n in names):
            return "export"
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "state_dict"
    if _is_safetensors(path):
        return "safetensors"
    return "state_dict"  # the legacy (non-zip) torch.save pickle, or not a model file: torch.load says which


def declared_bytes(path: Path, fmt: str) -> tuple[int, bool]:
    """(the bytes the file's tensors take once read, whether any of it is compressed): the zip entries' declared
    sizes, the safetensors header's shapes, else the file's own size (a pickle reads no more than it holds)."""
    if fmt == "safetensors":
        return _safetensors_bytes(path), False
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            return sum(i.file_size for i in infos), any(i.compress_type != zipfile.ZIP_STORED for i in infos)
    except (zipfile.BadZipFile, OSError, ValueError):
        return path.stat().st_size, False


def _safetensors_bytes(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        raise TMUError(
            f"{path} has a damaged safetensors header; save it again with safetensors.torch.save_file"
        ) from None
    total = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(meta, dict) or not isinstance(meta.get("shape"), list):
            raise TMUError(f"{path} has a damaged safetensors header (entry {name[:80]!r})")
        count = 1
        for d in meta["shape"]:
            count *= int(d)
        total += count * DTYPE_BYTES.get(str(meta.get("dtype")), 8)
    return total


def check_size(path: Path, fmt: str, what: str, cap: int, expected: int | None) -> int:
    """Refuse a file whose tensors would take more than `cap` bytes once read (zip declared sizes or the
    safetensors header); returns the declared bytes."""
    declared, compressed = declared_bytes(path, fmt)
    size = path.stat().st_size
    if compressed and declared > COMPRESSION_MAX * size + 2**20:  # torch never compresses its archives
        raise TMUError(
            f"{what} {path} is a {gib(size)} archive that would inflate to {gib(declared)}; refused before "
            f"decompressing it (torch.save and torch.jit.save write uncompressed archives: save the model again)"
        )
    if declared > cap:
        against = (
            f"the architecture's parameters take {gib(expected)}"
            if expected
            else f"more than {gib(cap)} is refused for a model of unknown architecture"
        )
        raise TMUError(
            f"{what} {path} declares {gib(declared)} of tensors in a {gib(size)} file; {against}: "
            f"refused before reading it (a damaged or hostile file; save the model's weights again)"
        )
    return declared
