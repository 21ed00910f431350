"""What does gold's initialisation do to the alignment measures? The same unlearned models, two golds.

    python benchmarks/gold_init.py --dataset imagefolder --data-root ../shared/data/cifar10 \
        --train-per-class 500 --forget-count 100 --classes 0,1,2,4,5,6,7,9

Round 3 changed gold's training seed from the run's seed (the original's: both models started from the same
weights and saw the same batch order) to `references.gold_seed(seed, 0)` (its own initialisation, as a retrain
from scratch would). This script measures what that change does, with nothing else changing: per class it takes
the run's cached original, unlearns it once with each method (fine-tuning and TMU by default), and scores every
unlearned model, and the untouched original, against both golds, the shared-initialisation one (trained from
the run's seed, as before) and the own-initialisation one (the gold every run now uses). Both golds are cached
in the run store, so the second one is shared with `run` and `sweep`. The file is rewritten after every class,
so an interrupted run leaves the classes it finished.
Writes benchmarks/results/<dataset>-<model>-gold-init.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch
from common import provenance, script_parser

from tmu_core.cli import run_config_from_args
from tmu_core.data import class_ref, load_dataset, resolve_forget
from tmu_core.evaluate.evaluator import Evaluator
from tmu_core.evaluate.paper_tables import md_table
from tmu_core.evaluate.protocol import paired_test, sign_test
from tmu_core.jobs.sweep import parse_classes
from tmu_core.methods import METHODS, run_method_config
from tmu_core.references import gold_seed, train_cached
from tmu_core.train import pick_device, seed_everything
from tmu_core.unlearn.loop import UnlearnTask

RESULTS = Path(__file__).resolve().parent / "results"
GOLDS = {"shared": "gold from the original's seed (shared initialisation)", "own": "gold from its own seed"}
MEASURES = {"abs_delta": "|Δ|", "sample_agreement": "agree", "activation_distance": "act. dist"}


def class_rows(cfg, methods: list[str], device, log) -> list[dict]:
    """One row per model (the original and each method's unlearned model) of one class, scored against both golds."""
    data = load_dataset(cfg.data, cfg.seed)
    forget = resolve_forget(data, cfg.forget, cfg.seed)
    remain = forget.remain_ids(data)
    original = train_cached("original", data, cfg.data, cfg.train, data.train_ids, cfg.seed, device)
    golds = {}
    for kind, seed in (("shared", cfg.seed), ("own", gold_seed(cfg.seed, 0))):
        t = time.perf_counter()
        golds[kind] = train_cached("gold", data, cfg.data, cfg.train, remain, seed, device).model
        log(f"class {forget.class_name}: {GOLDS[kind]} ready in {time.perf_counter() - t:.0f} s")
    models = {"original": original.model}
    for name in methods:
        mcfg = run_method_config(name, cfg)
        task = UnlearnTask(data, cfg.data, cfg.train, forget, original.model, cfg.seed)
        seed_everything(cfg.seed)
        t = time.perf_counter()
        models[name] = METHODS.get(name).run(task, mcfg, device, None).model
        log(f"class {forget.class_name}: {name} unlearned in {time.perf_counter() - t:.0f} s")
    ev = Evaluator(data, forget, device, cfg.seed)
    gold_logits = {kind: ev.logits(g) for kind, g in golds.items()}
    rows = []
    for name, model in models.items():
        logits = ev.logits(model)
        row = {"class": forget.class_name, "model": name}
        for kind in GOLDS:
            rep = ev.report(logits, gold_logits[kind])
            row[f"gold A_f ({kind})"] = ev.accuracies(golds[kind], gold_logits[kind])["acc_forget"]
            for key, label in MEASURES.items():
                row[f"{label} ({kind})"] = float(rep[key])
        rows.append(row)
    return rows


def effect_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: the class mean of each measure against each gold, own minus shared, its paired t-test over
    classes and the exact sign test (how many classes moved each way)."""
    out = []
    for name, g in df.groupby("model", sort=False):
        for label in MEASURES.values():
            a, b = g[f"{label} (shared)"].to_numpy(float), g[f"{label} (own)"].to_numpy(float)
            t, s = paired_test(b, a), sign_test(b - a)
            out.append(
                {
                    "model": name,
                    "measure": label,
                    "classes": len(g),
                    "vs shared-init gold": a.mean(),
                    "vs own-init gold": b.mean(),
                    "own minus shared": t["diff"],
                    "t-test p": t["p"],
                    "classes up / down": f"{s['above']} / {s['below']}",
                    "sign test p": s["p"],
                }
            )
    return pd.DataFrame(out)


def write(path: Path, header: list[str], df: pd.DataFrame) -> str:
    md = "\n".join(
        [
            *header,
            "",
            "## Effect over classes (class means; own minus shared, paired over classes)",
            "",
            md_table(effect_table(df)),
            "",
            "## Per class",
            "",
            md_table(df),
            "",
        ]
    )
    path.write_text(md)
    return md


def main(argv=None) -> int:
    p = script_parser(__doc__)
    p.add_argument("--compare", nargs="+", default=["finetune", "tmu"], help="methods to unlearn with")
    args = p.parse_args(argv)
    cfg = run_config_from_args(args, args.compare)
    device = pick_device(cfg.device)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    name = f"{cfg.data.dataset}-{cfg.train.model}-gold-init{('-' + args.tag) if args.tag else ''}"
    path = RESULTS / f"{name}.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    md = ""
    for c in parse_classes(args.classes, cfg):
        rows += class_rows(
            cfg.model_copy(update={"forget": cfg.forget.model_copy(update={"forget_class": class_ref(c)})}),
            args.compare,
            device,
            log,
        )
        header = [
            f"# Gold's initialisation and the alignment measures: {cfg.data.dataset}, {cfg.train.model}",
            "",
            *provenance("gold_init.py", argv, started, device, f"; {torch.get_num_threads()} thread(s)"),
            f"- training recipe: {cfg.train}; forget {cfg.forget.forget_count} per class, seed {cfg.seed}",
            "",
            "The same original and the same unlearned models, scored against two golds retrained on the same D_r:",
            f"'shared' was trained from seed {cfg.seed} (the original's: same initial weights and batch order, as",
            f"gold was before round 3); 'own' from seed {gold_seed(cfg.seed, 0)} (references.gold_seed, as every run",
            "now trains it). |Δ| and agreement in points, activation distance as computed on D_f.",
        ]
        md = write(path, header, pd.DataFrame(rows))
        log(f"written {path} ({len(rows)} rows)")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
