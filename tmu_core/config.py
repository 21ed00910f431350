"""Frozen configuration dataclasses: one per component, shared by the CLI and the dashboard.

Every field carries its help text (and bounds or choices) in `metadata`, so `tmu_core.options` builds
CLI flags from them and the dashboard builds widgets from the same source. Validation happens in
`__post_init__` and raises `TMUError` naming what is valid. Defaults run on a CPU in seconds.
This module imports no registry: dataset, model and method names are checked where a config is resolved
(`jobs.pipeline.validate`). A config may nest section configs (TMU's twin / scoring / classifier /
unlearning); `leaf_fields`, `flatten` and `with_flat` address their fields by their (unique) names.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace

from .errors import TMUError


def opt(default, help: str, **meta):
    """A dataclass field with UI/CLI metadata (help, min, max, choices)."""
    return field(default=default, metadata={"help": help, **meta})


def words(name: str) -> str:
    """A field as plain words ("forget_count" -> "forget count"): the dashboard's widget label, and the CLI
    flag (--forget-count) without its dashes, so one error message reads right in both."""
    return name.replace("_", " ")


def _coerce(f, value):
    """The value in the type of the field's default (a hand-edited config.json may hold "3" or 3.0)."""
    default = f.default
    what = words(f.name)
    if default is MISSING or value is None:
        return value
    if isinstance(default, bool):
        numpy_bool = getattr(getattr(value, "dtype", None), "kind", "") == "b"  # neither bool nor Integral
        if (isinstance(value, (bool, numbers.Integral)) or numpy_bool) and value in (0, 1):
            return bool(value)
        raise TMUError(f"{what} must be true or false (got {value!r})")
    if isinstance(default, int):
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TMUError(f"{what} must be a whole number (got {value!r})")
    if isinstance(default, float):
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        raise TMUError(f"{what} must be a number (got {value!r})")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return str(value)  # a class given as index 3 means "3"
        raise TMUError(f"{what} must be text (got {value!r})")
    if isinstance(default, tuple):
        if isinstance(value, (list, tuple)):
            return tuple(value)
        raise TMUError(f"{what} must be a list (got {value!r})")
    return value


def check_bounds(obj) -> None:
    """Coerce every field to its default's type, then enforce the `min`/`max`/`choices` metadata."""
    for f in fields(obj):
        value = _coerce(f, getattr(obj, f.name))
        if value is not getattr(obj, f.name):
            object.__setattr__(obj, f.name, value)
        meta = f.metadata
        if "choices" in meta and value not in meta["choices"]:
            raise TMUError(
                f"{words(f.name)} '{value}' is not valid; choose one of: {', '.join(map(str, meta['choices']))}"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise TMUError(f"{words(f.name)} must be a finite number (got {value})")
            lo, hi = meta.get("min"), meta.get("max")
            if lo is not None and value < lo:
                raise TMUError(f"{words(f.name)} must be at least {lo:g} (got {value:g})")
            if hi is not None and value > hi:
                raise TMUError(f"{words(f.name)} must be at most {hi:g} (got {value:g})")


@dataclass(frozen=True)
class DataConfig:
    """Which data, and how it is split into train / aux / test."""

    dataset: str = opt("digits", "dataset name (see `python -m tmu_core datasets`)")
    data_root: str = opt("", "folder with the dataset files (torchvision sets, imagefolder); default ./data/<dataset>")
    image_size: int = opt(32, "side length imagefolder images are resized to", min=8, max=256)
    aux_fraction: float = opt(
        0.1, "share of each training class held out as the aux pool (never trained on)", min=0.02, max=0.5
    )
    test_fraction: float = opt(0.2, "test share for datasets without an official test split", min=0.05, max=0.5)
    train_per_class: int = opt(0, "use at most this many training images per class (0 = all)", min=0)

    def __post_init__(self):
        check_bounds(self)


MAX_ID = 2**31 - 1  # no data set here has more samples; a larger id would overflow the tensors
MAX_SEED = 2**32 - 1  # the largest seed numpy accepts
FRACTION_ERROR = "forget fraction must be below 1 (got {:g}): the class must keep some samples"


@dataclass(frozen=True)
class ForgetSpec:
    """The forget set D_f: part of one class, by count, fraction or explicit sample ids."""

    forget_class: str = opt(
        "8", "class to forget from: a name, an index, or #index (a name that is also an index means the name)"
    )
    forget_count: int = opt(100, "how many samples of the class to forget", min=0)
    forget_fraction: float = opt(
        0.0, "forget this share of the class instead of a count (0 = use the count)", min=0.0, max=1.0
    )
    forget_ids: tuple[int, ...] = opt((), "explicit training sample ids to forget (overrides count/fraction)")

    def __post_init__(self):
        count, fraction = self.forget_count, self.forget_fraction
        if isinstance(count, int) and count < 1 and not self.forget_ids and not fraction:
            raise TMUError(f"forget count must be at least 1 (got {count}), or give a forget fraction or forget ids")
        if isinstance(fraction, numbers.Real) and not isinstance(fraction, bool) and fraction >= 1.0:
            raise TMUError(FRACTION_ERROR.format(fraction))  # one message for 1.0 and 1.5 alike
        check_bounds(self)
        object.__setattr__(self, "forget_class", str(self.forget_class).strip())
        if not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in self.forget_ids):
            raise TMUError(
                f"forget ids must be whole numbers (sample ids of the training set), got {list(self.forget_ids)[:5]}"
            )
        object.__setattr__(self, "forget_ids", tuple(int(i) for i in self.forget_ids))
        big = [i for i in self.forget_ids if i > MAX_ID]  # a negative id is refused against the data, with its range
        if big:
            raise TMUError(f"forget ids must be training sample ids; {big[0]} is far beyond any data set's size")


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe, used for the original, the gold and every from-scratch model."""

    model: str = opt("small_cnn", "architecture (see `python -m tmu_core models`)")
    epochs: int = opt(30, "training epochs", min=1, max=1000)
    batch_size: int = opt(64, "mini-batch size", min=1, max=4096)
    lr: float = opt(0.05, "initial learning rate (SGD, momentum 0.9)", min=1e-6, max=10.0)
    momentum: float = opt(0.9, "SGD momentum", min=0.0, max=0.999)
    weight_decay: float = opt(5e-4, "weight decay", min=0.0, max=0.1)
    schedule: str = opt(
        "cosine",
        "learning-rate schedule: cosine, or step (/10 at 50% and 75%, as the paper)",
        choices=("cosine", "step", "constant"),
    )
    augment: str = opt(
        "none", "augmentation: none, flip, crop_flip (pad 4 + crop + flip)", choices=("none", "flip", "crop_flip")
    )
    label_smoothing: float = opt(0.0, "label smoothing of the cross-entropy", min=0.0, max=0.5)

    def __post_init__(self):
        check_bounds(self)


MAX_GOLD_SEEDS = 20  # each gold is a full retrain on D_r


@dataclass(frozen=True)
class OwnModelConfig:
    """A model the project did not train: its weights, what it saw (train/ aux/ test/ or a CSV manifest), the
    deletion request as files, and an optional gold model. Empty original weights = the project trains its own
    (every other run). Read by `tmu_core.ownmodel`."""

    original_weights: str = opt(
        "",
        "your trained model: a state dict (.pt/.pth) of --model with one output per "
        "class folder, or a whole-model TorchScript file; the data must then be laid out "
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
    gold: str = opt(
        "none",
        "your model: none (train nothing from scratch), retrain (retrain with the project's "
        "recipe, not yours) or weights (--gold-weights)",
        choices=("none", "retrain", "weights"),
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
        item_type=float,
    )
    input_std: tuple[float, ...] = opt(
        (), "your model: per-channel std it divides by (default: as --input-mean, the registry's 0.25)", item_type=float
    )
    keep_models: bool = opt(
        False,
        "your model: also save each baseline's unlearned model (weights/<method>.pt, in the input's format); "
        "TMU's is always saved (weights/unlearned.pt)",
    )

    def __post_init__(self):
        check_bounds(self)
        for name in ("input_mean", "input_std"):
            values = getattr(self, name)
            if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise TMUError(f"{words(name)} must be numbers, one per channel (got {list(values)})")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if any(v <= 0 for v in self.input_std):
            raise TMUError(f"input std must be above 0 (got {list(self.input_std)})")
        if bool(self.input_mean) != bool(self.input_std):
            raise TMUError("give --input-mean and --input-std together (one number per channel each)")
        if self.gold_weights and self.gold == "retrain":
            raise TMUError("--gold retrain and --gold-weights both choose the gold model; give one of them")
        if self.gold_weights:
            object.__setattr__(self, "gold", "weights")
        elif self.gold == "weights":
            raise TMUError("--gold weights needs --gold-weights FILE (a model you retrained without the forget list)")
        if not self.original_weights:
            given = [
                f"--{n.replace('_', '-')}"
                for n in ("manifest", "forget_list", "gold_weights", "input_mean")
                if getattr(self, n)
            ] + (["--gold " + self.gold] if self.gold != "none" else [])
            if given:
                raise TMUError(f"{', '.join(given)} describe your own model: give --original-weights FILE too")

    @property
    def active(self) -> bool:
        return bool(self.original_weights)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run: data, forget set, training recipe, methods, seed, device."""

    data: DataConfig = field(default_factory=DataConfig)
    forget: ForgetSpec = field(default_factory=ForgetSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: tuple[str, ...] = ("tmu", "finetune", "neggrad", "randlabel", "badteacher")
    method_params: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()
    seed: int = 0
    device: str = "auto"
    name: str = ""
    gold_seeds: int = 1  # K gold models (training seeds differ) for soft truth p_i; 1 = the run's gold alone
    own: OwnModelConfig = field(default_factory=OwnModelConfig)  # a model the project did not train (tmu_core.ownmodel)

    def __post_init__(self):
        for part, cls in (
            ("data", DataConfig),
            ("forget", ForgetSpec),
            ("train", TrainConfig),
            ("own", OwnModelConfig),
        ):
            if not isinstance(getattr(self, part), cls):
                raise TMUError(f"{part} must be a {cls.__name__}, got {type(getattr(self, part)).__name__}")
        if isinstance(self.seed, float) and self.seed.is_integer():
            object.__setattr__(self, "seed", int(self.seed))
        if not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool):
            raise TMUError(f"seed must be a whole number, at least 0 (got {self.seed!r})")
        object.__setattr__(self, "seed", int(self.seed))
        if not isinstance(self.device, str) or not isinstance(self.name, str):
            raise TMUError("device and name must be text")
        if isinstance(self.methods, str) or not all(isinstance(m, str) for m in self.methods):
            raise TMUError(f"methods must be a list of method names, got {self.methods!r}")
        object.__setattr__(self, "methods", tuple(self.methods))
        if len(set(self.methods)) != len(self.methods):
            raise TMUError(f"methods listed twice: {', '.join(self.methods)}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+", self.device):
            raise TMUError(f"device '{self.device}' is not valid; choose auto, cpu, cuda, cuda:N or mps")
        if not 0 <= self.seed <= MAX_SEED:
            raise TMUError(f"seed must be at least 0 and at most {MAX_SEED} (got {self.seed})")
        k = self.gold_seeds
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_GOLD_SEEDS:
            raise TMUError(f"gold seeds must be a whole number from 1 to {MAX_GOLD_SEEDS} (got {k!r})")
        object.__setattr__(self, "gold_seeds", int(k))

    def params_for(self, method: str) -> dict:
        """The overrides given for one method's config (empty when none)."""
        return dict(dict(self.method_params).get(method, ()))


def _section(f) -> type | None:
    """The dataclass type of a nested section field (one whose default factory is a dataclass), else None."""
    factory = f.default_factory
    return factory if factory is not MISSING and is_dataclass(factory) else None


def leaf_fields(cls) -> list:
    """The fields of a config class, nested sections flattened in order; names are unique across sections."""
    out = []
    for f in fields(cls):
        sub = _section(f)
        out.extend(leaf_fields(sub) if sub else [f])
    return out


def flatten(obj) -> dict:
    """{leaf name: value} of a (possibly nested) config object."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        out.update(flatten(value) if _section(f) else {f.name: value})
    return out


def with_flat(obj, values: dict):
    """A copy of config `obj` with leaf fields set by name (sections rebuilt and validated); an unknown
    name is refused with the valid ones named."""
    valid = {f.name for f in leaf_fields(type(obj))}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise TMUError(f"unknown setting(s) {unknown}; valid: {', '.join(sorted(valid))}")
    changes = {}
    for f in fields(obj):
        if _section(f):
            mine = {k: v for k, v in values.items() if k in {g.name for g in leaf_fields(_section(f))}}
            if mine:
                changes[f.name] = with_flat(getattr(obj, f.name), mine)
        elif f.name in values:
            changes[f.name] = values[f.name]
    return replace(obj, **changes) if changes else obj


def run_config_to_dict(cfg: RunConfig) -> dict:
    """JSON-ready form of a RunConfig (stored as the run's config.json)."""
    from dataclasses import asdict

    d = asdict(cfg)
    d["methods"] = list(cfg.methods)
    d["method_params"] = {m: dict(p) for m, p in cfg.method_params}
    d["forget"]["forget_ids"] = list(cfg.forget.forget_ids)
    d["own"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["own"].items()}  # as JSON reads it back
    return d


def run_config_from_dict(d: dict) -> RunConfig:
    """Inverse of `run_config_to_dict`; unknown keys are refused with the valid ones named."""

    def build(cls, values):
        valid = {f.name for f in fields(cls)}
        if not isinstance(values, dict):
            raise TMUError(f"the {cls.__name__} part of the config is damaged (not a JSON object)")
        extra = sorted(set(values) - valid)
        if extra:
            raise TMUError(f"unknown {cls.__name__} setting(s) {extra}; valid: {', '.join(sorted(valid))}")
        return cls(**values)

    if not isinstance(d, dict):
        raise TMUError("the run config is damaged (not a JSON object)")
    d = dict(d)
    forget = d.get("forget", {})
    if isinstance(forget, dict):
        forget = dict(forget)
        ids = forget.get("forget_ids", ())
        forget["forget_ids"] = tuple(ids) if isinstance(ids, (list, tuple)) else ids
    params = d.get("method_params") or {}
    if not isinstance(params, dict) or not all(isinstance(p, dict) for p in params.values()):
        raise TMUError("method_params in the run config is damaged: expected {method: {setting: value}}")
    return build(
        RunConfig,
        {
            **{k: v for k, v in d.items() if k not in ("data", "forget", "train", "methods", "method_params", "own")},
            "own": build(OwnModelConfig, d.get("own", {})),
            "data": build(DataConfig, d.get("data", {})),
            "forget": build(ForgetSpec, forget),
            "train": build(TrainConfig, d.get("train", {})),
            "methods": tuple(d.get("methods", RunConfig.methods)),
            "method_params": tuple((m, tuple(sorted(p.items()))) for m, p in params.items()),
        },
    )
