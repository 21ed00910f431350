"""One batch of train/ through the user's model: it must take the images and give one finite float score per
class, and an embedding per image. Each way a model can fail gets its own line that names the model's own error
and what was expected (a tuple output, integer labels instead of logits, a 1-D embedding, an allocation past the
memory limit), not generic advice."""

from __future__ import annotations

import re

import torch

from ..data import Dataset, to_float
from ..errors import TMUError

CHECK_BATCH = 64
ALLOC = re.compile(r"allocate (\d+) bytes")


def first_line(exc: BaseException) -> str:
    """The line that says what went wrong: the first, or for an error inside TorchScript's interpreter (whose
    first lines are its traceback) the last."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()] or [exc.__class__.__name__]
    line = lines[-1] if lines[0].startswith("The following operation failed") else lines[0]
    return line.removeprefix("builtins.")[:200]


BATCH_GUARD = re.compile(r"Guard failed: \w+\.size\(\)\[0\] == (\d+)")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _raised(what: str, path: str, exc: BaseException, size: str, shape: list) -> TMUError:
    """The model's own error, and what it was given."""
    text = first_line(exc)
    alloc = ALLOC.search(text)
    if isinstance(exc, MemoryError) or alloc or "can't allocate memory" in text:
        asked = f" {_gib(int(alloc.group(1)))}" if alloc else ""
        return TMUError(
            f"{what} {path} tried to allocate{asked} on a batch of {shape[0]} images and the memory limit refused "
            f"it ({exc.__class__.__name__}); a model of this data set needs far less: check the model's code"
        )
    hint = (
        "; if it was trained at another image size, give that size with --image-size"
        if re.search(r"shape|size|mat1|dimension|expected input", text, re.I)
        else ""
    )
    if BATCH_GUARD.search(text):  # torch.export fixed the batch size it was traced with
        hint = (
            f"; it takes batches of exactly {BATCH_GUARD.search(text).group(1)} images: export it with a dynamic "
            "batch dimension (torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},)))"
        )
    return TMUError(
        f"{what} {path} raised {exc.__class__.__name__} on a batch of {size} images from train/ "
        f"(a float tensor {shape}, values in [0, 1]): {text}{hint}"
    )


def _outputs(what: str, path: str, out, n: int, classes: int) -> None:
    if isinstance(out, (tuple, list, dict)):
        kind = type(out).__name__
        return_of = f"a {kind} of {len(out)} values" + (
            f" ({', '.join(map(str, list(out)[:4]))})" if kind == "dict" else ""
        )
        raise TMUError(
            f"{what} {path} returns {return_of}, not one tensor; TMU needs forward(x) to return the logits, a "
            f"float tensor [{n}, {classes}] (wrap the model so forward returns only its logits)"
        )
    if not isinstance(out, torch.Tensor):
        raise TMUError(
            f"{what} {path} returns {type(out).__name__}; a float tensor [{n}, {classes}] of logits was expected"
        )
    if not out.is_floating_point():
        raise TMUError(
            f"{what} {path} returns {str(out.dtype).removeprefix('torch.')} values, not float scores; TMU needs "
            f"the logits (one float score per class, [{n}, {classes}]) to train and compare, not predicted labels"
        )
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] != classes:
        raise TMUError(
            f"{what} {path} gives {list(out.shape)} for a batch of {n} images; the data have {classes} class "
            f"folders, so [{n}, {classes}] were expected"
        )


def _embedding(what: str, path: str, emb, n: int) -> None:
    if not isinstance(emb, torch.Tensor) or not emb.is_floating_point():
        raise TMUError(
            f"{what} {path}: embed() returns {type(emb).__name__}; a float tensor [{n}, features] was expected"
        )
    if emb.ndim != 2 or emb.shape[0] != n:
        raise TMUError(
            f"{what} {path}: embed() gives {list(emb.shape)} for a batch of {n} images; one feature vector per "
            f"image, [{n}, features], was expected"
        )


def check_batch(loaded, data: Dataset, what: str) -> float:
    """One batch of train/ through the model (see the module's docstring). Returns its accuracy on that batch (%)."""
    ids = torch.as_tensor(data.train_ids[:: max(1, len(data.train_ids) // CHECK_BATCH)][:CHECK_BATCH])
    x, y = to_float(data.x[ids]), data.y[ids]
    model = loaded.model.eval()
    size = f"{data.channels}-channel {data.size}x{data.size}"
    try:
        with torch.no_grad():
            out = model(x)
            _outputs(what, loaded.path, out, len(x), data.num_classes)
            emb = model.embed(x)
    except TMUError:
        raise
    except Exception as exc:  # the model's own code failed: say how, and on what
        raise _raised(what, loaded.path, exc, size, list(x.shape)) from None
    _embedding(what, loaded.path, emb, len(x))
    if not bool(torch.isfinite(out).all()) or not bool(torch.isfinite(emb).all()):
        raise TMUError(f"{what} {loaded.path} gives outputs that are not finite numbers on a batch of train/ images")
    return 100.0 * float((out.argmax(1) == y).float().mean())
