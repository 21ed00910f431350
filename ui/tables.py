"""Shape a run's results into the DataFrames the pages show and the charts draw (pandas only, no st).

Inputs are the run store's files as tmu_core writes them: metrics.json (a dict), samples.csv (one row per
D_f and D_a sample), status.json, umap-<model>.npz.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MODEL_ORDER = ("original", "gold", "tmu", "tmu_ng", "finetune", "neggrad", "randlabel", "badteacher")
MODEL_LABELS = {"original": "Original", "gold": "Gold (retrained)", "tmu": "TMU", "finetune": "Fine-tuning",
                "neggrad": "Negative gradient", "randlabel": "Random labels", "badteacher": "Bad Teacher",
                "tmu_ng": "TMU (neg. gradient)"}
FEATURES = ("NF", "AF", "CF")


def model_label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


def models_frame(metrics: dict) -> pd.DataFrame:
    """One row per model: accuracies (%), |Δ| to gold's A_f, activation distance (L2), MIA, seconds."""
    names = sorted(metrics["models"], key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else 99, m))
    rows = []
    for name in names:
        m = metrics["models"][name]
        rows.append({"model": name, "label": model_label(name), "A_test": m["acc_test"], "A_r": m["acc_remain"],
                     "A_f": m["acc_forget"], "delta": m["delta"], "abs_delta": m["abs_delta"],
                     "activation_distance": m["activation_distance"], "mia": m["mia"], "seconds": m["seconds"]})
    return pd.DataFrame(rows)


def runs_frame(infos) -> pd.DataFrame:
    """The run list (tmu_core.runs.RunInfo items) as a table."""
    rows = []
    for r in infos:
        cfg = r.config or {}
        forget = cfg.get("forget", {})
        size = len(forget.get("forget_ids") or []) or (f"{100 * forget['forget_fraction']:.0f}%"
                                                        if forget.get("forget_fraction") else forget.get("forget_count"))
        rows.append({"run": r.run_id, "state": r.state, "stage": r.stage, "progress": r.progress,
                     "dataset": cfg.get("data", {}).get("dataset"), "class": forget.get("forget_class"),
                     "|D_f|": None if size is None else str(size), "model": cfg.get("train", {}).get("model"),
                     "updated": r.updated, "error": r.error or ""})
    return pd.DataFrame(rows, columns=["run", "state", "stage", "progress", "dataset", "class", "|D_f|", "model",
                                       "updated", "error"])


def confusion_frame(confusion: dict) -> pd.DataFrame:
    """2x2 counts: rows = gold truth (easy, hard), columns = TMU's prediction (easy, hard)."""
    return pd.DataFrame([[confusion["easy_as_easy"], confusion["easy_as_hard"]],
                         [confusion["hard_as_easy"], confusion["hard_as_hard"]]],
                        index=pd.Index(["easy", "hard"], name="gold truth"),
                        columns=pd.Index(["easy", "hard"], name="predicted"))


def ablation_frame(metrics: dict) -> pd.DataFrame:
    """Label accuracy (%) per feature subset, the subset TMU used marked."""
    tmu = metrics["tmu"]
    used = "+".join(tmu.get("features_used", FEATURES))
    return pd.DataFrame([{"features": k, "label_accuracy": v, "used by TMU": k == used}
                         for k, v in tmu["label_accuracy_by_features"].items()])


def audit_frame(samples: pd.DataFrame, role: str = "forget") -> pd.DataFrame:
    """Gallery rows of one role: prediction, truth (gold's verdict for D_f, original's for D_a), p(easy), features.

    `samples` may carry an `image` column (data URLs); it is kept first.
    """
    df = samples[samples["role"] == role].copy()
    judge = "gold" if role == "forget" else "original"
    out = pd.DataFrame({"id": df["id"].astype(int)})
    if "image" in df:
        out.insert(0, "image", df["image"])
    out["predicted"] = df["pred_label"]
    out["truth"] = df["true_label"]
    out["verdict"] = np.where(df["true_label"] == "easy", f"{judge} correct ✓", f"{judge} wrong ✗")
    out["agree"] = df["pred_label"] == df["true_label"]
    out["p_easy"] = df["p_easy"].astype(float)
    for f in FEATURES:
        out[f] = df[f].astype(float)
    if role == "aux":
        out["source_id"] = df["source_id"].astype(int)
        out["augmented"] = df["augmented"].astype(str).str.lower() == "true"
    for m in ("original", "gold", "tmu"):
        if f"pred_{m}" in df:
            out[f"{m} says"] = df[f"pred_{m}"].astype(int)
    return out.reset_index(drop=True)


def filter_audit(df: pd.DataFrame, predicted=("easy", "hard"), truth=("easy", "hard"),
                 disagreements_only: bool = False) -> pd.DataFrame:
    keep = df["predicted"].isin(predicted) & df["truth"].isin(truth)
    if disagreements_only:
        keep &= ~df["agree"]
    return df[keep].reset_index(drop=True)


def feature_frame(samples: pd.DataFrame, role: str, color_by: str) -> pd.DataFrame:
    """Features of one role with a `label` column: 'truth' (true_label) or 'predicted' (pred_label)."""
    df = samples[samples["role"] == role]
    col = "true_label" if color_by == "truth" else "pred_label"
    return pd.DataFrame({"id": df["id"].astype(int), "NF": df["NF"], "AF": df["AF"], "CF": df["CF"],
                         "p_easy": df["p_easy"], "label": df[col]}).reset_index(drop=True)


UMAP_GROUPS = ("other classes", "D_r of the class", "D_f easy", "D_f hard", "D_a easy", "D_a hard")


def umap_frame(umap: dict, samples: pd.DataFrame, forget_class: int, color_by: str = "truth",
               show_aux: bool = False) -> pd.DataFrame:
    """Points of a UMAP map with a display group: other classes, D_r of class c, D_f (and D_a) easy/hard.

    color_by: 'truth' (gold's verdict on D_f, original's on D_a) or 'predicted' (TMU's classifier).
    """
    df = pd.DataFrame({"x": umap["xy"][:, 0], "y": umap["xy"][:, 1], "id": umap["ids"].astype(int),
                       "role": umap["role"].astype(str), "label": umap["label"].astype(int)})
    col = "true_label" if color_by == "truth" else "pred_label"
    group = np.where(df["label"] == forget_class, "D_r of the class", "other classes").astype(object)
    for role, name in (("forget", "D_f"), ("aux", "D_a")):
        part = samples[samples["role"] == role]
        lookup = dict(zip(part["id"].astype(int), part[col])) if col in part else {}
        mask = (df["role"] == role).to_numpy()
        group[mask] = [f"{name} {lookup.get(i, 'easy')}" for i in df.loc[mask, "id"]]
    df["group"] = group
    if not show_aux:
        df = df[df["role"] != "aux"]
    return df.reset_index(drop=True)


def sweep_delta_long(table1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 of a sweep -> long rows (class, method, abs_delta) without the Avg row."""
    cols = [c for c in table1.columns if c.endswith(" |Δ|")]
    body = table1[table1["class"].astype(str) != "Avg"]
    long = body.melt(id_vars=["class"], value_vars=cols, var_name="method", value_name="abs_delta")
    long["method"] = long["method"].str.replace(" |Δ|", "", regex=False)
    long["class"] = long["class"].astype(str)
    return long


def selected_points(points) -> list[tuple[int, str]]:
    """(sample id, role) of selected plotly points; customdata holds the id first and, if given, the role third."""
    out = []
    for p in points:
        cd = p.get("customdata")
        if cd is None:
            continue
        if isinstance(cd, (list, tuple)):
            out.append((int(cd[0]), str(cd[2]) if len(cd) > 2 else ""))
        else:
            out.append((int(cd), ""))
    return out


def image_grid(gallery: pd.DataFrame, marked: set, per_row: int = 12) -> pd.DataFrame:
    """A gallery (id, image, framed) as a grid of `per_row` image columns; `marked` ids show framed."""
    urls = [f if i in marked else im for i, im, f in zip(gallery["id"], gallery["image"], gallery["framed"])]
    rows = [urls[i:i + per_row] for i in range(0, len(urls), per_row)]
    return pd.DataFrame([r + [None] * (per_row - len(r)) for r in rows], columns=[str(c + 1) for c in range(per_row)])


def stage_line(status: dict) -> str:
    """Stages in pipeline order as one Markdown line: done ones with their seconds, the running one in
    colour, pending ones greyed (Streamlit's :color[...] Markdown)."""
    parts = []
    for name, s in (status.get("stages") or {}).items():
        state = s.get("state", "pending")
        if state == "done":
            secs = f" {s['seconds']:.1f} s" if s.get("seconds") is not None else ""
            parts.append(f"**{name}** ✓{secs}")
        elif state == "cached":
            parts.append(f"**{name}** ✓ cached")
        elif state == "running":
            parts.append(f":blue[**{name}** …]")
        else:
            parts.append(f":gray[{name}]")
    return " · ".join(parts)
