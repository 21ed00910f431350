"""One run end to end: data, original and gold models, every chosen method, metrics and artifacts.

`start(cfg)` validates the config and creates the run folder; `execute(run)` does the work and keeps
`status.json` current (stage, progress, per-stage seconds), so the dashboard can follow a run that is
executed by another process (`python -m tmu_core execute <run_id>`). Results are written before the
status says complete, so a reader that trusts only complete runs never sees half a run. The pipeline
names no method: what it needs to know about one (its report, whether it is the primary method whose
cost is compared with the gold retrain, whether its activations are kept) comes from the registry.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass, field

import torch

from .. import store
from ..config import RunConfig, run_config_from_dict, run_config_to_dict
from ..data import Dataset, ForgetSet
from ..errors import Cancelled, Diverged, TMUError
from ..evaluate import artifacts, ensemble
from ..evaluate.evaluator import Evaluator
from ..methods import METHODS, REFERENCES, config_dict, method_config, run_method_config, run_order
from ..models import check_model
from ..references import gold_seed, original_and_gold
from ..store.schema import MetricsFile
from ..train import Progress, pick_device, seed_everything
from ..unlearn.loop import UnlearnTask
from .sources import Inputs, Native, References, stop_check

log = logging.getLogger(__name__)


def source_for(cfg: RunConfig):
    """Where a run's data and references come from (jobs.sources): the user's own model when its weights are
    given, else a registered dataset with references trained here."""
    if cfg.own.active:
        from ..ownmodel.source import Own

        return Own()
    return Native()


def run_dataset(cfg: RunConfig) -> Dataset:
    """The data a run of `cfg` reads (its sample ids index them): for the pages that show its images."""
    return source_for(cfg).dataset(cfg)


def check_names(cfg: RunConfig) -> None:
    """Dataset, model and method names against their registries (config.py imports none of them), and what
    the run's source refuses before anything is read."""
    check_model(cfg.train.model)
    for m in cfg.methods:
        METHODS.entry(m)
    source_for(cfg).check(cfg)


def check_methods(cfg: RunConfig, inputs: Inputs) -> None:
    """Every method's settings for this run; an NF k larger than what remains of a class of the request."""
    part = min(inputs.request.parts, key=lambda p: len(p.remain_class_ids(inputs.data)))
    n_ref = len(part.remain_class_ids(inputs.data))
    for m in cfg.methods:
        run_method_config(m, cfg)  # valid for this method
        nf_k = cfg.params_for(m).get("nf_k")  # only a k the user chose is refused; a default adapts (with a note)
        if nf_k is not None and nf_k > n_ref:
            raise TMUError(
                f"NF k={nf_k} is larger than the {n_ref} remaining training samples of class "
                f"{part.class_name} it compares with; choose 1..{n_ref}"
            )


def validate(cfg: RunConfig) -> tuple[Dataset, ForgetSet]:
    """Load the data and resolve the forget set (the whole request); raises TMUError naming what is valid."""
    check_names(cfg)
    inputs = source_for(cfg).load(cfg)
    check_methods(cfg, inputs)
    return inputs.data, inputs.request.whole


def start(cfg: RunConfig, root=None) -> store.Run:
    """Validate (the device too) and create a queued run folder holding config.json: refused input leaves
    no run folder behind. The stored config describes the request as its source read it."""
    pick_device(cfg.device)
    check_names(cfg)
    src = source_for(cfg)
    inputs = src.load(cfg)
    check_methods(cfg, inputs)
    stored = src.described_config(cfg, inputs) or run_config_to_dict(cfg)
    run = store.Run.create(cfg.name or src.name_hint(cfg, inputs), stored, root)
    src.pin(run, cfg)
    return run


def failure(run: store.Run | None, cfg: RunConfig, error: str) -> dict:
    """What a sweep keeps of a run that did not complete: which class, seed and count, and why."""
    ref = cfg.forget.forget_class  # a sweep's runs carry "#<index>": the failure record keeps the index
    forget_class = int(ref[1:]) if ref.startswith("#") and ref[1:].isdigit() else ref
    return {
        "failed": True,
        "run_id": run.id if run else None,
        "forget_class": forget_class,
        "forget_count": cfg.forget.forget_count,
        "seed": cfg.seed,
        "error": error,
    }


def train_references(cfg: RunConfig, progress=None) -> dict:
    """The `train` command: original and gold models (cached) and their accuracies."""
    data, forget = validate(cfg)
    device = pick_device(cfg.device)
    original, gold = original_and_gold(data, cfg.data, forget, cfg.train, cfg.seed, device, progress)
    ev = Evaluator(data, forget, device, cfg.seed)
    models = {}
    for name, t in (("original", original), ("gold", gold)):
        models[name] = {**ev.accuracies(t.model), "seconds": t.seconds, "cached": t.cached}
    return {
        "dataset": cfg.data.dataset,
        "model": cfg.train.model,
        "forget_class": forget.class_index,
        "forget_class_name": forget.class_name,
        "forget_count": int(len(forget.ids)),
        "device": str(device),
        "models": models,
    }


# Expected cost of each stage, in epochs of training on the whole training set: the original and the gold
# model dominate (a fast recipe's 15-30 epochs), an unlearning method replays a share of D_r for a few epochs,
# TMU adds its twin and features. Measured on digits (fast recipe, 2 CPU cores): original 15 s, gold 10 s,
# TMU 2-3 s, other methods 0.2-1 s, evaluate 2 s. Only ratios matter; a cached model weighs almost nothing.
STAGE_WEIGHTS = {"data": 0.2, "evaluate": 3.0}
PRIMARY_WEIGHT = 5.0  # the primary method (TMU) trains a twin and its feature networks
METHOD_EPOCH_WEIGHT = 0.35  # one unlearning epoch (a replayed share of D_r plus D_f) against one training epoch
CACHED_WEIGHT = 0.05


def stage_weights(cfg: RunConfig, references: dict | None = None, parts: int = 1) -> dict[str, float]:
    """The expected relative cost of every stage of a run of `cfg` (see STAGE_WEIGHTS). `references`: the
    source's own weights of its reference stages (a loaded model weighs almost nothing); `parts`: the classes
    of the request (the primary method builds one twin problem per class)."""
    epochs = float(cfg.train.epochs)
    out = {"data": STAGE_WEIGHTS["data"], "original": epochs, "gold": epochs}
    if cfg.gold_seeds > 1:
        out["golds"] = epochs * (cfg.gold_seeds - 1)
    out.update(references or {})
    for m in cfg.methods:
        if METHODS.get(m).primary:
            out[m] = PRIMARY_WEIGHT * parts
        else:
            try:
                m_epochs = float(getattr(method_config(m, cfg.data.dataset, cfg.params_for(m)), "epochs", 3))
            except TMUError:
                m_epochs = 3.0
            out[m] = METHOD_EPOCH_WEIGHT * m_epochs
    out["evaluate"] = STAGE_WEIGHTS["evaluate"]
    return out


class StatusWriter:
    """Maps stage progress onto the run's overall progress and writes status.json (throttled).

    Overall progress weighs each stage by its expected cost (`stage_weights`; training dominates) and never
    goes back: every report is counted for the stage that is running (a control reports TMU's unlearning step
    as `tmu:unlearn`, TMU its sub-stages as `tmu:<name>`), and a sub-stage other than the stage's own loop
    fills half of what is left of the stage. Each stage records when it started, its elapsed seconds and an
    estimate of the seconds left; the run's estimate of the seconds left (`eta_seconds`) uses the pace of the
    stages done so far.
    """

    def __init__(self, run: store.Run, stages: list[str], weights: dict[str, float] | None = None):
        self.run, self.stages, self.t_last = run, stages, 0.0
        self.weights = {s: float((weights or {}).get(s, 1.0)) for s in stages}
        self.times: dict[str, dict] = {s: {"state": "pending"} for s in stages}
        self.current: str | None = None
        self.fraction, self.progress = 0.0, 0.0  # within the current stage; overall
        self.sub: dict[str, tuple[float, float]] = {}  # sub-stage -> (start, span) within the current stage
        self.eta: tuple[float, float] | None = None  # the last estimate of the seconds left, and when it was made

    def reweigh(self, weights: dict[str, float]) -> None:
        """The expected costs once the data are read (the request's classes, the source's references); stages
        already finished keep theirs."""
        for s in self.stages:
            if s in weights and self.times[s]["state"] == "pending":
                self.weights[s] = float(weights[s])

    def cached(self, stage: str) -> None:
        """A stage that will load a cached model: it weighs almost nothing."""
        if stage in self.weights and self.times[stage]["state"] == "pending":
            self.weights[stage] = CACHED_WEIGHT

    def begin(self, stage: str) -> None:
        """`stage` starts now: reports until the next `done` count for it."""
        if self.current == stage:
            return
        self.current, self.fraction, self.sub = stage, 0.0, {}
        self.times[stage] = {"state": "running", "started": time.time(), "weight": self.weights[stage]}

    def _within(self, p: Progress) -> float:
        """The fraction of the current stage a report means (monotone)."""
        own = p.stage == self.current or p.stage.endswith(":unlearn")  # the stage's own (last) loop
        if p.stage not in self.sub:
            rest = 1.0 - self.fraction
            self.sub[p.stage] = (self.fraction, rest if own else 0.5 * rest)
        start, span = self.sub[p.stage]
        return max(self.fraction, min(1.0, start + span * min(max(p.fraction, 0.0), 1.0)))

    def _overall(self) -> float:
        total = sum(self.weights.values()) or 1.0
        done = sum(self.weights[s] for s in self.stages if self.times[s]["state"] in ("done", "cached", "loaded"))
        running = (
            self.weights[self.current] * self.fraction
            if self.current and self.times[self.current]["state"] == "running"
            else 0.0
        )
        return min(1.0, (done + running) / total)

    def _pace(self) -> float | None:
        """Seconds per unit of weight: from the stages done (cached ones left out), else the running one."""
        secs = sum(t.get("seconds", 0.0) for t in self.times.values() if t["state"] == "done")
        units = sum(self.weights[s] for s in self.stages if self.times[s]["state"] == "done")
        cur = self.times.get(self.current or "", {})
        if cur.get("state") == "running" and self.fraction > 0.02:
            secs += time.time() - cur["started"]
            units += self.weights[self.current] * self.fraction
        return secs / units if units > 0.5 and secs > 0 else None

    def _estimates(self) -> float | None:
        """Update the running stage's elapsed and left seconds; return the run's seconds left (None: unknown)."""
        pace = self._pace()
        cur = self.times.get(self.current or "", {})
        if cur.get("state") == "running":
            elapsed = time.time() - cur["started"]
            cur["elapsed"] = round(elapsed, 1)
            if self.fraction > 0.02:
                cur["left"] = round(elapsed * (1.0 - self.fraction) / self.fraction, 1)
            elif pace is not None:
                cur["left"] = round(pace * self.weights[self.current], 1)
        if pace is None:
            return None
        pending = sum(self.weights[s] for s in self.stages if self.times[s]["state"] == "pending")
        eta = pace * pending + float(cur.get("left", 0.0) if cur.get("state") == "running" else 0.0)
        now = time.monotonic()
        if self.eta is not None:  # the estimate never grows by more than the time that passed since the last one
            eta = min(eta, self.eta[0] + (now - self.eta[1]))
        self.eta = (eta, now)
        return round(eta, 1)

    def _write(self, **fields) -> None:
        self.progress = max(self.progress, self._overall())
        self.run.set_status(progress=self.progress, stages=self.times, eta_seconds=self._estimates(), **fields)

    def __call__(self, p: Progress) -> None:
        top = p.stage.split(":")[0]
        if self.current is None or self.times[self.current]["state"] != "running":
            if top not in self.stages:
                return
            self.begin(top)
        self.fraction = self._within(p)
        now = time.monotonic()
        if now - self.t_last > 0.5 or p.fraction >= 1.0:
            self.t_last = now
            self._write(
                stage=self.current if p.stage == self.current else f"{self.current} · {p.stage}", message=p.message
            )
        if self.run.cancel_requested():
            raise Cancelled()

    def done(self, stage: str, seconds: float, cached: bool = False, state: str | None = None) -> None:
        """`stage` finished: trained or run here ("done"), loaded from the cache ("cached") or from the user's
        file ("loaded"); either of the last two weighs almost nothing."""
        state = state or ("cached" if cached else "done")
        light = state != "done"
        self.times[stage] = {
            "state": state,
            "seconds": round(seconds, 3),
            "weight": CACHED_WEIGHT if light else self.weights[stage],
        }
        if light:
            self.weights[stage] = CACHED_WEIGHT
        self.current, self.fraction = None, 0.0
        self._write(stage=stage, message="done")


def execute(run: store.Run, progress=None) -> dict:
    """Execute a queued run, or again one that failed, was cancelled or interrupted; returns the result dict
    (the CLI's --json contract). One process at a time executes a run (the run's lock): a second is refused.
    A run whose model is code (TorchScript, torch.export) executes in a sandboxed child (ownmodel.sandbox)."""
    from ..ownmodel import sandbox

    if sandbox.wants_child(run):
        return sandbox.execute_in_child(run, progress)
    with run.executing():
        status = run.status()
        state = status.get("state")
        if state == "complete":
            raise TMUError(f"run {run.id} is already complete; start a new run to change anything")
        if state == "damaged":
            raise TMUError(f"run {run.id} is damaged: {status.get('error')}")
        if state in ("cancelled", "interrupted", "failed"):
            run.clear_cancel()  # executing again is an explicit request: an old cancel must not stop it at once
        # a queued run keeps its flag: a cancel pressed while this process was starting still counts
        return _execute_owned(run, progress)


def _execute_owned(run: store.Run, progress=None) -> dict:
    """Execute a run whose lock this process holds. Never leaves status 'running'."""
    try:
        cfg = run_config_from_dict(run.config())
        check_names(cfg)
    except TMUError as exc:
        run.set_status(state="failed", error=str(exc))
        raise
    stages = ["data", *source_for(cfg).stages(cfg), *cfg.methods, "evaluate"]
    writer = StatusWriter(run, stages, stage_weights(cfg))
    writer.begin("data")
    run.set_status(
        state="running",
        stage="data",
        progress=0.0,
        pid=os.getpid(),
        error=None,
        started=time.time(),
        stages=writer.times,
        eta_seconds=None,
    )

    def report(p: Progress) -> None:
        writer(p)
        if progress:
            progress(p)

    try:
        result = _execute(run, cfg, writer, report)
    except Cancelled:
        run.set_status(state="cancelled", error="cancelled by the user")
        raise TMUError(f"run {run.id} was cancelled") from None
    except TMUError as exc:
        run.set_status(state="failed", error=str(exc))
        raise
    except KeyboardInterrupt:
        run.set_status(state="interrupted", error="interrupted (Ctrl-C or a stop signal); execute it again to finish")
        raise
    except BaseException as exc:
        run.write_error_log(traceback.format_exc())
        run.set_status(state="failed", error=f"unexpected {exc.__class__.__name__}: {exc} (details in error.log)")
        raise
    run.set_status(
        state="complete", stage="complete", progress=1.0, message="done", stages=writer.times, eta_seconds=0.0
    )
    return result


@dataclass
class Outcome:
    """What the methods of one run produced: models, wall seconds, configs and typed reports by name."""

    models: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    configs: dict = field(default_factory=dict)
    reports: dict = field(default_factory=dict)
    diverged: dict = field(default_factory=dict)  # method -> why it has no results (a non-finite loss or output)


def _soft_truth(cfg, ev, gold_logits, golds, out, result) -> dict:
    """With K > 1 golds: the ensemble block and each easy/hard report scored against p_i; {column: values}
    for the per-sample table (empty when K = 1)."""
    if not golds:
        return {}
    correct, acc_f = ensemble.gold_correctness(ev, gold_logits, [g.model for g in golds])
    p = ensemble.p_right(correct)
    result["gold_ensemble"] = {
        **ensemble.summary(correct, acc_f, [gold_seed(cfg.seed, k) for k in range(cfg.gold_seeds)]),
        "extra_gold_cache": [g.key for g in golds],
    }
    for name, rep in out.reports.items():
        result[name].update(rep.soft_summary(p))
    return {"p_gold": p, "golds_right": correct.sum(0)}


def _run_methods(run, cfg, inputs: Inputs, refs: References, device, writer, report) -> Outcome:
    out = Outcome()
    request = inputs.request
    for name in run_order(cfg.methods):
        entry = METHODS.get(name)
        mcfg = run_method_config(name, cfg)
        out.configs[name] = mcfg
        task = UnlearnTask(
            inputs.data,
            cfg.data,
            cfg.train,
            request.whole,
            refs.original.model,
            cfg.seed,
            stop_check(run),
            gold=refs.gold.model if entry.uses_gold and refs.gold else None,
            earlier=dict(out.reports),
            parts=tuple(request.parts) if len(request.parts) > 1 else (),
        )
        seed_everything(cfg.seed)
        writer.begin(name)
        t = time.perf_counter()
        try:
            result = entry.run(task, mcfg, device, report)
        except Diverged as exc:  # the others' results are kept; this one is recorded and left out
            log.warning("method %s diverged: %s", name, exc)
            out.diverged[name] = f"method {name}: {exc}"
            writer.done(name, time.perf_counter() - t)
            continue
        out.seconds[name] = time.perf_counter() - t
        out.models[name] = result.model
        if result.report is not None:
            out.reports[name] = result.report
        writer.done(name, out.seconds[name])
    return out


def _cost_ratio(out: Outcome, refs: References) -> tuple[float | None, str | None]:
    """The primary method's cost (audit extras left out) over the gold retrain's, and what it counts; None
    when the gold model was not trained by this project (the user's file, or no gold)."""
    gold = refs.gold
    if gold is None or refs.origin.get("gold") == "file" or gold.seconds <= 0:
        return None, None
    for name, seconds in out.seconds.items():
        if METHODS.get(name).primary:
            extra = getattr(out.reports.get(name), "audit_seconds", 0.0)
            counted = f"{name}'s {seconds - extra:.1f} s" + (
                f" (its {extra:.1f} s of audit extras, the feature ablation, left out)" if extra > 0 else ""
            )
            when = "an earlier run's" if gold.cached else "this run's"
            return (seconds - extra) / gold.seconds, f"{counted} over {when} gold retrain of {gold.seconds:.1f} s"
    return None, None


def _execute(run: store.Run, cfg: RunConfig, writer: StatusWriter, report) -> dict:
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    src = source_for(cfg)
    src.check(cfg)
    src.check_resume(run, cfg)  # executed again: the same inputs as at its start, or a refusal
    inputs = src.load(cfg)
    writer.done("data", inputs.seconds)
    writer.reweigh(stage_weights(cfg, src.weights(cfg, inputs), len(inputs.request.parts)))
    refs = src.references(run, cfg, inputs, device, writer, report)
    out = _run_methods(run, cfg, inputs, refs, device, writer, report)
    t = time.perf_counter()
    writer.begin("evaluate")
    ev = Evaluator(inputs.data, inputs.request.whole, device, cfg.seed)
    result_models, models, gold_easy, gold_logits = _evaluate(ev, refs, out, cfg)
    whole = inputs.request.whole
    ratio, counts = _cost_ratio(out, refs)
    result = {
        "run_id": run.id,
        "dataset": inputs.data.name,
        "model": cfg.train.model,
        "forget_class": whole.class_index,  # several classes: the first (each in the primary's per_class)
        "forget_class_name": whole.class_name,
        "forget_count": int(len(whole.ids)),
        "seed": cfg.seed,
        "device": str(device),
        "models": result_models,
        "cost_ratio": ratio,
        "cost_ratio_counts": counts,
        "method_config": {k: config_dict(v) for k, v in out.configs.items()},
        "train_config": run_config_to_dict(cfg)["train"],
        "diverged": out.diverged,
    }
    for name, rep in out.reports.items():
        result[name] = rep.summary(gold_easy)
    columns = _soft_truth(cfg, ev, gold_logits, refs.golds, out, result) if gold_logits is not None else {}
    result.update(_save_artifacts(run, cfg, inputs, src, models, out, gold_easy, device, columns))
    result.update(src.describe(cfg, inputs, refs, result_models))  # after the files: it names those it kept
    writer.done("evaluate", time.perf_counter() - t)
    result["stage_seconds"] = {k: v.get("seconds") for k, v in writer.times.items()}
    result["step_check"] = _step_check(result)
    metrics = MetricsFile.model_validate(store.json_ready(result))  # typed before it is written
    run.save_metrics(metrics)
    return metrics.model_dump(mode="json", exclude_unset=True)


def _evaluate(ev: Evaluator, refs: References, out: Outcome, cfg: RunConfig):
    """Every model's readouts (against gold where the run has one), the models that gave finite outputs,
    gold's easy/hard verdict on D_f (None without gold) and gold's logits."""
    models = {
        "original": refs.original.model,
        **({"gold": refs.gold.model} if refs.gold is not None else {}),
        **{m: out.models[m] for m in cfg.methods if m in out.models},
    }
    seconds = {"original": refs.original.seconds, **({"gold": refs.gold.seconds} if refs.gold else {}), **out.seconds}
    logits = _finite_logits(ev, models, out)
    models = {name: m for name, m in models.items() if name in logits}
    gold_logits = logits.get("gold")
    result_models = {}
    for name in models:
        result_models[name] = {**ev.readouts(logits[name], gold_logits), "seconds": seconds[name]}
        if name in refs.origin:  # a reference: trained here, by an earlier run (cached) or the user's file
            result_models[name]["cached"] = refs.origin[name] == "cache"
            result_models[name]["source"] = refs.origin[name]
    gold_easy = ev.gold_easy(gold_logits) if gold_logits is not None else None
    return result_models, models, gold_easy, gold_logits


def _step_check(result: dict) -> dict:
    """The gold-free check of the unlearning step (evaluate.verdict.step_check_block) on the result as a reader
    will see it: achieved A_f against the predicted-easy share, within the noise floor or not."""
    from ..evaluate.verdict import step_check_block
    from ..store.schema import read_metrics

    try:
        typed = read_metrics(store.json_ready(result), "this run")
    except TMUError:  # a result the store would refuse is reported by the store, not here
        return {}
    return step_check_block(typed)


def _finite_logits(ev: Evaluator, models: dict, out: Outcome) -> dict:
    """Every model's logits; a method whose outputs are not finite is moved to `out.diverged` (a reference
    model with such outputs fails the run: nothing can be compared with it)."""
    logits = {}
    for name, model in models.items():
        lg = ev.logits(model)
        if all(bool(torch.isfinite(v).all()) for v in lg.values()):
            logits[name] = lg
        elif name in REFERENCES:
            raise Diverged(
                f"the {name} model's outputs are not finite numbers; lower the learning rate or the momentum"
            )
        else:
            out.diverged[name] = f"method {name}: its outputs are not finite numbers (it diverged)"
            for part in (out.models, out.seconds, out.reports):
                part.pop(name, None)
    return logits


def _save_artifacts(run, cfg, inputs: Inputs, src, models, out: Outcome, gold_easy, device, columns) -> dict:
    """The per-sample table, the audit table (one row per forgotten file), the activations for the embedding
    maps, the unlearned model as a file the user can take away and the weights of embedded methods; `columns`
    are extra per-sample columns of D_f (the gold ensemble's p_i). Returns where the user's files are."""
    data, forget = inputs.data, inputs.request.whole
    reports = list(out.reports.values())
    groups = [artifacts.forget_group(data, forget, gold_easy, reports, columns)]
    for rep in reports:
        groups.extend(rep.sample_groups(forget.class_index))
    samples = artifacts.sample_table(groups, forget, models, device, data.classes)
    run.save_samples(samples)
    run.save_table(artifacts.audit_table(samples, data), store.AUDIT)
    embedded = {n: m for n, m in models.items() if n in REFERENCES or (n in out.models and METHODS.get(n).embed)}
    points = [p for rep in reports for p in rep.embedding_points(forget.class_index)]
    run.save_embeddings(**artifacts.embeddings(data, forget, embedded, points, device, cfg.seed))
    files = {"audit_csv": str(run.dir / store.AUDIT), "unlearned_weights": None}
    for name in out.models:
        if METHODS.get(name).primary:
            files["unlearned_weights"] = str(src.export(run, inputs, name, out.models[name]))
    src.keep(run, cfg, inputs, {n: m for n, m in out.models.items() if not METHODS.get(n).primary})
    return files
