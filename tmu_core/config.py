"""Frozen configuration models (pydantic): one per component, shared by the CLI, the dashboard and config.json.

Every field states its help text (`description`), its bounds (`ge`/`le`) and, as a `Literal`, its choices:
`tmu_core.options` builds CLI flags from them, the dashboard builds widgets from the same fields, and `RunConfig`
is the schema of a run's stored config.json, so no second description has to be kept in step. A bad value
raises `TMUError` with one line naming the setting and what is valid. Defaults run on a CPU in seconds.
This module imports no registry: dataset, model and method names are checked where a config is resolved
(`jobs.pipeline.validate`). A config may nest section configs (TMU's twin / scoring / classifier /
unlearning); `leaf_fields`, `flatten` and `with_flat` address their fields by their (unique) names.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from .errors import TMUError


def opt(default, help: str, *, min: float | None = None, max: float | None = None, **other) -> Any:
    """A config field: its default, its help text (flag and widget) and its bounds; choices are its `Literal` type."""
    if other:
        raise TypeError(f"opt() takes a default, help, min and max, not {sorted(other)}: give choices as Literal[...]")
    return Field(default, description=help, ge=min, le=max)


def words(name: str) -> str:
    """A field as plain words ("forget_count" -> "forget count"): the dashboard's widget label, and the CLI
    flag (--forget-count) without its dashes, so one error message reads right in both."""
    return name.replace("_", " ")


def _num(value) -> str:
    """A bound or a value as typed: whole numbers in full (a seed of 2**32 - 1), others short (0.02, 1e-06)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _error_line(exc: ValidationError, cls: type) -> str:
    """A pydantic error as one line naming the setting (as flag and widget read it) and what is valid."""
    errors = exc.errors(include_url=False)
    extra = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"]
    if extra:
        owner = _owner(cls, errors[0]["loc"][:-1])
        valid = ", ".join(sorted(owner.model_fields)) if owner else ""
        return f"unknown {owner.__name__ if owner else cls.__name__} setting(s) {sorted(extra)}; valid: {valid}"
    e = errors[0]
    names = [str(x) for x in e["loc"] if isinstance(x, str)]
    what = words(names[-1]) if names else cls.__name__
    kind, ctx, got = e["type"], e.get("ctx") or {}, e.get("input")
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "greater_than_equal":
        return f"{what} must be at least {_num(ctx['ge'])} (got {_num(got)})"
    if kind == "less_than_equal":
        return f"{what} must be at most {_num(ctx['le'])} (got {_num(got)})"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        return f"{what} '{got}' is not valid; choose one of: {', '.join(choices)}"
    if kind.startswith("int_"):
        leaf = _leaf_at(cls, e["loc"])
        lo, hi = (leaf.min, leaf.max) if leaf else (None, None)
        span = f" from {lo:g} to {hi:g}" if lo is not None and hi is not None else ""
        return f"{what} must be a whole number{span} (got {got!r})"
    if kind == "finite_number":
        return f"{what} must be a finite number (got {got})"
    if kind.startswith("float_"):
        return f"{what} must be a number (got {got!r})"
    if kind.startswith("bool_"):
        return f"{what} must be true or false (got {got!r})"
    if kind.startswith("string_"):
        return f"{what} must be text (got {got!r})"
    if kind.startswith(("tuple_", "list_")):
        return f"{what} must be a list (got {got!r})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"the {what} part of the config is damaged (not a JSON object, got {type(got).__name__})"
    if kind == "missing":
        return f"{what} is missing"
    return f"{what}: {e['msg']}"


def _leaf_at(cls: type, loc: tuple):
    """The setting at `loc` (section names, then the setting's name), or None."""
    names = [x for x in loc if isinstance(x, str)]
    owner = _owner(cls, tuple(names[:-1])) if names else None
    field = owner.model_fields.get(names[-1]) if owner else None
    return _leaf(names[-1], field) if field is not None else None


def _owner(cls: type, loc: tuple) -> type | None:
    """The config class at `loc` (a path of section names) below `cls`."""
    for part in loc:
        sub = _section_type(cls.model_fields.get(part)) if isinstance(part, str) else None
        if sub is None:
            return None
        cls = sub
    return cls


class Config(BaseModel):
    """A frozen config: unknown settings refused, numbers finite, bad values one TMUError line.

    `model_copy(update=...)` validates the copy (pydantic's does not), so a copy with a bad value fails as a
    fresh config would."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise TMUError(_error_line(exc, type(self))) from None

    @classmethod
    def from_dict(cls, values):
        """A config from its JSON form (config.json, a cache key), checked like a fresh one."""
        if not isinstance(values, dict):
            raise TMUError(f"the {cls.__name__} part of the config is damaged (not a JSON object)")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise TMUError(_error_line(exc, cls)) from None

    def model_copy(self, *, update: dict | None = None, deep: bool = False):
        if not update:
            return super().model_copy(deep=deep)
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **update})

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, values):
        """numpy scalars as Python numbers; a bool is no number (True is not a count of 1)."""
        if not isinstance(values, dict):
            return values
        out = dict(values)
        for name, value in values.items():
            if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
                out[name] = value = value.item()
            field = cls.model_fields.get(name)
            if isinstance(value, bool) and field is not None and field.annotation in (int, float, "int", "float"):
                kind = "whole number" if field.annotation in (int, "int") else "number"
                raise TMUError(f"{words(name)} must be a {kind} (got {value!r})")
        return out


class DataConfig(Config):
    """Which data, and how it is split into train / aux / test."""

    dataset: str = opt("digits", "dataset name (see `python -m tmu_core datasets`)")
    data_root: str = opt("", "folder with the dataset files (torchvision sets, imagefolder); default ./data/<dataset>")
    image_size: int = opt(
        32,
        "side length imagefolder images are resized to (on your own model: the images' own size when they all "
        "share one)",
        min=8,
        max=256,
    )
    aux_fraction: float = opt(
        0.1, "share of each training class held out as the aux pool (never trained on)", min=0.02, max=0.5
    )
    test_fraction: float = opt(0.2, "test share for datasets without an official test split", min=0.05, max=0.5)
    train_per_class: int = opt(0, "use at most this many training images per class (0 = all)", min=0)


MAX_ID = 2**31 - 1  # no data set here has more samples; a larger id would overflow the tensors
MAX_SEED = 2**32 - 1  # the largest seed numpy accepts
FRACTION_ERROR = "forget fraction must be below 1 (got {:g}): the class must keep some samples"


class ForgetSpec(Config):
    """The forget set D_f: part of one class, by count, fraction or explicit sample ids."""

    forget_class: str = opt(
        "8", "class to forget from: a name, an index, or #index (a name that is also an index means the name)"
    )
    forget_count: int = opt(100, "how many samples of the class to forget", min=0)
    forget_fraction: float = opt(
        0.0, "forget this share of the class instead of a count (0 = use the count)", min=0.0, max=1.0
    )
    forget_ids: tuple[int, ...] = opt((), "explicit training sample ids to forget (overrides count/fraction)")

    @model_validator(mode="before")
    @classmethod
    def _size(cls, values):
        if not isinstance(values, dict):
            return values
        count, fraction = values.get("forget_count", 100), values.get("forget_fraction", 0.0)
        ids = values.get("forget_ids", ())
        if isinstance(count, int) and not isinstance(count, bool) and count < 1 and not ids and not fraction:
            raise TMUError(f"forget count must be at least 1 (got {count}), or give a forget fraction or forget ids")
        if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and fraction >= 1.0:
            raise TMUError(FRACTION_ERROR.format(fraction))  # one message for 1.0 and 1.5 alike
        if isinstance(ids, (list, tuple)) and not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            if not all(type(i).__module__ == "numpy" and float(i).is_integer() for i in ids):
                raise TMUError(
                    f"forget ids must be whole numbers (sample ids of the training set), got {list(ids)[:5]}"
                )
            values = {**values, "forget_ids": tuple(int(i) for i in ids)}
        return values

    @field_validator("forget_class")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("forget_ids")
    @classmethod
    def _known_ids(cls, ids: tuple[int, ...]) -> tuple[int, ...]:
        big = [i for i in ids if i > MAX_ID]  # a negative id is refused against the data, with its range
        if big:
            raise TMUError(f"forget ids must be training sample ids; {big[0]} is far beyond any data set's size")
        return ids


class TrainConfig(Config):
    """One training recipe, used for the original, the gold and every from-scratch model."""

    model: str = opt("small_cnn", "architecture (see `python -m tmu_core models`; also torchvision:NAME or timm:NAME)")
    epochs: int = opt(30, "training epochs", min=1, max=1000)
    batch_size: int = opt(64, "mini-batch size", min=1, max=4096)
    lr: float = opt(0.05, "initial learning rate (SGD, momentum 0.9)", min=1e-6, max=10.0)
    momentum: float = opt(0.9, "SGD momentum", min=0.0, max=0.999)
    weight_decay: float = opt(5e-4, "weight decay", min=0.0, max=0.1)
    schedule: Literal["cosine", "step", "constant"] = opt(
        "cosine", "learning-rate schedule: cosine, or step (/10 at 50% and 75%, as the paper)"
    )
    augment: Literal["none", "flip", "crop_flip"] = opt(
        "none", "augmentation: none, flip, crop_flip (pad 4 + crop + flip)"
    )
    label_smoothing: float = opt(0.0, "label smoothing of the cross-entropy", min=0.0, max=0.5)


MAX_GOLD_SEEDS = 20  # each gold is a full retrain on D_r


class OwnModelConfig(Config):
    """A model the project did not train: its weights, what it saw (train/ aux/ test/ or a CSV manifest), the
    deletion request as files, and an optional gold model. Empty original weights = the project trains its own
    (every other run). Read by `tmu_core.ownmodel`."""

    original_weights: str = opt(
        "",
        "your trained model: a state dict (.pt/.pth, or .safetensors) of --model with one output per "
        "class folder (a registered architecture, torchvision:NAME or timm:NAME), or with "
        "--allow-executable-model a TorchScript or torch.export file; the data must then be laid out "
        "as train/ aux/ test/ (or --manifest)",
    )
    manifest: str = opt(
        "",
        "your model: a CSV manifest (path,label,split with split train, aux or test) instead "
        "of train/ aux/ test/ folders under --data-root; paths relative to the manifest's folder",
    )
    forget_list: str = opt(
        "",
        "your model: a text file of training images to forget, one path per line relative "
        "to train/ (e.g. cat/0001.png); may span several classes",
    )
    gold: Literal["auto", "none", "retrain", "weights"] = opt(
        "auto",
        "your model: none (train nothing from scratch), retrain (retrain with the project's "
        "recipe, not yours) or weights (--gold-weights); auto: weights when --gold-weights is given, else none",
    )
    gold_weights: str = opt(
        "",
        "your model: a gold model you retrained yourself without the forget list (same "
        "format as --original-weights); every alignment measure is then computed",
    )
    input_mean: tuple[float, ...] = opt(
        (),
        "your model: per-channel mean it subtracts from [0, 1] pixels (default: "
        "what the state dict holds, else the registry's 0.5; a TorchScript model "
        "is given raw [0, 1] pixels unless this is set)",
    )
    input_std: tuple[float, ...] = opt(
        (), "your model: per-channel std it divides by (default: as --input-mean, the registry's 0.25)"
    )
    keep_models: bool = opt(
        False,
        "your model: also save each baseline's unlearned model (weights/<method>.pt, in the input's format); "
        "TMU's is always saved (weights/unlearned.pt)",
    )
    allow_executable_model: bool = opt(
        False,
        "your model: accept a TorchScript or torch.export (.pt2) file, which holds code: it then loads and runs "
        "only in a sandboxed child process (no writes outside the run folder, memory and time limits); without "
        "it such a file is refused unread",
    )
    accept_poor_fit: bool = opt(
        False,
        "your model: run it even when the model-fit check finds it at chance on its data, or far better at "
        "another image size (the check's numbers stay in the run's notes)",
    )

    @model_validator(mode="before")
    @classmethod
    def _gold_from_weights(cls, values):
        if isinstance(values, dict):  # --gold-weights F means --gold weights; any other --gold beside it disagrees
            gold, weights = values.get("gold", "auto"), values.get("gold_weights")
            if weights and gold not in ("auto", "weights"):
                raise TMUError(
                    f"--gold {gold} and --gold-weights {weights} disagree: --gold-weights is your own gold model "
                    "(--gold weights); give one of them"
                )
            if gold == "auto":
                values = {**values, "gold": "weights" if weights else "none"}
        for name in ("input_mean", "input_std"):
            numbers = values.get(name, ()) if isinstance(values, dict) else ()
            if isinstance(numbers, (list, tuple)) and any(isinstance(v, (bool, str)) for v in numbers):
                raise TMUError(f"{words(name)} must be numbers, one per channel (got {list(numbers)})")
        return values

    @model_validator(mode="after")
    def _consistent(self):
        if any(v <= 0 for v in self.input_std):
            raise TMUError(f"input std must be above 0 (got {list(self.input_std)})")
        if bool(self.input_mean) != bool(self.input_std):
            raise TMUError("give --input-mean and --input-std together (one number per channel each)")
        if self.gold == "weights" and not self.gold_weights:
            raise TMUError("--gold weights needs --gold-weights FILE (a model you retrained without the forget list)")
        if not self.original_weights:
            given = [
                f"--{n.replace('_', '-')}"
                for n in ("manifest", "forget_list", "gold_weights", "input_mean")
                if getattr(self, n)
            ] + (["--gold " + self.gold] if self.gold not in ("none", "auto") else [])
            if given:
                raise TMUError(f"{', '.join(given)} describe your own model: give --original-weights FILE too")
        return self

    @property
    def active(self) -> bool:
        return bool(self.original_weights)


MethodParams = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"


class RunConfig(Config):
    """Everything that defines a run: data, forget set, training recipe, methods, seed, device; also the schema
    of a run's stored config.json (`run_config_to_dict` / `run_config_from_dict`)."""

    data: DataConfig = Field(default_factory=DataConfig)
    forget: ForgetSpec = Field(default_factory=ForgetSpec)
    train: TrainConfig = Field(default_factory=TrainConfig)
    methods: tuple[str, ...] = opt(("tmu", "finetune", "neggrad", "randlabel", "badteacher"), "methods to run")
    # {method: {setting: value}} in config.json; here (method, ((setting, value), ...)) pairs, hashable
    method_params: MethodParams = opt((), "per-method settings that differ from the method's defaults")
    seed: int = opt(0, "seed of the split, forget set and training", min=0, max=MAX_SEED)
    device: str = opt("auto", DEVICE_HELP)
    name: str = opt("", "a name for the run (part of its id)")
    gold_seeds: int = opt(
        1,
        "K gold models (training seeds differ) for soft truth p_i; 1 = the run's gold alone",
        min=1,
        max=MAX_GOLD_SEEDS,
    )
    own: OwnModelConfig = Field(default_factory=OwnModelConfig)  # a model the project did not train (tmu_core.ownmodel)

    @model_validator(mode="before")
    @classmethod
    def _stored_form(cls, values):
        """config.json's method_params ({method: {setting: value}}) as pairs; a method named twice is refused."""
        if not isinstance(values, dict):
            return values
        params = values.get("method_params", ())
        if isinstance(params, dict):
            if not all(isinstance(p, dict) for p in params.values()):
                raise TMUError("method_params in the run config is damaged: expected {method: {setting: value}}")
            values = {**values, "method_params": tuple((m, tuple(sorted(p.items()))) for m, p in params.items())}
        methods = values.get("methods", ())
        if isinstance(methods, str) or not isinstance(methods, (list, tuple)):
            raise TMUError(f"methods must be a list of method names, got {methods!r}")
        if len(set(map(str, methods))) != len(methods):
            raise TMUError(f"methods listed twice: {', '.join(map(str, methods))}")
        return values

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if device not in ("auto", "cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+", device):
            raise TMUError(
                f"device '{device}' is not valid; choose {DEVICE_HELP.replace(' (CUDA, then MPS, then CPU)', '')}"
            )
        return device

    @field_serializer("method_params")
    def _params_as_object(self, params: MethodParams) -> dict:
        return {m: dict(p) for m, p in params}

    def params_for(self, method: str) -> dict:
        """The overrides given for one method's config (empty when none)."""
        return dict(dict(self.method_params).get(method, ()))


# ---------------------------------------------------------------- fields as flags and widgets read them
@dataclass(frozen=True)
class Leaf:
    """One setting of a config: its name, default, help text, bounds, choices and item type (for a list)."""

    name: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    item_type: type | None = None

    @property
    def metadata(self) -> dict:
        """The help text, bounds, choices and item type that are set, by name."""
        keys = ("help", "min", "max", "choices", "item_type")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def _section_type(field) -> type | None:
    """The config type of a nested section field, else None."""
    ann = getattr(field, "annotation", None)
    return ann if isinstance(ann, type) and issubclass(ann, Config) else None


def _leaf(name: str, field) -> Leaf:
    ann = field.annotation
    choices = typing.get_args(ann) if typing.get_origin(ann) is Literal else None
    item = None
    if typing.get_origin(ann) is tuple:
        args = typing.get_args(ann)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis and isinstance(args[0], type) else None
    lo = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)  # Field(ge=...) as pydantic keeps it
    hi = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    return Leaf(name, field.get_default(call_default_factory=True), field.description or "", lo, hi, choices, item)


def leaf_fields(cls) -> list[Leaf]:
    """The settings of a config class, nested sections flattened in order; names are unique across sections."""
    out = []
    for name, field in cls.model_fields.items():
        sub = _section_type(field)
        out.extend(leaf_fields(sub) if sub else [_leaf(name, field)])
    return out


def field_info(cls, name: str) -> Leaf:
    """One setting of config class `cls` (sections searched), by name."""
    return next(f for f in leaf_fields(cls) if f.name == name)


def flatten(obj) -> dict:
    """{leaf name: value} of a (possibly nested) config object."""
    out = {}
    for name, field in type(obj).model_fields.items():
        value = getattr(obj, name)
        out.update(flatten(value) if _section_type(field) else {name: value})
    return out


def with_flat(obj, values: dict):
    """A copy of config `obj` with leaf fields set by name (sections rebuilt and validated); an unknown
    name is refused with the valid ones named."""
    valid = {f.name for f in leaf_fields(type(obj))}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise TMUError(f"unknown setting(s) {unknown}; valid: {', '.join(sorted(valid))}")
    changes = {}
    for name, field in type(obj).model_fields.items():
        sub = _section_type(field)
        if sub:
            mine = {k: v for k, v in values.items() if k in {g.name for g in leaf_fields(sub)}}
            if mine:
                changes[name] = with_flat(getattr(obj, name), mine)
        elif name in values:
            changes[name] = values[name]
    return obj.model_copy(update=changes) if changes else obj


def run_config_to_dict(cfg: RunConfig) -> dict:
    """JSON-ready form of a RunConfig (stored as the run's config.json)."""
    return cfg.model_dump(mode="json")


def run_config_from_dict(d: dict) -> RunConfig:
    """Inverse of `run_config_to_dict`; unknown keys are refused with the valid ones named. A stored config's
    `request` (what a run on the user's own model was asked, in words) describes the run and sets nothing."""
    if not isinstance(d, dict):
        raise TMUError("the run config is damaged (not a JSON object)")
    return RunConfig.from_dict({k: v for k, v in d.items() if k != "request"})
