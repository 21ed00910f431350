"""Does the model fit the data it is said to have been trained on? Measured before anything runs.

The model's accuracy on a sample of train/ and on test/ is compared with chance (the largest class's share) and
with each other. A model at chance on either, or doing much worse on its own training images than on test/ (or
far worse on test/ than on train/), is refused in one line that names the likely cause and the flag that fixes
it, found by trying the model on what would have fitted: the images at their own size (`--image-size`), common
normalisations (`--input-mean/--input-std`; only where the file holds none), and the class order that its
predictions imply (the sorted class folder names). A model given an image size other than the images' own is
refused too when it does clearly better at their own size. `--accept-poor-fit` runs such a model anyway and
keeps the measurement in the run's notes.

`native_size` is the side length every image of the data shares (the default of --image-size for a run on the
user's own model), read from the image headers alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data import Dataset, to_float
from ..data.registry import channel_stats
from ..errors import TMUError

SAMPLE = 512
SIZE_GAIN = 5.0  # points on train/ by which the images' own size must beat the given one to call it wrong
CHANCE_MARGIN = 0.2  # "at chance": below chance + 20% of the way from chance to 100%
BELOW_TEST = 20.0  # points: train/ this far below test/ is not the model's training data as it saw it
BELOW_TRAIN = 50.0  # points: test/ this far below train/ is not the model's task
ACCEPT = "--accept-poor-fit"


@dataclass
class Fit:
    train: float
    test: float
    chance_train: float
    chance_test: float
    n_train: int
    n_test: int

    def floor(self, chance: float) -> float:
        return chance + CHANCE_MARGIN * (100.0 - chance)

    def problem(self) -> str | None:
        if self.train < self.floor(self.chance_train):
            return "it is at chance on its own training images"
        if self.test < self.floor(self.chance_test):
            return "it is at chance on test/"
        if self.train < self.test - BELOW_TEST:
            return "it does far worse on its own training images than on test/"
        if self.test < self.train - BELOW_TRAIN:
            return "it does far worse on test/ than on train/"
        return None

    def words(self) -> str:
        return (
            f"{self.train:.1f}% on {self.n_train} train/ images and {self.test:.1f}% on {self.n_test} test/ images "
            f"(chance {self.chance_train:.1f}% and {self.chance_test:.1f}%)"
        )

    def as_dict(self) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _spread(n: int, k: int = SAMPLE) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64)) if n else np.zeros(0, np.int64)


def predictions(model, x: torch.Tensor, prep=None, batch: int = 128) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xb = to_float(x[s : s + batch])
            out.append(model(prep(xb) if prep else xb).argmax(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _acc(pred: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((pred == y).float().mean()) if len(y) else 0.0


def _chance(y: torch.Tensor, classes: int) -> float:
    return 100.0 * float(torch.bincount(y, minlength=classes).max()) / max(1, len(y)) if len(y) else 0.0


def measure(model, data: Dataset) -> tuple[Fit, dict]:
    """(the fit, the samples it used: train ids, x, y and predictions, to diagnose from)."""
    ids = torch.as_tensor(data.train_ids[_spread(len(data.train_ids))])
    tids = torch.as_tensor(_spread(len(data.y_test)))
    x, y, xt, yt = data.x[ids], data.y[ids], data.x_test[tids], data.y_test[tids]
    model.eval()
    pred, pred_t = predictions(model, x), predictions(model, xt)
    fit = Fit(
        _acc(pred, y), _acc(pred_t, yt), _chance(y, data.num_classes), _chance(yt, data.num_classes), len(y), len(yt)
    )
    return fit, {"ids": ids, "x": x, "y": y, "pred": pred}


def _at_size(model, data: Dataset, sample: dict, cfg, size: int) -> float | None:
    """The model's accuracy on the train sample decoded at `size` (a registered architecture built for that size,
    as some differ in their pooling), or None where it cannot run at that size."""
    from ..models import Net, build_model
    from .layout import _decode, _listing

    if isinstance(model, Net):
        state = model.state_dict()
        model = build_model(cfg.train.model, data.channels, data.num_classes, size).eval()
        model.load_state_dict(state)

    listing, _ = _listing(cfg.data, cfg.own)
    entries = [listing["train"][int(i)] for i in sample["ids"]]
    x = torch.from_numpy(np.ascontiguousarray(_decode(entries, size)))
    if x.shape[1] != data.channels:
        x = x.repeat(1, data.channels, 1, 1) if x.shape[1] == 1 else x.float().mean(1, keepdim=True).to(torch.uint8)
    try:
        return _acc(predictions(model, x), sample["y"])
    except Exception:
        return None


def _size_cause(model, data, sample, cfg, native: int | None, current: float) -> str | None:
    if not native or native == data.size:
        return None
    acc = _at_size(model, data, sample, cfg, native)
    if acc is None or acc < current + SIZE_GAIN:
        return None
    return (
        f"image size: the images are {native}x{native} and the model scores {acc:.1f}% on train/ at that size, "
        f"{current:.1f}% at --image-size {data.size}: give --image-size {native} (or leave it out)"
    )


def _norm_candidates(data: Dataset, sample: dict) -> list[tuple[str, tuple, tuple]]:
    c = data.channels
    mean, std = channel_stats(sample["x"])
    out = [
        ("the data's own statistics", tuple(round(m, 3) for m in mean), tuple(round(max(s, 1e-3), 3) for s in std)),
        ("mean 0.5, std 0.5", (0.5,) * c, (0.5,) * c),
        ("mean 0.5, std 0.25 (the project's)", (0.5,) * c, (0.25,) * c),
        ("pixels in 0..255", (0.0,) * c, (round(1 / 255, 6),) * c),
    ]
    if c == 3:
        out.insert(1, ("ImageNet's", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    return out


def _norm_cause(model, data, sample, current: float) -> str | None:
    best = None
    for name, mean, std in _norm_candidates(data, sample):
        m = torch.tensor(mean).view(1, -1, 1, 1)
        s = torch.tensor(std).view(1, -1, 1, 1)
        try:
            acc = _acc(predictions(model, sample["x"], lambda x, m=m, s=s: (x - m) / s), sample["y"])
        except Exception:
            continue
        if acc >= current + SIZE_GAIN and (best is None or acc > best[0]):
            best = (acc, name, mean, std)
    if best is None:
        return None
    acc, name, mean, std = best
    flags = f"--input-mean {' '.join(f'{v:g}' for v in mean)} --input-std {' '.join(f'{v:g}' for v in std)}"
    return (
        f"normalisation: it was given raw [0, 1] pixels, and with {name} normalisation it scores {acc:.1f}% on "
        f"train/, {current:.1f}% without: give {flags} (the normalisation it was trained with)"
    )


def _order_cause(data: Dataset, sample: dict, floor: float, current: float) -> str | None:
    y, pred, k = sample["y"], sample["pred"], data.num_classes
    conf = torch.zeros(k, k, dtype=torch.long)
    conf.index_put_((y, pred), torch.ones(len(y), dtype=torch.long), accumulate=True)
    present = [c for c in range(k) if conf[c].sum() > 0]
    mapping = {c: int(conf[c].argmax()) for c in present}
    mapped = 100.0 * sum(int(conf[c, mapping[c]]) for c in present) / max(1, len(y))
    if len(set(mapping.values())) < len(mapping) or mapped < max(floor, current + BELOW_TEST):
        return None
    c = next(c for c in present if mapping[c] != c)
    names = data.classes
    return (
        f"class order: images of class '{names[c]}' mostly get output {mapping[c]}, which is class "
        f"'{names[mapping[c]]}' here (output k must be the k-th class folder in sorted order: "
        f"{', '.join(names[:6])}{' ...' if k > 6 else ''}); name the folders so they sort in the model's "
        f"order (e.g. zero-padded 01 ... 10), or give --manifest labels that do"
    )


def check(loaded, data: Dataset, cfg, native: int | None, what: str) -> tuple[Fit, str | None]:
    """The fit of `loaded` (see the module's docstring): (Fit, a note when accepted with --accept-poor-fit);
    raises TMUError with the likely cause otherwise."""
    model = loaded.model
    fit, sample = measure(model, data)
    problem = fit.problem()
    size = _size_cause(model, data, sample, cfg, native, fit.train)
    if problem is None and size is None:
        return fit, None
    cause = size
    if cause is None and _normalisation_unknown(loaded, cfg):
        cause = _norm_cause(model, data, sample, fit.train)
    if cause is None and problem:
        cause = _order_cause(data, sample, fit.floor(fit.chance_train), fit.train)
    cause = cause or (
        "check --image-size (the size it was trained at), --input-mean/--input-std (the normalisation it was "
        "trained with) and that the class folders sort in the model's output order"
    )
    line = f"{what} {loaded.path} does not fit the data: {problem or 'it scores better at another image size'}: {fit.words()}"
    if getattr(cfg.own, "accept_poor_fit", False):
        return fit, f"model-fit check: {line}; likely cause: {cause}; run anyway ({ACCEPT})"
    raise TMUError(f"{line}; likely cause: {cause} (or {ACCEPT} to run it as it is)")


def _normalisation_unknown(loaded, cfg) -> bool:
    """The file holds no normalisation (code, or a torchvision/timm state dict) and none was given."""
    return not cfg.own.input_mean and (loaded.executable or ":" in loaded.arch)


def native_size(data_cfg, own) -> int | None:
    """The side length every image shares (square, within --image-size's bounds), read from the image headers;
    None when they differ."""
    from PIL import Image

    from .layout import _listing

    try:
        listing, _ = _listing(data_cfg, own)
    except TMUError:
        return None  # the run's own validation names what is wrong with the data
    sizes = set()
    for entries in listing.values():
        for e in entries:
            try:
                with Image.open(e.file) as im:
                    sizes.add(im.size)
            except Exception:
                return None  # an unreadable image: the data's own check names it
            if len(sizes) > 1:
                return None
    (w, h) = sizes.pop() if sizes else (0, 0)
    return w if w == h and 8 <= w <= 256 else None


def with_native_size(cfg):
    """`cfg` with its image size set to the data's own, when every image shares one (the default of --image-size
    on the user's own model)."""
    size = native_size(cfg.data, cfg.own)
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"image_size": size})}) if size else cfg
