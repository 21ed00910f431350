"""Rebuild a committed sweep file's tables with today's statistics, from its own committed CSVs, when its run
store is gone (no new runs): the verdict (noise floors, agreement floors, the step check), the paired comparison
(detectable difference, exact tests, significance, controls out of the Holm family) and the labelled ceilings.

    python benchmarks/rescore.py --name imagefolder-small_cnn-all10-3seeds-r3 --dataset imagefolder \
        --tuning-classes 3,8

Reads <name>-table1.csv (each model's A_test, A_f, |Δ| and agreement per run), -table3.csv (activation distance),
-mia.csv, -table4.csv (TMU's split: predicted and gold hard counts, label accuracy) and -ensemble.csv (K, the
golds' A_f range and gold-vs-gold agreement, the ceilings) and writes <name>-rescored.md and its CSVs. What the
CSVs do not keep is not invented: a K = 3 run's three gold A_f values are stood in for by gold 0's A_f and that
plus the recorded range (the floor reads only the range); A_r, MIA AUC and seconds are left out.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tmu_core import store
from tmu_core.evaluate import protocol
from tmu_core.evaluate.paper_tables import tables, to_markdown
from tmu_core.methods import METHODS, REFERENCES, display

RESULTS = Path(__file__).resolve().parent / "results"
LABEL = re.compile(r"^(\d+)(?: \((.+)\))? s(\d+)$")


def short_names() -> dict[str, str]:
    """Table short name ('FT', 'Rand-k†') -> method or reference name."""
    return {display(n).short: n for n in [*REFERENCES, *METHODS.names()]}


def _runs(df: pd.DataFrame) -> pd.DataFrame:
    return df[~df["class"].astype(str).map(protocol.is_summary)].set_index("class")


def results_from_csvs(stem: Path, dataset: str, forget_count: int) -> list[dict]:
    """A sweep's per-run results, as far as its committed CSVs keep them."""
    t1 = _runs(pd.read_csv(f"{stem}-table1.csv"))
    t3 = _runs(pd.read_csv(f"{stem}-table3.csv"))
    mia = _runs(pd.read_csv(f"{stem}-mia.csv"))
    t4 = _runs(pd.read_csv(f"{stem}-table4.csv")) if Path(f"{stem}-table4.csv").exists() else None
    ens = _runs(pd.read_csv(f"{stem}-ensemble.csv")) if Path(f"{stem}-ensemble.csv").exists() else None
    names = short_names()
    shorts = [c[: -len(" A_f")] for c in t1.columns if c.endswith(" A_f") and c != "gold A_f"]
    out = []
    for label, row in t1.iterrows():
        cls, cls_name, seed = LABEL.match(str(label)).groups()
        models = {
            "gold": {
                "acc_test": row["gold A_test"],
                "acc_forget": row["gold A_f"],
                "abs_delta": 0.0,
                "sample_agreement": 100.0,
                "activation_distance": 0.0,
                "mia": mia.loc[label, "Gold"],
            }
        }
        for s in shorts:
            if not np.isfinite(row[f"{s} |Δ|"]):
                continue  # a method that diverged in this run
            models[names[s]] = {
                "acc_test": row[f"{s} A_test"],
                "acc_forget": row[f"{s} A_f"],
                "abs_delta": row[f"{s} |Δ|"],
                "sample_agreement": row[f"{s} agree"],
                "activation_distance": t3.loc[label, s],
                "mia": mia.loc[label, s],
            }
        r = {
            "forget_class": int(cls),
            "forget_class_name": cls_name or cls,
            "seed": int(seed),
            "forget_count": forget_count,
            "dataset": dataset,
            "models": {k: {f: float(v) for f, v in m.items()} for k, m in models.items()},
        }
        if t4 is not None and label in t4.index:
            s4 = t4.loc[label]
            subsets = [c for c in t4.columns if c not in ("AUC p(easy)", "gold hard", "pred hard", "D_a hard", "|D_a|")]
            r["tmu"] = {
                "label_accuracy": float(s4["NF+AF+CF"]),
                "label_accuracy_by_features": {c: float(s4[c]) for c in subsets},
                "auc_p_easy": float(s4["AUC p(easy)"]),
                "gold_hard": int(s4["gold hard"]),
                "pred_hard": int(s4["pred hard"]),
                "pred_easy": forget_count - int(s4["pred hard"]),
                "aux_hard": int(s4["D_a hard"]),
                "aux_easy": int(s4["|D_a|"]) - int(s4["D_a hard"]),
                "aux_count": int(s4["|D_a|"]),
            }
            if ens is not None and label in ens.index:
                e = ens.loc[label]
                r["tmu"].update(
                    soft_label_accuracy=float(e["label acc. vs p_i"]), soft_auc_p_easy=float(e["AUC vs p_i"])
                )
        if ens is not None and label in ens.index:
            e = ens.loc[label]
            plug = next(c for c in ens.columns if c.startswith("ceiling (plug-in"))
            loo = next(c for c in ens.columns if c.startswith("ceiling (leave-one"))
            g = float(row["gold A_f"])
            r["gold_ensemble"] = {
                "k": int(e["K"]),
                "gold_agreement": float(e["gold-vs-gold agreement"]),
                "ceiling": float(e[plug]),
                "ceiling_loo": float(e[loo]),
                "gold_acc_forget": [g, g + float(e["gold A_f spread"]), g][: int(e["K"])],
            }
        out.append(r)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--name", required=True, help="the committed file's stem under benchmarks/results")
    p.add_argument("--dataset", required=True, help="the data set the sweep ran on (its rerun floors are read)")
    p.add_argument("--forget-count", type=int, default=100)
    p.add_argument("--tuning-classes", default="", help="comma-separated tuning classes, as the sweep named them")
    a = p.parse_args(argv)
    stem = RESULTS / a.name
    if not Path(f"{stem}-table1.csv").exists():
        raise SystemExit(f"no {stem}-table1.csv: name a committed sweep file (its stem, without .md)")
    tuning = [int(c) for c in a.tuning_classes.split(",") if c]
    results = results_from_csvs(stem, a.dataset, a.forget_count)
    frames = {k: f for k, f in tables(results, tuning).items() if k != "mia_auc"}  # the CSVs keep no attack AUC
    first = (RESULTS / f"{a.name}.md").read_text().splitlines()
    command = next((line for line in first if line.startswith("- command:")), "- command: (see the original file)")
    header = "\n".join(
        [
            f"# {a.name}-rescored",
            "",
            f"- rescored from `{a.name}.md`'s own CSVs with today's statistics, no new runs: "
            f"`python benchmarks/rescore.py --name {a.name} --dataset {a.dataset}"
            + (f" --tuning-classes {a.tuning_classes}" if a.tuning_classes else "")
            + "`",
            f"- the runs were made by: {command[len('- command: ') :]}",
            "- the CSVs keep gold's A_f range, not each gold's A_f; A_r, MIA AUC and seconds are not rescored",
            f"- {len(results)} runs; tuning classes {tuning or 'none named'}",
            "",
        ]
    )
    (RESULTS / f"{a.name}-rescored.md").write_text(to_markdown(frames, header))
    for key, frame in frames.items():
        store.write_csv(RESULTS / f"{a.name}-rescored-{key}.csv", frame)
    print(f"written {RESULTS / a.name}-rescored.md and its CSVs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
