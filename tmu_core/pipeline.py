"""One run end to end: data, original and gold models, every chosen method, metrics and artifacts.

`start(cfg)` validates the config and creates the run folder; `execute(run)` does the work and keeps
`status.json` current (stage, progress, per-stage seconds), so the dashboard can follow a run that is
executed by another process (`python -m tmu_core execute <run_id>`). Results are written before the
status says complete, so a reader that trusts only complete runs never sees half a run.
"""
from __future__ import annotations

import logging
import time
import traceback

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import metrics as M
from . import runs
from .config import RunConfig, run_config_from_dict, run_config_to_dict
from .data import Dataset, ForgetSet, load_dataset, resolve_forget, to_float
from .errors import Cancelled, TMUError
from .methods import METHODS, method_config
from .methods.loop import UnlearnTask
from .references import original_and_gold, train_cached
from .train import Progress, pick_device, predict, seed_everything

log = logging.getLogger(__name__)

REMAIN_EVAL_MAX = 5000  # A_r and the MIA use a seeded sample of D_r of at most this size
EMBED_REMAIN_MAX = 1500  # D_r samples kept for the embedding plots (all of the forget class first)


def validate(cfg: RunConfig) -> tuple[Dataset, ForgetSet]:
    """Load the data and resolve the forget set; raises TMUError naming what is valid."""
    data = load_dataset(cfg.data, cfg.seed)
    forget = resolve_forget(data, cfg.forget, cfg.seed)
    for m in cfg.methods:
        mcfg = method_config(m, cfg.data.dataset, cfg.params_for(m))
        n_ref = len(forget.remain_class_ids(data))
        if getattr(mcfg, "nf_k", 1) > n_ref:
            raise TMUError(f"NF k={mcfg.nf_k} is larger than the {n_ref} remaining training samples of class "
                           f"{forget.class_name} it compares with; choose 1..{n_ref}")
    return data, forget


def start(cfg: RunConfig, root=None) -> runs.Run:
    """Validate and create a queued run folder holding config.json."""
    _, forget = validate(cfg)
    hint = cfg.name or f"{cfg.data.dataset}-c{forget.class_index}-n{len(forget.ids)}-s{cfg.seed}"
    return runs.Run.create(hint, run_config_to_dict(cfg), root)


def train_references(cfg: RunConfig, progress=None) -> dict:
    """The `train` command: original and gold models (cached) and their accuracies."""
    data, forget = validate(cfg)
    device = pick_device(cfg.device)
    original, gold = original_and_gold(data, cfg.data, forget, cfg.train, cfg.seed, device, progress)
    ev = Evaluator(data, forget, device, cfg.seed)
    models = {}
    for name, t in (("original", original), ("gold", gold)):
        models[name] = {**ev.accuracies(t.model), "seconds": t.seconds, "cached": t.cached}
    return {"dataset": cfg.data.dataset, "model": cfg.train.model, "forget_class": forget.class_index,
            "forget_class_name": forget.class_name, "forget_count": int(len(forget.ids)), "device": str(device),
            "models": models}


class Evaluator:
    """Logits of every model on the evaluation sets, computed once per model."""

    def __init__(self, data: Dataset, forget: ForgetSet, device: torch.device, seed: int):
        self.data, self.forget, self.device = data, forget, device
        rng = np.random.default_rng([seed, 83])
        remain = forget.remain_ids(data)
        self.remain_ids = np.sort(rng.choice(remain, min(REMAIN_EVAL_MAX, len(remain)), replace=False))
        self.sets = {"test": (data.x_test, data.y_test),
                     "remain": (data.x[torch.as_tensor(self.remain_ids)], data.y[torch.as_tensor(self.remain_ids)]),
                     "forget": (data.x[torch.as_tensor(forget.ids)], data.y[torch.as_tensor(forget.ids)])}
        self.seed = seed

    def logits(self, model) -> dict[str, torch.Tensor]:
        return {k: predict(model, x, self.device) for k, (x, _) in self.sets.items()}

    def accuracies(self, model, logits=None) -> dict:
        lg = logits or self.logits(model)
        return {f"acc_{k}": M.accuracy_from_logits(lg[k], self.sets[k][1]) for k in self.sets}

    def report(self, logits: dict, gold_logits: dict) -> dict:
        acc = {f"acc_{k}": M.accuracy_from_logits(logits[k], self.sets[k][1]) for k in self.sets}
        gold_af = M.accuracy_from_logits(gold_logits["forget"], self.sets["forget"][1])
        delta = acc["acc_forget"] - gold_af
        return {**acc, "delta": delta, "abs_delta": abs(delta),
                "activation_distance": M.activation_distance(F.softmax(logits["forget"], 1), F.softmax(gold_logits["forget"], 1)),
                "mia": M.mia_score(logits["remain"], logits["test"], logits["forget"], self.seed)}


class StatusWriter:
    """Maps stage progress onto the run's overall progress and writes status.json (throttled)."""

    def __init__(self, run: runs.Run, stages: list[str]):
        self.run, self.stages, self.t_last = run, stages, 0.0
        self.times: dict[str, dict] = {s: {"state": "pending"} for s in stages}

    def __call__(self, p: Progress) -> None:
        top = p.stage.split(":")[0]
        if top not in self.stages:
            return
        i = self.stages.index(top)
        if self.times[top]["state"] == "pending":
            self.times[top] = {"state": "running", "started": time.time()}
        now = time.monotonic()
        if now - self.t_last > 0.5 or p.fraction >= 1.0:
            self.t_last = now
            self.run.set_status(stage=p.stage, progress=min(1.0, (i + min(p.fraction, 1.0)) / len(self.stages)),
                                message=p.message, stages=self.times)
        if self.run.cancel_requested():
            raise Cancelled()

    def done(self, stage: str, seconds: float, cached: bool = False) -> None:
        self.times[stage] = {"state": "cached" if cached else "done", "seconds": round(seconds, 3)}
        i = self.stages.index(stage)
        self.run.set_status(stage=stage, progress=(i + 1) / len(self.stages), message="done", stages=self.times)


def execute(run: runs.Run, progress=None) -> dict:
    """Execute a queued run; returns the result dict (the CLI's --json contract). Never leaves status 'running'."""
    import os

    try:
        cfg = run_config_from_dict(run.read_json("config.json"))
    except TMUError as exc:
        run.set_status(state="failed", error=str(exc))
        raise
    stages = ["data", "original", "gold", *cfg.methods, "evaluate"]
    writer = StatusWriter(run, stages)
    run.set_status(state="running", stage="data", progress=0.0, pid=os.getpid(), error=None,
                   started=time.time(), stages=writer.times)

    def report(p: Progress) -> None:
        writer(p)
        if progress:
            progress(p)

    try:
        result = _execute(run, cfg, writer, report)
    except Cancelled:
        run.set_status(state="cancelled", error="cancelled by the user")
        raise TMUError(f"run {run.id} was cancelled")
    except TMUError as exc:
        run.set_status(state="failed", error=str(exc))
        raise
    except KeyboardInterrupt:
        run.set_status(state="interrupted", error="interrupted (Ctrl-C or a stop signal); execute it again to finish")
        raise
    except BaseException as exc:
        (run.dir / "error.log").write_text(traceback.format_exc())
        run.set_status(state="failed", error=f"unexpected {exc.__class__.__name__}: {exc} (details in error.log)")
        raise
    run.set_status(state="complete", stage="complete", progress=1.0, message="done", stages=writer.times)
    return result


def _execute(run: runs.Run, cfg: RunConfig, writer: StatusWriter, report) -> dict:
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    t0 = time.perf_counter()
    data, forget = validate(cfg)
    writer.done("data", time.perf_counter() - t0)

    def should_stop():
        if run.cancel_requested():
            raise Cancelled()

    original = train_cached("original", data, cfg.data, cfg.train, data.train_ids, cfg.seed, device, report, should_stop)
    writer.done("original", original.seconds, original.cached)
    gold = train_cached("gold", data, cfg.data, cfg.train, forget.remain_ids(data), cfg.seed, device, report, should_stop)
    writer.done("gold", gold.seconds, gold.cached)

    models = {"original": original.model, "gold": gold.model}
    seconds = {"original": original.seconds, "gold": gold.seconds}
    tmu_report: dict = {}
    method_cfgs = {}
    for name in cfg.methods:
        mcfg = method_config(name, cfg.data.dataset, cfg.params_for(name))
        method_cfgs[name] = mcfg
        task = UnlearnTask(data, cfg.data, cfg.train, forget, original.model, cfg.seed, should_stop)
        seed_everything(cfg.seed)
        t = time.perf_counter()
        models[name] = METHODS.get(name).run(task, mcfg, device, report)
        seconds[name] = time.perf_counter() - t
        writer.done(name, seconds[name])
        if name == "tmu":
            tmu_report = task.report

    t = time.perf_counter()
    ev = Evaluator(data, forget, device, cfg.seed)
    logits = {name: ev.logits(m) for name, m in models.items()}
    result_models = {name: {**ev.report(logits[name], logits["gold"]), "seconds": seconds[name]} for name in models}
    # original and gold may come from the cache: their seconds are those of the training that made them
    result_models["original"]["cached"] = original.cached
    result_models["gold"]["cached"] = gold.cached
    gold_easy = (logits["gold"]["forget"].argmax(1) == forget.class_index).numpy().astype(np.int64)
    result = {
        "run_id": run.id, "dataset": cfg.data.dataset, "model": cfg.train.model, "forget_class": forget.class_index,
        "forget_class_name": forget.class_name, "forget_count": int(len(forget.ids)), "seed": cfg.seed,
        "device": str(device), "models": result_models,
        # TMU's cost leaves out the ablation classifiers (an audit extra, paper Table 4), not the unlearning
        "cost_ratio": ((seconds["tmu"] - tmu_report.get("stage_seconds", {}).get("ablation", 0.0)) / seconds["gold"])
        if "tmu" in seconds and seconds["gold"] > 0 else None,
        "cache": {"original": original.key, "gold": gold.key, "original_cached": original.cached, "gold_cached": gold.cached},
        "method_config": {k: _jsonable(v) for k, v in method_cfgs.items()},
        "train_config": run.read_json("config.json")["train"],
    }
    if tmu_report:
        result["tmu"] = _tmu_summary(tmu_report, gold_easy, forget)
    table = _sample_table(data, forget, models, tmu_report, gold_easy, device)
    run.save_table(table)
    run.save_arrays("embeddings.npz", **_embeddings(data, forget, models, tmu_report, ev, device, cfg.seed))
    if "tmu" in models:
        run.save_weights("tmu", models["tmu"].state_dict())
    writer.done("evaluate", time.perf_counter() - t)
    result["stage_seconds"] = {k: v.get("seconds") for k, v in writer.times.items()}
    run.write_json("metrics.json", result)
    return result


def _jsonable(cfg) -> dict:
    from dataclasses import asdict

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


def _tmu_summary(rep: dict, gold_easy: np.ndarray, forget: ForgetSet) -> dict:
    pred = rep["forget_pred"]
    la = M.label_accuracy(pred, gold_easy)
    by_features = {name: M.label_accuracy(p, gold_easy)["accuracy"] for name, p in rep["ablation"].items()}
    aux = rep["aux"]
    return {
        "label_accuracy": la["accuracy"], "confusion": {k: v for k, v in la.items() if k != "accuracy"},
        "label_accuracy_by_features": by_features,
        "auc_p_easy": M.roc_auc(rep["forget_p_easy"], gold_easy),
        "pred_easy": int(pred.sum()), "pred_hard": int(len(pred) - pred.sum()),
        "gold_hard": int(len(gold_easy) - gold_easy.sum()), "gold_easy": int(gold_easy.sum()),
        "aux_count": int(len(aux.x)), "aux_sizing": aux.sizing,
        "aux_easy": int(rep["aux_labels"].sum()), "aux_hard": int(len(rep["aux_labels"]) - rep["aux_labels"].sum()),
        "threshold": float(rep["threshold"]), "rule": rep["rule"], "twin_hard_rate": float(rep["twin_hard_rate"]),
        "features_used": rep["features_used"],
        "stage_seconds": {k: round(v, 3) for k, v in rep["stage_seconds"].items()},
    }


def _sample_table(data: Dataset, forget: ForgetSet, models: dict, rep: dict, gold_easy: np.ndarray,
                  device: torch.device) -> pd.DataFrame:
    """One row per D_f and D_a sample: features, p(easy), labels, every model's prediction and confidence."""
    xf = data.x[torch.as_tensor(forget.ids)]
    c = forget.class_index
    frames = []
    parts = [("forget", xf, forget.ids, np.full(len(forget.ids), -1), np.zeros(len(forget.ids), bool))]
    if rep:
        aux = rep["aux"]
        parts.append(("aux", aux.x, np.arange(len(aux.x)), aux.source_ids, aux.augmented))
    for role, x, ids, source, augmented in parts:
        df = pd.DataFrame({"id": ids, "role": role, "class": c, "class_name": forget.class_name,
                           "source_id": source, "augmented": augmented})
        if rep:
            raw = rep["forget_raw"] if role == "forget" else rep["aux_raw"]
            df["NF"], df["AF"], df["CF"] = raw[:, 0], raw[:, 1], raw[:, 2]
            df["p_easy"] = rep["forget_p_easy"] if role == "forget" else rep["aux_p_easy"]
            pred = rep["forget_pred"] if role == "forget" else rep["aux_pred"]
            df["pred_label"] = np.where(pred == 1, "easy", "hard")
        truth = gold_easy if role == "forget" else (rep["aux_labels"] if rep else None)
        if truth is not None:
            df["true_label"] = np.where(truth == 1, "easy", "hard")
            df["truth_source"] = "gold model" if role == "forget" else "original model (twin gold)"
        for name, m in models.items():
            probs = F.softmax(predict(m, x, device), 1)
            conf, pr = probs.max(1)
            df[f"pred_{name}"] = pr.numpy()
            df[f"conf_{name}"] = conf.numpy()
            df[f"p_true_{name}"] = probs[:, c].numpy()
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _embeddings(data: Dataset, forget: ForgetSet, models: dict, rep: dict, ev: Evaluator, device, seed: int) -> dict:
    """Penultimate activations of original, gold and TMU for D_f, D_a and a sample of D_r."""
    rng = np.random.default_rng([seed, 89])
    remain_c = forget.remain_class_ids(data)
    others = np.setdiff1d(forget.remain_ids(data), remain_c)
    n_other = max(0, EMBED_REMAIN_MAX - len(remain_c))
    remain = np.concatenate([remain_c[:EMBED_REMAIN_MAX], rng.choice(others, min(n_other, len(others)), replace=False)])
    xs = [to_float(data.x[torch.as_tensor(remain)]), to_float(data.x[torch.as_tensor(forget.ids)])]
    roles = [np.full(len(remain), "remain"), np.full(len(forget.ids), "forget")]
    ids = [remain, forget.ids]
    labels = [data.y[torch.as_tensor(remain)].numpy(), np.full(len(forget.ids), forget.class_index)]
    if rep:
        xs.append(rep["aux"].x)
        roles.append(np.full(len(rep["aux"].x), "aux"))
        ids.append(np.arange(len(rep["aux"].x)))
        labels.append(np.full(len(rep["aux"].x), forget.class_index))
    x = torch.cat(xs)
    out = {"ids": np.concatenate(ids).astype(np.int64), "role": np.concatenate(roles).astype("<U8"),
           "label": np.concatenate(labels).astype(np.int64)}
    for name in ("original", "gold", "tmu"):
        if name in models:
            out[f"emb_{name}"] = predict(models[name], x, device, what="embed").numpy().astype(np.float32)
    return out
