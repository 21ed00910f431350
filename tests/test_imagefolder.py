"""`imagefolder` on tiny folders made here: both layouts, resizing, grey vs colour, class names, the
decoded-image cache. Each class gets solid-colour images, so a label mix-up shows in the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tmu_core.config import DataConfig, ForgetSpec
from tmu_core.data import load_dataset, load_raw, resolve_forget
from tmu_core.data import sources as data_sources

COLOURS = {"cat": (255, 0, 0), "dog": (0, 0, 255), "owl": (0, 255, 0)}


def make_folder(root: Path, counts: dict[str, int], size=(12, 10), mode="RGB") -> Path:
    for cls, n in counts.items():
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        colour = COLOURS[cls] if mode == "RGB" else sum(COLOURS[cls]) // 3
        for i in range(n):
            Image.new(mode, size, colour).save(d / f"{i:03d}.png")
    return root


def test_train_test_layout_is_resized_and_labelled_by_folder(tmp_path, runs_dir):
    make_folder(tmp_path / "ds" / "train", {"cat": 6, "dog": 5})
    make_folder(tmp_path / "ds" / "test", {"cat": 2, "dog": 3})
    (tmp_path / "ds" / "train" / "cat" / "notes.txt").write_text("not an image: ignored")
    raw = load_raw(DataConfig(dataset="imagefolder", data_root=str(tmp_path / "ds"), image_size=8))
    assert raw.classes == ["cat", "dog"]
    assert tuple(raw.x_train.shape) == (11, 3, 8, 8) and tuple(raw.x_test.shape) == (5, 3, 8, 8)
    assert raw.y_train.tolist() == [0] * 6 + [1] * 5 and raw.y_test.tolist() == [0] * 2 + [1] * 3
    for x, y in ((raw.x_train, raw.y_train), (raw.x_test, raw.y_test)):
        for img, label in zip(x, y):
            expected = COLOURS[raw.classes[label]]
            assert img[:, 4, 4].tolist() == list(expected)  # a solid colour survives the bilinear resize


def test_single_folder_layout_is_split_by_class(tmp_path, runs_dir):
    make_folder(tmp_path / "faces", {"cat": 10, "dog": 10, "owl": 10}, size=(20, 20), mode="L")
    cfg = DataConfig(dataset="imagefolder", data_root=str(tmp_path / "faces"), image_size=16, test_fraction=0.2)
    raw = load_raw(cfg)
    assert raw.classes == ["cat", "dog", "owl"]
    assert tuple(raw.x_train.shape[1:]) == (1, 16, 16), "grey images stay one channel"
    assert np.bincount(raw.y_test.numpy()).tolist() == [2, 2, 2] and np.bincount(raw.y_train.numpy()).tolist() == [
        8,
        8,
        8,
    ]
    data = load_dataset(cfg, seed=0)
    forget = resolve_forget(data, ForgetSpec(forget_class="dog", forget_count=3), seed=0)
    assert forget.class_index == 1 and forget.class_name == "dog" and len(forget.ids) == 3
    assert (data.y[forget.ids] == 1).all()


def test_mixed_grey_and_colour_images_become_colour(tmp_path, runs_dir):
    root = make_folder(tmp_path / "mixed", {"cat": 3, "dog": 3})
    Image.new("L", (8, 8), 128).save(root / "dog" / "grey.png")
    raw = load_raw(DataConfig(dataset="imagefolder", data_root=str(root), image_size=8, test_fraction=0.2))
    assert raw.x_train.shape[1] == 3
    grey = [img for img in np.concatenate([raw.x_train.numpy(), raw.x_test.numpy()]) if img[0, 0, 0] == 128]
    assert len(grey) == 1 and grey[0][:, 0, 0].tolist() == [128, 128, 128]


def test_decoded_images_are_cached_in_the_run_store(tmp_path, runs_dir, monkeypatch):
    root = make_folder(tmp_path / "cached", {"cat": 4, "dog": 4})
    cfg = DataConfig(dataset="imagefolder", data_root=str(root), image_size=8)
    first = load_raw(cfg)
    assert len(list((runs_dir / "_cache" / "data").glob("imagefolder-*.npz"))) == 1
    load_raw.cache_clear()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache was valid")

    monkeypatch.setattr(data_sources, "_decode", no_decoding)
    second = load_raw(cfg)
    assert (second.x_train == first.x_train).all() and second.classes == first.classes
    for change in (
        lambda: Image.new("RGB", (9, 9), (9, 9, 9)).save(root / "cat" / "000.png"),  # one image replaced
        lambda: Image.new("RGB", (8, 8), (0, 0, 255)).save(root / "dog" / "new.png"),
    ):  # one added
        load_raw.cache_clear()
        change()
        with pytest.raises(AssertionError, match="decoded again"):
            load_raw(cfg)
