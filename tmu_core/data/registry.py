"""Datasets: a registry of loaders, the train / aux / test split, and forget-set resolution.

Images are kept as uint8 tensors (N, C, H, W) and become floats in [0, 1] per batch; normalisation
lives inside the models, so attack budgets are in pixel units. The aux pool (a seeded, stratified share
of every training class) is never used to train the original model: it feeds TMU's twin problem.
Sample ids are positions in the dataset's training set and do not depend on the seed.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..config import DataConfig, ForgetSpec
from ..errors import TMUError
from ..registry import Registry

log = logging.getLogger(__name__)

# A loader: DataConfig -> RawData
DATASETS: Registry = Registry("dataset")

FIXED_TEST_SEED = 20240229  # test split of datasets without one: fixed so sample ids never move


@dataclass
class RawData:
    """A dataset as loaded: uint8 images (N, C, H, W), int64 labels, class names."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]


@dataclass
class Dataset:
    """A loaded dataset with its seeded split. `train_ids` may be trained on; `aux_ids` never are."""

    name: str
    classes: list[str]
    x: torch.Tensor  # uint8 (N, C, H, W): the full training set; ids index it
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_ids: np.ndarray
    aux_ids: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def size(self) -> int:
        return int(self.x.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sample_names(self, ids) -> list[str]:
        """How a user names training samples: by their id in the data set (an image folder: by file)."""
        return [f"train #{int(i)}" for i in ids]

    def class_ids(self, c: int, pool: str = "train") -> np.ndarray:
        ids = self.train_ids if pool == "train" else self.aux_ids
        return ids[self.y[ids].numpy() == c]


@dataclass(frozen=True)
class ForgetSet:
    """D_f: sorted training ids of one class, and what remains of that class."""

    class_index: int
    class_name: str
    ids: np.ndarray

    def remain_ids(self, data: Dataset) -> np.ndarray:
        return np.setdiff1d(data.train_ids, self.ids)

    def remain_class_ids(self, data: Dataset) -> np.ndarray:
        return np.setdiff1d(data.class_ids(self.class_index), self.ids)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


@functools.lru_cache(maxsize=4)
def load_raw(cfg: DataConfig) -> RawData:
    raw = DATASETS.get(cfg.dataset)(cfg)
    if len(raw.classes) < 2:
        raise TMUError(f"{cfg.dataset} has {len(raw.classes)} class; at least 2 are needed")
    return raw


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Load `cfg.dataset` and split its training set into train and aux pools (seeded, stratified)."""
    raw = load_raw(cfg)
    rng = np.random.default_rng(seed)
    y = raw.y_train.numpy()
    train, aux = [], []
    for c in range(len(raw.classes)):
        ids = np.flatnonzero(y == c)
        if len(ids) == 0:
            continue
        ids = rng.permutation(ids)
        n_aux = int(round(cfg.aux_fraction * len(ids)))
        n_aux = min(max(n_aux, 1), len(ids) - 1) if len(ids) > 1 else 0
        rest = ids[n_aux:]
        if cfg.train_per_class:
            rest = rest[: cfg.train_per_class]
        aux.append(ids[:n_aux])
        train.append(rest)
    if not train:  # e.g. an image folder with one image per class: the test split took them all
        raise TMUError(f"{cfg.dataset} has no training images left after the test split (it took all "
                       f"{len(raw.y_test)}); give each class at least 2 images, or train/ and test/ folders")
    mean, std = channel_stats(raw.x_train)
    return Dataset(cfg.dataset, raw.classes, raw.x_train, raw.y_train, raw.x_test, raw.y_test,
                   np.sort(np.concatenate(train)), np.sort(np.concatenate(aux)), mean, std)


def channel_stats(x: torch.Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units, summed in chunks: a float copy of all of
    CIFAR-10 would take 600 MB."""
    s1 = torch.zeros(x.shape[1], dtype=torch.float64)
    s2 = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, len(x), chunk):
        xb = x[start:start + chunk].double().div_(255.0)
        s1 += xb.sum(dim=(0, 2, 3))
        s2 += xb.pow_(2).sum(dim=(0, 2, 3))
    n = max(1, len(x) * x.shape[2] * x.shape[3])
    mean = s1 / n
    var = (s2 / n - mean ** 2).clamp_min(0) * n / max(1, n - 1)
    return tuple(mean.tolist()), tuple(var.sqrt().clamp_min(1e-3).tolist())


INDEX_MARK = "#"  # "#3" is always class index 3, never looked up as a name


def class_ref(index: int) -> str:
    """How the program passes a class it already resolved to an index: "#<index>", which `resolve_class` reads
    as that index whatever the class names are (a folder named "1" is not index 1)."""
    return f"{INDEX_MARK}{int(index)}"


def resolve_class(data: Dataset, name_or_index) -> int:
    """A class given by the user -> its index. The one rule (README, "Classes"): "#N" is index N; any other text
    is a class name when a class has exactly that name, else an index 0..K-1. So with class folders named
    1/ 2/ 3/, "2" is folder 2 (index 1) and "#2" is index 2 (folder 3). A Python int is an index."""
    if isinstance(name_or_index, (int, np.integer)) and not isinstance(name_or_index, bool):
        key, explicit = str(int(name_or_index)), True
    else:
        key = str(name_or_index).strip()
        explicit = key.startswith(INDEX_MARK)
        if explicit:
            key = key[len(INDEX_MARK):].strip()
        elif key in data.classes:
            return data.classes.index(key)
    if key.isascii() and key.isdigit():  # not "⁸" (a digit to isdigit, not to int) nor "-8"
        c = int(key)
        if 0 <= c < data.num_classes:
            return c
    shown = ", ".join(f"{i}={n}" for i, n in enumerate(data.classes[:12]))
    more = " ..." if data.num_classes > 12 else ""
    what = f"{INDEX_MARK}{key}" if explicit else key
    raise TMUError(f"unknown class {what!r} for {data.name}; valid: a name, an index 0..{data.num_classes - 1} "
                   f"or #index ({shown}{more})")


def resolve_forget(data: Dataset, spec: ForgetSpec, seed: int) -> ForgetSet:
    """Turn a forget spec into sorted training ids, refusing anything invalid with the valid range."""
    c = resolve_class(data, spec.forget_class)
    pool = data.class_ids(c)
    n = len(pool)
    name = data.classes[c]
    if spec.forget_ids:
        ids = np.asarray(spec.forget_ids, dtype=np.int64)
        values, counts = np.unique(ids, return_counts=True)  # sorting, not a scan per id: 40k ids in milliseconds
        if (counts > 1).any():
            raise TMUError(f"forget ids are duplicated: {values[counts > 1][:5].tolist()}")
        bad = ids[(ids < 0) | (ids >= len(data.y))]
        if len(bad):
            raise TMUError(f"forget ids out of range: {bad[:5].tolist()}; valid ids are 0..{len(data.y) - 1}")
        in_aux = ids[np.isin(ids, data.aux_ids)]
        if len(in_aux):
            raise TMUError(f"forget ids {in_aux[:5].tolist()} are in the aux pool (never trained on); pick ids of the training pool")
        other = ids[data.y.numpy()[ids] != c]
        if len(other):
            raise TMUError(f"forget ids {other[:5].tolist()} are not of class {c} ({name}); all forget ids must be of one class")
        unused = np.setdiff1d(ids, pool)
        if len(unused):
            raise TMUError(f"forget ids {unused[:5].tolist()} are outside the training subset in use")
        if len(ids) >= n:
            raise TMUError(f"cannot forget all {n} training samples of class {name}; keep at least one")
        return ForgetSet(c, name, np.sort(ids))
    if n < 2:
        raise TMUError(f"class {c} ({name}) has {n} training sample(s); forgetting needs a class with at least 2")
    count = int(round(spec.forget_fraction * n)) if spec.forget_fraction > 0 else spec.forget_count
    if count < 1 or count >= n:
        raise TMUError(f"forget count {count} is not valid for class {c} ({name}): it has {n} training samples; "
                       f"choose 1..{n - 1}")
    rng = np.random.default_rng([seed, c, 7])
    return ForgetSet(c, name, np.sort(rng.choice(pool, size=count, replace=False)))


def split_test(x: torch.Tensor, y: torch.Tensor, fraction: float):
    """Stratified fixed split for datasets that ship without a test set."""
    rng = np.random.default_rng(FIXED_TEST_SEED)
    yn = y.numpy()
    test = np.concatenate([rng.permutation(np.flatnonzero(yn == c))[: max(1, int(round(fraction * (yn == c).sum())))]
                           for c in np.unique(yn)])
    train = np.setdiff1d(np.arange(len(yn)), test)
    return x[train], y[train], x[np.sort(test)], y[np.sort(test)]

