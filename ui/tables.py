"""Shape a run's results into the DataFrames the pages show and the charts draw (pandas only, no st).

Inputs are the run store's files as tmu_core reads them back: metrics.json as the store's typed MetricsFile
(fields, never string keys), samples.csv (one row per D_f and D_a sample), status.json, umap-<model>.npz.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from tmu_core import store
from tmu_core.evaluate.protocol import is_summary
from tmu_core.evaluate.verdict import verdict
from tmu_core.methods import display, ordered, primary_method
from tmu_core.store.schema import MetricsFile, ModelMetrics, RunStatus, TMUSummary

FEATURES = ("NF", "AF", "CF")
HELD_OUT_FEATURES = ("HNF", "HM")  # stored only by runs that asked for them (--tmu-features ... HNF HM)


def feature_columns(samples: pd.DataFrame) -> list[str]:
    """The feature columns a run stored: the paper's three, plus the held-out network's where present."""
    return [*FEATURES, *(f for f in HELD_OUT_FEATURES if f in samples.columns and samples[f].notna().any())]


CACHED_NOTE = "trained earlier (cached)"
BASELINE_ROW = "all easy (baseline)"
# Display precision, one place for every table: accuracies and |Δ| in %, one decimal; distances three.
PERCENT_FORMAT, DISTANCE_FORMAT = "%.1f", "%.3f"


ABSENT = "—"  # a cell with no value: never "None" or "nan"
# Columns that hold counts (whole numbers in a run's row; an Avg row's mean keeps one decimal).
COUNT_COLUMNS = {"classes", "runs", "n", "K", "|D_f|", "|D_a|", "forgotten", "easy", "hard", "images", "seed"}
COUNT_COLUMNS |= {"forget_count", "forget_class"}
COUNT_SUFFIXES = (" hard", " easy", "(images)", "in images", "|D_a|")
P_COLUMNS = {"p", "p Holm", "sign p", "sign p Holm"}  # two significant digits (0.031, 1e-05)
DECIMALS = {"t": 2, "seconds": 1, "p_easy": 2, "p_gold": 2}
SIGNIFICANT = {"NF", "AF", "CF", "HNF", "HM"}  # raw feature values: three significant digits (0.00312, 10.3)
SIGNED = {"delta"}  # Δ = A_f − gold A_f: its sign says which side of gold
# Why a cell can read ABSENT, by column (shown on hover of its header); the default for the rest.
ABSENT_WHY = {
    "t": "undefined with fewer than 2 classes, or when every difference is the same",
    "p": "undefined with fewer than 2 classes, or when every difference is the same",
    "p Holm": "undefined where p is",
    "sign p": "undefined when no class has a non-zero difference",
    "sign p Holm": "undefined where sign p is",
    "AUC p(easy)": "undefined when all of D_f has one gold label (all easy or all hard)",
    "CI low": "an interval needs at least 2 classes",
    "CI high": "an interval needs at least 2 classes",
}
ABSENT_DEFAULT = "no value here: the model has no result in that run, or the measure is undefined for it"


def is_count(column: str) -> bool:
    return column in COUNT_COLUMNS or str(column).endswith(COUNT_SUFFIXES)


def cell_text(value, column: str = "", distance: bool = False, whole: bool = False) -> str:
    """One table cell as a reader expects it: ABSENT for a missing value, counts whole, p values in two
    significant digits, distances three decimals, everything else (percentages, |Δ|) one decimal; text as it is.
    `whole`: a row of counts (a 'non-finite left out' row)."""
    if value is None or (isinstance(value, float) and value != value):
        return ABSENT
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}"
    x = float(value)
    if x != x:
        return ABSENT
    if np.isinf(x):
        return "∞" if x > 0 else "−∞"
    if whole or (is_count(column) and x == int(x)):
        return f"{int(x)}"
    if column in P_COLUMNS:
        return f"{x:.2g}"
    if column in SIGNIFICANT:
        return f"{x:.3g}"
    if distance or "distance" in column:
        return f"{x:.3f}"
    if column in SIGNED:
        return f"{x:+.1f}"
    return f"{x:.{DECIMALS.get(column, 1)}f}"


def readable(df: pd.DataFrame, distance: bool = False) -> pd.DataFrame:
    """`df` with every cell as text (cell_text): what a results table shows, with no 'None', no 'nan' and no
    24.0. `distance`: the numeric columns are distances (three decimals). The first column labels the rows."""
    out = df.copy().astype(object)
    label = df.columns[0] if len(df.columns) else None
    for i in range(len(df)):
        whole = label is not None and str(df.iloc[i, 0]).startswith("non-finite left out")
        for j, col in enumerate(df.columns):
            out.iat[i, j] = cell_text(df.iat[i, j], str(col), distance, whole and j > 0)
    return out


def absent_help(df: pd.DataFrame) -> dict[str, str]:
    """{column: why its ABSENT cells are empty} for the columns of `df` (a readable() table) that have one."""
    return {
        str(c): f"{ABSENT} : {ABSENT_WHY.get(str(c), ABSENT_DEFAULT)}"
        for c in df.columns
        if (df[c].astype(str) == ABSENT).any()
    }


def model_label(name: str) -> str:
    """The name a model row carries everywhere (from the method registry)."""
    return display(name).label


def short_label(name: str) -> str:
    """The paper's short name of a model row (FT, BT, TMU, ...)."""
    return display(name).short


def model_color(name: str) -> str:
    return display(name).color


def model_metrics(metrics: MetricsFile) -> dict[str, ModelMetrics]:
    """Each model's numbers as the store's typed rows (tmu_core.store.schema.ModelMetrics), in display order."""
    return {name: metrics.models[name] for name in ordered(metrics.models)}


def number(x: float | None) -> float:
    """A stored number, or NaN where the run has none."""
    return float("nan") if x is None else x


def models_frame(metrics: MetricsFile) -> pd.DataFrame:
    """One row per model: accuracies (%), |Δ| to gold's A_f, activation distance (L2), MIA, seconds.

    `timing` says whose seconds they are: a cached original or gold was trained by an earlier run, so its
    seconds were not spent by this one.
    """
    n = metrics.forget_count
    rows = []
    for name, m in model_metrics(metrics).items():
        rows.append(
            {
                "model": name,
                "label": model_label(name),
                "A_test": m.acc_test,
                "A_r": m.acc_remain,
                "A_f": m.acc_forget,
                "delta": number(m.delta),
                "abs_delta": number(m.abs_delta),
                "agreement": number(m.sample_agreement),
                "images": None if m.abs_delta is None else images_apart(m.abs_delta, n),
                "kind": display(name).kind,
                "activation_distance": number(m.activation_distance),
                "mia": m.mia,
                "mia_auc": number(m.mia_auc),
                "seconds": m.seconds,
                "timing": timing_text(m),
            }
        )
    return pd.DataFrame(rows)


def timing_text(m: ModelMetrics) -> str:
    """Whose seconds a model's are: this run's, an earlier run's (a cached reference), or none (the user's file)."""
    if m.source == "file":
        return "your file (loaded, not trained)"
    return CACHED_NOTE if m.cached else "this run"


# The Alignment page's per-model table in two parts that each fit 1280 px (a table of 13 columns is clipped).
MODEL_TABLE_PARTS = {
    "accuracy": ("label", "A_test", "A_r", "A_f", "delta", "abs_delta", "images", "agreement"),
    "distance": ("label", "activation_distance", "mia", "mia_auc", "seconds", "timing"),
}
MAX_TABLE_COLUMNS = 7  # besides the row label: what fits 1280 px with the sidebar open


def column_chunks(columns: list[str], size: int = MAX_TABLE_COLUMNS) -> list[list[str]]:
    """`columns` in runs of at most `size` (none empty), for tables that must not be clipped."""
    return [columns[i : i + size] for i in range(0, len(columns), size)]


def images_apart(abs_delta: float, forget_count: int | None) -> int | None:
    """|Δ| (percentage points of D_f) as a number of D_f images: how many more or fewer gold gets right."""
    return None if forget_count is None else int(round(abs_delta * forget_count / 100.0))


def images_text(images) -> str:
    """'3 images of D_f' (or '' when the count is unknown)."""
    if images is None or images != images:
        return ""
    return f"{int(images)} image{'s' if int(images) != 1 else ''} of D_f"


def cost_text(metrics: MetricsFile) -> str | None:
    """The TMU cost / retrain ratio spelled out, with what it counts: TMU's seconds less its audit extras (the
    feature ablation, which unlearning does not need) over the seconds gold's training took."""
    models, primary = model_metrics(metrics), primary_method()
    if metrics.cost_ratio is None or primary not in models:
        return None
    gold = models["gold"]
    when = f" ({CACHED_NOTE}, not by this run)" if gold.cached else ""
    total = models[primary].seconds
    tmu = tmu_summary(metrics)
    audit = tmu.audit_seconds if tmu else 0.0
    extras = (
        f", of which {audit:.1f} s went to the audit extras (the feature ablation) and are left out" if audit else ""
    )
    return (
        f"{metrics.cost_ratio:.2f}× = TMU's unlearning time over gold's training time. TMU took {total:.1f} s"
        f"{extras}: {total - audit:.1f} s counted; training the gold model from scratch took {gold.seconds:.1f} s"
        f"{when}. Loading or training the original model is not counted (both start from it)."
    )


def tmu_summary(metrics: MetricsFile) -> TMUSummary | None:
    """TMU's report as the store's typed model (stored under the primary method's name); None without one."""
    return getattr(metrics, primary_method(), None)


NO_GOLD = (
    "This run has no gold model (your own model, run with --gold none): nothing here says which files a "
    "retrain would really get wrong, so {what} cannot be shown. TMU's own split, p(easy) and the features are "
    "below. Run again with --gold-weights FILE (a model you retrained without the forget list) or --gold "
    "retrain to see {what}."
)


def aux_sizing_text(tmu: TMUSummary) -> str:
    """How D_a was sized, in a sentence: Eq. 3's request, the pool, augmented copies, how many were used (per
    class for a request over several classes)."""

    def one(s, prefix: str = "") -> str:
        return (
            f"{prefix}Eq. 3 requested {s.requested}, the class's aux pool held {s.available}, {s.augmented} "
            f"augmented copies, {s.used} used" + (" (capped)" if s.capped else "")
        )

    if tmu.aux_sizing is not None:
        return one(tmu.aux_sizing) + "."
    parts = [one(b.aux_sizing, f"class {name}: ") for name, b in (tmu.per_class or {}).items() if b.aux_sizing]
    return "; ".join(parts) + "." if parts else ""


def has_gold(metrics: MetricsFile) -> bool:
    """Whether the run has a gold model to compare with (a run on the user's own model may have none)."""
    return "gold" in metrics.models


def all_easy_baseline(tmu: TMUSummary) -> float:
    """Label accuracy (%) of calling every D_f sample easy: the share of D_f the gold model gets right (NaN
    without a gold model)."""
    if tmu.gold_easy is None or tmu.gold_hard is None:
        return float("nan")
    total = tmu.gold_easy + tmu.gold_hard
    return 100.0 * tmu.gold_easy / total if total else float("nan")


def alignment_note(metrics: MetricsFile) -> str | None:
    """Why TMU is not among the leaders of this run's verdict (beyond the noise floor from the closest), from the
    run's own numbers; None when it is (or has no TMU).

    |Δ| follows from how many D_f samples TMU calls hard against how many gold gets wrong, and TMU learns
    that count on the twin's D_a: a D_a smaller than Eq. 3 asks, or with few hard samples, estimates it badly.
    """
    primary, tmu = primary_method(), tmu_summary(metrics)
    if not tmu or tmu.gold_easy is None or tmu.gold_hard is None or tmu.aux_sizing is None:
        return None  # no gold to compare with, or one twin per class (the Easy/hard audit shows each)
    if primary not in metrics.models or primary in verdict(metrics).leaders:
        return None  # within the noise floor of the best is a tie, not a miss
    n = tmu.gold_easy + tmu.gold_hard
    sizing = tmu.aux_sizing
    requested, used = sizing.requested, sizing.used if sizing.used is not None else tmu.aux_count
    text = (
        f"Gold misclassifies {tmu.gold_hard} of the {n} forgotten images (gold hard); TMU called "
        f"{tmu.pred_hard} of them hard. Its |Δ| is roughly the gap between those two counts, and TMU "
        f"learns the count on the twin problem, where D_a had {used} samples"
    )
    if requested is not None and used is not None and used < requested:
        text += f" of the {requested} Eq. 3 asks for"
    text += f" ({tmu.aux_hard} hard)."
    if sizing.capped or tmu.aux_hard < 10:
        text += (
            " That is too few to estimate the hard count well"
            + (": the class's held-out pool is small and augmentation is capped" if sizing.capped else "")
            + ". On a larger data set (CIFAR-10, benchmarks/results/NOTES.md) the twin gets the samples "
            "Eq. 3 asks for."
        )
    return text


def short_time(iso: str | None) -> str:
    """'MM-DD HH:MM' of an ISO time ('' for none): what tells runs of one week apart, in 11 characters."""
    return (iso or "")[5:16].replace("T", " ")


def request_text(cfg: dict | None) -> str:
    """A run on the user's own model in a few words: 'digits_cnn.pt · 30 files over 3 classes · digits' (its
    weights file, the request, the data folder); '' for any other run."""
    request = (cfg or {}).get("request")
    if not request:
        return ""
    k = len(request["classes"])
    folder = request["data"].rstrip("/").rsplit("/", 1)[-1]
    return f"{request['weights']} · {request['files']} files over {k} class{'es' if k != 1 else ''} · {folder}"


def forget_text(cfg: dict | None) -> str:
    """A run's forget set in a few words: 'digits · class 8 · 110' ('' for a run without a config); a run on the
    user's own model by its request (`request_text`)."""
    cfg = cfg or {}
    if request_text(cfg):
        return request_text(cfg)
    forget = cfg.get("forget", {})
    size = len(forget.get("forget_ids") or []) or (
        f"{100 * forget['forget_fraction']:.0f}%" if forget.get("forget_fraction") else forget.get("forget_count")
    )
    parts = (
        cfg.get("data", {}).get("dataset"),
        f"class {forget['forget_class']}" if forget.get("forget_class") is not None else None,
        size,
    )
    return " · ".join(str(p) for p in parts if p is not None and p != "")


RUNS_COLUMNS = ["run", "state", "progress", "forget set", "model", "updated", "error"]  # 7: fits 1280 px


def runs_frame(infos) -> pd.DataFrame:
    """The run list (tmu_core.store.RunInfo items) as a table of seven columns, so the error stays in view at
    1280 px: a running run's stage joins its state ('running: gold'), the forget set is one column
    ('digits · class 8 · 110'), the time 'MM-DD HH:MM'."""
    rows = []
    for r in infos:
        cfg = r.config or {}
        stage = "" if r.state == "complete" or r.stage == r.state else r.stage  # a finished run's stage repeats it
        rows.append(
            {
                "run": r.run_id,
                "state": f"{r.state}: {stage}" if stage else r.state,
                "progress": r.progress,
                "forget set": forget_text(cfg) or ABSENT,
                "model": cfg.get("train", {}).get("model") or ABSENT,
                "updated": short_time(r.updated),
                "error": r.error or "",
            }
        )
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def confusion_frame(confusion: dict) -> pd.DataFrame:
    """2x2 counts: rows = gold truth (easy, hard), columns = TMU's prediction (easy, hard)."""
    return pd.DataFrame(
        [
            [confusion["easy_as_easy"], confusion["easy_as_hard"]],
            [confusion["hard_as_easy"], confusion["hard_as_hard"]],
        ],
        index=pd.Index(["easy", "hard"], name="gold truth"),
        columns=pd.Index(["easy", "hard"], name="predicted"),
    )


def step_choice_table(choice) -> pd.DataFrame:
    """The candidate steps tried on the twin (a run's `StepChoice`): what each changes and how it scored against
    the twin's gold M_o on D_a; the chosen one marked."""
    rows = []
    for name, sc in choice.candidates.items():
        rows.append(
            {
                "step": name + (" (used)" if name == choice.chosen else ""),
                "agreement with M_o on D_a %": sc.agreement,
                "activation distance to M_o": sc.activation_distance,
                "A on D_a %": sc.acc_aux,
            }
        )
    return pd.DataFrame(rows)


def ablation_frame(metrics: MetricsFile, baseline: bool = True) -> pd.DataFrame:
    """Label accuracy (%) per feature subset, the subset TMU used marked; with `baseline`, a last row for
    calling every sample easy (no features at all), the bar any subset must clear."""
    tmu = tmu_summary(metrics)
    used = "+".join(tmu.features_used)
    rows = [
        {"features": k, "label_accuracy": v, "used by TMU": k == used}
        for k, v in (tmu.label_accuracy_by_features or {}).items()
    ]
    if baseline:
        rows.append({"features": BASELINE_ROW, "label_accuracy": all_easy_baseline(tmu), "used by TMU": False})
    return pd.DataFrame(rows)


def class_label(index: int, names=None) -> str:
    """A class as people read it: '8' for digits' 8, '3 · cat' where the name says more than the index."""
    i = int(index)
    if not names or not 0 <= i < len(names) or str(names[i]) == str(i):
        return str(i)
    return f"{i} · {names[i]}"


def audit_frame(samples: pd.DataFrame, role: str = "forget", class_names=None) -> pd.DataFrame:
    """Gallery rows of one role: prediction, truth (gold's verdict for D_f, original's for D_a), p(easy), features;
    what each reference model says, by class name when `class_names` are given.

    `samples` may carry an `image` column (data URLs); it is kept first.
    """
    df = samples[samples["role"] == role].copy()
    judge = "gold" if role == "forget" else "original"
    out = pd.DataFrame({"id": df["id"].astype(int)})
    if "file" in df and df["file"].notna().all() and not df["file"].astype(str).str.startswith("train #").all():
        out["file"] = df["file"].astype(str)  # the user's own files: by name
    if "image" in df:
        out.insert(0, "image", df["image"])
    out["predicted"] = df["pred_label"]
    if "true_label" in df and df["true_label"].notna().all():
        out["truth"] = df["true_label"]
        out["verdict"] = np.where(df["true_label"] == "easy", f"{judge} correct ✓", f"{judge} wrong ✗")
        out["agree"] = df["pred_label"] == df["true_label"]
    else:  # a run without a gold model: no sample has a verdict to agree with
        out["truth"] = "unknown"
        out["verdict"] = "no gold model"
    out["p_easy"] = df["p_easy"].astype(float)
    if role == "forget" and "p_gold" in df:  # the gold ensemble's share of golds right (K > 1)
        out.insert(out.columns.get_loc("verdict") + 1, "p_gold", df["p_gold"].astype(float))
    for f in feature_columns(samples):
        out[f] = df[f].astype(float)
    if role == "aux":
        out["source_id"] = df["source_id"].astype(int)
        out["augmented"] = df["augmented"].astype(str).str.lower() == "true"
    for m in ("original", "gold", primary_method()):
        if f"pred_{m}" in df:
            says = df[f"pred_{m}"].astype(int)
            out[f"{short_label(m)} says"] = says if class_names is None else [class_label(i, class_names) for i in says]
    return out.reset_index(drop=True)


def for_display(df: pd.DataFrame) -> pd.DataFrame:
    """Yes/no columns as text (agree, augmented: ✓/✗; used by TMU: ✓ on its one row): a read-only table
    should not look like checkboxes."""
    out = df.copy()
    for col, no in (("agree", "✗"), ("augmented", "✗"), ("used by TMU", "")):
        if col in out and out[col].dtype == bool:
            out[col] = np.where(out[col], "✓", no)
    return out


def samples_csv(samples: pd.DataFrame) -> str:
    """samples.csv for download, its `id` split by meaning: `forget_id` (the training sample id of a D_f row)
    and `aux_index` (a D_a row's position in D_a; its image is `source_id`). Empty where it does not apply."""
    df = samples.drop(columns=[c for c in ("image",) if c in samples])
    forget = df["role"] == "forget"
    ids = df.pop("id").astype(int)
    df.insert(0, "aux_index", ids.where(~forget).astype("Int64"))
    df.insert(0, "forget_id", ids.where(forget).astype("Int64"))
    return store.csv_text(df)


def run_label(info) -> str:
    """A short name for a run (tmu_core.store.RunInfo) in a narrow list: the user's run name (if any), the time,
    then dataset, class, |D_f| and state. The time comes before the forget set: a narrow sidebar cuts the end."""
    cfg = info.config or {}
    forget = cfg.get("forget", {})
    size = len(forget.get("forget_ids") or []) or (
        f"{100 * forget['forget_fraction']:.0f}%" if forget.get("forget_fraction") else forget.get("forget_count")
    )
    parts = [
        cfg.get("name") or "",
        short_time(info.updated),
        cfg.get("data", {}).get("dataset") or info.run_id,
        f"class {forget.get('forget_class', '?')}",
        "" if size is None else f"{size}",
    ]
    if request_text(cfg):  # a run on the user's own model: what it was asked, not unused defaults
        parts = [cfg.get("name") or "", short_time(info.updated), request_text(cfg)]
    label = " · ".join(p for p in parts if p)
    return label if info.state == "complete" else f"{label} ({info.state})"


def filter_audit(
    df: pd.DataFrame, predicted=("easy", "hard"), truth=("easy", "hard"), disagreements_only: bool = False
) -> pd.DataFrame:
    keep = df["predicted"].isin(predicted) & (df["truth"].isin(truth) | (df["truth"] == "unknown"))
    if disagreements_only and "agree" in df:
        keep &= ~df["agree"]
    return df[keep].reset_index(drop=True)


def has_truth(samples: pd.DataFrame, role: str) -> bool:
    """Whether the rows of `role` carry a true easy/hard label (D_f's is gold's: none in a run without gold)."""
    part = samples.loc[samples["role"] == role]
    return "true_label" in part and bool(part["true_label"].notna().all())


def feature_frame(samples: pd.DataFrame, role: str, color_by: str) -> pd.DataFrame:
    """Features of one role with a `label` column: 'truth' (true_label) or 'predicted' (pred_label)."""
    df = samples[samples["role"] == role]
    col = "true_label" if color_by == "truth" and has_truth(samples, role) else "pred_label"
    return pd.DataFrame(
        {
            "id": df["id"].astype(int),
            **{f: df[f] for f in feature_columns(samples)},
            "p_easy": df["p_easy"],
            "label": df[col],
        }
    ).reset_index(drop=True)


def umap_frame(
    umap: dict, samples: pd.DataFrame, forget_class: int, color_by: str = "truth", show_aux: bool = False
) -> pd.DataFrame:
    """Points of a UMAP map with a display group: other classes, D_r of class c, D_f (and D_a) easy/hard.

    color_by: 'truth' (gold's verdict on D_f, original's on D_a) or 'predicted' (TMU's classifier).
    """
    df = pd.DataFrame(
        {
            "x": umap["xy"][:, 0],
            "y": umap["xy"][:, 1],
            "id": umap["ids"].astype(int),
            "role": umap["role"].astype(str),
            "label": umap["label"].astype(int),
        }
    )
    col = "true_label" if color_by == "truth" and has_truth(samples, "forget") else "pred_label"
    request = samples.loc[samples["role"] == "forget", "class"] if "class" in samples else []
    classes = np.unique(np.asarray(request, dtype=np.int64)) if len(request) else np.array([forget_class])
    group = np.where(np.isin(df["label"], classes), "D_r of the class", "other classes").astype(object)
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
    """Table 1 of a sweep -> long rows (class, method, abs_delta) without the Avg and CI rows."""
    cols = [c for c in table1.columns if c.endswith(" |Δ|")]
    body = table1[~table1["class"].map(is_summary)]
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


def image_grid(gallery: pd.DataFrame, marked: set, per_row: int = 8) -> pd.DataFrame:
    """A gallery (id, image, framed) as a grid: `per_row` pairs of columns, the sample id ("id 1") then its
    image ("image 1"); `marked` ids show framed. Ids are text and the last row is padded with "" (a missing
    value would read "None")."""
    cells = [
        (str(int(i)), f if i in marked else im) for i, im, f in zip(gallery["id"], gallery["image"], gallery["framed"])
    ]
    rows = []
    for start in range(0, len(cells), per_row):
        chunk = cells[start : start + per_row] + [("", "")] * (per_row - len(cells[start : start + per_row]))
        rows.append([v for cell in chunk for v in cell])
    columns = [name for c in range(per_row) for name in (f"id {c + 1}", f"image {c + 1}")]
    return pd.DataFrame(rows, columns=columns)


def duration(seconds) -> str:
    """'8 s', '2 min 05 s', '1 h 03 min' (empty for an unknown duration)."""
    if seconds is None or seconds != seconds:
        return ""
    s = max(0, int(round(float(seconds))))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def stage_line(status: RunStatus) -> str:
    """Stages in pipeline order as one Markdown line: done ones with their seconds, the running one in
    colour with its elapsed time and an estimate of the time left, pending ones greyed (Streamlit's
    :color[...] Markdown)."""
    parts = []
    for name, s in (status.stages or {}).items():
        state = s.state
        if state == "done":
            secs = f" {s.seconds:.1f} s" if s.seconds is not None else ""
            parts.append(f"**{name}** ✓{secs}")
        elif state == "cached":
            parts.append(f"**{name}** ✓ cached")
        elif state == "loaded":
            parts.append(f"**{name}** ✓ your file")
        elif state == "running":
            timing = ", ".join(
                t
                for t in (
                    duration(s.elapsed) and f"{duration(s.elapsed)} so far",
                    s.left is not None and f"about {duration(s.left)} left",
                )
                if t
            )
            parts.append(f":blue[**{name}** …{' ' + timing if timing else ''}]")
        else:
            parts.append(f":gray[{name}]")
    return " · ".join(parts)


def progress_text(status: RunStatus) -> str:
    """The progress bar's caption: percent, stage, and the run's time so far and left when known."""
    pct = f"{100 * status.progress:.0f}%"
    stage = status.stage or status.state
    message = status.message if status.message not in (None, "", "done") else ""
    started, eta = status.started, status.eta_seconds
    times = []
    if started is not None and status.state == "running":
        times.append(f"{duration(time.time() - started)} so far")
    if eta is not None and status.state == "running":
        times.append(f"about {duration(eta)} left")
    return " · ".join(p for p in (pct, f"{stage} {message}".strip(), ", ".join(times)) if p)
