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
from ..data import DATASETS, Dataset, ForgetSet, load_dataset, resolve_forget
from ..errors import Cancelled, Diverged, TMUError
from ..evaluate import artifacts, ensemble
from ..evaluate.evaluator import Evaluator
from ..methods import METHODS, REFERENCES, config_dict, method_config, run_method_config, run_order
from ..methods.loop import UnlearnTask
from ..models import check_model
from ..references import Trained, extra_golds, gold_seed, original_and_gold, reference_key, train_cached
from ..train import Progress, pick_device, seed_everything

log = logging.getLogger(__name__)


def check_names(cfg: RunConfig) -> None:
    """Dataset, model and method names against their registries (config.py imports none of them)."""
    DATASETS.entry(cfg.data.dataset)
    check_model(cfg.train.model)
    for m in cfg.methods:
        METHODS.entry(m)


def validate(cfg: RunConfig) -> tuple[Dataset, ForgetSet]:
    """Load the data and resolve the forget set; raises TMUError naming what is valid."""
    check_names(cfg)
    data = load_dataset(cfg.data, cfg.seed)
    forget = resolve_forget(data, cfg.forget, cfg.seed)
    n_ref = len(forget.remain_class_ids(data))
    for m in cfg.methods:
        run_method_config(m, cfg)  # valid for this method
        nf_k = cfg.params_for(m).get("nf_k")  # only a k the user chose is refused; a default adapts (with a note)
        if nf_k is not None and nf_k > n_ref:
            raise TMUError(
                f"NF k={nf_k} is larger than the {n_ref} remaining training samples of class "
                f"{forget.class_name} it compares with; choose 1..{n_ref}"
            )
    return data, forget


def start(cfg: RunConfig, root=None) -> store.Run:
    """Validate (the device too) and create a queued run folder holding config.json: refused input leaves
    no run folder behind."""
    if cfg.own.active:  # the user's own model: tmu_core.ownmodel validates and names the run
        from ..ownmodel.execute import start as start_own

        return start_own(cfg, root)
    pick_device(cfg.device)
    _, forget = validate(cfg)
    hint = cfg.name or f"{cfg.data.dataset}-c{forget.class_index}-n{len(forget.ids)}-s{cfg.seed}"
    return store.Run.create(hint, run_config_to_dict(cfg), root)


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


def stage_weights(cfg: RunConfig) -> dict[str, float]:
    """The expected relative cost of every stage of a run of `cfg` (see STAGE_WEIGHTS)."""
    epochs = float(cfg.train.epochs)
    out = {"data": STAGE_WEIGHTS["data"], "original": epochs, "gold": epochs}
    if cfg.gold_seeds > 1:
        out["golds"] = epochs * (cfg.gold_seeds - 1)
    for m in cfg.methods:
        if METHODS.get(m).primary:
            out[m] = PRIMARY_WEIGHT
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
        done = sum(self.weights[s] for s in self.stages if self.times[s]["state"] in ("done", "cached"))
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
        return round(pace * pending + float(cur.get("left", 0.0) if cur.get("state") == "running" else 0.0), 1)

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

    def done(self, stage: str, seconds: float, cached: bool = False) -> None:
        self.times[stage] = {
            "state": "cached" if cached else "done",
            "seconds": round(seconds, 3),
            "weight": CACHED_WEIGHT if cached else self.weights[stage],
        }
        if cached:
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
    stages = ["data", "original", "gold", *(["golds"] if cfg.gold_seeds > 1 else []), *cfg.methods, "evaluate"]
    if cfg.own.active:
        from ..ownmodel import execute as own

        stages = own.stages(cfg)
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
        result = (own.execute if cfg.own.active else _execute)(run, cfg, writer, report)
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


def _references(run, cfg, data, forget, device, writer, report) -> tuple[Trained, Trained]:
    def should_stop():
        if run.cancel_requested():
            raise Cancelled()

    for kind, ids in (("original", data.train_ids), ("gold", forget.remain_ids(data))):
        if store.model_cache_file(reference_key(kind, cfg.data, cfg.train, cfg.seed, ids)).exists():
            writer.cached(kind)  # loading it takes a moment: the bar's weight goes to the stages that train
    writer.begin("original")
    original = train_cached(
        "original", data, cfg.data, cfg.train, data.train_ids, cfg.seed, device, report, should_stop
    )
    writer.done("original", original.seconds, original.cached)
    writer.begin("gold")
    gold = train_cached(
        "gold", data, cfg.data, cfg.train, forget.remain_ids(data), gold_seed(cfg.seed, 0), device, report, should_stop
    )
    writer.done("gold", gold.seconds, gold.cached)
    return original, gold


def _extra_golds(run, cfg, data, forget, device, writer, report) -> list[Trained]:
    """Golds 2..K of the gold ensemble (none when K = 1), reported as the 'golds' stage."""

    def should_stop():
        if run.cancel_requested():
            raise Cancelled()

    if cfg.gold_seeds < 2:
        return []
    t = time.perf_counter()
    writer.begin("golds")
    seen = {"gold": 0, "last": 0.0}  # each gold reports 0..1: count them, so the stage's fraction only grows

    def each(p: Progress) -> None:
        if p.fraction < seen["last"]:
            seen["gold"] += 1
        seen["last"] = p.fraction
        report(Progress("golds", min(1.0, (seen["gold"] + p.fraction) / (cfg.gold_seeds - 1)), p.message))

    golds = extra_golds(data, cfg.data, forget, cfg.train, cfg.seed, cfg.gold_seeds, device, each, should_stop)
    writer.done("golds", time.perf_counter() - t, all(g.cached for g in golds))
    return golds


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


def _run_methods(run, cfg, data, forget, original, gold, device, writer, report) -> Outcome:
    def should_stop():
        if run.cancel_requested():
            raise Cancelled()

    out = Outcome()
    for name in run_order(cfg.methods):
        entry = METHODS.get(name)
        mcfg = run_method_config(name, cfg)
        out.configs[name] = mcfg
        task = UnlearnTask(
            data,
            cfg.data,
            cfg.train,
            forget,
            original.model,
            cfg.seed,
            should_stop,
            gold=gold.model if entry.uses_gold else None,
            earlier=dict(out.reports),
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


def _cost_ratio(out: Outcome, gold_seconds: float) -> float | None:
    """The primary method's cost (audit extras left out) over the gold retrain's."""
    for name, seconds in out.seconds.items():
        if METHODS.get(name).primary and gold_seconds > 0:
            rep = out.reports.get(name)
            return (seconds - getattr(rep, "audit_seconds", 0.0)) / gold_seconds
    return None


def _execute(run: store.Run, cfg: RunConfig, writer: StatusWriter, report) -> dict:
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    t0 = time.perf_counter()
    data, forget = validate(cfg)
    writer.done("data", time.perf_counter() - t0)
    original, gold = _references(run, cfg, data, forget, device, writer, report)
    golds = _extra_golds(run, cfg, data, forget, device, writer, report)
    out = _run_methods(run, cfg, data, forget, original, gold, device, writer, report)
    models = {
        "original": original.model,
        "gold": gold.model,
        **{m: out.models[m] for m in cfg.methods if m in out.models},
    }
    seconds = {"original": original.seconds, "gold": gold.seconds, **out.seconds}

    t = time.perf_counter()
    writer.begin("evaluate")
    ev = Evaluator(data, forget, device, cfg.seed)
    logits = _finite_logits(ev, models, out)
    models = {name: m for name, m in models.items() if name in logits}
    result_models = {name: {**ev.report(logits[name], logits["gold"]), "seconds": seconds[name]} for name in models}
    # original and gold may come from the cache: their seconds are those of the training that made them
    result_models["original"]["cached"] = original.cached
    result_models["gold"]["cached"] = gold.cached
    gold_easy = ev.gold_easy(logits["gold"])
    result = {
        "run_id": run.id,
        "dataset": cfg.data.dataset,
        "model": cfg.train.model,
        "forget_class": forget.class_index,
        "forget_class_name": forget.class_name,
        "forget_count": int(len(forget.ids)),
        "seed": cfg.seed,
        "device": str(device),
        "models": result_models,
        "cost_ratio": _cost_ratio(out, gold.seconds),
        "cache": {
            "original": original.key,
            "gold": gold.key,
            "original_cached": original.cached,
            "gold_cached": gold.cached,
        },
        "method_config": {k: config_dict(v) for k, v in out.configs.items()},
        "train_config": run.config()["train"],
        "diverged": out.diverged,
    }
    for name, rep in out.reports.items():
        result[name] = rep.summary(gold_easy)
    columns = _soft_truth(cfg, ev, logits["gold"], golds, out, result)
    _save_artifacts(run, data, forget, models, out, gold_easy, device, cfg.seed, columns)
    writer.done("evaluate", time.perf_counter() - t)
    result["stage_seconds"] = {k: v.get("seconds") for k, v in writer.times.items()}
    result["step_check"] = _step_check(result)
    run.save_metrics(result)
    return result


def _step_check(result: dict) -> dict:
    """The gold-free check of the unlearning step (evaluate.verdict.step_check_block) on the result as a reader
    will see it: achieved A_f against the predicted-easy share, within the noise floor or not."""
    import json

    from ..evaluate.verdict import step_check_block
    from ..store.io import _json_default
    from ..store.schema import read_metrics

    try:
        typed = read_metrics(json.loads(json.dumps(result, default=_json_default)), "this run")
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


def _save_artifacts(run, data, forget, models, out: Outcome, gold_easy, device, seed: int, columns=None) -> None:
    """The per-sample table, the activations for the embedding maps and the weights of embedded methods;
    `columns` are extra per-sample columns of D_f (the gold ensemble's p_i)."""
    reports = list(out.reports.values())
    groups = [artifacts.forget_group(data, forget, gold_easy, reports, columns)]
    for rep in reports:
        groups.extend(rep.sample_groups(forget.class_index))
    run.save_samples(artifacts.sample_table(groups, forget, models, device))
    embedded = {n: m for n, m in models.items() if n in REFERENCES or (n in out.models and METHODS.get(n).embed)}
    points = [p for rep in reports for p in rep.embedding_points(forget.class_index)]
    run.save_embeddings(**artifacts.embeddings(data, forget, embedded, points, device, seed))
    for name in out.models:
        if METHODS.get(name).embed:
            run.save_weights(name, out.models[name].state_dict())
