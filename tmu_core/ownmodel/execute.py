"""A run on the user's own model: `validate` refuses bad input before a run folder exists, `execute` is the
pipeline's work for such a run (the pipeline keeps status, locking, cancelling and failure handling).

Gold is optional (`OwnModelConfig.gold`): none trains nothing from scratch and reports what needs no gold (the
twin's fidelity, the predicted easy/hard split with p(easy) and the evidence warnings, TMU's predicted A_f after
removal beside the achieved one, A_test, A_r, MIA, seconds); retrain retrains with the project's recipe (not the
user's); weights loads the user's own retrain, and every alignment measure is then computed as in other runs.
Outputs: the unlearned model in the input's format, the per-sample audit CSV, metrics.json (the run's JSON).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import store
from ..config import RunConfig, run_config_to_dict
from ..errors import Diverged, TMUError
from ..evaluate import metrics as M
from ..evaluate.evaluator import Evaluator
from ..methods import METHODS, config_dict, display, primary_method, run_method_config, run_order
from ..methods.loop import UnlearnTask
from ..models import build_model, check_model
from ..references import gold_seed
from ..tmu.classifier import call_words
from ..tmu.forecast import combine, forecast_words
from ..train import fit, pick_device, seed_everything
from . import pins
from .layout import Request, UserData, load_user_data, resolve_request
from .request import run_request
from .weights import Loaded, load_gold, load_original, unlearned_file

RECIPE_NOTE = (
    "gold was retrained with the project's training recipe ({recipe}), not yours: its alignment numbers "
    "compare TMU with what this recipe gives"
)
NO_GOLD = "no gold model (--gold none): measures that compare with a retrain (|delta|, agreement, label accuracy) are not computed"


@dataclass
class Prepared:
    data: UserData
    request: Request
    original: Loaded
    gold: Loaded | None
    batch_accuracy: float
    seconds: float


def stages(cfg: RunConfig) -> list[str]:
    return ["data", "original", "gold", *cfg.methods, "evaluate"]


def check_methods(cfg: RunConfig) -> None:
    check_model(cfg.train.model)
    for m in cfg.methods:
        METHODS.entry(m)
        if display(m).kind == "control" or METHODS.get(m).uses_gold:
            raise TMUError(
                f"method {m} is a control of single-class benchmark runs; on your own model choose from "
                f"{', '.join(n for n in METHODS.names() if display(n).kind != 'control')}"
            )
    if cfg.gold_seeds > 1:
        raise TMUError(
            "--gold-seeds retrains several golds with the project's recipe; on your own model give "
            "--gold-weights FILE (your retrain) or --gold retrain"
        )


def validate(cfg: RunConfig) -> Prepared:
    """Data, request, models and method settings, each refused in one line naming what is valid."""
    t0 = time.perf_counter()
    check_methods(cfg)
    own = cfg.own
    data = load_user_data(cfg.data, own)
    original = load_original(cfg, data)  # checked for fit; code (TorchScript, .pt2) only in a sandboxed child
    batch_accuracy = original.batch_accuracy
    request = resolve_request(data, own, cfg.forget, cfg.seed)
    gold = load_gold(cfg, data) if own.gold == "weights" else None
    n_ref = min(len(p.remain_class_ids(data)) for p in request.parts)
    for m in cfg.methods:
        run_method_config(m, cfg)
        nf_k = cfg.params_for(m).get("nf_k")
        if nf_k is not None and nf_k > n_ref:
            raise TMUError(
                f"NF k={nf_k} is larger than the {n_ref} remaining training images of a class of the "
                f"request; choose 1..{n_ref}"
            )
    return Prepared(data, request, original, gold, batch_accuracy, time.perf_counter() - t0)


def start(cfg: RunConfig, root=None) -> store.Run:
    pick_device(cfg.device)
    p = validate(cfg)
    classes = "-".join(str(q.class_index) for q in p.request.parts)[:20]
    hint = cfg.name or f"own-c{classes}-n{len(p.request.whole.ids)}-s{cfg.seed}"
    run = store.Run.create(hint, run_config_to_dict(cfg), root)
    pins.pin(run, cfg)
    return run


def _retrain_gold(cfg: RunConfig, p: Prepared, device, report, should_stop):
    """The project's recipe on D_r, from scratch (gold seed of the run)."""
    data = p.data
    seed_everything(gold_seed(cfg.seed, 0))
    model = build_model(cfg.train.model, data.channels, data.num_classes, data.size, data.mean, data.std)
    ids = torch.as_tensor(p.request.whole.remain_ids(data))
    t = time.perf_counter()
    fit(
        model,
        data.x[ids],
        data.y[ids],
        cfg.train,
        device,
        seed=gold_seed(cfg.seed, 0),
        stage="gold",
        progress=report,
        should_stop=should_stop,
    )
    return model.eval(), time.perf_counter() - t


def execute(run: store.Run, cfg: RunConfig, writer, report) -> dict:
    """The pipeline's work for a run on the user's own model (writer: the pipeline's StatusWriter)."""
    from ..errors import Cancelled

    def should_stop():
        if run.cancel_requested():
            raise Cancelled()

    pins.check(run, cfg)  # executed again (a resume): the same inputs as at its start, or a refusal
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    p = validate(cfg)
    request, whole = p.request, p.request.whole
    writer.done("data", p.seconds)
    writer.done("original", 0.0, cached=True)
    models, seconds, notes = {"original": p.original.model}, {"original": 0.0}, list(p.original.notes)
    gold_seconds = _gold(cfg, p, device, report, should_stop, models, seconds, notes)
    writer.done("gold", gold_seconds or 0.0, cached=gold_seconds is None)
    reports, configs, diverged, pred = _methods(cfg, p, device, report, should_stop, models, seconds, writer)
    t = time.perf_counter()
    result_models, logits, gold_easy = _evaluate(cfg, p, models, seconds, diverged, gold_seconds, device)
    primary = primary_method()  # TMU: its report is stored under its name
    result = {
        "run_id": run.id,
        "dataset": cfg.data.dataset,
        "model": cfg.train.model,
        "forget_class": request.parts[0].class_index,  # several classes: the first (each in own.per_class)
        "forget_class_name": whole.class_name,
        "forget_count": int(len(whole.ids)),
        "seed": cfg.seed,
        "device": str(device),
        "models": result_models,
        "cost_ratio": (seconds[primary] - _audit(reports)) / gold_seconds
        if gold_seconds and primary in seconds
        else None,
        "method_config": configs,
        "train_config": run.config()["train"],
        "diverged": diverged,
    }
    own = {
        "gold": cfg.own.gold,
        "format": p.original.format,
        "original_weights": p.original.path,
        "data": p.data.source,
        "classes": [q.class_name for q in request.parts],
        "original_batch_accuracy": p.batch_accuracy,
        "fit": p.original.fit,
        "notes": notes,
        "multi_class": len(request.parts) > 1,
    }
    if reports:
        own.update(_tmu_block(reports, request, pred, gold_easy, result_models, seconds, gold_seconds))
        if gold_easy is not None and len(reports) == 1:
            result[primary] = reports[0][1].summary(gold_easy)
        own["unlearned_weights"] = str(_save_unlearned(run, p.original, models.get(primary), notes))
        run.save_table(audit_table(p.data, request, reports, logits, gold_easy, models), store.AUDIT)
        own["audit_csv"] = str(run.dir / store.AUDIT)
    own["kept_models"] = _keep_models(run, cfg, p.original, models, own.get("unlearned_weights"), notes)
    result["own"] = own
    writer.done("evaluate", time.perf_counter() - t)
    result["stage_seconds"] = {k: v.get("seconds") for k, v in writer.times.items()}
    run.save_metrics(result)
    return result


def _gold(cfg: RunConfig, p: Prepared, device, report, should_stop, models, seconds, notes) -> float | None:
    """Adds the gold model (if any) to `models`; returns the seconds of a retrain done here (else None)."""
    if cfg.own.gold == "retrain":
        models["gold"], seconds["gold"] = _retrain_gold(cfg, p, device, report, should_stop)
        notes.append(
            RECIPE_NOTE.format(
                recipe=f"{cfg.train.model}, {cfg.train.epochs} epochs, lr {cfg.train.lr:g}, "
                f"batch {cfg.train.batch_size}, {cfg.train.schedule}"
            )
        )
        return seconds["gold"]
    if p.gold is not None:
        models["gold"], seconds["gold"] = p.gold.model, 0.0
    else:
        notes.append(NO_GOLD)
    return None


def _methods(cfg: RunConfig, p: Prepared, device, report, should_stop, models, seconds, writer):
    """Every chosen method from the user's model: TMU per class of the request, the baselines on all of it."""
    reports, configs, diverged, pred = [], {}, {}, None
    for name in run_order(cfg.methods):
        mcfg = run_method_config(name, cfg)
        configs[name] = config_dict(mcfg)
        task = UnlearnTask(p.data, cfg.data, cfg.train, p.request.whole, p.original.model, cfg.seed, should_stop)
        seed_everything(cfg.seed)
        t = time.perf_counter()
        try:
            if name == primary_method():  # TMU runs per class of the request
                models[name], reports, pred, _ = run_request(task, p.request, mcfg, device, report)
            else:
                models[name] = METHODS.get(name).run(task, mcfg, device, report).model
        except Diverged as exc:
            diverged[name] = f"method {name}: {exc}"
            writer.done(name, time.perf_counter() - t)
            continue
        seconds[name] = time.perf_counter() - t
        writer.done(name, seconds[name])
    return reports, configs, diverged, pred


def _evaluate(cfg: RunConfig, p: Prepared, models, seconds, diverged, gold_seconds, device):
    """Each model's readouts: against gold when there is one, else what needs none (accuracies, MIA)."""
    ev = Evaluator(p.data, p.request.whole, device, cfg.seed)
    logits = {}
    for name, model in list(models.items()):
        lg = ev.logits(model)
        if all(bool(torch.isfinite(v).all()) for v in lg.values()):
            logits[name] = lg
        elif name in ("original", "gold"):
            raise Diverged(f"the {name} model's outputs on the data are not finite numbers")
        else:
            diverged[name] = f"method {name}: its outputs are not finite numbers (it diverged)"
            models.pop(name)
            seconds.pop(name, None)
    has_gold = "gold" in logits
    out = {}
    for name in models:
        if has_gold:
            m = ev.report(logits[name], logits["gold"])
        else:
            mia, mia_auc = M.mia(logits[name]["remain"], logits[name]["test"], logits[name]["forget"], cfg.seed)
            m = {
                **ev.accuracies(None, logits[name]),
                "delta": None,
                "abs_delta": None,
                "sample_agreement": None,
                "activation_distance": None,
                "mia": mia,
                "mia_auc": mia_auc,
            }
        out[name] = {**m, "seconds": seconds.get(name, 0.0)}
    out["original"]["cached"] = True  # loaded, not trained here
    if "gold" in out:
        out["gold"]["cached"] = gold_seconds is None
    y_f = ev.sets["forget"][1]
    gold_easy = (logits["gold"]["forget"].argmax(1) == y_f).numpy().astype(np.int64) if has_gold else None
    return out, logits, gold_easy


def _audit(reports) -> float:
    return sum(r.audit_seconds for _, r in reports[-1:])  # stage seconds accumulate over the classes


def _save_unlearned(run: store.Run, original: Loaded, model, notes: list):
    if model is None:
        return ""
    data, suffix, note = unlearned_file(original, model)
    path = run.unlearned_path(suffix)
    store.atomic_write_bytes(path, data)
    notes += [note] if note else []
    return path


def _keep_models(run: store.Run, cfg: RunConfig, original: Loaded, models, tmu_path, notes) -> dict[str, str]:
    """{method: saved file} of the unlearned models this run keeps: TMU's always, the baselines' with
    --keep-models (in the input's format, weights/<method>.pt); a note names the ones not kept."""
    kept = {primary_method(): tmu_path} if tmu_path else {}
    others = [m for m in models if m not in ("original", "gold", primary_method())]
    for name in others if cfg.own.keep_models else []:
        data, suffix, _ = unlearned_file(original, models[name])
        path = run.weights_path(name).with_suffix(f".{suffix}")
        store.atomic_write_bytes(path, data)
        kept[name] = str(path)
    dropped = [m for m in others if m not in kept]
    if dropped:
        notes.append(
            f"the unlearned models of {', '.join(dropped)} were measured but not saved; run with --keep-models "
            "to save them"
        )
    return kept


def _own_words(warning: str) -> str:
    """An evidence warning in the terms of the user's data: the aux pool is their aux/ folder, not a fraction."""
    return warning.replace("a larger aux fraction (--aux-fraction)", "more aux/ images of this class").replace(
        "a larger aux fraction", "more aux/ images of this class"
    )


def _tmu_block(reports, request: Request, pred, gold_easy, result_models, seconds, gold_seconds) -> dict:
    per_class, warnings = {}, []
    whole = request.whole.ids
    for part, rep in reports:
        n = len(part.ids)
        block = {
            "class_index": part.class_index,
            "forget_count": n,
            "pred_easy": int(rep.forget_pred.sum()),
            "pred_hard": int(n - rep.forget_pred.sum()),
            "predicted_acc_forget": 100.0 * float(rep.forget_pred.mean()),
            "aux_count": int(len(rep.aux.x)),
            "aux_sizing": rep.aux.sizing,
            "aux_easy": int(rep.aux_labels.sum()),
            "aux_hard": int(len(rep.aux_labels) - rep.aux_labels.sum()),
            "threshold": float(rep.threshold),
            "rule": rep.rule,
            "twin_hard_rate": float(rep.twin_hard_rate),
            "twin_fidelity": rep.twin_fidelity,
            "warnings": list(rep.warnings),
            **rep.forecast_summary(None),
        }
        if gold_easy is not None:
            ge = gold_easy[np.searchsorted(whole, part.ids)]
            la = M.label_accuracy(rep.forget_pred, ge)
            block.update(
                label_accuracy=la["accuracy"],
                gold_easy=int(ge.sum()),
                gold_hard=int(n - ge.sum()),
                gold_acc_forget=100.0 * float(ge.mean()),
                auc_p_easy=M.roc_auc(rep.ranking, ge),
            )
        per_class[part.class_name] = block
        own_words = [_own_words(w) for w in rep.warnings]
        block["warnings"] = own_words
        warnings += [f"class {part.class_name}: {w}" if len(reports) > 1 else w for w in own_words]
    preds = np.concatenate([rep.forget_pred for _, rep in reports])
    out = {
        "per_class": per_class,
        "warnings": warnings,
        "features_used": reports[0][1].features_used,
        "pred_easy": int(preds.sum()),
        "pred_hard": int(len(preds) - preds.sum()),
        "predicted_acc_forget": 100.0 * float(preds.mean()),
        **(
            {"forecast": combine([r.forecast for _, r in reports], names=[q.class_name for q, _ in reports]).as_dict()}
            if all(r.forecast for _, r in reports)
            else {}
        ),
        "achieved_acc_forget": result_models.get(primary_method(), {}).get("acc_forget"),
        "tmu_seconds": seconds.get(primary_method()),
        "stage_seconds": {k: round(v, 3) for k, v in reports[-1][1].stage_seconds.items()},
    }
    if gold_easy is not None:
        la = M.label_accuracy(pred, gold_easy)
        out["label_accuracy"] = la["accuracy"]
    if gold_seconds:
        out["gold_retrain_seconds"] = gold_seconds
    return out


def audit_table(data: UserData, request: Request, reports, logits, gold_easy, models) -> pd.DataFrame:
    """One row per forgotten image: its path, class, TMU's raw features, p(easy), verdict; the models' predictions."""
    whole = request.whole.ids
    frames = []
    for part, rep in reports:
        pos = np.searchsorted(whole, part.ids)
        df = pd.DataFrame(
            {"path": [data.paths[i] for i in part.ids], "class": part.class_name, "class_index": part.class_index}
        )
        for i, name in enumerate(rep.feature_names):
            df[name] = rep.forget_raw[:, i]
        df["p_easy"] = rep.forget_p_easy  # calibrated on the twin; the words below never contradict it
        df["verdict"], df["action"] = call_words(rep.forget_p_easy, rep.forget_pred, rep.undecided)
        df["rank_in_class"] = rep.ranking.astype(np.int64) + 1  # 1 = the file a retrain is least likely to get right
        if rep.peer is not None:
            df["p_easy_peer"] = rep.peer.p_easy_f
        for name in models:
            pr = logits[name]["forget"][torch.as_tensor(pos)].argmax(1).numpy()
            df[f"pred_{name}"] = [data.classes[k] for k in pr]
        if gold_easy is not None:
            df["gold_verdict"] = np.where(gold_easy[pos] == 1, "easy", "hard")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def summary(result: dict) -> str:
    """The run in a few lines (the CLI's output without --json)."""
    own = result["own"]
    lines = [
        f"run {result['run_id']}  (your model {own['original_weights']} [{own['format']}], "
        f"{result['forget_count']} images of {', '.join(own['classes'])}, gold: {own['gold']}, device {result['device']})",
        f"{'model':<12} {'A_test':>7} {'A_r':>7} {'A_f':>7} {'|delta|':>8} {'MIA':>6} {'sec':>7}",
    ]
    fmt = lambda v, w, d=2: f"{v:{w}.{d}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"  # noqa: E731
    for name, m in result["models"].items():
        lines.append(
            f"{name:<12} {fmt(m['acc_test'], 7)} {fmt(m['acc_remain'], 7)} {fmt(m['acc_forget'], 7)} "
            f"{fmt(m['abs_delta'], 8)} {fmt(m['mia'], 6, 1)} {fmt(m['seconds'], 7, 1)}"
        )
    if "per_class" in own:
        lines.append(
            f"TMU predicted easy/hard {own['pred_easy']}/{own['pred_hard']}: predicted A_f after removal "
            f"{own['predicted_acc_forget']:.1f}%, achieved {fmt(own['achieved_acc_forget'], 0, 1)}%"
            + (f"; label accuracy {own['label_accuracy']:.1f}%" if "label_accuracy" in own else "")
        )
        if own.get("forecast"):
            lines.append(("TMU " if len(own["per_class"]) == 1 else "the request: ") + forecast_words(own["forecast"]))
        for name, b in own["per_class"].items():
            fid = b["twin_fidelity"]
            lines.append(
                f"  class {name}: {b['forget_count']} images, easy/hard {b['pred_easy']}/{b['pred_hard']}, "
                f"|D_a| {b['aux_count']}, twin on D_a {fid['twin_acc_aux']:.1f}% vs original on D_f "
                f"{fid['original_acc_forget']:.1f}%"
                + (f", label accuracy {b['label_accuracy']:.1f}%" if "label_accuracy" in b else "")
            )
            if b.get("forecast") and len(own["per_class"]) > 1:
                lines.append(f"    {forecast_words(b['forecast'])}")
            if b.get("decision_rule"):
                lines.append(f"    decision rule: {b['decision_rule']}")
        lines.append(f"audit: {own['audit_csv']}")
    kept = own.get("kept_models") or {}
    lines.append(
        "saved models: " + ", ".join(f"{m} {path}" for m, path in kept.items()) if kept else "saved models: none"
    )
    lines += [f"note: {n}" for n in own["notes"]]
    lines += [f"warning: {w}" for w in own.get("warnings", [])]
    return "\n".join(lines)
