"""Pack an ImageFolder tree of JPEGs into one .npz of raw bytes (and back), to carry it to a GPU machine.

    python benchmarks/jpeg_pack.py pack ../shared/data/cifar10 .gpu/cifar10.npz
    python benchmarks/jpeg_pack.py unpack .gpu/cifar10.npz /tmp/cifar10
The JPEG bytes are stored unchanged, so the unpacked tree is identical to the original.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def pack(root: Path, out: Path) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    blobs = [p.read_bytes() for p in files]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    names = np.array([str(p.relative_to(root)).encode() for p in files])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, data=np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets=offsets, names=names)
    print(f"packed {len(files)} files, {offsets[-1] / 2**20:.1f} MiB -> {out}")


def unpack(src: Path, root: Path) -> None:
    with np.load(src) as z:
        data, offsets, names = z["data"], z["offsets"], z["names"]
    for i, name in enumerate(names):
        path = root / bytes(name).decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[offsets[i] : offsets[i + 1]].tobytes())
    print(f"unpacked {len(names)} files -> {root}")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        raise SystemExit(__doc__)
    (pack if sys.argv[1] == "pack" else unpack)(Path(sys.argv[2]), Path(sys.argv[3]))
