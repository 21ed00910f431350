"""What a user's model saw, and what it must forget.

The data come as an image folder with `train/` (what the model was trained on: D_r ∪ D_f), `aux/` (the same
classes, never trained on: TMU's twin draws D_a from here) and `test/`, each holding one folder per class, or
as a CSV manifest (path,label,split). Classes are numbered in sorted folder-name (label) order: output k of the
model must be the k-th class name. Within a split, samples are numbered in the order of their file names (then
class folder), or in the manifest's row order, so ids do not depend on how the classes interleave.

The deletion request is a text file of training images, one path per line relative to `train/`; it may span
several classes. Each class of the request becomes a `ClassPart` (a ForgetSet whose remaining data leave out the
whole request), so TMU can build one twin problem per class.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .. import store
from ..config import DataConfig, ForgetSpec, OwnModelConfig
from ..data.registry import Dataset, ForgetSet, channel_stats, resolve_forget
from ..data.sources import IMAGE_EXTS, eight_bit, user_path
from ..errors import TMUError

log = logging.getLogger(__name__)

SPLITS = ("train", "aux", "test")
NO_AUX = (
    "TMU needs images of the same classes that the model never saw (its twin problem draws D_a from them): "
    "add aux/<class>/ folders (e.g. set aside ~10% of each class before training), or give a manifest "
    "with split 'aux'"
)


@dataclass(frozen=True)
class Entry:
    rel: str  # the path the user names it by: relative to its split folder (cat/0001.png) or as in the manifest
    file: Path
    label: str
    split: str


@dataclass
class UserData(Dataset):
    """A Dataset whose train ids come first (0..n_train-1), then its aux ids; `paths[i]` names sample i."""

    paths: list = field(default_factory=list)
    source: str = ""  # the folder or manifest it was read from


def _order(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (PurePosixPath(e.rel).name, e.rel))


def list_folder(root: Path) -> dict[str, list[Entry]]:
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if "train" in missing:
        raise TMUError(
            f"{root} has no train/ folder: your model's data must be laid out as train/ aux/ test/ "
            f"(one folder per class in each), or given as --manifest CSV"
        )
    if "aux" in missing:
        raise TMUError(f"{root} has no aux/ folder: {NO_AUX}")
    if "test" in missing:
        raise TMUError(
            f"{root} has no test/ folder: add test/<class>/ images the model never trained on "
            f"(A_test and the membership attack need them)"
        )
    out = {}
    for split in SPLITS:
        entries = []
        for d in sorted(p for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith(".")):
            entries += [
                Entry(f"{d.name}/{f.name}", f, d.name, split)
                for f in sorted(d.iterdir())
                if f.is_file() and f.suffix.lower() in IMAGE_EXTS
            ]
        if not entries:
            raise TMUError(
                f"{root / split} holds no images: expected class subfolders of image files "
                f"({', '.join(sorted(IMAGE_EXTS))})" + (f"; {NO_AUX}" if split == "aux" else "")
            )
        out[split] = _order(entries)
    return out


def list_manifest(path: Path) -> dict[str, list[Entry]]:
    if not path.is_file():
        raise TMUError(f"manifest {path} does not exist or is not a file")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TMUError(
            f"manifest {path} cannot be read ({exc.__class__.__name__}); it must be a CSV file "
            f"with columns path,label,split"
        ) from None
    if not rows or not {"path", "label", "split"} <= set(rows[0]):
        raise TMUError(f"manifest {path} must be a CSV file with a header row path,label,split and one row per image")
    out: dict[str, list[Entry]] = {s: [] for s in SPLITS}
    for i, row in enumerate(rows, start=2):
        split, rel, label = ((row.get(k) or "").strip() for k in ("split", "path", "label"))
        if split not in SPLITS:
            raise TMUError(f"manifest {path} line {i}: split '{split}' is not valid; choose train, aux or test")
        if not rel or not label:
            raise TMUError(f"manifest {path} line {i}: path and label must not be empty")
        f = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        if not f.is_file():
            raise TMUError(f"manifest {path} line {i}: image {f} does not exist")
        out[split].append(Entry(rel, f, label, split))
    if not out["aux"]:
        raise TMUError(f"manifest {path} has no row with split 'aux': {NO_AUX}")
    for split in ("train", "test"):
        if not out[split]:
            raise TMUError(f"manifest {path} has no row with split '{split}'")
    return out


def _listing(data_cfg: DataConfig, own: OwnModelConfig) -> tuple[dict[str, list[Entry]], str]:
    if own.manifest:
        path = user_path(own.manifest)
        return list_manifest(path), str(path)
    if not data_cfg.data_root:
        raise TMUError("your model's data: give --data-root DIR (with train/ aux/ test/) or --manifest CSV")
    root = user_path(data_cfg.data_root)
    if not root.is_dir():
        raise TMUError(f"data root {root} does not exist or is not a folder")
    return list_folder(root), str(root)


def _decode(entries: list[Entry], size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    imgs = []
    for e in entries:
        try:
            with Image.open(e.file) as im:
                im.load()
                imgs.append(eight_bit(im))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
            raise TMUError(
                f"cannot read image {e.file}: {exc.__class__.__name__}; remove or replace that file"
            ) from exc
    mode = "L" if all(im.mode == "L" for im in imgs) else "RGB"
    x = np.empty((len(imgs), size, size, 1 if mode == "L" else 3), dtype=np.uint8)
    for i, im in enumerate(imgs):
        im = im.convert(mode)
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        x[i] = a[..., None] if a.ndim == 2 else a
    return x.transpose(0, 3, 1, 2)


def load_user_data(data_cfg: DataConfig, own: OwnModelConfig, mean=None, std=None) -> UserData:
    """The user's train / aux / test images (decoded once, then cached in the run store). `mean`/`std`: the
    normalisation of the user's model, which the networks TMU trains from scratch (CF) then share."""
    listing, source = _listing(data_cfg, own)
    classes = sorted({e.label for e in listing["train"]})
    if len(classes) < 2:
        raise TMUError(f"train/ of {source} holds {len(classes)} class(es); at least 2 are needed")
    for split in ("aux", "test"):
        extra = sorted({e.label for e in listing[split]} - set(classes))
        if extra:
            raise TMUError(f"{split} classes {extra} of {source} are not among the train classes {classes}")
    entries = [e for s in SPLITS for e in listing[s]]
    digest = hashlib.sha256(repr((source, data_cfg.image_size)).encode())
    for e in entries:
        st = e.file.stat()
        digest.update(repr((e.split, e.rel, e.label, st.st_size, st.st_mtime_ns)).encode())
    cache = store.data_cache_file(f"own-{digest.hexdigest()[:16]}")
    x = None
    if cache.exists():
        try:
            with np.load(cache) as z:
                x = z["x"]
        except Exception:
            log.warning("image cache %s is damaged; decoding again", cache)
    if x is None or len(x) != len(entries):
        x = _decode(entries, data_cfg.image_size)
        store.atomic_savez(cache, x=x)
    y = np.array([classes.index(e.label) for e in entries], dtype=np.int64)
    n_tr, n_aux = len(listing["train"]), len(listing["aux"])
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
    cut = n_tr + n_aux
    if mean is None:
        mean, std = channel_stats(xt[:cut])
    return UserData(
        "imagefolder",
        classes,
        xt[:cut],
        yt[:cut],
        xt[cut:],
        yt[cut:],
        np.arange(n_tr),
        np.arange(n_tr, cut),
        tuple(mean),
        tuple(std),
        paths=[e.rel for e in listing["train"] + listing["aux"]],
        source=source,
    )


@dataclass(frozen=True)
class ClassPart(ForgetSet):
    """One class's share of a deletion request; what remains leaves out the whole request (`request_ids`)."""

    request_ids: np.ndarray | None = None

    def remain_ids(self, data: Dataset) -> np.ndarray:
        return np.setdiff1d(data.train_ids, self.ids if self.request_ids is None else self.request_ids)


@dataclass(frozen=True)
class Request:
    """The whole D_f (`whole`, for the baselines and the evaluation) and its per-class parts (for TMU)."""

    whole: ClassPart
    parts: tuple

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([np.full(len(p.ids), p.class_index) for p in self.parts])


def _request(data: Dataset, by_class: dict[int, np.ndarray]) -> Request:
    all_ids = np.sort(np.concatenate(list(by_class.values())))
    parts = tuple(ClassPart(c, data.classes[c], np.sort(ids), all_ids) for c, ids in sorted(by_class.items()))
    if len(parts) == 1:
        return Request(parts[0], parts)
    name = "+".join(p.class_name for p in parts)
    return Request(ClassPart(parts[0].class_index, name, all_ids, all_ids), parts)


def _key(text: str) -> str:
    p = text.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p[len("train/") :] if p.startswith("train/") else p


def read_forget_list(path_text: str) -> list[str]:
    path = user_path(path_text)
    if not path.is_file():
        raise TMUError(f"forget list {path} does not exist or is not a file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TMUError(
            f"forget list {path} cannot be read ({exc.__class__.__name__}); it must be a text file, one path per line"
        ) from None
    out = [_key(x) for x in lines if x.strip() and not x.strip().startswith("#")]
    if not out:
        raise TMUError(
            f"forget list {path} names no file: give one path per line, relative to train/ (e.g. cat/0001.png)"
        )
    return out


def resolve_request(data: UserData, own: OwnModelConfig, spec: ForgetSpec, seed: int) -> Request:
    """The deletion request: the forget list's files, or (without one) today's class and count or ids."""
    if not own.forget_list:
        f = resolve_forget(data, spec, seed)
        return _request(data, {f.class_index: f.ids})
    names = read_forget_list(own.forget_list)
    n_tr = len(data.train_ids)
    index = {p: i for i, p in enumerate(data.paths[:n_tr])}
    aux = set(data.paths[n_tr:])
    seen, dup = set(), []
    for n in names:
        (dup.append(n) if n in seen else seen.add(n))
    if dup:
        raise TMUError(f"forget list {own.forget_list} names {len(dup)} file(s) twice: {', '.join(dup[:5])}")
    in_aux = [n for n in names if n not in index and n in aux]
    if in_aux:
        raise TMUError(
            f"{len(in_aux)} path(s) of forget list {own.forget_list} are in aux/, which the model never "
            f"trained on: {', '.join(in_aux[:5])}{' ...' if len(in_aux) > 5 else ''}; name training images"
        )
    unknown = [n for n in names if n not in index]
    if unknown:
        raise TMUError(
            f"{len(unknown)} path(s) of forget list {own.forget_list} are not in train/ of {data.source}: "
            f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} (paths are relative to train/, "
            f"e.g. {data.paths[0]})"
        )
    ids = np.array([index[n] for n in names], dtype=np.int64)
    labels = data.y[torch.as_tensor(ids)].numpy()
    by_class = {int(c): ids[labels == c] for c in np.unique(labels)}
    for c, cids in by_class.items():
        name = data.classes[c]
        if len(cids) >= len(data.class_ids(c)):
            raise TMUError(
                f"the forget list names all {len(cids)} training images of class {name}; TMU needs at "
                f"least one to remain"
            )
        if len(data.class_ids(c, pool="aux")) == 0:
            raise TMUError(f"class {name} has no images in aux/: {NO_AUX}")
    return _request(data, by_class)
