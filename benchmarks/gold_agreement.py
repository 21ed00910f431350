"""How predictable is "gold gets this forgotten sample right"? Two gold models, two training seeds.

    python benchmarks/gold_agreement.py --dataset digits --classes all
    python benchmarks/gold_agreement.py --dataset imagefolder --data-root ../shared/data/cifar10 --classes 3,8

TMU's label accuracy compares its easy/hard prediction with one gold model's correctness on D_f. That
correctness is partly chance: a gold model retrained from another seed, on exactly the same D_r, gets
some other forgotten samples right. The agreement of the two golds on D_f is therefore a ceiling that no
easy/hard predictor can be expected to pass, and "all easy" (the majority guess) is the floor. The forget
set and split come from --seed; the second gold differs only in its training seed (--second-seed). Both
models are cached in the run store, so the seed-0 gold is shared with `run` and `alignment.py`.
Writes benchmarks/results/<dataset>-<model>-gold-agreement.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch
from common import provenance, script_parser

from tmu_core.cli import run_config_from_args
from tmu_core.data import (
    class_ref,  # a parsed class index, never re-read as a name
    load_dataset,
    resolve_forget,
)
from tmu_core.evaluate.paper_tables import md_table
from tmu_core.evaluate.protocol import with_summary
from tmu_core.jobs.sweep import parse_classes
from tmu_core.references import train_cached
from tmu_core.tmu.twin import generalization_labels
from tmu_core.train import pick_device, to_float

RESULTS = Path(__file__).resolve().parent / "results"


def agreement_row(cfg, second_seed: int, device, log) -> dict:
    data = load_dataset(cfg.data, cfg.seed)
    forget = resolve_forget(data, cfg.forget, cfg.seed)
    remain = forget.remain_ids(data)
    xf = to_float(data.x[torch.as_tensor(forget.ids)])
    c = forget.class_index
    right = {}
    for s in (cfg.seed, second_seed):
        t = time.perf_counter()
        gold = train_cached("gold", data, cfg.data, cfg.train, remain, s, device)
        right[s] = generalization_labels(gold.model, xf, c, device).astype(bool)
        log(
            f"class {forget.class_name}: gold (training seed {s}) A_f {100 * right[s].mean():.1f} "
            f"({'cache' if gold.cached else f'{time.perf_counter() - t:.0f} s'})"
        )
    a, b = right[cfg.seed], right[second_seed]
    easy_rate = a.mean()
    return {
        "class": forget.class_name,
        "|D_f|": len(a),
        f"gold A_f (seed {cfg.seed})": round(100 * a.mean(), 1),
        f"gold A_f (seed {second_seed})": round(100 * b.mean(), 1),
        "agreement of the two golds": round(100 * (a == b).mean(), 1),
        "'all easy' label acc": round(100 * max(easy_rate, 1 - easy_rate), 1),
        "hard in both": int((~a & ~b).sum()),
        "hard in one only": int((a != b).sum()),
    }


def main(argv=None) -> int:
    p = script_parser(__doc__, methods=False)
    p.add_argument("--second-seed", type=int, default=1, help="training seed of the second gold model (default 1)")
    args = p.parse_args(argv)
    cfg = run_config_from_args(args)
    if args.second_seed == cfg.seed:
        p.error("--second-seed must differ from --seed")
    device = pick_device(cfg.device)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    rows = [
        agreement_row(
            cfg.model_copy(update={"forget": cfg.forget.model_copy(update={"forget_class": class_ref(c)})}),
            args.second_seed,
            device,
            log,
        )
        for c in parse_classes(args.classes, cfg)
    ]
    counts = ["|D_f|", "hard in both", "hard in one only"]  # whole numbers per class; the Avg and CI rows below
    df = with_summary(pd.DataFrame(rows).astype({k: object for k in counts}))
    name = f"{cfg.data.dataset}-{cfg.train.model}-gold-agreement{('-' + args.tag) if args.tag else ''}"
    md = "\n".join(
        [
            f"# How predictable is gold's correctness on D_f? {cfg.data.dataset}, {cfg.train.model}",
            "",
            *provenance("gold_agreement.py", argv, started, device),
            f"- training recipe: {cfg.train}; forget {cfg.forget.forget_count} per class, split/forget seed {cfg.seed}",
            "",
            "Two gold models retrained on the same D_r, differing only in their training seed. Their agreement on",
            "which forgotten samples they classify correctly bounds any easy/hard predictor's label accuracy",
            "against one of them; 'all easy' (the majority guess) is the floor.",
            "",
            md_table(df),
            "",
        ]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(md)
    print(md)
    log(f"written {RESULTS / (name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
