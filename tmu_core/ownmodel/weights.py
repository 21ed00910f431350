"""Loading a user's model, checking it against the data, and saving the unlearned model in the format it came in.

Formats (told apart by content, `files.sniff`):
- a state dict (`torch.save`, read with `torch.load(weights_only=True, mmap=True)`: no pickled code runs) or a
  safetensors file of an architecture named by `--model`: a registered one (`python -m tmu_core models`) or one
  from torchvision or timm (`torchvision:resnet18`, `timm:NAME`, with one output per class folder);
- a TorchScript file (`torch.jit.load`) or a torch.export program (.pt2, `torch.export.load`). Both are code:
  they are refused unless the user opted in (`--allow-executable-model`, or the dashboard's operator), and then
  load and run only in a sandboxed child process (`sandbox`). A model without an `embed` method still runs:
  wherever the project uses the penultimate embedding (TMU's NF feature) it then uses the logits (`LOGITS_NOTE`).

Before any of it is read, the file's declared tensor sizes are checked (`files.check_size`). The public API for a
run: `load_original` (the original model, loaded, checked on a batch and for fit, or for an executable format
outside the sandbox checked in a sandboxed child), `load_model` (the gold model), `unlearned_file` (the unlearned
model's bytes and file suffix in the input's format).
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..data import Dataset
from ..errors import TMUError
from ..models import MODELS, build_model, check_model
from . import files, hub, sandbox
from .check import CHECK_BATCH, check_batch, first_line  # noqa: F401  (check_batch: part of this module's API)

NORM_KEYS = ("mean", "std")  # the registered models' normalisation buffers (part of their state dict)
LOGITS_NOTE = (
    "{path} is {kind} without an embed() method: TMU's NF feature (nearest distance in the model's embedding) "
    "uses its logits in place of the penultimate embedding; AF, CF and every readout are unchanged"
)
EXECUTABLE_REFUSED = (
    "{what} {path} is {kind}: a model file that holds code, which would run with this process's rights; it runs "
    "only with an explicit opt-in (--allow-executable-model on the command line; on the dashboard, "
    "{env}=1 in its server's environment, the operator's choice), and then in a sandboxed child process. The safe "
    "format: the model's state dict (torch.save(model.state_dict(), 'model.pt')) with --model naming its "
    "architecture ({archs}, torchvision:NAME or timm:NAME)"
)
FROZEN = (
    "{what} {path} has no trainable parameters ({why}): it is a deployment format whose weights are constants, "
    "so nothing can be unlearned. Give the model before freezing (torch.jit.script(model) saved with "
    "torch.jit.save, not torch.jit.freeze), or its state dict with --model naming the architecture"
)


def _quiet(fn, *args, **kwargs):
    """A torch.jit / torch.export call without the warnings newer torch prints (they would break one-line output)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


class CodeNet(nn.Module):
    """A model that is code (TorchScript, torch.export) behind the project's model interface: forward(x) on [0, 1]
    pixels (normalised here when the user stated a mean and std) and embed(x) (the model's own embed(), else its
    logits). Every call into it runs under the sandbox's per-call time limit."""

    def __init__(self, inner, mean=None, std=None, channels: int = 1):
        super().__init__()
        self.inner = inner
        self.has_embed = hasattr(inner, "embed")
        self.normalise = mean is not None
        self.register_buffer("mean", torch.tensor(mean or [0.0] * channels, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std or [1.0] * channels, dtype=torch.float32).view(1, -1, 1, 1))

    def set_normalization(self, mean, std) -> CodeNet:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1).to(self.mean.device)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1).to(self.std.device)
        self.normalise = True
        return self

    def _in(self, x):
        return (x - self.mean) / self.std if self.normalise else x

    def forward(self, x):
        with sandbox.call_limit():
            return self.inner(self._in(x))

    def embed(self, x):
        with sandbox.call_limit():
            out = self.inner.embed(self._in(x)) if self.has_embed else self.inner(self._in(x))
        return out.flatten(1) if isinstance(out, torch.Tensor) and out.ndim >= 2 else out

    def _norm_args(self):
        if not self.normalise:
            return None, None
        return self.mean.flatten().tolist(), self.std.flatten().tolist()


class ScriptedNet(CodeNet):
    def __deepcopy__(self, memo):
        """A copy through TorchScript's own save and load: copy.deepcopy of a ScriptModule gives parameters that
        are not leaves, which no optimizer takes."""
        sandbox.require_inside("loading a TorchScript model")
        buf = io.BytesIO()
        _quiet(torch.jit.save, self.inner, buf)
        buf.seek(0)
        device = next(iter(self.inner.parameters()), torch.empty(0)).device
        mean, std = self._norm_args()
        out = ScriptedNet(_quiet(torch.jit.load, buf, map_location=device), mean, std, self.mean.shape[1])
        return out.to(device).train(self.training)


class ExportedNet(CodeNet):
    """A torch.export program's module (`ExportedProgram.module()`): a GraphModule whose parameters train. Its
    train/eval behaviour (batch norm, dropout) was fixed when it was exported, and it refuses .train(): the
    wrapper's mode changes alone."""

    def train(self, mode: bool = True) -> ExportedNet:
        self.training = mode
        return self


@dataclass
class Loaded:
    model: nn.Module | None  # None: an executable model seen from outside the sandbox (checked in a child)
    format: str  # files.DESCRIPTION's keys
    path: str
    notes: tuple = ()  # what runs differently for this model (no embed, the sandbox's limits, the fit check)
    batch_accuracy: float | None = None  # % on a sample of train/ (the fit check)
    fit: dict = field(default_factory=dict)
    arch: str = ""
    input_shape: tuple = ()  # (channels, size, size): what an exported program is exported again with

    @property
    def has_embed(self) -> bool:
        return not isinstance(self.model, CodeNet) or self.model.has_embed

    @property
    def executable(self) -> bool:
        return self.format in files.EXECUTABLE


def is_torchscript(path: Path) -> bool:
    return files.sniff(path) == "torchscript"


def _user_file(path_text: str, what: str) -> Path:
    try:
        path = Path(path_text).expanduser()
    except RuntimeError as exc:  # "~nosuchuser/x"
        raise TMUError(f"{what} '{path_text}': {exc} (no such user?); give the file's absolute path") from None
    if not path.is_file():
        raise TMUError(f"{what} {path} does not exist or is not a file")
    return path


def max_code_model_bytes() -> int:
    try:
        return int(float(os.environ.get("TMU_MODEL_MAX_GB", "4")) * 2**30)
    except ValueError:
        raise TMUError(f"TMU_MODEL_MAX_GB must be a number (got {os.environ.get('TMU_MODEL_MAX_GB')!r})") from None


def _tensors(state, path: Path, what: str) -> dict:
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):  # a training checkpoint that wraps the weights
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TMUError(
            f"{what} {path} does not hold a state dict of tensors (model.state_dict() saved with torch.save), "
            f"nor is it a TorchScript or torch.export file"
        )
    odd = [k for k in state if not isinstance(k, str)]
    if odd:
        raise TMUError(
            f"{what} {path} has {len(odd)} key(s) that are not parameter names (e.g. {odd[0]!r} of type "
            f"{type(odd[0]).__name__}); a state dict maps names such as 'head.weight' to tensors: save "
            f"model.state_dict()"
        )
    bad = sorted({str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_complex()})
    if bad:
        raise TMUError(
            f"{what} {path} holds complex tensors ({', '.join(bad)}); a classifier's weights are real numbers "
            f"(float32, float16 or bfloat16): the imaginary part would be dropped, so the file is refused"
        )
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _read_state(path: Path, fmt: str, what: str) -> dict:
    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # the legacy (non-zip) format
    except TMUError:
        raise
    except Exception as exc:
        raise TMUError(
            f"{what} {path} is not a plain {files.DESCRIPTION[fmt]} ({exc.__class__.__name__}: "
            f"{first_line(exc)}); only tensors are loaded (weights_only)"
        ) from None


def _key_mismatch(what, path, arch, expected: dict, state: dict) -> None:
    missing = [k for k in expected if k not in state and k not in NORM_KEYS]
    unexpected = [k for k in state if k not in expected]
    if not missing and not unexpected:
        return
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
        f"{what} {path} is not a {arch} state dict: {' and '.join(parts)}; give --model the architecture it was "
        f"trained as (see `python -m tmu_core models`, or torchvision:NAME / timm:NAME)"
    )


def _shape_mismatch(what, path, arch, data: Dataset, expected: dict, state: dict) -> None:
    for k, v in expected.items():
        if k in state and tuple(state[k].shape) != tuple(v.shape):
            found = tuple(state[k].shape)
            if v.shape and v.shape[0] == data.num_classes and found and found[0] != data.num_classes:
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


def _normalisation(what, path, net, state: dict, mean, std) -> None:
    """Registered models keep their normalisation in the state dict; --input-mean/std must agree with it."""
    expected = net.state_dict()
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


def _build(arch: str, data: Dataset, state: dict | None) -> nn.Module:
    if not hub.is_hub(arch):
        return build_model(arch, data.channels, data.num_classes, data.size)
    net = hub.build_hub(arch, data.channels, data.num_classes, data.size)
    key = hub.first_conv_key(net)
    if state is not None and key in state and state[key].ndim == 4 and state[key].shape[1] != data.channels:
        net = hub.build_hub(arch, data.channels, data.num_classes, data.size, int(state[key].shape[1]))
    return net


def _param_bytes(net: nn.Module) -> int:
    return sum(v.numel() * v.element_size() for v in net.state_dict().values())


def _load_state(path: Path, fmt: str, arch: str, data: Dataset, mean, std, what: str) -> nn.Module:
    expected_bytes = _param_bytes(_build(arch, data, None))
    # a training checkpoint may carry an optimizer's moments beside the weights: up to 4x, never 1000x
    files.check_size(path, fmt, what, 4 * expected_bytes + 16 * 2**20, expected_bytes)
    state = _tensors(_read_state(path, fmt, what), path, what)
    net = _build(arch, data, state)
    target = net.inner if isinstance(net, hub.HubNet) else net
    _key_mismatch(what, path, arch, target.state_dict(), state)
    _shape_mismatch(what, path, arch, data, target.state_dict(), state)
    if isinstance(net, hub.HubNet):
        target.load_state_dict({k: v.to(target.state_dict()[k].dtype) for k, v in state.items()})
        if mean is not None:
            net.set_normalization(mean, std)
    else:
        _normalisation(what, path, net, state, mean, std)
        net.load_state_dict({k: v.to(net.state_dict()[k].dtype) for k, v in state.items()})
    return net


def _load_code(path: Path, fmt: str, data: Dataset, mean, std, what: str) -> CodeNet:
    """Inside the sandbox only: the TorchScript or torch.export file, loaded and wrapped."""
    kind = files.DESCRIPTION[fmt]
    sandbox.require_inside(f"loading {kind}")
    try:
        with sandbox.call_limit():  # TorchScript runs a model's __setstate__ while loading
            if fmt == "torchscript":
                net = ScriptedNet(_quiet(torch.jit.load, str(path), map_location="cpu"), mean, std, data.channels)
            else:
                net = ExportedNet(_quiet(torch.export.load, str(path)).module(), mean, std, data.channels)
    except Exception as exc:
        raise TMUError(
            f"{what} {path} looks like {kind} but does not load ({exc.__class__.__name__}: {first_line(exc)})"
        ) from None
    params = list(net.inner.parameters())
    if not params or not any(p.requires_grad and p.is_floating_point() for p in params):
        why = "torch.jit.freeze folds them into constants" if params == [] else "none is a trainable float tensor"
        raise TMUError(FROZEN.format(what=what, path=path, why=why))
    bad = sorted({str(p.dtype).removeprefix("torch.") for p in params if p.is_complex()})
    if bad:
        raise TMUError(f"{what} {path} has complex parameters ({', '.join(bad)}); a classifier's weights are real")
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
    path_text: str,
    arch: str,
    data: Dataset,
    input_mean=(),
    input_std=(),
    what="original weights",
    allow_code: bool = False,
) -> Loaded:
    """The user's model as a project model (forward on [0, 1] pixels, embed), checked on one batch of train/;
    refused in one line when it does not fit the data. An executable format is refused without `allow_code`, and
    outside the sandbox is returned unread (`model` None): only a sandboxed child loads it."""
    path = _user_file(path_text, what)
    fmt = files.sniff(path)
    mean = _per_channel(input_mean, data.channels, "mean")
    std = _per_channel(input_std, data.channels, "std")
    shape = (data.channels, data.size, data.size)
    if fmt in files.EXECUTABLE:
        kind = files.DESCRIPTION[fmt]
        if not allow_code:
            archs = ", ".join(MODELS.names())
            raise TMUError(
                EXECUTABLE_REFUSED.format(what=what, path=path, kind=kind, env=sandbox.ENV_ALLOW, archs=archs)
            )
        files.check_size(path, fmt, what, max_code_model_bytes(), None)
        if not sandbox.inside():
            return Loaded(None, fmt, str(path), input_shape=shape)
        model = _load_code(path, fmt, data, mean, std, what)
        notes = tuple(sandbox.NOTES) + (() if model.has_embed else (LOGITS_NOTE.format(path=path.name, kind=kind),))
        loaded = Loaded(model, fmt, str(path), notes, arch=arch, input_shape=shape)
    else:
        check_model(arch)
        loaded = Loaded(
            _load_state(path, fmt, arch, data, mean, std, what), fmt, str(path), arch=arch, input_shape=shape
        )
    loaded.batch_accuracy = check_batch(loaded, data, what)
    loaded.model.eval()
    return loaded


def copy_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def _adopt(loaded: Loaded, found: dict) -> Loaded:
    loaded.batch_accuracy, loaded.fit = found.get("batch_accuracy"), found.get("fit") or {}
    loaded.notes = tuple(found.get("notes") or ())
    return loaded


def load_original(cfg, data: Dataset) -> Loaded:
    """The run's original model (`cfg.own`), loaded and checked on a batch and for fit (`fit.check`); the data's
    normalisation (for the networks TMU trains from scratch) becomes the model's where the model holds one. An
    executable format outside the sandbox is loaded and checked in a sandboxed child instead, and comes back
    without its model."""
    from ..config import run_config_to_dict
    from .fit import check, native_size

    own = cfg.own
    loaded = _load_own(cfg, data, own.original_weights, "original weights")
    if loaded.model is None:
        return _adopt(loaded, sandbox.check_in_child(run_config_to_dict(cfg)))
    holds_norm = not loaded.executable and (own.input_mean or not hub.is_hub(cfg.train.model))
    if holds_norm:
        data.mean = tuple(loaded.model.mean.flatten().tolist())
        data.std = tuple(loaded.model.std.flatten().tolist())
    fit, note = check(loaded, data, cfg, native_size(cfg.data, own), "original weights")
    loaded.fit, loaded.batch_accuracy = fit.as_dict(), fit.train
    loaded.notes = (*loaded.notes, *([note] if note else []))
    return loaded


def load_gold(cfg, data: Dataset) -> Loaded:
    """The user's own gold model (`--gold-weights`), in the same format rules as the original."""
    return _load_own(cfg, data, cfg.own.gold_weights, "gold weights")


def _load_own(cfg, data: Dataset, path_text: str, what: str) -> Loaded:
    """`load_model` of one of the run's model files with the run's architecture, normalisation and opt-in."""
    own = cfg.own
    return load_model(
        path_text,
        cfg.train.model,
        data,
        own.input_mean,
        own.input_std,
        what=what,
        allow_code=own.allow_executable_model,
    )


SUFFIX = {"state_dict": "pt", "safetensors": "safetensors", "torchscript": "pt", "export": "pt2"}


def _state_of(model: nn.Module) -> dict:
    if isinstance(model, hub.HubNet | CodeNet):  # a wrapper: the user's own module's state
        model = model.inner
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def _export_again(loaded: Loaded, model: CodeNet) -> bytes:
    inner = copy.deepcopy(model.inner).cpu().eval()
    sample = torch.rand(2, *loaded.input_shape)
    batch = torch.export.Dim("batch", min=1)
    program = _quiet(torch.export.export, inner, (sample,), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    _quiet(torch.export.save, program, buf)
    return buf.getvalue()


def unlearned_file(loaded: Loaded, model: nn.Module) -> tuple[bytes, str, str | None]:
    """`model` (a fine-tuned copy of `loaded.model`) as (the bytes of a file in the input's format, its suffix,
    a note when another format had to be written)."""
    buf = io.BytesIO()
    if loaded.format == "torchscript":
        _quiet(torch.jit.save, model.inner, buf)
    elif loaded.format == "export":
        try:
            return _export_again(loaded, model), SUFFIX["export"], None
        except Exception as exc:
            torch.save(_state_of(model), buf)
            return (
                buf.getvalue(),
                "pt",
                f"the unlearned model could not be exported again as a torch.export program "
                f"({exc.__class__.__name__}: {first_line(exc)}); its state dict was written (load it into the "
                f"module you exported with model.load_state_dict)",
            )
    elif loaded.format == "safetensors":
        from safetensors.torch import save

        return save(_state_of(model)), SUFFIX["safetensors"], None
    else:
        state = _state_of(model)
        torch.save(state, buf)
    return buf.getvalue(), SUFFIX[loaded.format], None


def save_like(loaded: Loaded, model: nn.Module) -> bytes:
    """`model` as the bytes of a file in the input's format (see `unlearned_file`)."""
    return unlearned_file(loaded, model)[0]
