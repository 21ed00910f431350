"""Is TMU's gold-free forecast right where gold is known? And how does a data-attribution peer do?

    python benchmarks/forecast.py --dataset digits --classes all --seeds 0 1 2 --gold-seeds 3 \
        --tuning-classes 8 --tag digits

Each (class, seed) runs TMU with the self-influence peer (--tmu-peer) and K golds. Per run: TMU's predicted
A_f of a retrain and its 90% interval against gold's A_f (gold 0, the run's gold), beside the naive guess
(the untouched original's own A_f) and the peer's forecast; AUC of each ranking against gold's easy/hard;
label accuracy (TMU's rule, 0.5 on calibrated p(easy), the peer's twin-chosen cut) beside the
leave-one-gold-out ceiling (K > 1). The summary pools the runs per set (held-out / tuning classes): coverage
of the intervals (target >= 85% of runs), mean |predicted - gold A_f| (target <= 5 points) with a 95% CI
over classes, and the ECE of p(easy) against gold and against p_i of the K golds (target <= 0.10), pooled
over every file of the set. Rows already in the CSV (same tag, variant, class, seed) are kept, not rerun.
Writes benchmarks/results/forecast-<tag>.md, -runs.csv and -samples.csv.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from alignment import parse_variants, typed_params
from common import provenance, script_parser

from tmu_core.cli import run_config_from_args
from tmu_core.data import class_ref
from tmu_core.evaluate.paper_tables import md_table
from tmu_core.evaluate.protocol import class_ci
from tmu_core.jobs.pipeline import execute, start
from tmu_core.jobs.sweep import parse_classes
from tmu_core.store import write_csv
from tmu_core.tmu.forecast import ece

RESULTS = Path(__file__).resolve().parent / "results"
OWN_CASE = (
    "scikit-learn's digits as 8x8 PNGs (tests/owntools.digits_folder: per class 30 test/, 12 aux/, the rest "
    "train/), small_cnn trained on train/ by a plain Adam loop (tests/owntools.train_plain, 12 epochs, the run's "
    "seed), a forget list of 80 train/ images of each of classes 3, 5 and 8 (240 files); gold retrained by the "
    "project's recipe (--gold retrain, K = 1); no class was used to choose anything"
)
TARGETS = {"coverage": 85.0, "error": 5.0, "ece": 0.10}


def run_row(r: dict, samples: pd.DataFrame, variant: str, c, seed: int, tuning: bool) -> tuple[dict, pd.DataFrame]:
    """One run's row and its D_f files (p(easy) of TMU and the peer, gold's verdict, p_i)."""
    m, t, ens = r["models"], r["tmu"], r.get("gold_ensemble") or {}
    gold, fc, peer = m["gold"]["acc_forget"], t["forecast"], t.get("peer") or {}
    pfc = peer.get("forecast") or {}
    f = samples[samples["role"] == "forget"].copy()
    truth = (f["true_label"] == "easy").to_numpy(int)
    p = f["p_easy"].to_numpy(float)
    p_soft = f["p_gold"].to_numpy(float) if "p_gold" in f else truth.astype(float)
    row = {
        "variant": variant,
        "class": int(c),
        "seed": int(seed),
        "set": "tuning" if tuning else "held-out",
        "files": int(len(f)),
        "gold A_f": gold,
        "golds A_f": " ".join(f"{a:.0f}" for a in ens.get("gold_acc_forget", [])),
        "original A_f": m["original"]["acc_forget"],
        "TMU pred": fc["predicted_acc_forget"],
        "TMU low": fc["low"],
        "TMU high": fc["high"],
        "TMU covers": fc["low"] <= gold <= fc["high"],
        "TMU err": abs(fc["predicted_acc_forget"] - gold),
        "naive err": abs(m["original"]["acc_forget"] - gold),
        "peer pred": pfc.get("predicted_acc_forget"),
        "peer low": pfc.get("low"),
        "peer high": pfc.get("high"),
        "peer covers": (pfc["low"] <= gold <= pfc["high"]) if pfc else None,
        "peer err": abs(pfc["predicted_acc_forget"] - gold) if pfc else None,
        "TMU AUC": t["auc_p_easy"],
        "peer AUC": peer.get("auc_score"),
        "TMU label acc": t["label_accuracy"],
        "cal 0.5 label acc": 100.0 * float(((p >= 0.5) == truth.astype(bool)).mean()),
        "peer label acc": peer.get("label_accuracy"),
        "ceiling LOO": ens.get("ceiling_loo"),
        "TMU ECE gold": t.get("ece_gold"),
        "TMU ECE soft": t.get("ece_soft"),
        "peer ECE gold": peer.get("ece_gold"),
        "ECE twin": t.get("ece_twin"),
        "pred hard": t["pred_hard"],
        "gold hard": t["gold_hard"],
        "aux": t["aux_count"],
        "aux hard": t["aux_hard"],
        "thin": "; ".join(fc.get("reasons", [])),
        "seconds TMU": m["tmu"]["seconds"],
        "run": r["run_id"],
    }
    files = pd.DataFrame(
        {
            "variant": variant,
            "class": int(c),
            "seed": int(seed),
            "set": row["set"],
            "p_easy": p,
            "p_easy_peer": f["p_easy_peer"].to_numpy(float) if "p_easy_peer" in f else np.nan,
            "gold_easy": truth,
            "p_gold": p_soft,
        }
    )
    return row, files


def _five_digits(df: pd.DataFrame) -> pd.DataFrame:
    """Per-file values to five significant digits (the samples file's size; more would be float noise)."""
    return df.map(lambda v: float(f"{v:.5g}") if isinstance(v, float) else v)


def own_case(work: Path, seeds, classes=(3, 5, 8), per_class: int = 80, log=print) -> tuple[list, list]:
    """The own-model case: digits as 8x8 PNGs (train/ aux/ test/), small_cnn trained by a plain Adam loop (not
    the project's recipe) per seed, a forget list of `per_class` files of each of `classes`, and `tmu run
    --gold retrain --tmu-peer`: one row per class of the request and one for the whole request per seed."""
    import importlib.util
    import json
    import subprocess

    import torch

    # the test suite's "user" (no project code), loaded from its file rather than put on the import path
    spec = importlib.util.spec_from_file_location("owntools", Path(__file__).resolve().parents[1] / "tests/owntools.py")
    owntools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(owntools)
    digits_folder, forget_list, train_plain = owntools.digits_folder, owntools.forget_list, owntools.train_plain

    root = work / "digits"
    if not root.exists():
        digits_folder(root)
    flist = forget_list(root, work / "forget.txt", classes, per_class)
    rows, files = [], []
    for seed in seeds:
        weights = work / f"user-{seed}.pt"
        if not weights.exists():
            torch.save(train_plain(root, seed=seed).state_dict(), weights)
        cmd = [sys.executable, "-m", "tmu_core", "run", "--dataset", "imagefolder", "--image-size", "8"]
        cmd += ["--model", "small_cnn", "--data-root", str(root), "--original-weights", str(weights)]
        cmd += ["--forget-list", str(flist), "--gold", "retrain", "--tmu-peer", "--seed", str(seed), "--json"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit(f"own-model run failed: {proc.stderr[-800:]}")
        r = json.loads(proc.stdout)
        own = r["tmu"]  # the request's split: per class and, classes combined, its forecast
        audit = pd.read_csv(r["audit_csv"])
        gold_all, orig_all = r["models"]["gold"]["acc_forget"], r["models"]["original"]["acc_forget"]
        parts = [(name, b, audit[audit["class"].astype(str) == name]) for name, b in own["per_class"].items()]
        parts.append(("all", {"forecast": own["forecast"]}, audit))
        for name, b, a in parts:
            truth = (a["gold_verdict"] == "easy").to_numpy(int)
            gold = 100.0 * truth.mean()
            orig = 100.0 * (a["pred_original"].astype(str) == a["class"].astype(str)).mean()
            fc, pfc = b["forecast"], (b.get("peer") or {}).get("forecast")
            row = {
                "variant": "own-model digits",
                "class": name,
                "seed": seed,
                "set": "own model",
                "files": len(a),
                "gold A_f": gold,
                "original A_f": orig,
                "TMU pred": fc["predicted_acc_forget"],
                "TMU low": fc["low"],
                "TMU high": fc["high"],
                "TMU covers": fc["low"] <= gold <= fc["high"],
                "TMU err": abs(fc["predicted_acc_forget"] - gold),
                "naive err": abs(orig - gold),
                "peer pred": pfc["predicted_acc_forget"] if pfc else None,
                "peer low": pfc["low"] if pfc else None,
                "peer high": pfc["high"] if pfc else None,
                "peer covers": (pfc["low"] <= gold <= pfc["high"]) if pfc else None,
                "peer err": abs(pfc["predicted_acc_forget"] - gold) if pfc else None,
                "TMU label acc": 100.0 * float(((a["verdict"] != "hard") == truth.astype(bool)).mean()),
                "cal 0.5 label acc": 100.0 * float(((a["p_easy"] >= 0.5) == truth.astype(bool)).mean()),
                "thin": "; ".join(fc.get("reasons", [])),
            }
            if name != "all":
                rows.append(row)
                files.append(
                    pd.DataFrame(
                        {
                            "variant": row["variant"],
                            "class": name,
                            "seed": seed,
                            "set": "own model",
                            "p_easy": a["p_easy"].to_numpy(float),
                            "p_easy_peer": a["p_easy_peer"].to_numpy(float) if "p_easy_peer" in a else np.nan,
                            "gold_easy": truth,
                            "p_gold": truth.astype(float),
                        }
                    )
                )
            else:
                rows.append({**row, "set": "own model, whole request"})
        log(
            f"own-model seed {seed}: gold {gold_all:.1f} TMU {own['forecast']} original {orig_all:.1f} ({time.perf_counter() - t:.0f} s)"
        )
    return rows, files


def ranking_auc(samples: pd.DataFrame) -> float:
    """AUC of TMU's ranking of D_f (calibrated p(easy), ties broken by the raw output) against gold's verdicts."""
    from tmu_core.evaluate.metrics import roc_auc

    f = samples[samples["role"] == "forget"]
    raw = f["p_easy_raw"] if "p_easy_raw" in f else f["p_easy"]
    order = np.lexsort((raw.to_numpy(float), f["p_easy"].to_numpy(float)))
    rank = np.empty(len(f))
    rank[order] = np.arange(len(f))
    return roc_auc(rank, (f["true_label"] == "easy").to_numpy())


def refresh_auc(rows: list[dict], dataset: str) -> None:
    """Rows made before the AUC read the ranking (a flat calibration scored 50): recomputed from the stored run
    (found by its id, or by dataset, class and seed among the store's runs that ran the peer with the paper's
    features: rows without an id are of the default variant)."""
    from tmu_core import store

    found = {}
    for run in store.list_runs():
        try:
            m = store.open_run(run.run_id).metrics()
        except Exception:  # noqa: BLE001 - a damaged or unfinished run is no candidate
            continue
        t = m.get("tmu") or {}
        if m.get("dataset") == dataset and t.get("peer") is not None and t.get("features_used") == ["NF", "AF", "CF"]:
            found[(int(m["forget_class"]), int(m["seed"]))] = run.run_id
    for r in rows:
        rid = r.get("run") if isinstance(r.get("run"), str) else found.get((int(r["class"]), int(r["seed"])))
        if rid and (store.runs_root() / rid).is_dir():  # a row made in another store keeps the AUC it was written with
            r["TMU AUC"] = ranking_auc(store.open_run(rid).samples())
            r["run"] = rid


def summary(runs: pd.DataFrame, files: pd.DataFrame) -> pd.DataFrame:
    """Per variant and set: coverage, mean error (95% CI over classes), pooled ECE, AUC and label accuracy."""
    out = []
    for (variant, part), g in runs.groupby(["variant", "set"], sort=False):
        fl = files[(files["variant"] == variant) & (files["set"] == part)]
        row = {"variant": variant, "set": part, "classes": g["class"].nunique(), "runs": len(g)}
        for who in ("TMU", "peer"):
            cov = pd.to_numeric(g[f"{who} covers"], errors="coerce")
            row[f"{who} coverage %"] = f"{100 * cov.mean():.0f} ({int(cov.sum())}/{int(cov.notna().sum())})"
        for col in ("TMU err", "peer err", "naive err", "TMU AUC", "peer AUC"):
            if col not in g or g[col].isna().all():
                row[col] = "—"
                continue
            ci = class_ci(pd.to_numeric(g[col], errors="coerce"), g["class"])
            row[f"_{col}"] = ci["mean"]  # unrounded, for the targets
            row[col] = f"{ci['mean']:.1f} ± {ci['half']:.1f}" if np.isfinite(ci["half"]) else f"{ci['mean']:.1f}"
        bias = pd.to_numeric(g["TMU pred"], errors="coerce") - pd.to_numeric(g["gold A_f"], errors="coerce")
        row["TMU bias"] = f"{bias.mean():+.1f} ({int((bias < 0).sum())} of {int(bias.notna().sum())} below)"
        row["TMU ECE gold"] = round(ece(fl["p_easy"], fl["gold_easy"]), 3)
        row["TMU ECE p_i"] = round(ece(fl["p_easy"], fl["p_gold"]), 3)
        row["peer ECE gold"] = round(ece(fl["p_easy_peer"], fl["gold_easy"]), 3)
        row["peer ECE p_i"] = round(ece(fl["p_easy_peer"], fl["p_gold"]), 3)
        for col in ("TMU label acc", "cal 0.5 label acc", "peer label acc", "ceiling LOO"):
            v = pd.to_numeric(g.get(col, pd.Series(dtype=float)), errors="coerce")
            row[col] = round(float(v.mean()), 1) if v.notna().any() else None
        out.append(row)
    return pd.DataFrame(out)


def verdicts(table: pd.DataFrame) -> list[str]:
    """Each target, met or missed and by how much, per variant and set."""
    lines = []
    for r in table.to_dict("records"):
        for who in ("TMU", "peer"):
            if r[f"{who} coverage %"].endswith("(0/0)"):
                continue  # no forecast of this kind in the set
            cov = float(r[f"{who} coverage %"].split()[0])
            err = r.get(f"_{who} err", float("nan"))
            e = r[f"{who} ECE gold"]
            miss = (TARGETS["coverage"] - cov, err - TARGETS["error"], e - TARGETS["ece"])
            parts = [
                f"coverage {cov:.0f}% ({'met' if miss[0] <= 0 else f'missed by {miss[0]:.0f} points'})",
                f"mean error {err:.3f} points ({'met' if miss[1] <= 0 else f'missed by {miss[1]:.3f}'}; "
                f"naive {r['naive err']})",
                f"ECE {e:.3f} ({'met' if miss[2] <= 0 else f'missed by {miss[2]:.3f}'})"
                if np.isfinite(e)
                else "ECE not computed (no per-file rows in this set)",
            ]
            lines.append(f"- {r['variant']}, {r['set']} ({r['runs']} runs), {who}: " + "; ".join(parts))
    return lines


def main(argv=None) -> int:
    p = script_parser(__doc__, methods=False, classes="all")
    p.add_argument("--gold-seeds", type=int, default=3, metavar="K", help="gold models per run (p_i when > 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tuning-classes", default="", help="comma-separated classes reported apart")
    p.add_argument("--variants", default="paper:", help="name:setting=value,...; separated by ';'")
    p.add_argument("--note", action="append", default=[], help="a line for the header (repeatable)")
    p.add_argument(
        "--own-digits",
        type=Path,
        metavar="WORK",
        help="instead: the own-model case (digits as an image folder in WORK, a user-trained small_cnn, "
        "--gold retrain), per seed",
    )
    args = p.parse_args(argv)
    cfg = run_config_from_args(args, ("tmu",)).model_copy(update={"gold_seeds": args.gold_seeds})
    classes = parse_classes(args.classes, cfg)
    tuning = {int(c) for c in parse_classes(args.tuning_classes, cfg)} if args.tuning_classes else set()
    name = f"forecast-{args.tag or cfg.data.dataset}"
    runs_csv, files_csv = RESULTS / f"{name}-runs.csv", RESULTS / f"{name}-samples.csv"
    old_runs = pd.read_csv(runs_csv) if runs_csv.exists() else pd.DataFrame()
    old_files = pd.read_csv(files_csv) if files_csv.exists() else pd.DataFrame()
    started = time.perf_counter()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    rows, files = list(old_runs.to_dict("records")), [old_files] if len(old_files) else []
    done = {(r["variant"], str(r["class"]), int(r["seed"])) for r in rows}
    if args.own_digits:
        args.own_digits.mkdir(parents=True, exist_ok=True)
        new_rows, new_files = own_case(
            args.own_digits, [s for s in args.seeds if ("own-model digits", "all", s) not in done], log=log
        )
        rows += new_rows
        files += new_files
    if not args.own_digits:
        refresh_auc(rows, cfg.data.dataset)
    for variant, settings in ({} if args.own_digits else parse_variants(args.variants)).items():
        params = (("tmu", tuple(sorted({"peer": True, **typed_params(cfg.data.dataset, settings)}.items()))),)
        for seed in args.seeds:
            for c in classes:
                if (variant, str(c), int(seed)) in done:
                    continue
                run_cfg = cfg.model_copy(
                    update={
                        "seed": seed,
                        "forget": cfg.forget.model_copy(update={"forget_class": class_ref(c)}),
                        "method_params": params,
                    }
                )
                t = time.perf_counter()
                run = start(run_cfg)
                r = execute(run)
                row, fl = run_row(r, run.samples(), variant, c, seed, int(c) in tuning)
                rows.append(row)
                files.append(fl)
                log(
                    f"{variant} class {c} seed {seed}: gold {row['gold A_f']:.0f} TMU {row['TMU pred']:.1f} "
                    f"[{row['TMU low']:.0f}, {row['TMU high']:.0f}] peer {row['peer pred']} "
                    f"original {row['original A_f']:.0f} ({time.perf_counter() - t:.0f} s)"
                )
                RESULTS.mkdir(parents=True, exist_ok=True)  # saved after every run: a stopped sweep resumes
                write_csv(runs_csv, pd.DataFrame(rows))
                write_csv(files_csv, _five_digits(pd.concat(files, ignore_index=True)))
    runs_df, files_df = pd.DataFrame(rows), pd.concat(files, ignore_index=True)
    write_csv(runs_csv, runs_df)
    write_csv(files_csv, _five_digits(files_df))
    table = summary(runs_df, files_df)
    md = "\n".join(
        [
            f"# Forecast check: {cfg.data.dataset}, {cfg.train.model}",
            "",
            *provenance(
                "forecast.py", argv, started, cfg.device, f"; {len(old_runs)} rows reused from {runs_csv.name}"
            ),
            *(
                [
                    f"- data: {OWN_CASE}; seeds {args.seeds}",
                    "- `tmu run --dataset imagefolder --image-size 8 --model small_cnn --original-weights user-SEED.pt "
                    "--forget-list forget.txt --gold retrain --tmu-peer --seed SEED --json` per seed",
                ]
                if args.own_digits
                else [
                    f"- data: {cfg.data}; forget {cfg.forget.forget_count} of each class in {classes}; seeds "
                    f"{args.seeds}; K = {cfg.gold_seeds} gold model(s) per run; tuning classes: "
                    f"{sorted(tuning) or 'none named'}",
                    f"- variants: {parse_variants(args.variants)} (each with the self-influence peer, --tmu-peer)",
                ]
            ),
            *[f"- {n}" for n in args.note],
            "",
            "## Summary",
            "",
            "Coverage: share of runs whose 90% interval holds gold's A_f (target >= 85%). Error: mean |predicted - "
            "gold A_f| in points, ± 95% CI over classes (target <= 5), beside the naive guess (the untouched "
            "original's A_f). TMU bias: mean predicted − gold A_f, and in how many runs the forecast is below gold. ECE of p(easy) pooled over every file of the set, against gold's verdicts and "
            "against p_i of the K golds (target <= 0.10). AUC of the ranking against gold's easy/hard (%). Label "
            "accuracy of TMU's rule, of 0.5 on calibrated p(easy) and of the peer's twin-chosen cut, beside the "
            "leave-one-gold-out ceiling (K > 1; it carries the small-K bias of a ceiling from K golds).",
            "",
            md_table(table[[c for c in table.columns if not c.startswith("_")]]),
            "",
            "## Targets",
            "",
            *verdicts(table),
            "",
            "## Every run",
            "",
            md_table(runs_df.drop(columns=["thin"])),
            "",
        ]
    )
    (RESULTS / f"{name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
