"""Helpers for the own-model tests: digits laid out as 8x8 PNGs in train/ aux/ test/, a small_cnn trained on
train/ with a plain PyTorch loop of the test's own (not the project's recipe), and a forget list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img, "L").save(path)


def digits_folder(
    root: Path, per_class_aux: int = 12, per_class_test: int = 30, splits=("train", "aux", "test")
) -> Path:
    """scikit-learn's digits as PNGs: per class, the first `per_class_test` images to test/, the next
    `per_class_aux` to aux/, the rest to train/ (file names are the digits index)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    for c in range(10):
        ids = np.flatnonzero(d.target == c)
        for k, i in enumerate(ids):
            split = "test" if k < per_class_test else "aux" if k < per_class_test + per_class_aux else "train"
            if split in splits:
                write_png(root / split / str(c) / f"{i:04d}.png", x[i])
    return root


def read_split(root: Path, split: str):
    from PIL import Image

    files = sorted((root / split).glob("*/*.png"))
    x = torch.tensor(np.stack([np.asarray(Image.open(f)) for f in files]), dtype=torch.float32).unsqueeze(1) / 255.0
    y = torch.tensor([int(f.parent.name) for f in files])
    return x, y


def train_plain(root: Path, num_classes: int = 10, epochs: int = 12, seed: int = 0) -> torch.nn.Module:
    """The registered small_cnn trained on train/ with Adam: nothing of the project's training code."""
    from tmu_core.models import build_model

    torch.manual_seed(seed)
    x, y = read_split(root, "train")
    net = build_model("small_cnn", 1, num_classes, 8)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for s in range(0, len(x), 64):
            idx = perm[s : s + 64]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx] % num_classes)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def forget_list(root: Path, path: Path, classes=(3, 5, 8), per_class: int = 10, extra=()) -> Path:
    lines = []
    for c in classes:
        lines += [f"{c}/{f.name}" for f in sorted((root / "train" / str(c)).glob("*.png"))[:per_class]]
    path.write_text("\n".join([*lines, *extra]) + "\n")
    return path
