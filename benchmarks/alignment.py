"""The paper's alignment protocol on one dataset: every forget class, one or more seeds, all methods.

    python benchmarks/alignment.py --dataset digits --classes all --forget-count 100 --seeds 0
    python benchmarks/alignment.py --dataset imagefolder --data-root ../shared/data/cifar10 --train-per-class 2000

Runs gold, finetune, neggrad, randlabel, badteacher and TMU with random labels, then TMU again with the
negative-gradient mechanism (the cached original and gold models are reused), and the forgetting-more-
data curve (TMU and Bad Teacher as |D_f| grows). Writes benchmarks/results/<dataset>-<model>.md and .csv
with Table 1, Table 3, Table 4, the MIA table and the curve, under a header naming the command, date,
machine, device and torch version. All training flags of `python -m tmu_core run` are accepted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
from common import provenance, script_parser

from tmu_core import store
from tmu_core.cli import run_config_from_args  # the CLI's own flags
from tmu_core.data import class_ref  # a parsed class index, never re-read as a name
from tmu_core.evaluate.paper_tables import md_table, tables, to_markdown
from tmu_core.jobs.pipeline import execute, start
from tmu_core.jobs.sweep import parse_classes
from tmu_core.methods import METHODS, ordered

RESULTS = Path(__file__).resolve().parent / "results"


def parse_variants(spec: str) -> dict[str, dict]:
    """'tmu_ng:mechanism=neggrad;tmu_auto:clf_threshold=auto' -> {name: {setting: value}}."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, _, settings = part.partition(":")
        values = {}
        for kv in filter(None, settings.split(",")):
            k, _, v = kv.partition("=")
            values[k.strip()] = v.strip()
        out[name.strip()] = values
    return out


def typed_params(dataset: str, settings: dict) -> dict:
    """{setting: text} -> TMU settings in their types (a tuple setting such as features is space-separated)."""
    from tmu_core.config import flatten
    from tmu_core.methods import method_config

    defaults = flatten(method_config("tmu", dataset))

    def typed(k, v):
        d = defaults[k]
        if isinstance(d, bool):
            return v.lower() in ("1", "true", "yes")
        return tuple(v.split()) if isinstance(d, tuple) else type(d)(v)

    return {k: typed(k, v) for k, v in settings.items()}


def run_all(cfg, classes, seeds, variants, log) -> list[dict]:
    """One result per (class, seed): all methods, plus each TMU variant (reusing the cached original and gold)."""
    results = []
    for seed in seeds:
        for c in classes:
            base = cfg.model_copy(
                update={"seed": seed, "forget": cfg.forget.model_copy(update={"forget_class": class_ref(c)})}
            )
            t = time.perf_counter()
            r = execute(start(base))
            for name, settings in variants.items():
                params = {**dict(dict(base.method_params).get("tmu", ())), **typed_params(base.data.dataset, settings)}
                v_cfg = base.model_copy(
                    update={"methods": ("tmu",), "method_params": (("tmu", tuple(sorted(params.items()))),)}
                )
                r_v = execute(start(v_cfg))
                r["models"][name] = r_v["models"]["tmu"]
                r[name] = r_v["tmu"]
            results.append(r)
            m = r["models"]
            log(
                f"seed {seed} class {c}: gold A_f {m['gold']['acc_forget']:.1f}  |Δ| "
                + "  ".join(f"{k} {v['abs_delta']:.1f}" for k, v in m.items() if k not in ("original", "gold"))
                + f"  ({time.perf_counter() - t:.0f} s)"
            )
    return results


def curve(cfg, counts, forget_class, seed, log) -> pd.DataFrame:
    """Label accuracy and |Δ| of TMU and Bad Teacher as the forget set grows (paper Fig. 3)."""
    rows = []
    for n in counts:
        c = cfg.model_copy(
            update={
                "seed": seed,
                "methods": ("tmu", "badteacher"),
                "forget": cfg.forget.model_copy(update={"forget_class": str(forget_class), "forget_count": n}),
            }
        )
        try:
            r = execute(start(c))
        except Exception as exc:  # a count too large for the class: say so in the table
            log(f"curve |D_f|={n}: skipped ({exc})")
            continue
        rows.append(
            {
                "|D_f|": n,
                "gold A_f": r["models"]["gold"]["acc_forget"],
                "TMU label acc": r["tmu"]["label_accuracy"],
                "TMU |Δ|": r["models"]["tmu"]["abs_delta"],
                "BT |Δ|": r["models"]["badteacher"]["abs_delta"],
                "|D_a| used": r["tmu"]["aux_count"],
                "|D_a| requested": r["tmu"]["aux_sizing"]["requested"],
            }
        )
        log(f"curve |D_f|={n}: {rows[-1]}")
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = script_parser(__doc__)
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--curve", default="", help="forget counts for the forgetting-more-data curve, e.g. 20,50,100")
    p.add_argument("--curve-class", default="", help="class for the curve (default: the first of --classes)")
    p.add_argument(
        "--variants",
        default="tmu_ng:mechanism=neggrad",
        help="extra TMU runs as name:setting=value,...; separated by ';' (default: the neggrad mechanism)",
    )
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = run_config_from_args(args, ordered(METHODS.names()))
    classes = parse_classes(args.classes, cfg)
    started = time.perf_counter()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    results = run_all(cfg, classes, seeds, parse_variants(args.variants), log)
    frames = tables(results)
    if args.curve:
        frames["curve"] = curve(
            cfg, [int(n) for n in args.curve.split(",")], args.curve_class or classes[0], seeds[0], log
        )

    r0 = results[0]
    name = f"{cfg.data.dataset}-{cfg.train.model}{('-' + args.tag) if args.tag else ''}"
    header = "\n".join(
        [
            f"# Alignment benchmark: {cfg.data.dataset}, {cfg.train.model}",
            "",
            *provenance("alignment.py", argv, started, r0["device"]),
            f"- training recipe: {r0['train_config']}; data: {cfg.data}",
            f"- forget: {cfg.forget.forget_count} samples of each class in {classes}; seeds {seeds}",
            f"- TMU variants beside the default `tmu`: {parse_variants(args.variants)} (TMU-NG = the negative-gradient mechanism).",
        ]
    )
    md = to_markdown({k: v for k, v in frames.items() if k != "curve"}, header)
    if "curve" in frames and len(frames["curve"]):
        md += "\n### Forgetting more data (paper Fig. 3)\n\n" + md_table(frames["curve"]) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(md)
    long = pd.concat([df.assign(table=k) for k, df in frames.items()], ignore_index=True)
    store.write_csv(RESULTS / f"{name}.csv", long)
    print(md)
    log(f"written {RESULTS / (name + '.md')} and .csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
