"""The shape of every file the run store reads back, checked when it is read (pydantic).

A file that parses but does not have the shape its readers expect (a config whose "data" is a string,
metrics without models, a pid too large for the OS, a truncated table) is damage: `check_*` raise
TMUError naming the file and the first mismatch, and the run then lists as 'damaged' with that reason.
Extra keys are allowed where newer code may add them (metrics gain new readouts), never needed ones.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import TMUError

STATES = ("queued", "running", "complete", "failed", "cancelled", "interrupted")
PID_MAX = 2**22  # Linux's largest pid_max; a bigger number is no process id

Pid = Annotated[int, Field(ge=1, le=PID_MAX)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class StageTime(_Open):
    state: str
    seconds: Optional[float] = None
    started: Optional[float] = None


class StatusFile(_Open):
    state: Literal[STATES]
    stage: str = ""
    progress: Fraction = 0.0
    pid: Optional[Pid] = None
    pid_start: Optional[int] = None
    error: Optional[str] = None
    message: Optional[str] = None
    updated: str = ""
    stages: Optional[dict[str, StageTime]] = None


class ConfigFile(BaseModel):
    """config.json's sections; their values are checked by `config.run_config_from_dict`. Every run writes its
    data, forget and train sections, so a config without one is damaged (not read as the defaults)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    data: dict
    forget: dict
    train: dict
    methods: list[str] = []
    method_params: dict[str, dict] = {}
    seed: int = 0
    device: str = "auto"
    name: str = ""
    gold_seeds: int = 1
    own: dict = {}  # a model the project did not train (config.OwnModelConfig)


class ModelMetrics(_Open):
    acc_test: float
    acc_remain: float
    acc_forget: float
    delta: Optional[float]  # None only in a run on the user's own model without gold (--gold none)
    abs_delta: Optional[float]
    activation_distance: Optional[float]
    mia: float
    seconds: float
    cached: Optional[bool] = None


class TMUSummary(_Open):
    label_accuracy: float
    confusion: dict[str, int]
    label_accuracy_by_features: dict[str, float]
    auc_p_easy: Optional[float] = None
    pred_easy: Count
    pred_hard: Count
    gold_easy: Count
    gold_hard: Count
    aux_count: Count
    aux_easy: Count
    aux_hard: Count
    aux_sizing: dict
    threshold: float


class MetricsFile(_Open):
    run_id: str
    dataset: str
    model: str
    forget_class: Count
    forget_class_name: str
    forget_count: Count
    device: str
    models: dict[str, ModelMetrics]
    cost_ratio: Optional[float] = None
    diverged: dict[str, str] = {}
    tmu: Optional[TMUSummary] = None


class ModelMeta(_Open):
    """A cached original/gold model's metadata (`_cache/models/<key>.json`)."""

    seconds: Annotated[float, Field(ge=0.0)]


class UmapJob(_Open):
    state: Literal["running", "complete", "failed"]
    pid: Optional[Pid] = None
    error: Optional[str] = None


def _check(model: type[BaseModel], obj, what: str):
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"])) or "top level"
        raise TMUError(f"{what} is damaged ({where}: {err['msg']})") from None


def _checker(model: type[BaseModel]):
    """check_<file>(obj, what) -> obj: raises TMUError naming the damage when `obj` does not fit `model`."""
    def check(obj, what: str) -> dict:
        _check(model, obj, what)
        return obj

    return check


check_status, check_config = _checker(StatusFile), _checker(ConfigFile)
check_model_meta, check_umap_job = _checker(ModelMeta), _checker(UmapJob)


def check_metrics(obj, what: str) -> dict:
    m = _check(MetricsFile, obj, what)
    no_gold = isinstance(obj.get("own"), dict) and obj["own"].get("gold") == "none"  # the user's model, no retrain
    missing = [r for r in ("original", *(() if no_gold else ("gold",))) if r not in m.models]
    if missing:
        raise TMUError(f"{what} is damaged (models: no {' or '.join(missing)})")
    return obj




SAMPLE_COLUMNS = {"id": "i", "role": "O", "source_id": "i", "true_label": "O"}
TMU_COLUMNS = {"NF": "f", "AF": "f", "CF": "f", "p_easy": "f", "pred_label": "O"}


def check_samples(df, metrics: dict, what: str) -> None:
    """samples.csv against its run's metrics: its columns and types, and one row per D_f (and D_a) sample,
    so a table cut at a row boundary is caught as well as one cut inside a row."""
    need = {**SAMPLE_COLUMNS, **(TMU_COLUMNS if metrics.get("tmu") else {})}
    for col, kind in need.items():
        if col not in df.columns:
            raise TMUError(f"{what} is damaged (no column '{col}')")
        ok = df[col].dtype.kind == "i" if kind == "i" else (
            df[col].dtype.kind in "fi" if kind == "f" else df[col].notna().all())
        if not ok:
            raise TMUError(f"{what} is damaged (column '{col}' has missing or malformed values)")
    if not set(df["role"]) <= {"forget", "aux"}:
        raise TMUError(f"{what} is damaged (role is neither 'forget' nor 'aux')")
    counts = {"forget": metrics["forget_count"], **({"aux": metrics["tmu"]["aux_count"]} if metrics.get("tmu") else {})}
    for role, n in counts.items():
        if int((df["role"] == role).sum()) != n:
            raise TMUError(f"{what} is damaged ({int((df['role'] == role).sum())} {role} rows, the run has {n})")


def check_embeddings(arrays: dict, what: str) -> None:
    """embeddings.npz: ids / role / label of N points and one (N, D) finite float array per model."""
    for key in ("ids", "role", "label"):
        if key not in arrays or arrays[key].ndim != 1:
            raise TMUError(f"{what} is damaged (no 1-D array '{key}')")
    n = len(arrays["ids"])
    if len(arrays["role"]) != n or len(arrays["label"]) != n or arrays["ids"].dtype.kind != "i":
        raise TMUError(f"{what} is damaged (ids, role and label differ in length or type)")
    models = [k for k in arrays if k.startswith("emb_")]
    if not models:
        raise TMUError(f"{what} is damaged (no model's activations)")
    for k in models:
        a = arrays[k]
        if a.ndim != 2 or len(a) != n or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise TMUError(f"{what} is damaged ({k} is not a finite ({n}, D) float array)")
