"""Dataset loaders, registered by name: digits (bundled), torchvision sets, and any image folder.

Each loader returns `RawData` with uint8 images. Decoded image folders are cached as one .npz in the
run store's cache so the CIFAR-10 JPEG copy is decoded once, not at every run.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .. import store
from ..config import DataConfig
from ..errors import DataUnavailable, TMUError
from .registry import DATASETS, RawData, split_test

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@DATASETS.register("digits", "scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes); offline, instant")
def load_digits(cfg: DataConfig) -> RawData:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    xtr, ytr, xte, yte = split_test(x, y, cfg.test_fraction)
    return RawData(xtr, ytr, xte, yte, [str(i) for i in range(10)])


def user_path(text: str) -> Path:
    """A folder the user typed, with ~ expanded; an unknown ~user is refused in one line."""
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:  # "~nosuchuser/x": no such user's home
        raise TMUError(f"data root '{text}': {exc} (no such user?); give an absolute path") from None


def _offline_message(name: str, root: Path, layout: str) -> str:
    return (f"{name} is not in {root.absolute()} and could not be downloaded (offline?): put its files in "
            f"{root.absolute() / layout}, pass --data-root DIR, or run once with network access")


def _torchvision(name: str, cls_name: str, layout: str):
    def load(cfg: DataConfig) -> RawData:
        try:
            import torchvision.datasets as tvd
        except ImportError as exc:
            raise DataUnavailable(f"{name} needs torchvision, which is not installed; run `make setup` "
                                  f"(or pip install -r requirements.txt)") from exc

        root = user_path(cfg.data_root) if cfg.data_root else store.default_data_root(name)
        cls = getattr(tvd, cls_name)
        sets = []
        for train in (True, False):
            try:
                ds = cls(str(root), train=train, download=False)
            except (RuntimeError, OSError):
                before = _folders(root)
                try:
                    root.mkdir(parents=True, exist_ok=True)
                    ds = cls(str(root), train=train, download=True)
                except Exception as exc:  # any network or file error means: not available here
                    _remove_empty_new_folders(root, before)
                    raise DataUnavailable(_offline_message(name, root, layout)) from exc
            sets.append(ds)
        tr, te = sets
        return RawData(*_tv_arrays(tr), *_tv_arrays(te), list(tr.classes))

    return load


def _folders(root: Path) -> set[Path]:
    return {root, *(p for p in root.rglob("*") if p.is_dir())} if root.is_dir() else set()


def _remove_empty_new_folders(root: Path, before: set[Path]) -> None:
    """A failed download leaves no empty folders behind (torchvision creates MNIST/raw before fetching)."""
    for p in sorted(_folders(root) - before, key=lambda p: len(p.parts), reverse=True):
        try:
            p.rmdir()  # only succeeds on an empty folder
        except OSError:
            pass


def _tv_arrays(ds) -> tuple[torch.Tensor, torch.Tensor]:
    x = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous().to(torch.uint8), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)


DATASETS.register("mnist", "MNIST 28x28 digits via torchvision (downloaded to --data-root when online)")(
    _torchvision("mnist", "MNIST", "MNIST/raw/"))
DATASETS.register("cifar10", "CIFAR-10 32x32 colour, 10 classes, via torchvision (downloaded when online)")(
    _torchvision("cifar10", "CIFAR10", "cifar-10-batches-py/"))
DATASETS.register("cifar100", "CIFAR-100 32x32 colour, 100 classes, via torchvision (downloaded when online)")(
    _torchvision("cifar100", "CIFAR100", "cifar-100-python/"))

_fashion_tv = _torchvision("fashion-mnist", "FashionMNIST", "FashionMNIST/raw/")


@DATASETS.register("fashion-mnist", "Fashion-MNIST 28x28 clothing; reads Debian's dataset-fashion-mnist package, else torchvision")
def load_fashion(cfg: DataConfig) -> RawData:
    if not cfg.data_root and FASHION_DEBIAN.is_dir():
        files = {p.name.split(".")[0]: p for p in FASHION_DEBIAN.iterdir() if "ubyte" in p.name}
        need = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        if all(n in files for n in need):
            xtr, ytr, xte, yte = (_read_idx(files[n]) for n in need)
            classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
            return RawData(torch.from_numpy(xtr).unsqueeze(1), torch.from_numpy(ytr.astype(np.int64)),
                           torch.from_numpy(xte).unsqueeze(1), torch.from_numpy(yte.astype(np.int64)), classes)
    return _fashion_tv(cfg)


def _read_idx(path: Path) -> np.ndarray:
    """Read an idx file (gzip or not): the format of MNIST-like datasets."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        buf = fh.read()
    ndim = buf[3]
    shape = tuple(int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


@DATASETS.register("imagefolder", "your own images: --data-root with train/ and test/ class folders, or one folder of class folders")
def load_imagefolder(cfg: DataConfig) -> RawData:
    if not cfg.data_root:
        raise TMUError("imagefolder needs --data-root: a folder with train/ and test/ class subfolders, or class subfolders")
    root = user_path(cfg.data_root)
    if not root.is_dir():
        raise TMUError(f"data root {root} does not exist or is not a folder")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    if (root / "train").is_dir() and not split:
        raise TMUError(f"{root} has a train/ folder but no test/ folder beside it: add test/ with the same class "
                       f"folders, or put the class folders directly in {root} to have them split by seed")
    parts = [root / "train", root / "test"] if split else [root]
    listing = [_list_images(p) for p in parts]
    classes = sorted(listing[0])
    if len(classes) < 2:
        raise TMUError(f"{parts[0]} holds {len(classes)} class folder(s) with images; at least 2 are needed")
    if split:
        extra = sorted(set(listing[1]) - set(classes))
        if extra:
            raise TMUError(f"test classes {extra} are not among the train classes {classes}")
    # every file's name, size and mtime: replacing one image (same name, same count) must not reuse stale pixels
    digest = hashlib.sha256(repr((str(root.resolve()), cfg.image_size)).encode())
    for lst in listing:
        for c, files in sorted(lst.items()):
            digest.update(repr((c, [(f.name, stamp) for f, stamp in files])).encode())
    key = digest.hexdigest()[:16]
    cache = store.data_cache_file(f"imagefolder-{key}")
    if cache.exists():
        try:
            z = store.load_arrays(cache, DATA_CACHE_LIMIT)
            arrays = [torch.from_numpy(z[k]) for k in ("xtr", "ytr", "xte", "yte")]
            return RawData(*arrays, classes)
        except Exception:
            log.warning("image cache %s is damaged; decoding again", cache)
    decoded = [_decode(lst, classes, cfg.image_size) for lst in listing]
    xtr, ytr = decoded[0]
    if split:
        xte, yte = decoded[1]
    else:
        xtr, ytr, xte, yte = split_test(xtr, ytr, cfg.test_fraction)
    store.atomic_savez(cache, xtr=xtr.numpy(), ytr=ytr.numpy(), xte=xte.numpy(), yte=yte.numpy())
    return RawData(xtr, ytr, xte, yte, classes)


def _stamp(f: Path) -> tuple[int, int]:
    st = f.stat()
    return st.st_size, st.st_mtime_ns


def _list_images(folder: Path) -> dict[str, list[tuple[Path, tuple[int, int]]]]:
    out: dict[str, list[tuple[Path, tuple[int, int]]]] = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTS and f.is_file() and not f.name.startswith("."))
        if files:
            out[d.name] = [(f, _stamp(f)) for f in files]
    if not out:
        raise TMUError(f"no images found under {folder}: expected class subfolders holding image files "
                       f"({', '.join(sorted(IMAGE_EXTS))})")
    return out


GREY = ("1", "L", "LA", "La", "I", "F") + tuple(f"I;16{e}" for e in ("", "B", "L", "N"))


def eight_bit(im):
    """Any image Pillow opens as an 8-bit "L" (greyscale modes) or "RGB" image, its range scaled, not clipped.

    16-bit greyscale (I;16*) is divided by 257 (65535 -> 255); 32-bit integer ("I") and float ("F") images are
    read as 8-bit when their values fit 0..255, as 16-bit when they fit 0..65535, else stretched to their own
    min..max ("F" in [0, 1] is scaled by 255). Transparency (P with a transparent colour, LA, RGBA) is
    composited on black; CMYK and YCbCr are converted by Pillow.
    """
    from PIL import Image

    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        a = np.asarray(im, dtype=np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
        if im.mode.startswith("I;16") or (lo >= 0 and 255 < hi <= 65535 and im.mode == "I"):
            a = a / 257.0
        elif im.mode == "F" and lo >= 0 and hi <= 1.0:
            a = a * 255.0
        elif lo < 0 or hi > 255:
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info or im.mode in ("PA", "LA", "La", "RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        out = Image.alpha_composite(black, rgba)
        return out.convert("L" if im.mode in ("LA", "La") else "RGB")
    return im.convert("L" if im.mode in GREY else "RGB")


MAX_IMAGE_PIXELS = 64_000_000  # width x height of the largest image read (8000 x 8000); larger is refused unread
DATA_CACHE_LIMIT = 4 << 30  # a decoded image folder (CIFAR-10 at 32 px: 184 MB)


def _small_image(f: Path, size: int):
    """One image as an 8-bit image no larger than needed for `size` x `size`: its dimensions are checked before
    any pixel is decoded, a JPEG is decoded at a reduced scale (`draft`), and a large image of another format
    is shrunk by an integer factor (`reduce`) right after decoding, so only one full-size image is ever held."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():  # Pillow warns from 89 M pixels; the limit below refuses from 64 M
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(f)
    with im:
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise TMUError(f"image {f} is {w}x{h} pixels; images are resized to {size}x{size}, and more than "
                           f"{MAX_IMAGE_PIXELS // 1_000_000} million pixels are refused: shrink or remove it")
        im.draft(None, (2 * size, 2 * size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale when that is still >= 2 x size
        im.load()
        factor = min(im.size) // (2 * size)
        if factor < 2:
            small = eight_bit(im)
        elif im.mode.startswith("I;16"):  # reduce has no 16-bit modes: via 32-bit, then eight_bit's 16-bit rule
            a = np.asarray(im.convert("I").reduce(factor), dtype=np.float64) / 257.0
            small = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        elif im.mode in ("1", "P"):  # nor bilevel and palette modes: 8 bits first
            small = eight_bit(im).reduce(factor)
        else:
            small = eight_bit(im.reduce(factor))
    return small if small.size == (size, size) else small.resize((size, size), Image.BILINEAR)


def common_mode(imgs: list, files: list) -> str:
    """The mode every image is converted to: the majority's ("L" or "RGB"; a tie is "RGB"), so one colour image
    among greyscale ones does not make the whole set 3-channel (the model was most likely trained on the
    majority's). The images converted are named in the log."""
    grey = [im.mode == "L" for im in imgs]
    mode = "L" if 2 * sum(grey) > len(grey) else "RGB"
    odd = [str(f) for f, g in zip(files, grey, strict=True) if g != (mode == "L")]
    if odd:
        log.warning("%d of %d images are %s; converted to %s like the rest: %s%s", len(odd), len(imgs),
                    "colour" if mode == "L" else "greyscale", "greyscale" if mode == "L" else "colour",
                    ", ".join(odd[:5]), " ..." if len(odd) > 5 else "")
    return mode


def decode_files(files: list, size: int) -> torch.Tensor:
    """Image files as one uint8 tensor N x C x size x size, in the majority's mode (`common_mode`); an unreadable
    or oversized file is refused in one line naming it."""
    from PIL import Image, UnidentifiedImageError

    imgs = []  # already size x size: memory grows with the resized data set, not with the files' pixels
    for f in files:
        try:
            imgs.append(_small_image(f, size))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, TMUError):
                raise
            raise TMUError(f"cannot read image {f}: {exc.__class__.__name__}; remove or replace that file") from exc
    mode = common_mode(imgs, files)
    x = np.empty((len(imgs), size, size, 1 if mode == "L" else 3), dtype=np.uint8)
    for i, im in enumerate(imgs):
        a = np.asarray(im.convert(mode), dtype=np.uint8)
        x[i] = a[..., None] if a.ndim == 2 else a
    log.info("decoded %d images (%s) at %dx%d", len(files), mode, size, size)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def _decode(listing: dict[str, list[tuple[Path, tuple[int, int]]]], classes: list[str], size: int):
    files = [(f, classes.index(c)) for c, fs in listing.items() for f, _ in fs]
    x = decode_files([f for f, _ in files], size)
    return x, torch.from_numpy(np.array([c for _, c in files], dtype=np.int64))
