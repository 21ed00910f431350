"""Loading a user's model, checking it against the data on one batch, and saving the unlearned model in the
format it came in.

Two formats: a state dict of a registered architecture (`--model`, one output per class folder), loaded with
`torch.load(weights_only=True)` so no pickled code runs; and a whole-model TorchScript file (`torch.jit.load`).
A TorchScript model without an `embed` method still runs: wherever the project uses the penultimate embedding
(TMU's NF feature) it then uses the model's logits (`LOGITS_NOTE`).
"""

from __future__ import annotations

import copy
import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..data import Dataset, to_float
from ..data.sources import user_path
from ..errors import TMUError
from ..models import MODELS, build_model

NORM_KEYS = ("mean", "std")  # the registered models' normalisation buffers (part of their state dict)
LOGITS_NOTE = (
    "{path} is a TorchScript model without an embed() method: TMU's NF feature (nearest distance in the "
    "model's embedding) uses its logits in place of the penultimate embedding; AF, CF and every readout "
    "are unchanged"
)
CHECK_BATCH = 64


def _jit(fn, *args, **kwargs):
    """torch.jit.load / save without the deprecation warning newer torch prints (it would break one-line output)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return fn(*args, **kwargs)


class ScriptedNet(nn.Module):
    """A TorchScript model behind the project's model interface: forward(x) on [0, 1] pixels (normalised here
    when the user stated a mean and std) and embed(x) (the model's own embed(), else its logits)."""

    def __init__(self, inner, mean=None, std=None):
        super().__init__()
        self.inner = inner
        self.has_embed = hasattr(inner, "embed")
        self.normalise = mean is not None
        if self.normalise:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def __deepcopy__(self, memo):
        """A copy through TorchScript's own save and load: copy.deepcopy of a ScriptModule gives parameters that
        are not leaves, which no optimizer takes."""
        buf = io.BytesIO()
        _jit(torch.jit.save, self.inner, buf)
        buf.seek(0)
        device = next(iter(self.inner.parameters()), torch.empty(0)).device
        out = ScriptedNet(
            _jit(torch.jit.load, buf, map_location=device),
            self.mean.flatten().tolist() if self.normalise else None,
            self.std.flatten().tolist() if self.normalise else None,
        )
        return out.to(device).train(self.training)

    def _in(self, x):
        return (x - self.mean) / self.std if self.normalise else x

    def forward(self, x):
        return self.inner(self._in(x))

    def embed(self, x):
        out = self.inner.embed(self._in(x)) if self.has_embed else self.inner(self._in(x))
        return out.flatten(1)


@dataclass
class Loaded:
    model: nn.Module
    format: str  # "state_dict" or "torchscript"
    path: str
    notes: tuple = ()  # what runs differently for this model (a TorchScript model without embed)

    @property
    def has_embed(self) -> bool:
        return not isinstance(self.model, ScriptedNet) or self.model.has_embed


def is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _tensors(state, path: Path) -> dict:
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):  # a training checkpoint that wraps the weights
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TMUError(
            f"{path} does not hold a state dict of tensors (model.state_dict() saved with torch.save), "
            f"nor is it a TorchScript file"
        )
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _load_state(path: Path, arch: str, data: Dataset, mean, std, what: str) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TMUError(
            f"{what} {path} is not a plain state dict ({exc.__class__.__name__}); only tensors are "
            f"loaded (weights_only), or give a TorchScript file"
        ) from None
    state = _tensors(state, path)
    net = build_model(arch, data.channels, data.num_classes, data.size)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state and k not in NORM_KEYS]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = (
            [f"{len(missing)} key(s) missing ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})"]
            if missing
            else []
        ) + (
            [f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''})"]
            if unexpected
            else []
        )
        raise TMUError(
            f"{what} {path} is not a {arch} state dict: {' and '.join(parts)}; give --model the registered "
            f"architecture it was trained as (see `python -m tmu_core models`) or a TorchScript file"
        )
    for k, v in expected.items():
        if k in state and tuple(state[k].shape) != tuple(v.shape):
            found = tuple(state[k].shape)
            if k.startswith("head.") and v.shape and v.shape[0] == data.num_classes:
                raise TMUError(
                    f"{what} {path} has {found[0]} classes ({k} is {list(found)}) but the data have "
                    f"{data.num_classes} class folders ({', '.join(data.classes[:10])}"
                    f"{' ...' if data.num_classes > 10 else ''}): expected {list(v.shape)}"
                )
            raise TMUError(
                f"{what} {path} does not fit {arch} on {data.channels}-channel {data.size}x{data.size} "
                f"images with {data.num_classes} classes: {k} is {list(found)} in the file, {list(v.shape)} "
                f"expected; check --image-size and --model"
            )
    for k, given in (("mean", mean), ("std", std)):
        if k in state:
            held = [round(float(t), 6) for t in state[k].flatten()]
            if given is not None and [round(float(g), 6) for g in given] != held:
                raise TMUError(
                    f"{what} {path} normalises with {k} {held} but --input-{k} says {list(given)}; "
                    f"leave --input-{k} out to use what the weights hold"
                )
        else:
            value = given if given is not None else expected[k].flatten().tolist()
            state[k] = torch.tensor(value, dtype=torch.float32).view_as(expected[k])
    net.load_state_dict(state)
    return net


def _per_channel(values, channels: int, name: str):
    if not values:
        return None
    if len(values) == 1:
        return tuple(values) * channels
    if len(values) != channels:
        raise TMUError(
            f"--input-{name} gives {len(values)} numbers; the images have {channels} channel(s): give "
            f"one, or one per channel"
        )
    return tuple(values)


def load_model(
    path_text: str, arch: str, data: Dataset, input_mean=(), input_std=(), what="original weights"
) -> Loaded:
    """The user's model as a project model (forward on [0, 1] pixels, embed); refused in one line when it does
    not fit the data."""
    path = user_path(path_text)
    if not path.is_file():
        raise TMUError(f"{what} {path} does not exist or is not a file")
    MODELS.entry(arch)
    mean = _per_channel(input_mean, data.channels, "mean")
    std = _per_channel(input_std, data.channels, "std")
    if is_torchscript(path):
        try:
            inner = _jit(torch.jit.load, str(path), map_location="cpu")
        except Exception as exc:
            raise TMUError(
                f"{what} {path} looks like TorchScript but does not load ({exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
            ) from None
        model = ScriptedNet(inner, mean, std)
        loaded = Loaded(
            model, "torchscript", str(path), () if model.has_embed else (LOGITS_NOTE.format(path=path.name),)
        )
    else:
        loaded = Loaded(_load_state(path, arch, data, mean, std, what), "state_dict", str(path))
    check_batch(loaded, data, what)
    loaded.model.eval()
    return loaded


def check_batch(loaded: Loaded, data: Dataset, what: str) -> float:
    """One batch of train/ through the model: it must take the images and give one finite output per class.
    Returns its accuracy on that batch (%)."""
    ids = torch.as_tensor(data.train_ids[:: max(1, len(data.train_ids) // CHECK_BATCH)][:CHECK_BATCH])
    x, y = to_float(data.x[ids]), data.y[ids]
    model = loaded.model.eval()
    size = f"{data.channels}-channel {data.size}x{data.size}"
    try:
        with torch.no_grad():
            out = model(x)
            emb = model.embed(x)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise TMUError(
            f"{what} {loaded.path} cannot take a batch of {size} images from train/ ({first}); state the "
            f"size it was trained at with --image-size"
        ) from None
    if out.ndim != 2 or out.shape[1] != data.num_classes:
        raise TMUError(
            f"{what} {loaded.path} gives {list(out.shape[1:])} outputs per image; the data have "
            f"{data.num_classes} class folders, so [{data.num_classes}] were expected"
        )
    if not bool(torch.isfinite(out).all()) or not bool(torch.isfinite(emb).all()):
        raise TMUError(f"{what} {loaded.path} gives outputs that are not finite numbers on a batch of train/ images")
    return 100.0 * float((out.argmax(1) == y).float().mean())


def save_like(loaded: Loaded, model: nn.Module) -> bytes:
    """`model` (a fine-tuned copy of `loaded.model`) as the bytes of a file in the input's format."""
    buf = io.BytesIO()
    if loaded.format == "torchscript":
        _jit(torch.jit.save, model.inner, buf)
    else:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def copy_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)
