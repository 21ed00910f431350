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
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .. import store
from ..config import DataConfig, ForgetSpec, OwnModelConfig
from ..data.registry import Dataset, ForgetSet, channel_stats, resolve_forget
from ..data.sources import IMAGE_EXTS, decode_files, user_path
from ..errors import TMUError
from .userfiles import (
    MAX_LIST_BYTES,
    MAX_MANIFEST_BYTES,
    excerpt,
    line_numbers,
    listing,
    norm_path,
    read_text_file,
    strip_split,
)

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
    files: list = field(default_factory=list)  # `files[i]`: sample i's file as an absolute path (str)

    def sample_names(self, ids) -> list[str]:
        return [self.paths[int(i)] for i in ids]


def _order(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (PurePosixPath(e.rel).name, e.rel))


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")  # hidden files and folders (.DS_Store, ._cat.png, .ipynb_checkpoints)


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
        for d in sorted(p for p in (root / split).iterdir() if p.is_dir() and _visible(p)):
            entries += [
                Entry(f"{d.name}/{f.name}", f, d.name, split)
                for f in sorted(d.iterdir())
                if f.is_file() and _visible(f) and f.suffix.lower() in IMAGE_EXTS
            ]
        if not entries:
            raise TMUError(
                f"{root / split} holds no images: expected class subfolders of image files "
                f"({', '.join(sorted(IMAGE_EXTS))})" + (f"; {NO_AUX}" if split == "aux" else "")
            )
        out[split] = _order(entries)
    return out


MANIFEST_FORM = "a manifest is a CSV file with a header row path,label,split and one row per image"


def list_manifest(path: Path) -> dict[str, list[Entry]]:
    """A CSV manifest's rows by split, each image once: a row repeating an image (in the same split or another)
    is refused, naming both lines."""
    text = read_text_file(path, "manifest", MAX_MANIFEST_BYTES, MANIFEST_FORM)
    name = excerpt(path)
    csv.field_size_limit(MAX_MANIFEST_BYTES)
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise TMUError(f"manifest {name} cannot be read as CSV ({excerpt(exc, 60)}); {MANIFEST_FORM}") from None
    if not rows or not {"path", "label", "split"} <= set(rows[0]):
        raise TMUError(f"manifest {name} has no header row path,label,split: {MANIFEST_FORM}")
    out: dict[str, list[Entry]] = {s: [] for s in SPLITS}
    seen: dict[str, tuple[int, str]] = {}  # the image's real path -> (line, split) of its first row
    keys: dict[str, int] = {}  # train rows: the path's normal form -> line
    for i, row in enumerate(rows, start=2):
        split, rel, label = ((row.get(k) or "").strip() for k in ("split", "path", "label"))
        if split not in SPLITS:
            raise TMUError(f"manifest {name} line {i}: the split column must be train, aux or test")
        if not rel or not label:
            raise TMUError(f"manifest {name} line {i}: path and label must not be empty")
        f = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        if f.is_dir():
            raise TMUError(f"manifest {name} line {i}: {excerpt(f)} is a folder; each row names one image file")
        if not f.is_file():
            raise TMUError(f"manifest {name} line {i}: image {excerpt(f)} does not exist")
        real = os.path.realpath(f)
        if real in seen:
            first, first_split = seen[real]
            where = f"again in {split}" if first_split == split else f"in {first_split} and in {split}"
            raise TMUError(
                f"manifest {name} lines {first} and {i} name the same image {excerpt(rel)} ({where}): each image "
                f"must appear once, in one split, or a deletion would leave its copy in the training data"
            )
        seen[real] = (i, split)
        if split == "train":
            key = strip_split(norm_path(rel))
            if key in keys:
                raise TMUError(
                    f"manifest {name} lines {keys[key]} and {i} both read as train image {excerpt(key)}; "
                    f"name each image by one path"
                )
            keys[key] = i
        out[split].append(Entry(rel, f, label, split))
    if not out["aux"]:
        raise TMUError(f"manifest {name} has no row with split 'aux': {NO_AUX}")
    for split in ("train", "test"):
        if not out[split]:
            raise TMUError(f"manifest {name} has no row with split '{split}'")
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
    return decode_files([e.file for e in entries], size).numpy()


def load_user_data(data_cfg: DataConfig, own: OwnModelConfig, mean=None, std=None) -> UserData:
    """The user's train / aux / test images (decoded once, then cached in the run store). `mean`/`std`: the
    normalisation of the user's model, which the networks TMU trains from scratch (CF) then share."""
    splits, source = _listing(data_cfg, own)
    classes = sorted({e.label for e in splits["train"]})
    if len(classes) < 2:
        raise TMUError(f"train/ of {source} holds {len(classes)} class(es); at least 2 are needed")
    for split in ("aux", "test"):
        extra = sorted({e.label for e in splits[split]} - set(classes))
        if extra:
            raise TMUError(
                f"{split} classes {listing(extra)} of {excerpt(source)} are not among the train classes "
                f"{listing(classes)}"
            )
    entries = [e for s in SPLITS for e in splits[s]]
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
    n_tr, n_aux = len(splits["train"]), len(splits["aux"])
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
        paths=[e.rel for e in splits["train"] + splits["aux"]],
        source=source,
        files=[os.path.abspath(e.file) for e in splits["train"] + splits["aux"]],
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


FORGET_FORM = "a forget list names training images, one path per line, relative to train/ (e.g. cat/0001.png)"


def read_forget_list(path_text: str) -> list[tuple[int, str]]:
    """The forget list's (line number, path) pairs: blank lines and '#' comments skipped, each path as written
    (stripped; `norm_path` gives its normal form)."""
    path = user_path(path_text)
    text = read_text_file(path, "forget list", MAX_LIST_BYTES, FORGET_FORM)
    out = [
        (i, x.strip()) for i, x in enumerate(text.splitlines(), start=1) if x.strip() and not x.strip().startswith("#")
    ]
    if not out:
        raise TMUError(f"forget list {excerpt(path)} names no file: {FORGET_FORM}")
    return out


def _looks_like_image_path(text: str) -> bool:
    return len(text) <= 4096 and text.isprintable() and Path(text).suffix.lower() in IMAGE_EXTS


class _Index:
    """Sample ids by the paths a forget list may use: the path relative to its split folder or as in the
    manifest (with or without `train/`), or the file's absolute path."""

    def __init__(self, data: UserData):
        n_tr = len(data.train_ids)
        self.rel: dict[str, int] = {}
        for i, p in enumerate(data.paths):
            key = norm_path(p)
            for k in (key, strip_split(key)):
                self.rel.setdefault(k, i)
        self.abs = {norm_path(f): i for i, f in enumerate(data.files)}
        self.n_train = n_tr

    def find(self, text: str) -> int | None:
        key = norm_path(text)
        if key.startswith("/"):
            return self.abs.get(key)
        i = self.rel.get(key)
        return i if i is not None else self.rel.get(strip_split(key))


def resolve_request(data: UserData, own: OwnModelConfig, spec: ForgetSpec, seed: int) -> Request:
    """The deletion request: the forget list's files, or (without one) today's class and count or ids. A list
    with bad lines is refused naming every one (or the first 20 and how many): its path when it looks like an
    image path, its line number alone when it does not (the file may be anything, and is never quoted)."""
    if not own.forget_list:
        f = resolve_forget(data, spec, seed)
        return _request(data, {f.class_index: f.ids})
    lines = read_forget_list(own.forget_list)
    name = excerpt(user_path(own.forget_list))
    index = _Index(data)
    found, not_paths, unknown, in_aux, first_line = [], [], [], [], {}
    dup = []
    for line, text in lines:
        i = index.find(text)
        if i is None:
            (unknown if _looks_like_image_path(text) else not_paths).append((line, text))
        elif i >= index.n_train:
            in_aux.append(text)
        elif i in first_line:
            dup.append(f"{first_line[i]} and {line}")
        else:
            first_line[i] = line
            found.append(i)
    if not_paths:
        raise TMUError(
            f"forget list {name} {line_numbers(n for n, _ in not_paths)} "
            f"{'is not an image path' if len(not_paths) == 1 else f'({len(not_paths)} in all) are not image paths'}"
            f" of train/: {FORGET_FORM}, ending in {', '.join(sorted(IMAGE_EXTS))}"
        )
    if dup:
        raise TMUError(f"forget list {name} names the same file twice, on lines {listing(dup)}; name each file once")
    if in_aux:
        raise TMUError(
            f"{len(in_aux)} path(s) of forget list {name} are in aux/, which the model never "
            f"trained on: {listing(in_aux)}; name training images"
        )
    if unknown:
        example = strip_split(norm_path(data.paths[0]))
        raise TMUError(
            f"{len(unknown)} path(s) of forget list {name} are not in train/ of {excerpt(data.source)}: "
            f"{listing(t for _, t in unknown)} (paths are relative to train/, e.g. {excerpt(example)}, "
            f"or absolute paths of files in train/)"
        )
    names = found
    ids = np.array(names, dtype=np.int64)
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
