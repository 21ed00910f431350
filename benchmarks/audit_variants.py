"""TMU variants for the audit-quality question, side by side on the same cached original and gold models.

    python benchmarks/audit_variants.py --dataset imagefolder --data-root ../shared/data/cifar10 \
        --train-per-class 500 --classes 3,8 --seeds 0 1 2 --gold-seeds 3 --tag tuning \
        --variants "paper:;held_out:features=NF AF CF HNF HM;bags3:twin_bags=3"

Each (class, seed) runs TMU with each variant's settings and the controls beside it (--controls: random_k, and
oracle_labels for the unlearning step's floor; a control runs TMU's unlearning step with every unlearning setting
the variant changes), with --gold-seeds K gold models for soft truth. The step check needs no gold: achieved A_f
against the predicted-easy share (TMU), and the oracle's A_f against gold's easy share. The table gives, per
variant, the mean and 95% Student-t half-width over class x seed of: label accuracy and AUC of p(easy)
against gold's hard labels and against soft truth p_i (K > 1), TMU's and random_k's per-sample agreement
with gold, gold-vs-gold agreement and the ceiling, |Δ|, activation distance, MIA beside gold's, cost ratio.
A paired t-test of each variant against the first one follows. Writes
benchmarks/results/audit-variants-<dataset>-<tag>.md and .csv.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from alignment import parse_variants, typed_params
from common import script_parser

from tmu_core import store
from tmu_core.cli import run_config_from_args
from tmu_core.data import class_ref  # a parsed class index, never re-read as a name
from tmu_core.evaluate.paper_tables import md_table
from tmu_core.evaluate.protocol import class_ci, class_means, paired_test, sign_test, wilcoxon_exact
from tmu_core.jobs.pipeline import execute, start
from tmu_core.jobs.sweep import parse_classes

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = [
    "label acc",
    "AUC",
    "soft label acc",
    "soft AUC",
    "TMU agree",
    "rand-k agree",
    "gold-gold agree",
    "ceiling",
    "TMU |Δ|",
    "rand-k |Δ|",
    "TMU act dist",
    "rand-k act dist",
    "TMU MIA",
    "gold MIA",
    "cost ratio",
    "pred hard",
    "gold hard",
    "TMU A_test",
    "original A_test",
    "TMU step gap",
    "oracle agree",
    "oracle |Δ|",
    "oracle act dist",
    "oracle step gap",
]
OPTIONAL = {"TMU A_test", "original A_test", "TMU step gap", "oracle agree", "oracle |Δ|", "oracle act dist"}
OPTIONAL |= {"oracle step gap"}  # columns earlier files lack (a reused row gets nan)
FINE = ("TMU act dist", "rand-k act dist", "cost ratio", "oracle act dist")  # columns below 1: three decimals


def row_of(r: dict) -> dict:
    """The table's columns from one run's metrics (a control not run gives nan). Step gap: achieved A_f minus the
    share the step was asked to keep (TMU: its predicted-easy share; the oracle: gold's easy share, gold's A_f)."""
    m, t, ens = r["models"], r["tmu"], r.get("gold_ensemble") or {}
    nan = float("nan")
    none = {"sample_agreement": nan, "abs_delta": nan, "activation_distance": nan, "acc_forget": nan}
    rk, orc = m.get("random_k", none), m.get("oracle_labels", none)
    n = t["pred_easy"] + t["pred_hard"]
    return {
        "label acc": t["label_accuracy"],
        "AUC": t["auc_p_easy"],
        "soft label acc": t.get("soft_label_accuracy"),
        "soft AUC": t.get("soft_auc_p_easy"),
        "TMU agree": m["tmu"]["sample_agreement"],
        "rand-k agree": rk["sample_agreement"],
        "gold-gold agree": ens.get("gold_agreement"),
        "ceiling": ens.get("ceiling"),
        "TMU |Δ|": m["tmu"]["abs_delta"],
        "rand-k |Δ|": rk["abs_delta"],
        "TMU act dist": m["tmu"]["activation_distance"],
        "rand-k act dist": rk["activation_distance"],
        "TMU MIA": m["tmu"]["mia"],
        "gold MIA": m["gold"]["mia"],
        "cost ratio": r["cost_ratio"],
        "pred hard": t["pred_hard"],
        "gold hard": t["gold_hard"],
        "TMU A_test": m["tmu"]["acc_test"],
        "original A_test": m["original"]["acc_test"],
        "TMU step gap": m["tmu"]["acc_forget"] - 100.0 * t["pred_easy"] / n,
        "oracle agree": orc["sample_agreement"],
        "oracle |Δ|": orc["abs_delta"],
        "oracle act dist": orc["activation_distance"],
        "oracle step gap": orc["acc_forget"] - m["gold"]["acc_forget"],
        "step": ((t.get("twin_fidelity") or {}).get("step_choice") or {}).get("chosen", ""),  # step_choice twin
    }


def run_variant(
    cfg,
    name: str,
    settings: dict,
    classes,
    seeds,
    log,
    done: dict | None = None,
    controls=("random_k",),
    on_row=None,
) -> list[dict]:
    """One row per (class, seed); a row found in `done` (keyed by variant, class, seed) is kept, not rerun. The
    controls follow TMU's unlearning settings as a run resolves them (the variant's included). `on_row` gets
    each new row as it is made (the script saves them, so a stopped run resumes)."""
    done = done or {}
    typed = typed_params(cfg.data.dataset, settings)
    params = (("tmu", tuple(sorted(typed.items()))),)
    rows = []
    for seed in seeds:
        for c in classes:
            if (name, int(c), int(seed)) in done:
                rows.append(done[(name, int(c), int(seed))])
                log(f"{name} class {c} seed {seed}: reused")
                continue
            run_cfg = cfg.model_copy(
                update={
                    "seed": seed,
                    "forget": cfg.forget.model_copy(update={"forget_class": class_ref(c)}),
                    "methods": ("tmu", *controls),
                    "method_params": params,
                }
            )
            t = time.perf_counter()
            r = execute(start(run_cfg))
            rows.append({"variant": name, "class": c, "seed": seed, **row_of(r)})
            if on_row:
                on_row(rows[-1])
            log(
                f"{name} class {c} seed {seed}: label acc {rows[-1]['label acc']:.1f} AUC {rows[-1]['AUC']:.1f} "
                f"|Δ| {rows[-1]['TMU |Δ|']:.1f} agree {rows[-1]['TMU agree']:.1f} act {rows[-1]['TMU act dist']:.3f} "
                f"step gap {rows[-1]['TMU step gap']:.1f} ({time.perf_counter() - t:.0f} s)"
            )
    return rows


def reused_rows(paths: list[Path]) -> dict:
    """Rows of earlier results files keyed by (variant, class, seed); a missing file or column is one clear error."""
    done = {}
    for path in paths:
        try:
            old = pd.read_csv(path, dtype={"variant": str})
        except (OSError, ValueError) as e:
            raise SystemExit(f"--reuse {path}: cannot read it as an audit_variants CSV ({e})") from None
        missing = {"variant", "class", "seed", *COLUMNS} - set(old.columns) - OPTIONAL
        if missing:
            raise SystemExit(f"--reuse {path}: not an audit_variants CSV (no column {', '.join(sorted(missing))})")
        for row in old.to_dict("records"):
            done[(row["variant"], int(row["class"]), int(row["seed"]))] = row
    return done


def summary(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for name, g in df.groupby("variant", sort=False):
        row = {"variant": name, "classes": g["class"].nunique(), "runs": len(g)}
        for col in COLUMNS:  # the class is the unit: per-class means over seeds, Student-t over classes
            ci = class_ci(pd.to_numeric(g[col], errors="coerce"), g["class"])
            mean, half = ci["mean"], ci["half"]
            digits = 3 if col in FINE else 1
            row[col] = f"{mean:.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:.{digits}f}"
        out.append(row)
    return pd.DataFrame(out)


def paired(df: pd.DataFrame, first: str) -> pd.DataFrame:
    """Each variant against the first, matched on (class, seed)."""
    base = df[df["variant"] == first].set_index(["class", "seed"])
    out = []
    for name, g in df.groupby("variant", sort=False):
        if name == first:
            continue
        g = g.set_index(["class", "seed"]).loc[base.index]
        units = base.index.get_level_values("class")
        for col in (
            "label acc",
            "AUC",
            "soft AUC",
            "TMU agree",
            "TMU |Δ|",
            "TMU act dist",
            "TMU MIA",
            "TMU step gap",
            "oracle agree",
            "oracle act dist",
        ):
            a, b = (
                pd.to_numeric(g[col], errors="coerce").to_numpy(),
                pd.to_numeric(base[col], errors="coerce").to_numpy(),
            )
            ok = np.isfinite(a) & np.isfinite(b)  # per-class means over the matched seeds: the class is the unit
            ca, cb = class_means(a[ok], units[ok])[0], class_means(b[ok], units[ok])[0]
            t, sign, wil = paired_test(ca, cb), sign_test(ca - cb), wilcoxon_exact(ca - cb)
            out.append(
                {
                    "variant": name,
                    "metric": col,
                    "classes": t["n"],
                    "runs": int(ok.sum()),
                    "variant − reference": round(t["diff"], 3),
                    "95% CI": f"[{t['ci_low']:.2f}, {t['ci_high']:.2f}]",
                    "p": round(t["p"], 4),
                    "sign p": round(sign["p"], 4),
                    "Wilcoxon p": round(wil["p"], 4),
                }
            )
    return pd.DataFrame(out)


def main(argv=None) -> int:
    p = script_parser(
        __doc__,
        methods=False,
        classes="3,8",
        classes_help="comma-separated classes (the tuning classes, unless reporting)",
    )
    p.add_argument("--gold-seeds", type=int, default=1, metavar="K", help="gold models per run (soft truth when > 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--variants",
        default="paper:",
        help="name:setting=value,...; separated by ';' (the first is the reference of the paired tests)",
    )
    p.add_argument("--note", action="append", default=[], help="a line for the results file's header (repeatable)")
    p.add_argument(
        "--controls",
        nargs="*",
        default=["random_k"],
        choices=["random_k", "oracle_labels"],
        help="controls run beside TMU with its step's settings (default random_k)",
    )
    p.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        metavar="CSV",
        help="run nothing: read these CSVs of this script (made with the same settings) and write their rows as one "
        "set, with the summary and the paired tests over all their classes",
    )
    p.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        metavar="CSV",
        help="rows of an earlier audit_variants CSV made with the same data settings, forget count, K "
        "and variant settings (rows are matched by variant name, class and seed only, so a "
        "variant name must mean the same settings in both): a row found there is kept instead "
        "of rerun (repeatable)",
    )
    args = p.parse_args(argv)
    cfg = run_config_from_args(args, ("tmu", *args.controls))
    classes, variants = parse_classes(args.classes, cfg), parse_variants(args.variants)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    name = f"audit-variants-{cfg.data.dataset}{('-' + args.tag) if args.tag else ''}"
    partial = RESULTS / f"{name}-partial.csv"  # every finished run, saved as it comes: a stopped script resumes
    done = reused_rows(args.reuse + ([partial] if partial.exists() else []))
    made = list(reused_rows([partial]).values()) if partial.exists() else []

    def save(row: dict) -> None:
        made.append(row)
        RESULTS.mkdir(parents=True, exist_ok=True)
        store.write_csv(partial, pd.DataFrame(made))

    started = time.perf_counter()
    if args.pool:  # no run: the rows of earlier files of this script, read as one set
        df = pd.concat([pd.read_csv(f, dtype={"variant": str}) for f in args.pool], ignore_index=True)
        classes, variants = sorted(df["class"].unique().tolist()), dict.fromkeys(df["variant"].unique(), "as run")
        done = {(r["variant"], int(r["class"]), int(r["seed"])): r for r in df.to_dict("records")}
    else:
        df = pd.DataFrame(  # every variant of one (class, seed) before the next: a stopped script leaves matched rows
            [
                row
                for seed in args.seeds
                for c in classes
                for v, s in variants.items()
                for row in run_variant(cfg, v, s, [c], [seed], log, done, args.controls, save)
            ]
        )
    n_reused = sum((r["variant"], int(r["class"]), int(r["seed"])) in done for r in df.to_dict("records"))
    first = next(iter(variants))
    md = "\n".join(
        [
            f"# TMU variants for the easy/hard audit: {cfg.data.dataset}, {cfg.train.model}",
            "",
            f"- command: `python benchmarks/audit_variants.py {shlex.join(sys.argv[1:] if argv is None else argv)}`",
            f"- date: {dt.datetime.now().isoformat(timespec='minutes')}; wall time {time.perf_counter() - started:.0f} s; "
            f"{platform.machine()}, {os.cpu_count()} CPU cores",
            f"- data: {cfg.data}; forget {cfg.forget.forget_count} of each class in {classes}; seeds {args.seeds}; "
            f"{cfg.gold_seeds} gold model(s) per run",
            f"- variants: {variants}",
            *[f"- {n}" for n in args.note],
            *(
                [f"- rows reused from: {', '.join(str(x) for x in args.reuse)} ({n_reused} of the {len(df)} rows)"]
                if args.reuse
                else []
            ),
            "",
            "### Mean ± 95% CI with the class as the unit (per-class means over seeds; Student-t half-width over "
            "classes); soft = against p_i of the K golds; AUC and agreement in %",
            "",
            md_table(summary(df)),
            "",
            f"### Paired tests against `{first}` over per-class means of the matched class × seed runs: t-test and "
            "exact sign test (read the sign test with fewer than 10 classes)",
            "",
            md_table(paired(df, first)),
            "",
            "### Every run",
            "",
            md_table(df),
            "",
        ]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(md)
    store.write_csv(RESULTS / f"{name}.csv", df)
    partial.unlink(missing_ok=True)
    print(md)
    log(f"written {RESULTS / (name + '.md')} and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
