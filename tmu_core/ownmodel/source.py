"""A run on the user's own model, as the pipeline's source of data and references (`jobs.sources`): their
train/ aux/ test/ images or manifest, the deletion request as a list of files, their weights as the original,
and gold optional (`OwnModelConfig.gold`): none trains nothing from scratch and the run reports what needs no
gold; retrain retrains with the project's recipe (not the user's), for a number of steps suited to the data's
size; weights loads the user's own retrain, and every alignment measure is then computed as in other runs.
The unlearned model is exported in the input's format.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .. import store
from ..config import RunConfig, run_config_to_dict, with_flat
from ..data.sources import user_path
from ..errors import TMUError
from ..jobs.sources import Inputs, References, Request, stop_check
from ..methods import METHODS
from ..models import build_model, check_model
from ..references import Trained, gold_seed
from ..train import fit, seed_everything
from . import pins
from .layout import load_user_data, resolve_request
from .weights import load_gold, load_original, unlearned_file

RECIPE_NOTE = (
    "gold was retrained with the project's training recipe ({recipe}), not yours: its alignment numbers "
    "compare TMU with what this recipe gives"
)
NO_GOLD = (
    "no gold model (--gold none): the measures that compare with a retrain (|Δ|, agreement, label accuracy) "
    "are not computed; give --gold-weights FILE (your own retrain) or --gold retrain for them"
)
FILES = ("original_weights", "manifest", "forget_list", "gold_weights")  # the user's files a run reads
GOLD_MIN_STEPS = 400  # a gold retrained here takes at least this many optimiser steps, whatever the data's size
GOLD_REMAIN_GAP = 5.0  # points of A_r: a gold this far below the original's A_r is a weak reference


def gold_recipe(cfg: RunConfig, n_train: int):
    """The project's recipe for a gold retrained on `n_train` images: its epochs, raised so that it takes at
    least GOLD_MIN_STEPS steps (a small data set at the recipe's epochs stops long before it converges)."""
    steps_per_epoch = max(1, math.ceil(n_train / cfg.train.batch_size))
    epochs = max(cfg.train.epochs, math.ceil(GOLD_MIN_STEPS / steps_per_epoch))
    return with_flat(cfg.train, {"epochs": epochs}), epochs * steps_per_epoch


class Own:
    def stages(self, cfg: RunConfig) -> list[str]:
        return ["original", *(["gold"] if cfg.own.gold != "none" else [])]

    def weights(self, cfg: RunConfig, inputs: Inputs) -> dict[str, float]:
        """A loaded model weighs almost nothing; a gold retrained here as many epochs as its recipe."""
        if cfg.own.gold != "retrain":
            return {"original": 0.05, "gold": 0.05}
        n = len(inputs.request.whole.remain_ids(inputs.data))
        # epochs of the gold's data, counted as epochs of the whole training set (the unit of the other weights)
        return {"original": 0.05, "gold": gold_recipe(cfg, n)[0].epochs * n / max(1, len(inputs.data.train_ids))}

    def check(self, cfg: RunConfig) -> None:
        check_model(cfg.train.model)
        for m in cfg.methods:
            METHODS.entry(m)
            if METHODS.get(m).uses_gold and cfg.own.gold == "none":
                raise TMUError(
                    f"method {m} reads the gold model, and this run has none (--gold none): give "
                    "--gold-weights FILE (your retrain) or --gold retrain, or leave it out"
                )
        if cfg.gold_seeds > 1:
            raise TMUError(
                "--gold-seeds retrains several golds with the project's recipe; on your own model give "
                "--gold-weights FILE (your retrain) or --gold retrain"
            )

    def dataset(self, cfg: RunConfig):
        return load_user_data(cfg.data, cfg.own)

    def load(self, cfg: RunConfig) -> Inputs:
        """Data, request and models, each refused in one line naming what is valid."""
        t0 = time.perf_counter()
        own = cfg.own
        data = self.dataset(cfg)
        original = load_original(cfg, data)  # checked for fit; code (TorchScript, .pt2) only in a sandboxed child
        batch_accuracy = original.batch_accuracy
        request = resolve_request(data, own, cfg.forget, cfg.seed)
        gold = load_gold(cfg, data) if own.gold == "weights" else None
        extra = {"original": original, "gold": gold, "batch_accuracy": batch_accuracy}
        return Inputs(data, Request(request.whole, request.parts), time.perf_counter() - t0, extra)

    def name_hint(self, cfg: RunConfig, inputs: Inputs) -> str:
        parts = inputs.request.parts
        classes = "-".join(str(q.class_index) for q in parts)[:20]
        return f"own-c{classes}-n{len(inputs.request.whole.ids)}-s{cfg.seed}"

    def described_config(self, cfg: RunConfig, inputs: Inputs) -> dict:
        """The stored config as the request is: the data set that was read, and no forget class or count that
        the forget list made unused; `request` says what the run is in a user's words."""
        d = run_config_to_dict(cfg)
        d["data"]["dataset"] = inputs.data.name
        # the user's files by absolute path: the dashboard and a later `execute` run in other folders
        for section, key in (("data", "data_root"), *(("own", k) for k in FILES)):
            if d[section][key]:
                d[section][key] = str(user_path(d[section][key]).resolve())
        if cfg.own.forget_list:
            d["forget"] = {}
        parts = inputs.request.parts
        d["request"] = {
            "weights": Path(cfg.own.original_weights).name,
            "files": int(len(inputs.request.whole.ids)),
            "classes": [q.class_name for q in parts],
            "data": str(Path(inputs.data.source).resolve()),
        }
        return d

    def references(self, run, cfg: RunConfig, inputs: Inputs, device, writer, report) -> References:
        loaded = inputs.extra
        writer.done("original", 0.0, state="loaded")
        original = Trained(loaded["original"].model, 0.0, False, "")
        refs = References(original, None, origin={"original": "file"}, notes=list(loaded["original"].notes))
        if cfg.own.gold == "retrain":
            writer.begin("gold")
            refs.gold = self._retrain_gold(cfg, inputs, device, report, stop_check(run))
            writer.done("gold", refs.gold.seconds)
            refs.origin["gold"] = "trained"
        elif loaded["gold"] is not None:
            refs.gold = Trained(loaded["gold"].model, 0.0, False, "")
            writer.done("gold", 0.0, state="loaded")
            refs.origin["gold"] = "file"
        else:
            refs.notes.append(NO_GOLD)
        return refs

    def _retrain_gold(self, cfg: RunConfig, inputs: Inputs, device, report, should_stop) -> Trained:
        """The project's recipe on D_r, from scratch (the run's gold seed), for at least GOLD_MIN_STEPS steps."""
        data = inputs.data
        ids = torch.as_tensor(inputs.request.whole.remain_ids(data))
        recipe, steps = gold_recipe(cfg, len(ids))
        seed_everything(gold_seed(cfg.seed, 0))
        model = build_model(recipe.model, data.channels, data.num_classes, data.size, data.mean, data.std)
        t = time.perf_counter()
        fit(model, data.x[ids], data.y[ids], recipe, device, seed=gold_seed(cfg.seed, 0), stage="gold",
            progress=report, should_stop=should_stop)  # fmt: skip
        inputs.extra["gold_recipe"] = (
            f"{recipe.model}, {recipe.epochs} epochs ({steps} steps of {recipe.batch_size}), lr {recipe.lr:g}, "
            f"{recipe.schedule}"
        )
        return Trained(model.eval(), time.perf_counter() - t, False, "")

    def pin(self, run: store.Run, cfg: RunConfig) -> None:
        pins.pin(run, cfg)

    def check_resume(self, run: store.Run, cfg: RunConfig) -> None:
        pins.check(run, cfg)

    def keep(self, run: store.Run, cfg: RunConfig, inputs: Inputs, models: dict) -> None:
        """The baselines' unlearned models, kept (in the input's format, weights/<method>.pt) with --keep-models;
        a note names those measured but not kept."""
        kept = inputs.extra.setdefault("kept", {})
        for name, model in models.items() if cfg.own.keep_models else ():
            data, suffix, _ = unlearned_file(inputs.extra["original"], model)
            path = run.weights_path(name).with_suffix(f".{suffix}")
            store.atomic_write_bytes(path, data)
            kept[name] = str(path)
        inputs.extra["dropped"] = [m for m in models if m not in kept]

    def export(self, run: store.Run, inputs: Inputs, name: str, model) -> Path:
        """The unlearned model in the input's format (a state dict, or TorchScript)."""
        data, suffix, note = unlearned_file(inputs.extra["original"], model)
        path = run.unlearned_path(suffix)
        store.atomic_write_bytes(path, data)
        inputs.extra.setdefault("kept", {})[name] = str(path)
        inputs.extra.setdefault("export_notes", []).extend([note] if note else [])
        return path

    def describe(self, cfg: RunConfig, inputs: Inputs, refs: References, models: dict) -> dict:
        loaded = inputs.extra
        notes = [*refs.notes, *loaded.get("export_notes", [])]
        if "gold_recipe" in loaded:
            notes.append(RECIPE_NOTE.format(recipe=loaded["gold_recipe"]))
            gap = models["original"]["acc_remain"] - models.get("gold", {}).get("acc_remain", 0.0)
            if gap > GOLD_REMAIN_GAP:
                notes.append(
                    f"the retrained gold's A_r is {gap:.1f} points below your model's: it has not learned D_r as "
                    "your model did, so the alignment numbers that compare with it mean little; give "
                    "--gold-weights FILE (your own retrain) for a faithful reference"
                )
        dropped = loaded.get("dropped") or []
        if dropped:
            notes.append(
                f"the unlearned models of {', '.join(dropped)} were measured but not saved; run with --keep-models "
                "to save them"
            )
        return {
            "own": {
                "kept_models": dict(loaded.get("kept") or {}),
                "gold": cfg.own.gold,
                "format": loaded["original"].format,
                "original_weights": loaded["original"].path,
                "data": inputs.data.source,
                "classes": [q.class_name for q in inputs.request.parts],
                "original_batch_accuracy": loaded["batch_accuracy"],
                "fit": getattr(loaded["original"], "fit", None),
                "notes": notes,
                "multi_class": len(inputs.request.parts) > 1,
            }
        }


def summary(result: dict) -> str:
    """The run in a few lines (the CLI's output without --json)."""
    from ..methods import primary_method
    from ..tmu.forecast import forecast_words

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
    tmu = result.get(primary_method())
    if tmu:
        achieved = result["models"].get(primary_method(), {}).get("acc_forget")
        lines.append(
            f"TMU predicted easy/hard {tmu['pred_easy']}/{tmu['pred_hard']}: predicted A_f after removal "
            f"{tmu['predicted_acc_forget']:.1f}%, achieved {fmt(achieved, 0, 1)}%"
            + (f"; label accuracy {tmu['label_accuracy']:.1f}%" if tmu.get("label_accuracy") is not None else "")
        )
        per_class = tmu.get("per_class") or {}
        if tmu.get("forecast"):
            lines.append(("the request: " if per_class else "TMU ") + forecast_words(tmu["forecast"]))
        if tmu.get("decision_rule"):
            lines.append(f"decision rule: {tmu['decision_rule']}")
        for name, b in per_class.items():
            fid = b["twin_fidelity"]
            lines.append(
                f"  class {name}: {b['forget_count']} images, easy/hard {b['pred_easy']}/{b['pred_hard']}, "
                f"|D_a| {b['aux_count']}, twin on D_a {fid['twin_acc_aux']:.1f}% vs original on D_f "
                f"{fid['original_acc_forget']:.1f}%"
                + (f", label accuracy {b['label_accuracy']:.1f}%" if b.get("label_accuracy") is not None else "")
            )
            if b.get("forecast"):
                lines.append(f"    {forecast_words(b['forecast'])}")
            if b.get("decision_rule"):
                lines.append(f"    decision rule: {b['decision_rule']}")
    if result.get("unlearned_weights"):
        lines.append(f"unlearned model: {result['unlearned_weights']}")
    lines.append(f"audit: {result['audit_csv']}")
    kept = own.get("kept_models") or {}
    lines.append("saved models: " + (", ".join(f"{m} {path}" for m, path in kept.items()) if kept else "none"))
    lines += [f"note: {n}" for n in own["notes"]]
    lines += [f"warning: {w}" for w in (tmu or {}).get("warnings", [])]
    return "\n".join(lines)
