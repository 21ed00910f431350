"""The files a user names for a run on their own model, read without trusting them: forget lists and manifests
that are not what they should be give one short line that never quotes the file's contents; paths are compared
in one normal form; each image is one training sample; mixed colour modes follow the majority."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tmu_core.config import DataConfig, ForgetSpec, OwnModelConfig
from tmu_core.errors import TMUError

pytestmark = pytest.mark.fast

CLASSES, PER = ("a", "b", "c"), {"train": 4, "aux": 2, "test": 2}


def _png(path, mode="L", seed=0):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (8, 8) if mode == "L" else (8, 8, 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(path)


@pytest.fixture
def folder(tmp_path, runs_dir):
    root = tmp_path / "data"
    for split, n in PER.items():
        for c in CLASSES:
            for k in range(n):
                _png(root / split / c / f"{split}{k}.png", seed=k)
    return root


def _data(root, **own):
    from tmu_core.ownmodel.layout import load_user_data

    own = OwnModelConfig(original_weights="W.pt", **own)
    return load_user_data(DataConfig(dataset="imagefolder", data_root=str(root), image_size=8), own), own


def _request(root, lines: str | bytes, tmp_path, **own):
    from tmu_core.ownmodel.layout import resolve_request

    f = tmp_path / "forget.txt"
    f.write_bytes(lines if isinstance(lines, bytes) else lines.encode())
    data, cfg = _data(root, forget_list=str(f), **own)
    return data, resolve_request(data, cfg, ForgetSpec(), 0)


def _refusal(root, lines, tmp_path, *needles, **own) -> str:
    with pytest.raises(TMUError) as exc:
        _request(root, lines, tmp_path, **own)
    text = str(exc.value)
    for n in needles:
        assert n in text, text
    return text


def test_a_system_file_as_forget_list_is_never_quoted(folder, tmp_path):
    passwd = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\nsecret-token\n"
    text = _refusal(folder, passwd, tmp_path, "lines 1, 2, 4", "not image paths", "relative to train/")
    assert "x:0:0" not in text and "daemon" not in text and "secret-token" not in text
    # a binary file: one line, no bytes of it
    text = _refusal(folder, b"\x7fELF\x02\x01\x01\0\0\0secret", tmp_path, "not a text file")
    assert "secret" not in text and "ELF" not in text


def test_forget_list_paths_in_any_normal_form(folder, tmp_path):
    """Relative to train/, with train/, with ./ or doubled slashes or backslashes, absolute inside train/, and
    a byte-order mark before the first path: all name the same files."""
    absolute = folder / "train" / "c" / "train2.png"
    lines = "\ufeffa/train0.png\ntrain/a/train1.png\n./b//train0.png\nb\\train1.png\n" + f"{absolute}\n"
    data, req = _request(folder, lines, tmp_path)
    got = sorted(data.paths[i] for i in req.whole.ids)
    assert got == ["a/train0.png", "a/train1.png", "b/train0.png", "b/train1.png", "c/train2.png"]
    # an absolute path outside train/ (here: in aux/) is refused as such
    _refusal(folder, f"{folder / 'aux' / 'a' / 'aux0.png'}\n", tmp_path, "are in aux/")
    # the same file named twice by two spellings: both lines named
    _refusal(folder, "a/train0.png\ntrain/a//train0.png\n", tmp_path, "on lines 1 and 2")


def test_every_bad_path_is_listed_or_the_first_20_and_a_count(folder, tmp_path):
    bad = [f"a/missing{k}.png" for k in range(25)]
    text = _refusal(folder, "\n".join(["a/train0.png", *bad[:7]]), tmp_path, "7 path(s)")
    assert all(b in text for b in bad[:7])
    text = _refusal(folder, "\n".join(bad), tmp_path, "25 path(s)", "and 5 more")
    assert all(b in text for b in bad[:20]) and bad[20] not in text


def test_one_huge_line_gives_a_short_message(folder, tmp_path):
    text = _refusal(folder, "a/missing.png\na/" + "x" * (20 << 20) + ".png\n", tmp_path, "line 2")
    assert len(text) < 1000
    text = _refusal(folder, "a/" + "x" * 1000 + ".png\n", tmp_path, "characters")  # a long path: an excerpt
    assert len(text) < 1000
    text = _refusal(folder, "y" * (20 << 20) + "\n", tmp_path, "line 1")
    assert len(text) < 1000


def _manifest(root, rows, name="m.csv", bom=False):
    path = root / name
    path.write_text(("\ufeff" if bom else "") + "path,label,split\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _rows(root, prefix=""):
    return [
        f"{prefix}{split}/{c}/{split}{k}.png,{c},{split}" for split, n in PER.items() for c in CLASSES for k in range(n)
    ]


def test_manifest_with_a_byte_order_mark_and_train_prefix_can_be_forgotten(folder, tmp_path):
    """Excel's "CSV UTF-8" (a BOM before the header) reads; manifest paths starting with train/ are forgotten
    by the same path, or by the path relative to train/."""
    m = _manifest(folder, _rows(folder), bom=True)
    data, req = _request(folder, "train/a/train0.png\nb/train1.png\n", tmp_path, manifest=str(m))
    assert sorted(data.paths[i] for i in req.whole.ids) == ["train/a/train0.png", "train/b/train1.png"]


def test_manifest_duplicates_and_folders_are_refused(folder, tmp_path):
    rows = _rows(folder)
    twice = _manifest(folder, [*rows, rows[0]], "twice.csv")
    with pytest.raises(TMUError, match=r"lines 2 and 26 .*again in train"):
        _data(folder, manifest=str(twice))
    moved = rows[0].replace(",train", ",test")
    two_splits = _manifest(folder, [*rows, moved], "two.csv")
    with pytest.raises(TMUError, match="in train and in test"):
        _data(folder, manifest=str(two_splits))
    spelled = rows[0].replace("train/", "train//")  # the same file by another spelling
    with pytest.raises(TMUError, match="the same image"):
        _data(folder, manifest=str(_manifest(folder, [*rows, spelled], "spelled.csv")))
    folder_row = _manifest(folder, [*rows, "train/a,a,train"], "dir.csv")
    with pytest.raises(TMUError, match="is a folder"):
        _data(folder, manifest=str(folder_row))


def test_a_manifest_that_is_not_one_is_not_quoted(folder, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(TMUError, match="header row path,label,split") as exc:
        _data(folder, manifest=str(secret))
    assert "bash" not in str(exc.value)


def test_hidden_files_are_skipped(folder):
    (folder / "train" / "a" / ".secret.png").write_bytes(b"not an image")  # would fail to decode
    _png(folder / "train" / "a" / "._shadow.png")
    data, _ = _data(folder)
    assert not any("/." in p for p in data.paths) and len(data.train_ids) == 12


@pytest.mark.parametrize("odd,majority", [("RGB", 1), ("L", 3)])
def test_one_image_in_another_colour_mode_follows_the_majority(folder, odd, majority):
    if majority == 3:  # make the set colour except one file
        for f in folder.rglob("*.png"):
            _png(f, "RGB")
    _png(folder / "train" / "b" / "train3.png", odd)
    data, _ = _data(folder)
    assert data.channels == majority and data.x.shape[1] == majority


def test_pillow_bomb_warning_is_not_printed(folder, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # 8x8 = 64 pixels: over the warning's limit, under 2x
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data, _ = _data(folder)
    assert len(data.train_ids) == 12
