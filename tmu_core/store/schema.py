"""The shape of every file the run store reads back, checked when it is read (pydantic).

A file that parses but does not have the shape its readers expect (a config whose "data" is a string,
metrics without models, a pid too large for the OS, a truncated table) is damage: `check_*` raise
TMUError naming the file and the first mismatch, and the run then lists as 'damaged' with that reason.
Extra keys are allowed where newer code may add them (metrics gain new readouts), never needed ones.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import RunConfig
from ..errors import TMUError

STATES = ("queued", "running", "complete", "failed", "cancelled", "interrupted")
PID_MAX = 2**22  # Linux's largest pid_max; a bigger number is no process id

Pid = Annotated[int, Field(ge=1, le=PID_MAX)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]  # NaN / Infinity parse as JSON here, but mean nothing
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]  # a dataset, model or method name
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]  # also torchvision:resnet18
Percent = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class StageTime(_Open):
    state: str
    seconds: float | None = None
    started: float | None = None
    elapsed: float | None = None  # the running stage: seconds so far and an estimate of those left
    left: float | None = None


class StatusFile(_Open):
    state: Literal[STATES]
    stage: str = ""
    progress: Fraction = 0.0
    pid: Pid | None = None
    pid_start: int | None = None
    error: str | None = None
    message: str | None = None
    updated: str = ""
    stages: dict[str, StageTime] | None = None


class RunStatus(StatusFile):
    """A run's status as the store reports it (Run.status_model): status.json, with 'damaged' where that file
    cannot be read, and the progress writer's timing."""

    state: Literal[(*STATES, "damaged")]
    started: float | None = None
    eta_seconds: float | None = None


class RequestDescription(BaseModel):
    """What a run on the user's own model was asked (config.json's `request`, beside the settings): their
    weights file, how many files over which classes, and the data folder (or manifest) it read."""

    model_config = ConfigDict(extra="forbid", strict=True)
    weights: str
    files: int
    classes: list[str]
    data: str


class ModelMetrics(_Open):
    acc_test: Percent
    acc_remain: Percent
    acc_forget: Percent
    delta: Finite | None = None  # None only in a run on the user's own model without gold (--gold none)
    abs_delta: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    activation_distance: Finite | None = None
    mia: Finite
    seconds: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    cached: bool | None = None
    # read by the CLI and the tables; older runs may lack them (or hold NaN: they were never checked)
    sample_agreement: float | None = None
    mia_auc: float | None = None
    source: Literal["trained", "cache", "file"] | None = None  # a reference: trained here, earlier, or the user's


class StepScores(_Open):
    """One candidate step run on the twin, against its gold M_o on D_a."""

    agreement: Percent | None = None
    activation_distance: float | None = None
    acc_aux: Percent | None = None


class StepChoice(_Open):
    """The candidate steps tried on the twin (tmu.step.choose_step) and the one TMU used."""

    chosen: str
    changes: dict = {}
    asked_acc_aux: Percent | None = None
    gold_acc_aux: Percent | None = None
    aux_count: int = 0
    candidates: dict[str, StepScores] = {}


class TwinFidelity(_Open):
    """M_t on D_a against M_o on D_f (accuracy %, mean loss): how well the twin problem mimics the real one."""

    twin_acc_aux: float | None = None
    twin_loss_aux: float | None = None
    original_acc_forget: float | None = None
    original_loss_forget: float | None = None
    twin_epochs: float | None = None
    bags: int = 1
    step_choice: StepChoice | None = None  # step_choice twin: each candidate step scored on the twin


class Forecast(_Open):
    """A predicted A_f (%) of a gold retrain without gold (tmu.forecast): the mean calibrated p(easy) and a
    `level` interval; `reasons` say why it is wide (thin evidence)."""

    predicted_acc_forget: Percent
    low: Percent
    high: Percent
    level: Fraction = 0.9
    files: Count
    calibration: str = ""
    reasons: list[str] = []


class ReliabilityBin(_Open):
    """One bin of a reliability curve: mean p(easy), the share right (or mean p_i) and the count."""

    p_mean: Fraction
    truth_mean: Fraction
    n: Count


class PeerSummary(_Open):
    """Self-influence (tmu.influence), the data-attribution peer: its forecast and, with gold, its scores."""

    forecast: Forecast
    threshold: Finite
    pred_hard: Count
    auc_p_easy: float | None = None
    auc_score: float | None = None
    label_accuracy: float | None = None
    ece_gold: float | None = None


class AuxSizing(_Open):
    """How D_a was sized (Eq. 3): the samples it asked for, those used, augmented copies, whether it was capped."""

    requested: Count | None = None
    available: Count | None = None
    augmented: Count | None = None
    used: Count | None = None
    capped: bool = False
    max_factor: float | None = None
    remain_class: Count | None = None
    forget: Count | None = None


class ClassSplit(_Open):
    """One class's split in a request over several classes (its own twin problem, classifier and cut)."""

    class_index: Count
    forget_count: Count
    pred_easy: Count
    pred_hard: Count
    predicted_acc_forget: Percent | None = None
    aux_count: Count
    aux_sizing: AuxSizing | None = None
    threshold: Finite | None = None
    twin_fidelity: TwinFidelity | None = None
    label_accuracy: Percent | None = None
    auc_p_easy: float | None = None
    warnings: list[str] = []
    forecast: Forecast | None = None
    decision_rule: str = ""
    undecided: bool = False


class TMUSummary(_Open):
    """The primary method's report (tmu.report): its easy/hard split of D_f, the twin problem behind it, and,
    where the run has a gold model, the split scored against gold's (None without one)."""

    label_accuracy: Percent | None = None
    confusion: dict[str, Count] | None = None
    label_accuracy_by_features: dict[str, Finite] | None = None  # empty: the feature ablation did not run
    auc_p_easy: float | None = None  # None when gold gets every D_f sample right (or none): no AUC exists
    pred_easy: Count
    pred_hard: Count
    predicted_acc_forget: Percent | None = None  # the predicted-easy share: TMU's forecast of a retrain's A_f
    gold_easy: Count | None = None
    gold_hard: Count | None = None
    aux_count: Count
    aux_easy: Count
    aux_hard: Count
    aux_sizing: AuxSizing | None = None  # None for a request over several classes: see per_class
    threshold: Finite | None = None  # None for a request over several classes: each class has its own
    rule: str | None = None
    twin_hard_rate: float | None = None
    twin_fidelity: TwinFidelity | None = None
    warnings: list[str] = []
    stage_seconds: dict[str, float] = {}
    audit_seconds: float = 0.0  # seconds of audit extras (the feature ablation) that unlearning does not need
    features_used: list[str] = ["NF", "AF", "CF"]
    soft_label_accuracy: float | None = None  # with a gold ensemble: against p_i, the share of golds right
    soft_auc_p_easy: float | None = None
    decision_rule: str = ""  # the rule in words, with its cut on calibrated p(easy)
    undecided: bool = False  # the twin had no hard example: no file is called hard on evidence
    forecast: Forecast | None = None  # predicted A_f of a retrain, without gold
    reliability_twin: list[ReliabilityBin] = []  # calibrated p(easy) of held-out twin samples against their labels
    reliability_gold: list[ReliabilityBin] = []  # p(easy) of D_f against gold's verdicts
    ece_twin: float | None = None
    ece_gold: float | None = None
    ece_soft: float | None = None  # against p_i of K golds
    peer: PeerSummary | None = None
    per_class: dict[str, ClassSplit] | None = None  # a request over several classes: each class's own split

    @model_validator(mode="after")
    def _audit_from_stages(self):
        """Runs stored before audit_seconds existed: their ablation's seconds, as the stage list recorded them."""
        if "audit_seconds" not in self.model_fields_set:
            self.audit_seconds = float(self.stage_seconds.get("ablation", 0.0))
        return self


class GoldEnsemble(_Open):
    """A run with K > 1 gold models (evaluate.ensemble.summary): their seeds, agreement, ceilings and A_f."""

    k: Annotated[int, Field(ge=2)]
    train_seeds: list[int] = []
    gold_agreement: float | None = None
    ceiling: float | None = None
    ceiling_loo: float | None = None
    gold_acc_forget: list[float] = []
    mean_p: float | None = None
    extra_gold_cache: list[str] = []


class OwnSummary(_Open):
    """A run on the user's own model: where its files came from (the split itself is the primary method's)."""

    gold: str
    format: str
    original_weights: str
    classes: list[str]
    data: str | None = None
    original_batch_accuracy: float | None = None
    notes: list[str] = []
    multi_class: bool = False
    kept_models: dict[str, str] = {}  # method -> its saved unlearned model (TMU's always; baselines on request)


class MetricsFile(_Open):
    run_id: str
    dataset: Name
    model: ModelName
    forget_class: Count
    forget_class_name: str
    forget_count: Count
    device: str
    models: dict[Name, ModelMetrics]
    cost_ratio: Finite | None = None
    diverged: dict[str, str] = {}
    tmu: TMUSummary | None = None  # the primary method's report, stored under its name (methods.primary_method)
    seed: int | None = None
    gold_ensemble: GoldEnsemble | None = None  # K > 1 gold models
    own: OwnSummary | None = None  # a run on the user's own model
    cost_ratio_counts: str | None = None  # what the cost ratio divides by what, in words
    unlearned_weights: str | None = None  # the primary method's model as a file (the user's format)
    audit_csv: str | None = None  # one row per forgotten sample: file, class, scores, verdict, predictions


class FailedRun(_Open):
    """A sweep's record of a run that did not complete."""

    failed: Literal[True]
    run_id: str | None = None
    forget_class: int | str
    forget_count: int
    seed: int
    error: str


class SweepModel(_Open):
    """One model's numbers in a sweep's result: what the sweep tables read, finite; the rest may be absent."""

    acc_test: Percent
    acc_forget: Percent
    abs_delta: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    acc_remain: Percent | None = None
    delta: Finite | None = None
    activation_distance: Finite | None = None
    mia: Finite | None = None
    seconds: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    sample_agreement: float | None = None
    mia_auc: float | None = None  # the MIA attack's AUC on the data it was fitted on (its table)


class SweepResult(_Open):
    """One completed run of a sweep (its metrics.json as the sweep kept it)."""

    forget_class: Count
    forget_class_name: str
    seed: Count
    forget_count: Count
    dataset: Name | None = None
    model: ModelName | None = None
    models: dict[Name, SweepModel]
    cost_ratio: Finite | None = None
    gold_ensemble: GoldEnsemble | None = None
    tmu: TMUSummary | None = None  # the primary method's split (Table 4, the ensemble's soft scores, the step check)


class SweepFile(_Open):
    """A sweep's results.json: what it ran, each completed run's metrics (checked like metrics.json) and failures."""

    sweep_id: str
    classes: list[Count] = []
    seeds: list[Count] = []
    forget_counts: list[Count] = []
    tuning_classes: list[Count] = []
    held_out_classes: list[Count] = []
    results: list[SweepResult]
    failed: list[FailedRun] = []


class ModelMeta(_Open):
    """A cached original/gold model's metadata (`_cache/models/<key>.json`)."""

    seconds: Annotated[float, Field(ge=0.0)]


class UmapJob(_Open):
    state: Literal["running", "complete", "failed"]
    pid: Pid | None = None
    error: str | None = None


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


check_status = _checker(StatusFile)


def check_config(obj, what: str) -> dict:
    """config.json: its schema is `config.RunConfig` itself (values, bounds and choices included). Every run writes
    its data, forget and train sections, so a config without one is damaged (not read as the defaults)."""
    if not isinstance(obj, dict):
        raise TMUError(f"{what} is damaged (top level: not a JSON object)")
    missing = [part for part in ("data", "forget", "train") if part not in obj]
    if missing:
        raise TMUError(f"{what} is damaged ({missing[0]}: missing)")
    try:
        RunConfig.from_dict({k: v for k, v in obj.items() if k != "request"})
    except TMUError as exc:
        raise TMUError(f"{what} is damaged ({exc})") from None
    if obj.get("request") is not None:
        _check(RequestDescription, obj["request"], what)
    return obj


check_model_meta, check_umap_job = _checker(ModelMeta), _checker(UmapJob)


def read_metrics(obj, what: str) -> MetricsFile:
    """metrics.json as its typed model; raises TMUError naming the damage (a shape that does not fit, or no
    original model, or no gold where the run has one)."""
    m = _check(MetricsFile, obj, what)
    no_gold = m.own is not None and m.own.gold == "none"  # the user's model, no retrain
    missing = [r for r in ("original", *(() if no_gold else ("gold",))) if r not in m.models]
    if missing:
        raise TMUError(f"{what} is damaged (models: no {' or '.join(missing)})")
    return m


def check_metrics(obj, what: str) -> dict:
    """metrics.json checked as `read_metrics` does, returned as the dict it was read as."""
    read_metrics(obj, what)
    return obj


def check_sweep_results(obj, what: str) -> dict:
    """A sweep's results.json: its shape, and every completed run's numbers that the tables read (finite)."""
    sweep = _check(SweepFile, obj, what)
    for i, result in enumerate(sweep.results):
        missing = [r for r in ("original", "gold") if r not in result.models]
        if missing:
            raise TMUError(f"{what} is damaged (results.{i}.models: no {' or '.join(missing)})")
    return obj


SAMPLE_COLUMNS = {"id": "i", "role": "O", "source_id": "i", "true_label": "O"}
TMU_COLUMNS = {"NF": "f", "AF": "f", "CF": "f", "p_easy": "f", "pred_label": "O"}


def check_samples(df, metrics: dict, what: str) -> None:
    """samples.csv against its run's metrics: its columns and types, and one row per D_f (and D_a) sample,
    so a table cut at a row boundary is caught as well as one cut inside a row."""
    need = {**SAMPLE_COLUMNS, **(TMU_COLUMNS if metrics.get("tmu") else {})}
    if "gold" not in metrics["models"]:  # a run on the user's model without gold: no gold verdict to store
        need.pop("true_label")
    for col, kind in need.items():
        if col not in df.columns:
            raise TMUError(f"{what} is damaged (no column '{col}')")
        ok = (
            df[col].dtype.kind == "i"
            if kind == "i"
            else (df[col].dtype.kind in "fi" if kind == "f" else df[col].notna().all())
        )
        if not ok:
            raise TMUError(f"{what} is damaged (column '{col}' has missing or malformed values)")
    if not set(df["role"]) <= {"forget", "aux"}:
        raise TMUError(f"{what} is damaged (role is neither 'forget' nor 'aux')")
    counts = {"forget": metrics["forget_count"], **({"aux": metrics["tmu"]["aux_count"]} if metrics.get("tmu") else {})}
    for role, n in counts.items():
        if int((df["role"] == role).sum()) != n:
            raise TMUError(f"{what} is damaged ({int((df['role'] == role).sum())} {role} rows, the run has {n})")


def check_sample_ids(df, n_samples: int, what: str) -> None:
    """samples.csv's ids against the data set they index: D_f rows' ids and D_a rows' source images must be
    training sample ids 0..n_samples-1, and no D_f sample may appear twice."""
    forget = df["role"] == "forget"
    ids, sources = df.loc[forget, "id"], df.loc[~forget, "source_id"]
    for name, col in (("id", ids), ("source_id", sources)):
        if len(col) and (col.min() < 0 or col.max() >= n_samples):
            raise TMUError(f"{what} is damaged ({name} outside the data set's sample ids 0..{n_samples - 1})")
    if ids.duplicated().any():
        raise TMUError(f"{what} is damaged (a D_f sample listed twice)")


def check_same_forget_set(df, arrays: dict, what: str) -> None:
    """The D_f ids of samples.csv and of embeddings.npz, which one run writes from one forget set, are the same."""
    table = np.sort(df.loc[df["role"] == "forget", "id"].to_numpy())
    stored = np.sort(arrays["ids"][arrays["role"] == "forget"])
    if len(table) != len(stored) or not np.array_equal(table, stored):
        raise TMUError(f"{what} is damaged (its D_f ids differ from those in the run's embeddings)")


def check_umap_map(arrays: dict, what: str) -> None:
    """A stored UMAP map: ids / role / label of N points and finite (N, 2) coordinates."""
    for key in ("ids", "role", "label"):
        if key not in arrays or arrays[key].ndim != 1:
            raise TMUError(f"{what} is damaged (no 1-D array '{key}')")
    n, xy = len(arrays["ids"]), arrays.get("xy")
    if (
        len(arrays["role"]) != n
        or len(arrays["label"]) != n
        or arrays["ids"].dtype.kind != "i"
        or arrays["label"].dtype.kind != "i"
    ):
        raise TMUError(f"{what} is damaged (ids, role and label differ in length or type)")
    if xy is None or xy.shape != (n, 2) or xy.dtype.kind != "f" or not np.isfinite(xy).all():
        raise TMUError(f"{what} is damaged (xy is not a finite ({n}, 2) float array)")


def check_embeddings(arrays: dict, what: str) -> None:
    """embeddings.npz: ids / role / label of N points and one (N, D) finite float array per model."""
    for key in ("ids", "role", "label"):
        if key not in arrays or arrays[key].ndim != 1:
            raise TMUError(f"{what} is damaged (no 1-D array '{key}')")
    n = len(arrays["ids"])
    if len(arrays["role"]) != n or len(arrays["label"]) != n or arrays["ids"].dtype.kind != "i":
        raise TMUError(f"{what} is damaged (ids, role and label differ in length or type)")
    if n and (arrays["ids"].min() < 0 or arrays["label"].dtype.kind != "i" or arrays["label"].min() < 0):
        raise TMUError(f"{what} is damaged (negative sample ids or class labels)")
    models = [k for k in arrays if k.startswith("emb_")]
    if not models:
        raise TMUError(f"{what} is damaged (no model's activations)")
    for k in models:
        a = arrays[k]
        if a.ndim != 2 or len(a) != n or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise TMUError(f"{what} is damaged ({k} is not a finite ({n}, D) float array)")
