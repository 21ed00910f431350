"""Chart builders: DataFrame in, plotly Figure out; no Streamlit, so each is unit-tested on its own.

Colours are fixed across pages (ui.palette): easy green, hard red, gold a dark reference, TMU blue. Every scatter
carries the sample id in `customdata`, so a selection on the page maps back to samples.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tmu_core.methods import METHODS, REFERENCES, display

from .palette import EASY, EASY_LIGHT, HARD, HARD_LIGHT
from .tables import BASELINE_ROW, FEATURES, HELD_OUT_FEATURES, model_color, model_label
from .text import chart_text

LABEL_COLORS = {"easy": EASY, "hard": HARD}
GROUP_STYLE = {  # UMAP groups, drawn in this order: colour, size, opacity, symbol
    "other classes": ("#bdbdbd", 5, 0.25, "circle"),
    "D_f easy": (EASY, 9, 0.95, "diamond"),
    "D_f hard": (HARD, 10, 0.95, "x"),
    "D_a easy": (EASY_LIGHT, 7, 0.8, "triangle-up"),
    "D_a hard": (HARD_LIGHT, 8, 0.8, "triangle-down"),
    # drawn last, above D_f: its small translucent points show the forgotten samples sitting inside the class
    "D_r of the class": ("#1565c0", 6, 0.55, "circle"),
}


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10), legend_title_text="")
    return fig


def confusion_figure(cm: pd.DataFrame, label_accuracy: float | None = None) -> go.Figure:
    """The 2x2 confusion table (rows gold truth, columns predicted; see tables.confusion_frame) as coloured
    cells: agreements green, errors red, each cell's shade by its share of D_f, its count written in it."""
    total = max(1, int(cm.values.sum()))
    agree = [[r == c for c in cm.columns] for r in cm.index]
    # z in [-1, 1]: errors negative (red), agreements positive (green), the strength their share of D_f
    z = [
        [(1 if a else -1) * (0.25 + 0.75 * v / total) for a, v in zip(row_a, row_v)]
        for row_a, row_v in zip(agree, cm.values.tolist())
    ]
    text = [
        [f"{v}<br>{'agree' if a else 'error'}" for a, v in zip(row_a, row_v)]
        for row_a, row_v in zip(agree, cm.values.tolist())
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"predicted {c}" for c in cm.columns],
            y=[f"gold {r}" for r in cm.index],
            text=text,
            texttemplate="%{text}",
            customdata=cm.values,
            zmin=-1,
            zmax=1,
            colorscale=[[0, HARD], [0.5, "#ffffff"], [1, EASY]],
            showscale=False,
            textfont=dict(size=16),
            hovertemplate="%{y}, %{x}: %{customdata}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, confusion_title(label_accuracy), 320)


def confusion_title(label_accuracy: float | None = None) -> str:
    """Two short lines, so a third of a 1280-px page shows them whole: what is compared, then TMU's label accuracy
    with the same one decimal the pages' text uses (not 85% beside a text's 84.5%)."""
    title = "TMU's labels vs gold on D_f"
    if label_accuracy is not None:
        title += f"<br><sup>label accuracy {label_accuracy:.1f}%</sup>"
    return title


def feature_distributions(df: pd.DataFrame, kind: str = "violin", title: str = "") -> go.Figure:
    """NF, AF, CF side by side, split by `label` (easy/hard): violins with points, or overlaid histograms."""
    feats = [f for f in (*FEATURES, *HELD_OUT_FEATURES) if f in df.columns]
    fig = make_subplots(rows=1, cols=len(feats), subplot_titles=feats)
    for i, feat in enumerate(feats, start=1):
        for label in ("easy", "hard"):
            part = df[df["label"] == label]
            common = dict(name=label, legendgroup=label, showlegend=i == 1, marker_color=LABEL_COLORS[label])
            if kind == "histogram":
                fig.add_trace(go.Histogram(x=part[feat], opacity=0.6, nbinsx=20, **common), row=1, col=i)
                fig.update_xaxes(title_text=f"{feat} value", row=1, col=i)
                fig.update_yaxes(title_text="samples" if i == 1 else None, row=1, col=i)
            else:
                fig.add_trace(
                    go.Violin(
                        y=part[feat],
                        x=[label] * len(part),
                        points="all",
                        box_visible=True,
                        spanmode="hard",
                        customdata=part["id"],
                        hovertemplate="id %{customdata}: %{y:.3g}<extra></extra>",
                        **common,
                    ),
                    row=1,
                    col=i,
                )
                fig.update_yaxes(title_text=f"{feat} value", row=1, col=i)
    if kind == "histogram":
        fig.update_layout(barmode="overlay")
    return _layout(
        fig,
        title
        or f"Features by label (easy {int((df['label'] == 'easy').sum())}, hard {int((df['label'] == 'hard').sum())})",
        400,
    )


def feature_scatter(df: pd.DataFrame, x: str, y: str, title: str = "") -> go.Figure:
    """Two features against each other, coloured by `label`; customdata = sample id (for selections)."""
    fig = go.Figure()
    for label in ("easy", "hard"):
        part = df[df["label"] == label]
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=part[y],
                mode="markers",
                name=label,
                customdata=part["id"],
                marker=dict(color=LABEL_COLORS[label], size=9, symbol="circle" if label == "easy" else "x"),
                hovertemplate=f"id %{{customdata}}<br>{x} %{{x:.3g}}<br>{y} %{{y:.3g}}<extra>{label}</extra>",
            )
        )
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=y)
    fig.update_layout(dragmode="lasso")
    return _layout(fig, title or f"{y} against {x}", 420)


def ablation_figure(df: pd.DataFrame) -> go.Figure:
    """Label accuracy per feature subset (tables.ablation_frame); the subset TMU used is highlighted, the
    all-easy baseline grey and drawn as a dashed line. Bars start at 0, so their lengths keep the ratios
    (AF 92 is not drawn a third of NF 98); each carries its value, with room above the top one for it."""
    colors = [
        "#9e9e9e" if f == BASELINE_ROW else "#1565c0" if used else "#90caf9"
        for f, used in zip(df["features"], df["used by TMU"])
    ]
    fig = go.Figure(
        go.Bar(
            x=df["features"],
            y=df["label_accuracy"],
            marker_color=colors,
            text=[f"{v:.1f}" for v in df["label_accuracy"]],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y:.1f}%<extra></extra>",
        )
    )
    fig.update_yaxes(title="label accuracy (%)", range=[0, 112], tickvals=[0, 20, 40, 60, 80, 100])
    base = df.loc[df["features"] == BASELINE_ROW, "label_accuracy"]
    if len(base):
        fig.add_hline(y=float(base.iloc[0]), line_dash="dot", line_color="#757575")
    fig = _layout(fig, "Label accuracy on D_f by feature subset (paper Table 4)", 360)
    fig.update_layout(margin=dict(l=10, r=10, t=60, b=10))
    return fig


def forget_accuracy_figure(models: pd.DataFrame) -> go.Figure:
    """A_f of gold and every model, gold's A_f also as the target line: aligned unlearning lands on the line.

    Bar labels sit at the foot of the bars, away from the target line (which is near the top whenever gold
    keeps most of D_f); a bar too short to hold its label (A_f = 0) gets it just above. The line's note
    sits in the empty band above 100%, clear of every bar.
    """
    df = pd.concat([models[models["model"] == "gold"], models[models["model"] != "gold"]])
    gold = float(df["A_f"].iloc[0])
    short = df["A_f"] < 12  # too short for a label inside
    fig = go.Figure(
        go.Bar(
            x=[model_label(m) for m in df["model"]],
            y=df["A_f"],
            marker_color=[model_color(m) for m in df["model"]],
            text=[f"{v:.1f}" for v in df["A_f"]],
            textposition=["outside" if s else "inside" for s in short],
            insidetextanchor="start",
            textfont=dict(color=["#212121" if s else "white" for s in short]),
            cliponaxis=False,
            customdata=df["abs_delta"],
            hovertemplate="%{x}: A_f %{y:.1f}%, |Δ| %{customdata:.1f}<extra></extra>",
        )
    )
    fig.add_hline(y=gold, line_dash="dash", line_color=model_color("gold"))
    fig.add_annotation(
        x=1,
        xref="paper",
        xanchor="right",
        y=1,
        yref="paper",
        yanchor="top",
        showarrow=False,
        text=f"dashed line: target = gold's A_f, {gold:.1f}%",
        bgcolor="rgba(255,255,255,0.85)",
    )
    fig.update_yaxes(title="A_f: accuracy on D_f (%)", range=[0, 118], tickvals=[0, 20, 40, 60, 80, 100])
    return _layout(fig, "Accuracy on the forget set: the target is gold's, not 0", 380)


def delta_figure(models: pd.DataFrame, verdict=None) -> go.Figure:
    """|Δ| = |A_f(method) − A_f(gold)| per model: the untouched original, every method and control (lower is better).

    Each bar says how many D_f images it is from gold (tables.models_frame's `images`). With the run's `verdict`
    (tmu_core.evaluate.verdict.Verdict) the closest method is marked "closest", or the candidates within the noise
    floor "tie", and the floor is drawn as a band from the smallest candidate |Δ|; controls are marked † and
    never take part. Bars start at 0 on one plain axis, so 22, 56 and 100 are drawn as different as they are; a
    bar too short to see still carries its value.
    """
    df = models[models["model"] != "gold"].sort_values("abs_delta", kind="stable")
    values = df["abs_delta"].astype(float).tolist()
    images = df["images"].tolist() if "images" in df else [None] * len(df)
    kinds = df["kind"].tolist() if "kind" in df else ["method"] * len(df)
    text = []
    for name, v, n, kind in zip(df["model"], values, images, kinds):
        label = f"{v:.1f}" + (f" ({n:.0f} image{'s' if n != 1 else ''})" if n is not None and n == n else "")
        if kind == "control":
            label += " · control †"
        elif verdict is not None and name == verdict.winner:
            label += " · closest"
        elif verdict is not None and verdict.winner is None and name in verdict.leaders:
            label += " · tie"
        text.append(label)
    top = max([1.0, *values])
    # A long bar carries its label inside, at its end: outside, "81.8 (90 images)" ran past a narrow chart's edge.
    # The others carry it outside, where the axis leaves them room (the axis ends at top × DELTA_AXIS_ROOM).
    inside = [v > DELTA_INSIDE * top for v in values]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=[model_label(m) for m in df["model"]],
            orientation="h",
            marker_color=[model_color(m) for m in df["model"]],
            customdata=values,
            text=text,
            textposition=["inside" if i else "outside" for i in inside],
            insidetextanchor="end",
            textfont=dict(color=["white" if i else "#212121" for i in inside]),
            hovertemplate="%{y}: |Δ| %{customdata:.1f}<extra></extra>",
        )
    )
    fig.update_traces(cliponaxis=False)
    fig.update_xaxes(title="|Δ| (percentage points of D_f)", range=[0, top * DELTA_AXIS_ROOM])
    fig.update_yaxes(autorange="reversed")  # the closest to gold on top
    fig = _layout(fig, "|Δ| to gold on D_f (lower is better)", 340)
    if verdict is not None and verdict.leaders:
        best = verdict.row(verdict.leaders[0]).abs_delta
        floor = verdict.lead_floor  # the leader's floor: gold's spread or its own rerun spread, the larger
        width = floor * 100.0 / verdict.forget_count if verdict.forget_count else floor
        fig.add_vrect(x0=best, x1=best + width, fillcolor="#9e9e9e", opacity=0.15, line_width=0)
        # The band's name above the plot area, where no bar label can be (inside, it printed over "closest").
        fig.add_annotation(
            x=best,
            xref="x",
            xanchor="left",
            y=1,
            yref="paper",
            yanchor="bottom",
            showarrow=False,
            text="◂ grey band: noise floor",
            font=dict(size=12, color="#616161"),
        )
        fig.update_layout(margin=dict(t=72))
    return fig


DELTA_INSIDE = 0.5  # a |Δ| bar longer than this share of the longest carries its label inside
DELTA_AXIS_ROOM = 1.25  # the |Δ| axis ends this far past the longest bar: room for the shorter bars' labels


def utility_figure(models: pd.DataFrame) -> go.Figure:
    """A_test and A_r per model: what unlearning cost the model's usefulness. Bars start at 0 (an axis from 85
    would draw 89 a third of 99); each carries its value."""
    fig = go.Figure()
    for col, name, color in (("A_test", "A_test (test set)", "#1565c0"), ("A_r", "A_r (remain set)", "#90caf9")):
        fig.add_trace(
            go.Bar(
                x=[model_label(m) for m in models["model"]],
                y=models[col],
                name=name,
                marker_color=color,
                text=[f"{v:.1f}" for v in models[col]],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{x}: %{y:.2f}%<extra>" + col + "</extra>",
            )
        )
    fig.update_yaxes(title="accuracy (%)", range=[0, 105], tickvals=[0, 20, 40, 60, 80, 100])
    fig.update_layout(barmode="group")
    return _layout(fig, "Utility kept: test and remain accuracy", 340)


MAX_CLUSTER_LABELS = 12  # more classes than this: only the forget class's cluster is labelled (hover names the rest)


def umap_figure(
    df: pd.DataFrame,
    title: str,
    zoom: bool = False,
    height: int = 720,
    class_names: list[str] | None = None,
    frame: pd.DataFrame | None = None,
    legend: bool = True,
) -> go.Figure:
    """UMAP points by group (tables.umap_frame): other classes faded, D_f easy/hard on top; hover: id, class name.

    Args:
        zoom: show only the forget class's region (its remaining samples, D_f and D_a, with a 10% margin).
        height: pixels; with equal axis scales a tall plot keeps a class's cluster from shrinking to a blob.
        class_names: names by class index. Each class's cluster gets its name beside it (a short line points at
            the cluster's median point, so the name does not cover it); with more than MAX_CLUSTER_LABELS classes
            only the forget class is named on the map, the others in the hover.
        frame: the points that set the axis ranges (all maps of a side-by-side view, so they share them);
            default `df`. A side-by-side panel fills its box (no equal-scale constraint, which left a narrow
            panel mostly empty); the shared ranges keep the maps comparable.
    """

    def name_of(label) -> str:
        i = int(label)
        return chart_text(class_names[i]) if class_names is not None and 0 <= i < len(class_names) else str(i)

    fig = go.Figure()
    for group, (color, size, opacity, symbol) in GROUP_STYLE.items():
        part = df[df["group"] == group]
        if part.empty:
            continue
        custom = part[["id", "label", "role"]].assign(name=[name_of(v) for v in part["label"]]).to_numpy()
        fig.add_trace(
            go.Scattergl(
                x=part["x"],
                y=part["y"],
                mode="markers",
                name=f"{group} ({len(part)})",
                customdata=custom,
                marker=dict(color=color, size=size, opacity=opacity, symbol=symbol),
                hovertemplate="id %{customdata[0]} · class %{customdata[3]} · %{customdata[2]}"
                f"<extra>{group}</extra>",
            )
        )
    if class_names is not None and len(df):
        focus_labels = set(df.loc[df["group"] != "other classes", "label"].astype(int))
        many = df["label"].nunique() > MAX_CLUSTER_LABELS
        for label, part in df.groupby("label"):
            if many and int(label) not in focus_labels:
                continue
            fig.add_annotation(
                x=float(part["x"].median()),
                y=float(part["y"].median()),
                text=f"<b>{name_of(label)}</b>",
                showarrow=True,
                arrowhead=0,
                arrowcolor="#616161",
                ax=26,
                ay=-22,
                xanchor="left",
                font=dict(size=14, color="#212121"),
                bgcolor="rgba(255,255,255,0.8)",
            )
    fig.update_xaxes(showticklabels=False, title="")
    frame = df if frame is None else frame
    side_by_side = frame is not df
    fig.update_yaxes(showticklabels=False, title="", **({} if side_by_side else {"scaleanchor": "x"}))
    focus = frame[frame["group"] != "other classes"] if zoom else frame
    if (zoom or side_by_side) and not focus.empty:
        for axis, col in ((fig.update_xaxes, "x"), (fig.update_yaxes, "y")):
            lo, hi = float(focus[col].min()), float(focus[col].max())
            pad = 0.1 * (hi - lo) or 1.0
            axis(range=[lo - pad, hi + pad])
    fig.update_layout(dragmode="lasso", showlegend=legend, legend=dict(orientation="h", yanchor="top", y=-0.02, x=0))
    fig = _layout(fig, title, height)
    if side_by_side:
        fig.update_layout(margin=dict(l=4, r=4, t=44, b=4))
    return fig


def sweep_delta_figure(long: pd.DataFrame) -> go.Figure:
    """|Δ| per forget class per method (tables.sweep_delta_long), grouped bars."""
    fig = go.Figure()
    names = {display(name).short: name for name in (*REFERENCES, *METHODS.names())}  # Table 1 has the original
    for method, part in long.groupby("method", sort=False):
        fig.add_trace(
            go.Bar(
                x=part["class"],
                y=part["abs_delta"],
                name=method,
                marker_color=model_color(names.get(method, method)),
                hovertemplate="class %{x}: |Δ| %{y:.1f}<extra>" + method + "</extra>",
            )
        )
    fig.update_xaxes(title="forget class", type="category")
    top = float(long["abs_delta"].max()) if len(long) and long["abs_delta"].notna().any() else 0.0
    # From 0, never below: with every |Δ| at 0 plotly's own range is −1..1, an empty plot that says nothing.
    fig.update_yaxes(title="|Δ| (percentage points)", range=[0, max(1.0, top) * 1.1])
    fig.update_layout(barmode="group")
    if len(long) and top == 0:
        fig.add_annotation(
            x=0.5,
            xref="paper",
            y=0.5,
            yref="paper",
            showarrow=False,
            text="Every |Δ| is 0: each method lands exactly on gold's A_f in every run",
            font=dict(size=14),
        )
    return _layout(fig, "|Δ| to gold per forget class and method", 400)


CURVE_MEASURES = {"|Δ|": "|Δ| to gold (percentage points)", "agreement": "per-sample agreement with gold (%)"}


CURVE_MIN_RUNS = 3  # fewer runs at a point: its interval is not drawn


def forget_curve_figure(curve: pd.DataFrame, measure: str = "|Δ|") -> go.Figure:
    """Forgetting more data (paper Fig. 3): `measure` ('|Δ|' or 'agreement') per method against |D_f|, one
    line per method with its 95% CI over classes as error bars (evaluate.protocol.curve_frame). Points from fewer
    than 3 classes get no bar (a t interval over 2 is 12.7 times their spread and would flatten every line); the title
    says so. Both measures are percentages: the axis stays on 0-100."""
    fig = go.Figure()
    names = {display(name).short: name for name in METHODS.names()}
    units = "classes" if "classes" in curve else "runs"  # the interval is over classes (evaluate.protocol)
    thin = bool((curve[units] < CURVE_MIN_RUNS).any()) if units in curve else False
    for method, part in curve.groupby("method", sort=False):
        part = part.sort_values("|D_f|")
        bars = (
            part[f"{measure} CI ±"].where(part[units] >= CURVE_MIN_RUNS) if units in part else part[f"{measure} CI ±"]
        )
        fig.add_trace(
            go.Scatter(
                x=part["|D_f|"],
                y=part[measure],
                name=method,
                mode="lines+markers",
                line=dict(color=model_color(names.get(method, method))),
                error_y=dict(type="data", array=bars.fillna(0.0), visible=True),
                hovertemplate="|D_f| %{x}: %{y:.1f}<extra>" + method + "</extra>",
            )
        )
    fig.update_xaxes(title="|D_f| (samples forgotten)", type="log")
    fig.update_yaxes(title=CURVE_MEASURES[measure], range=[-2, 102])
    note = f"<br><sup>no 95% CI bar where fewer than {CURVE_MIN_RUNS} {units}</sup>" if thin else ""
    return _layout(fig, f"{CURVE_MEASURES[measure]} against |D_f|{note}", 400)


PRESENT_FONT = 17  # px: tick labels and axis titles read from the back of a classroom
PRESENT_INK = "#212121"  # near black: plotly's default tick grey fades on a projector


def presentation(fig: go.Figure, height: int) -> go.Figure:
    """`fig` for a projected screen: `height` px, larger text, tick labels and axis titles dark (every axis of
    every subplot)."""
    fig.update_layout(height=height, font=dict(size=PRESENT_FONT - 1, color=PRESENT_INK))
    axis = dict(
        tickfont=dict(size=PRESENT_FONT, color=PRESENT_INK), title_font=dict(size=PRESENT_FONT, color=PRESENT_INK)
    )
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis)
    for note in fig.layout.annotations:  # dark, and a small note (the noise floor's) enlarged
        note.font.color = PRESENT_INK
        if note.font.size is not None and note.font.size < PRESENT_FONT - 3:
            note.font.size = PRESENT_FONT - 3
    return fig


def reliability_figure(curves: dict[str, list]) -> go.Figure:
    """Reliability curves of p(easy): for each named curve (e.g. the twin's held-out samples, D_f against gold),
    its bins' mean p(easy) against the share that is easy, the marker's size by the bin's count; the diagonal
    is a perfectly calibrated forecast. `curves`: name -> [{"p_mean", "truth_mean", "n"}, ...]."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated", line=dict(color="#9e9e9e", dash="dot"))
    )
    colors = ["#1565c0", "#212121", "#8e24aa"]
    for i, (name, bins) in enumerate(curves.items()):
        if not bins:
            continue
        n = [b["n"] if isinstance(b, dict) else b.n for b in bins]
        get = (lambda b, k: b[k]) if isinstance(bins[0], dict) else (lambda b, k: getattr(b, k))
        fig.add_trace(
            go.Scatter(
                x=[get(b, "p_mean") for b in bins],
                y=[get(b, "truth_mean") for b in bins],
                mode="lines+markers",
                name=name,
                marker=dict(size=[6 + 14 * (k / max(n)) ** 0.5 for k in n], color=colors[i % len(colors)]),
                line=dict(color=colors[i % len(colors)]),
                text=[f"{k} samples" for k in n],
                hovertemplate="p(easy) %{x:.2f}: %{y:.2f} easy (%{text})<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_xaxes(title="mean calibrated p(easy) in the bin", range=[0, 1.02])
    fig.update_yaxes(title="share easy (or mean p_i)", range=[0, 1.02])
    return _layout(fig, "Reliability of p(easy)", 360)
