"""Chart builders (DataFrame -> plotly Figure) and the table shaping behind them, on small hand-made inputs."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from apptools import ROOT, typed
from PIL import Image

from tmu_core.evaluate.verdict import verdict
from tmu_core.store.schema import RunStatus
from ui import charts, images, tables

pytestmark = pytest.mark.fast  # `make test-fast`


def metrics_fixture() -> dict:
    """A metrics.json as the pipeline writes it, for three models, with numbers easy to check by hand."""

    def model(a_f, delta, test=95.0, remain=99.0):
        return {
            "acc_test": test,
            "acc_remain": remain,
            "acc_forget": a_f,
            "delta": delta,
            "abs_delta": abs(delta),
            "activation_distance": 0.1,
            "mia": 50.0,
            "seconds": 1.0,
        }

    return {
        "run_id": "r1",
        "dataset": "digits",
        "model": "small_cnn",
        "forget_class": 8,
        "forget_class_name": "8",
        "forget_count": 10,
        "device": "cpu",
        "models": {
            "tmu": model(80.0, 0.0),
            "gold": model(80.0, 0.0),
            "original": model(100.0, 20.0, 96.0, 100.0),
            "neggrad": model(10.0, -70.0, 90.0, 96.0),
        },
        "tmu": {
            "label_accuracy": 90.0,
            "features_used": ["NF", "AF", "CF"],
            "gold_easy": 9,
            "gold_hard": 1,
            "label_accuracy_by_features": {"NF": 85.0, "AF": 70.0, "NF+AF+CF": 90.0},
            "confusion": {"easy_as_easy": 7, "easy_as_hard": 1, "hard_as_easy": 2, "hard_as_hard": 3},
            "pred_easy": 9,
            "pred_hard": 4,
            "aux_count": 20,
            "aux_easy": 15,
            "aux_hard": 5,
            "aux_sizing": {},
            "threshold": 0.5,
        },
    }


def samples_fixture() -> pd.DataFrame:
    """Four D_f rows and two D_a rows shaped like samples.csv."""
    return pd.DataFrame(
        {
            "id": [10, 11, 12, 13, 0, 1],
            "role": ["forget"] * 4 + ["aux"] * 2,
            "source_id": [-1] * 4 + [50, 50],
            "augmented": [False] * 5 + [True],
            "NF": [0.1, 0.2, 0.9, 0.8, 0.1, 0.7],
            "AF": [0.0, 0.1, 2.0, 1.5, 0.0, 1.0],
            "CF": [1.0, 1.5, 5.0, 4.0, 1.0, 3.0],
            "p_easy": [0.9, 0.8, 0.2, 0.6, 0.95, 0.1],
            "pred_label": ["easy", "easy", "hard", "easy", "easy", "hard"],
            "true_label": ["easy", "hard", "hard", "hard", "easy", "hard"],
            "pred_original": [8] * 6,
            "pred_gold": [8, 3, 3, 1, 8, 8],
            "pred_tmu": [8, 8, 2, 8, 8, 8],
        }
    )


# ---------------------------------------------------------------- tables
def test_models_frame_orders_models_and_keeps_the_numbers():
    df = tables.models_frame(typed(metrics_fixture()))
    assert list(df["model"]) == ["original", "gold", "tmu", "neggrad"]  # references, then the registry's order
    row = df.set_index("model").loc["neggrad"]
    assert (row["A_f"], row["delta"], row["abs_delta"], row["A_test"]) == (10.0, -70.0, 70.0, 90.0)
    assert set(df["timing"]) == {"this run"}


def test_models_frame_labels_the_seconds_of_cached_models():
    metrics = metrics_fixture()
    metrics["models"]["gold"]["cached"] = True
    metrics["models"]["original"]["cached"] = False
    timing = tables.models_frame(typed(metrics)).set_index("model")["timing"]
    assert timing["gold"] == "trained earlier (cached)" and timing["original"] == timing["tmu"] == "this run"
    metrics["cost_ratio"] = 1.0
    text = tables.cost_text(typed(metrics))
    assert text.startswith("1.00× = TMU's unlearning time over gold's training time. TMU took 1.0 s")
    assert "gold model from scratch took 1.0 s (trained earlier (cached), not by this run)" in text


def test_cost_text_says_the_audit_extras_are_left_out():
    """'0.17×' beside 'TMU 223.9 s, gold 498.3 s' reads wrong unless the ablation's seconds are named."""
    metrics = metrics_fixture()
    metrics["models"]["tmu"]["seconds"], metrics["models"]["gold"]["seconds"] = 223.9, 498.3
    metrics["tmu"]["stage_seconds"] = {"twin": 10.0, "ablation": 139.2, "unlearn": 70.0}
    metrics["cost_ratio"] = (223.9 - 139.2) / 498.3
    text = tables.cost_text(typed(metrics))
    assert "0.17×" in text and "139.2 s went to the audit extras" in text and "84.7 s counted" in text


def explain_fixture(tmu_delta: float) -> dict:
    metrics = metrics_fixture()
    metrics["forget_count"] = 100
    metrics["models"]["tmu"]["abs_delta"] = tmu_delta
    metrics["models"]["finetune"] = {**metrics["models"]["tmu"], "abs_delta": 4.0}
    metrics["tmu"].update(
        {
            "gold_easy": 96,
            "gold_hard": 4,
            "pred_hard": 11,
            "aux_hard": 6,
            "aux_count": 56,
            "aux_sizing": {"requested": 500, "used": 56, "capped": True},
        }
    )
    return metrics


def test_alignment_note_explains_a_worse_tmu_with_the_runs_numbers():
    note = tables.alignment_note(typed(explain_fixture(10.0)))  # 6 images behind FT's 4: beyond the 5-image floor
    for needle in (
        "Gold misclassifies 4 of the 100",
        "TMU called 11",
        "D_a had 56 samples of the 500 Eq. 3 asks for",
        "(6 hard)",
        "too few",
        "CIFAR-10",
    ):
        assert needle in note, needle
    assert tables.alignment_note(typed(explain_fixture(9.0))) is None  # 5 images behind: a tie within the floor
    assert tables.alignment_note(typed(explain_fixture(1.0))) is None


def test_all_easy_baseline_is_the_share_gold_gets_right():
    assert tables.all_easy_baseline(tables.tmu_summary(typed(explain_fixture(1.0)))) == 96.0  # gold easy 96, hard 4
    ablation = tables.ablation_frame(typed(metrics_fixture()))
    assert ablation.iloc[-1].tolist() == ["all easy (baseline)", 90.0, False]
    assert len(tables.ablation_frame(typed(metrics_fixture()), baseline=False)) == 3


def test_for_display_shows_yes_no_as_text():
    df = tables.for_display(tables.audit_frame(samples_fixture(), "aux"))
    assert list(df["agree"]) == ["✓", "✓"] and list(df["augmented"]) == ["✗", "✓"]


def test_samples_csv_splits_the_id_by_meaning():
    csv = pd.read_csv(io.StringIO(tables.samples_csv(samples_fixture().assign(image="data:"))))
    assert list(csv.columns[:2]) == ["forget_id", "aux_index"] and "id" not in csv and "image" not in csv
    assert csv["forget_id"].tolist()[:4] == [10, 11, 12, 13] and csv["forget_id"].iloc[4:].isna().all()
    assert csv["aux_index"].iloc[4:].tolist() == [0, 1] and csv["aux_index"].iloc[:4].isna().all()


def test_run_label_leads_with_the_users_run_name():
    from tmu_core.store import RunInfo

    cfg = {
        "name": "demo for class",
        "data": {"dataset": "digits"},
        "forget": {"forget_class": "8", "forget_count": 100},
    }
    info = RunInfo("x", "complete", "done", 1.0, "", "2026-11-27T00:11:00", cfg)
    assert tables.run_label(info) == "demo for class · 11-27 00:11 · digits · class 8 · 100"


@pytest.mark.parametrize(
    "text, error",
    [
        ("", "Enter a whole number from 1 to 124"),
        ("abc", "'abc' is not a whole number: enter one from 1 to 124"),
        ("2.5", "'2.5' is not a whole number: enter one from 1 to 124"),
        ("125", "125 is out of range: enter a whole number from 1 to 124"),
        ("0", "0 is out of range: enter a whole number from 1 to 124"),
        (" 50 ", None),
        ("124", None),
    ],
)
def test_typed_sample_counts_are_checked_with_a_reason(text, error):
    from ui.widgets import whole_number_error

    assert whole_number_error(text, 1, 124) == error


def test_run_label_is_short():
    from tmu_core.store import RunInfo

    info = RunInfo(
        "demo-20261127-001139-ad55",
        "complete",
        "complete",
        1.0,
        None,
        "2026-11-27T00:11:39",
        {"data": {"dataset": "digits"}, "forget": {"forget_class": "8", "forget_count": 100}},
    )
    # the time before the forget set: a narrow sidebar cuts the end of a label, and the time told runs apart
    assert tables.run_label(info) == "11-27 00:11 · digits · class 8 · 100"
    assert tables.run_label(RunInfo("x", "failed", "gold", 0.3, "boom", "", None)) == "x · class ? (failed)"


def test_audit_frame_marks_gold_verdicts_and_agreement():
    df = tables.audit_frame(samples_fixture(), "forget")
    assert list(df["id"]) == [10, 11, 12, 13]
    assert list(df["verdict"]) == ["gold correct ✓", "gold wrong ✗", "gold wrong ✗", "gold wrong ✗"]
    assert list(df["agree"]) == [True, False, True, False]
    aux = tables.audit_frame(samples_fixture(), "aux")
    assert list(aux["verdict"]) == ["original correct ✓", "original wrong ✗"] and list(aux["augmented"]) == [
        False,
        True,
    ]


def test_filter_audit_by_prediction_truth_and_disagreement():
    df = tables.audit_frame(samples_fixture(), "forget")
    assert list(tables.filter_audit(df, disagreements_only=True)["id"]) == [11, 13]
    assert list(tables.filter_audit(df, predicted=["hard"])["id"]) == [12]
    assert list(tables.filter_audit(df, truth=["easy"])["id"]) == [10]
    assert tables.filter_audit(df, predicted=[]).empty


def test_confusion_frame_rows_are_gold_columns_are_predicted():
    cm = tables.confusion_frame(metrics_fixture()["tmu"]["confusion"])
    assert cm.loc["easy", "hard"] == 1 and cm.loc["hard", "easy"] == 2 and int(cm.values.sum()) == 13


def test_umap_frame_groups_points_by_role_class_and_label():
    umap = {
        "xy": np.arange(12, dtype=np.float32).reshape(6, 2),
        "ids": np.array([100, 101, 10, 12, 0, 1]),
        "role": np.array(["remain", "remain", "forget", "forget", "aux", "aux"]),
        "label": np.array([8, 3, 8, 8, 8, 8]),
    }
    df = tables.umap_frame(umap, samples_fixture(), forget_class=8, color_by="truth")
    assert list(df["group"]) == ["D_r of the class", "other classes", "D_f easy", "D_f hard"]
    predicted = tables.umap_frame(umap, samples_fixture(), 8, color_by="predicted", show_aux=True)
    assert list(predicted["group"]) == [
        "D_r of the class",
        "other classes",
        "D_f easy",
        "D_f hard",
        "D_a easy",
        "D_a hard",
    ]


def test_sweep_delta_long_drops_the_avg_row():
    t1 = pd.DataFrame(
        {
            "class": ["0", "1", "Avg"],
            "TMU |Δ|": [1.0, 3.0, 2.0],
            "FT |Δ|": [5.0, 7.0, 6.0],
            "TMU A_f": [90.0, 80.0, 85.0],
        }
    )
    long = tables.sweep_delta_long(t1)
    assert len(long) == 4 and set(long["method"]) == {"TMU", "FT"} and "Avg" not in set(long["class"])


def test_runs_frame_describes_the_forget_set_size():
    from tmu_core.store import RunInfo

    def cfg(forget):
        return {"data": {"dataset": "digits"}, "train": {"model": "small_cnn"}, "forget": forget}

    infos = [
        RunInfo("a", "complete", "complete", 1.0, None, "t", cfg({"forget_class": "8", "forget_count": 100})),
        RunInfo("b", "failed", "gold", 0.3, "boom", "t", cfg({"forget_class": "3", "forget_ids": [1, 2]})),
        RunInfo("c", "damaged", "", 0.0, "bad", "t", None),
    ]
    df = tables.runs_frame(infos)
    assert list(df["forget set"]) == ["digits · class 8 · 100", "digits · class 3 · 2", "—"]
    assert list(df["error"]) == ["", "boom", "bad"]
    # a complete run's stage would only repeat its state; a stopped run's says where it stopped
    assert list(df["state"]) == ["complete", "failed: gold", "damaged"]
    # seven columns: at 1280 px beside the sidebar the right-hand ones (the error) stay in view
    assert list(df.columns) == ["run", "state", "progress", "forget set", "model", "updated", "error"]


def test_selected_points_reads_ids_and_roles():
    points = [{"customdata": [5, 8, "forget"]}, {"customdata": 7}, {"x": 1}]
    assert tables.selected_points(points) == [(5, "forget"), (7, "")]


def test_stage_line_marks_each_stage():
    line = tables.stage_line(
        RunStatus(
            state="running",
            stages={
                "original": {"state": "cached", "seconds": 3.0},
                "tmu": {"state": "done", "seconds": 1.25},
                "neggrad": {"state": "running"},
                "evaluate": {"state": "pending"},
            },
        )
    )
    assert line == "**original** ✓ cached · **tmu** ✓ 1.2 s · :blue[**neggrad** …] · :gray[evaluate]"


# ---------------------------------------------------------------- images
def decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_png_data_url_enlarges_by_whole_pixels_and_frames():
    img = np.zeros((8, 8, 1), dtype=np.uint8)
    img[0, 0] = 255
    plain = decode(images.png_data_url(img, min_side=48))
    assert plain.shape == (48, 48) and plain[:6, :6].min() == 255 and plain[6:, 6:].max() == 0
    framed = decode(images.png_data_url(img, min_side=48, frame=(214, 40, 40)))
    assert framed.shape == (48, 48, 3) and tuple(framed[0, 20]) == (214, 40, 40) and tuple(framed[24, 24]) == (0, 0, 0)
    with pytest.raises(ValueError):
        images.png_data_url(np.zeros((8, 8), dtype=np.uint8))


def test_image_grid_fills_rows_and_marks_the_chosen():
    gallery = pd.DataFrame({"id": [1, 2, 3], "image": ["a1", "a2", "a3"], "framed": ["f1", "f2", "f3"]})
    grid = tables.image_grid(gallery, {2}, per_row=2)
    assert list(grid.columns) == ["id 1", "image 1", "id 2", "image 2"]
    assert grid.values.tolist() == [["1", "a1", "2", "f2"], ["3", "a3", "", ""]]  # each image beside its sample id


# ---------------------------------------------------------------- charts
def test_confusion_figure_colours_agreements_green_and_errors_red():
    fig = charts.confusion_figure(tables.confusion_frame(metrics_fixture()["tmu"]["confusion"]), 90.0)
    assert isinstance(fig, go.Figure) and fig.data[0].type == "heatmap"
    assert (
        np.asarray(fig.data[0].customdata).tolist() == [[7, 1], [2, 3]]
        and "label accuracy 90.0%" in fig.layout.title.text
    )
    z = np.asarray(fig.data[0].z)
    assert (z[0, 0] > 0 and z[1, 1] > 0) and (z[0, 1] < 0 and z[1, 0] < 0)  # diagonal agrees, off-diagonal errs
    assert z[0, 0] > z[1, 1] > 0  # 7 agreements shade deeper than 3
    assert fig.data[0].colorscale[0][1] == charts.HARD and fig.data[0].colorscale[-1][1] == charts.EASY
    assert [list(r) for r in fig.data[0].text] == [["7<br>agree", "1<br>error"], ["2<br>error", "3<br>agree"]]


@pytest.mark.parametrize("kind, trace", [("violin", "violin"), ("histogram", "histogram")])
def test_feature_distributions_split_each_feature_by_label(kind, trace):
    df = tables.feature_frame(samples_fixture(), "forget", "truth")
    fig = charts.feature_distributions(df, kind)
    assert len(fig.data) == 6 and {t.type for t in fig.data} == {trace}
    values = {(t.name, t.xaxis): len(t.y if kind == "violin" else t.x) for t in fig.data}
    assert values[("easy", "x")] == 1 and values[("hard", "x")] == 3
    assert sum(t.showlegend for t in fig.data) == 2  # one legend entry per label
    axis = "xaxis" if kind == "histogram" else "yaxis"
    assert [fig.layout[f"{axis}{i}"].title.text for i in ("", "2", "3")] == ["NF value", "AF value", "CF value"]
    if kind == "histogram":
        assert fig.layout.yaxis.title.text == "samples"


def test_held_out_features_join_the_charts_and_tables_only_when_the_run_stored_them():
    plain = samples_fixture()
    assert tables.feature_columns(plain) == ["NF", "AF", "CF"]
    extra = plain.assign(HNF=np.linspace(0.1, 0.6, len(plain)), HM=np.linspace(-2, 3, len(plain)))
    assert tables.feature_columns(extra) == ["NF", "AF", "CF", "HNF", "HM"]
    fig = charts.feature_distributions(tables.feature_frame(extra, "forget", "truth"))
    assert [a.text for a in fig.layout.annotations] == ["NF", "AF", "CF", "HNF", "HM"]
    assert {"HNF", "HM"} <= set(tables.audit_frame(extra, "forget").columns)
    assert "HM" not in tables.audit_frame(plain, "forget").columns


def test_feature_scatter_carries_ids_for_selection():
    df = tables.feature_frame(samples_fixture(), "forget", "predicted")
    fig = charts.feature_scatter(df, "NF", "CF")
    easy = next(t for t in fig.data if t.name == "easy")
    assert list(easy.customdata) == [10, 11, 13] and list(easy.y) == [1.0, 1.5, 4.0]
    assert fig.layout.xaxis.title.text == "NF" and fig.layout.dragmode == "lasso"


def test_ablation_figure_highlights_the_subset_tmu_used():
    fig = charts.ablation_figure(tables.ablation_frame(typed(metrics_fixture())))
    bar = fig.data[0]
    assert list(bar.x) == ["NF", "AF", "NF+AF+CF", "all easy (baseline)"] and list(bar.y) == [85.0, 70.0, 90.0, 90.0]
    assert len({bar.marker.color[0], bar.marker.color[2], bar.marker.color[3]}) == 3  # plain, used, baseline
    lo, hi = fig.layout.yaxis.range  # from 0: AF 70 is drawn 70/85 of NF 85, not a third of it
    assert lo == 0 and hi > 100 and bar.cliponaxis is False
    (line,) = fig.layout.shapes
    assert line.y0 == 90.0  # the baseline as a line across the chart


def test_forget_accuracy_figure_puts_gold_first_and_draws_its_target_line():
    fig = charts.forget_accuracy_figure(tables.models_frame(typed(metrics_fixture())))
    assert list(fig.data[0].x)[0] == "Gold (retrained)" and list(fig.data[0].y) == [80.0, 100.0, 80.0, 10.0]
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 80.0


def test_forget_accuracy_labels_stay_clear_of_the_target_line_and_bars():
    metrics = metrics_fixture()
    metrics["models"]["randlabel"] = {**metrics["models"]["neggrad"], "acc_forget": 0.0}
    fig = charts.forget_accuracy_figure(tables.models_frame(typed(metrics)))
    bar = fig.data[0]
    assert list(bar.text) == ["80.0", "100.0", "80.0", "10.0", "0.0"]  # a bar at 0 still has its label
    # tall bars: the label at the bar's foot, far below the line near the top; short bars: just above
    assert list(bar.textposition) == ["inside", "inside", "inside", "outside", "outside"]
    assert bar.insidetextanchor == "start"
    (note,) = fig.layout.annotations  # the line's note in the band above 100%, where no bar reaches
    assert note.yref == "paper" and note.y == 1 and note.yanchor == "top" and "gold's A_f, 80.0%" in note.text
    assert fig.layout.yaxis.range[1] >= 115


def test_delta_figure_ranks_the_original_beside_the_methods_without_gold():
    fig = charts.delta_figure(tables.models_frame(typed(metrics_fixture())))
    assert list(fig.data[0].y) == ["TMU", "Original", "Negative gradient"]
    assert list(fig.data[0].customdata) == [0.0, 20.0, 70.0]
    assert not any("tie" in t or "closest" in t for t in fig.data[0].text)  # no verdict given: no marks


def outlier_models() -> pd.DataFrame:
    """TMU 2.0 and FT 3.0 beside NG 86 and RL 97, on a D_f of 100 images."""
    metrics = metrics_fixture()
    metrics["forget_count"] = 100
    base = metrics["models"]["neggrad"]
    for name, d in (("tmu", 2.0), ("finetune", 3.0), ("neggrad", 86.0), ("randlabel", 97.0)):
        metrics["models"][name] = {**base, "abs_delta": d, "delta": -d}
    return tables.models_frame(typed(metrics))


def test_delta_figure_draws_every_bar_from_zero_at_its_true_length():
    """With a best |Δ| of 0, 22, 56 and 100 must not be drawn alike (an axis cut at 0-2 did that)."""
    metrics = metrics_fixture()
    metrics["forget_count"] = 100
    base = metrics["models"]["neggrad"]
    for name, d in (("tmu", 0.0), ("finetune", 22.2), ("neggrad", 55.6), ("randlabel", 100.0), ("original", 3.0)):
        metrics["models"][name] = {**base, "abs_delta": d, "delta": -d}
    fig = charts.delta_figure(tables.models_frame(typed(metrics)), verdict(typed(metrics)))
    bar = fig.data[0]
    assert list(bar.x) == [0.0, 3.0, 22.2, 55.6, 100.0]  # the drawn lengths are the values
    lo, hi = fig.layout.xaxis.range
    assert lo == 0 and hi >= 100
    assert not any("cut" in t for t in bar.text) and bar.text[4].startswith("100.0 (100 images)")
    # 0 and 3 images from gold: within the 5-image floor, the original (doing nothing) too
    assert "tie" in bar.text[0] and "tie" in bar.text[1] and not any("tie" in t for t in bar.text[2:])
    (band,) = fig.layout.shapes  # the noise floor from the best |Δ|: 0 to 0 + 5 images of 100
    assert (band.x0, band.x1) == (0.0, 5.0)


def test_delta_figure_marks_a_winner_and_never_a_control():
    metrics = metrics_fixture()
    metrics["forget_count"] = 100
    metrics["models"]["oracle_labels"] = {**metrics["models"]["tmu"], "abs_delta": 0.0}
    fig = charts.delta_figure(tables.models_frame(typed(metrics)), verdict(typed(metrics)))
    text = dict(zip(fig.data[0].y, fig.data[0].text))
    assert text["TMU"].endswith("· closest")  # TMU 0 against the original's 20 and NG's 70
    assert (
        "control †" in text[tables.model_label("oracle_labels")]
        and "tie" not in text[tables.model_label("oracle_labels")]
    )


def test_verdict_frame_ranks_candidates_then_controls():
    from ui.verdict import verdict_frame

    metrics = metrics_fixture()
    metrics["forget_count"] = 100
    metrics["models"]["random_k"] = {**metrics["models"]["tmu"], "abs_delta": 1.0}
    frame = verdict_frame(verdict(typed(metrics)))
    assert list(frame["model"]) == [
        "TMU",
        "Original (did nothing)",
        "Negative gradient",
        tables.model_label("random_k"),
    ]
    assert list(frame["standing"]) == ["closest", "", "", "control †"]
    assert list(frame.columns[:2]) == ["model", "standing"]  # seen first in a narrow table
    assert len(frame.columns) <= 7  # what 1280 px shows beside the sidebar
    assert frame["noise floor"].iloc[0] == "5 images · default (one gold)"
    assert list(frame["|Δ| in images"]) == [0, 20, 70, 1]


def test_utility_figure_groups_test_and_remain_accuracy():
    fig = charts.utility_figure(tables.models_frame(typed(metrics_fixture())))
    assert [t.name.split()[0] for t in fig.data] == ["A_test", "A_r"] and fig.layout.barmode == "group"
    assert fig.layout.yaxis.range[0] == 0  # from zero: 89 is not drawn a third of 99


def test_umap_figure_draws_each_group_once_with_hover_ids():
    df = pd.DataFrame(
        {
            "x": [0.0, 1, 2, 3],
            "y": [0.0, 1, 2, 3],
            "id": [1, 2, 3, 4],
            "label": [3, 8, 8, 8],
            "role": ["remain", "remain", "forget", "forget"],
            "group": ["other classes", "D_r of the class", "D_f easy", "D_f easy"],
        }
    )
    fig = charts.umap_figure(df, "map")
    # the class's remaining samples are drawn above D_f
    assert [t.name for t in fig.data] == ["other classes (1)", "D_f easy (2)", "D_r of the class (1)"]
    assert [list(c) for c in fig.data[1].customdata] == [[3, 8, "forget", "8"], [4, 8, "forget", "8"]]
    assert fig.layout.height >= 700 and fig.layout.xaxis.range is None
    zoomed = charts.umap_figure(df, "map", zoom=True)  # the forget class spans x and y 1..3
    assert list(zoomed.layout.xaxis.range) == pytest.approx([0.8, 3.2])
    assert list(zoomed.layout.yaxis.range) == pytest.approx([0.8, 3.2])


def test_sweep_delta_figure_has_one_series_per_method():
    long = pd.DataFrame(
        {"class": ["0", "1", "0", "1"], "method": ["TMU", "TMU", "FT", "FT"], "abs_delta": [1.0, 2, 3, 4]}
    )
    fig = charts.sweep_delta_figure(long)
    assert [t.name for t in fig.data] == ["TMU", "FT"] and list(fig.data[1].y) == [3.0, 4.0]


def test_sweep_delta_long_drops_the_ci_rows_of_tuning_and_held_out_blocks():
    t1 = pd.DataFrame(
        {
            "class": ["3", "5", "Avg (held-out)", "95% CI ± (held-out)", "Avg (tuning)", "95% CI ± (tuning)"],
            "TMU |Δ|": [1.0, 3.0, 3.0, float("nan"), 1.0, float("nan")],
        }
    )
    assert list(tables.sweep_delta_long(t1)["class"]) == ["3", "5"]


def test_audit_frame_shows_p_gold_beside_the_verdict_when_there_are_several_golds():
    samples = samples_fixture()
    assert "p_gold" not in tables.audit_frame(samples, "forget")
    samples["p_gold"] = [1.0, 1 / 3, 0.0, 2 / 3, np.nan, np.nan]
    df = tables.audit_frame(samples, "forget")
    cols = list(df.columns)
    assert cols.index("p_gold") == cols.index("verdict") + 1 and list(df["p_gold"]) == pytest.approx(
        [1, 1 / 3, 0, 2 / 3]
    )
    assert "p_gold" not in tables.audit_frame(samples, "aux")


def test_forget_curve_figure_draws_one_line_per_method_with_ci_bars():
    curve = pd.DataFrame(
        {
            "|D_f|": [100, 500, 100, 500],
            "method": ["TMU", "TMU", "FT", "FT"],
            "runs": 3,
            "|Δ|": [2.0, 4.0, 6.0, 9.0],
            "|Δ| CI ±": [1.0, 0.5, np.nan, 2.0],
            "agreement": [90.0, 85.0, 70.0, 60.0],
            "agreement CI ±": [1.0, 1.0, 1.0, 1.0],
        }
    )
    fig = charts.forget_curve_figure(curve, "|Δ|")
    assert [t.name for t in fig.data] == ["TMU", "FT"] and list(fig.data[1].y) == [6.0, 9.0]
    assert list(fig.data[1].error_y.array) == [0.0, 2.0]  # a missing interval draws no bar
    agreement = charts.forget_curve_figure(curve, "agreement")
    assert list(agreement.data[0].y) == [90.0, 85.0] and "agreement" in agreement.layout.yaxis.title.text


def test_umap_figure_labels_clusters_and_shares_a_frame():
    df = pd.DataFrame(
        {
            "x": [0.0, 0.2, 5, 5.2],
            "y": [0.0, 0.2, 5, 5.4],
            "id": [1, 2, 3, 4],
            "label": [3, 3, 8, 8],
            "role": ["remain"] * 2 + ["forget"] * 2,
            "group": ["other classes", "other classes", "D_f easy", "D_f hard"],
        }
    )
    names = [str(i) for i in range(10)]
    fig = charts.umap_figure(df, "map", class_names=names)
    labels = {a.text: (a.x, a.y) for a in fig.layout.annotations}
    assert labels == {"<b>3</b>": (0.1, 0.1), "<b>8</b>": (5.1, 5.2)}  # each cluster named at its median
    wider = pd.concat([df, df.assign(x=df["x"] + 10)])  # the frame of all side-by-side maps
    shared = charts.umap_figure(df, "map", frame=wider, legend=False)
    assert list(shared.layout.xaxis.range) == pytest.approx([-1.52, 16.72]) and shared.layout.showlegend is False
    # a panel of a side-by-side view fills its box: no equal scales (a narrow panel was mostly empty space)
    assert shared.layout.yaxis.scaleanchor is None and fig.layout.yaxis.scaleanchor == "x"
    # names sit beside their cluster, a short line pointing at it, not on top of the points
    assert all(a.showarrow and a.ax > 0 and a.xanchor == "left" for a in fig.layout.annotations)


def test_umap_figure_with_many_classes_names_only_the_forget_class_on_the_map():
    """40 face identities labelled at their medians made an illegible pile: only the forget class is named on the
    map, every point's class name is in its hover."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(40), 3)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=120),
            "y": rng.normal(size=120),
            "id": np.arange(120),
            "label": labels,
            "role": "remain",
            "group": np.where(labels == 11, "D_r of the class", "other classes"),
        }
    )
    names = [f"person {i}" for i in range(40)]
    fig = charts.umap_figure(df, "map", class_names=names)
    assert [a.text for a in fig.layout.annotations] == ["<b>person 11</b>"]
    other = next(t for t in fig.data if t.name.startswith("other classes"))
    assert other.customdata[0][3].startswith("person ") and "customdata[3]" in other.hovertemplate


def test_maps_of_two_models_are_aligned_onto_the_first():
    from tmu_core.jobs.embedding import aligned

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(40, 2)).astype(np.float32)
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])
    maps = {"original": {"xy": xy}, "gold": {"xy": (2.5 * xy @ turn + 7).astype(np.float32)}}
    out = aligned(maps)
    assert out["original"]["xy"] is xy and np.allclose(out["gold"]["xy"], xy, atol=1e-4)


def test_forget_curve_figure_draws_no_bar_from_fewer_than_three_runs():
    """Two runs give a t interval 12.7 times their spread: the curve keeps its points and drops those bars."""
    curve = pd.DataFrame(
        {
            "|D_f|": [50, 100],
            "method": ["TMU", "TMU"],
            "runs": [2, 6],
            "|Δ|": [8.0, 4.0],
            "|Δ| CI ±": [150.0, 2.0],
            "agreement": [74.0, 78.0],
            "agreement CI ±": [90.0, 3.0],
        }
    )
    fig = charts.forget_curve_figure(curve, "|Δ|")
    assert list(fig.data[0].error_y.array) == [0.0, 2.0] and list(fig.layout.yaxis.range) == [-2, 102]
    assert "no 95% CI bar where fewer than 3 runs" in fig.layout.title.text


def test_forget_curve_figure_counts_classes_not_runs_for_its_bars():
    """The interval is over classes (the unit): 2 classes of 3 seeds each (6 runs) still get no bar."""
    curve = pd.DataFrame(
        {
            "|D_f|": [50, 100],
            "method": ["TMU", "TMU"],
            "classes": [2, 3],
            "runs": [6, 9],
            "|Δ|": [8.0, 4.0],
            "|Δ| CI ±": [150.0, 2.0],
            "agreement": [74.0, 78.0],
            "agreement CI ±": [90.0, 3.0],
        }
    )
    fig = charts.forget_curve_figure(curve, "|Δ|")
    assert list(fig.data[0].error_y.array) == [0.0, 2.0]
    assert "no 95% CI bar where fewer than 3 classes" in fig.layout.title.text


def test_audit_frame_names_the_classes_the_models_say():
    """'Gold says 11' meant nothing on a 40-identity face set: the class is named."""
    df = tables.audit_frame(samples_fixture(), "forget", [f"class{i}" for i in range(20)])
    says = [c for c in df.columns if c.endswith(" says")]
    assert says and all(" · class" in str(v) for c in says for v in df[c])
    assert tables.class_label(8, [str(i) for i in range(10)]) == "8"  # digits: the index is the name
    assert tables.class_label(3, ["airplane", "automobile", "bird", "cat"]) == "3 · cat"


# ---------------------------------------------------------------- what a teacher sees at 1280x720
def test_delta_figure_names_the_noise_floor_above_the_bars_not_over_a_label():
    """The band's name sat at its top left, over the top bar's "· closest" label (the winner's)."""
    metrics = metrics_fixture()
    metrics["forget_count"] = 100
    fig = charts.delta_figure(tables.models_frame(typed(metrics)), verdict(typed(metrics)))
    (band,) = fig.layout.shapes
    assert not band.label.text and not any(getattr(s, "name", None) for s in fig.layout.shapes)
    (note,) = [a for a in fig.layout.annotations if "noise floor" in a.text]
    # above the plot area (paper y >= 1, drawn upwards), where no bar or bar label is
    assert note.yref == "paper" and note.y >= 1 and note.yanchor == "bottom"
    assert fig.layout.margin.t >= 70  # room for it under the title


def test_delta_figure_puts_a_long_bars_label_inside_it():
    """'81.8 (90 images) · closest' outside an 81.8 bar ran past a narrow chart's right edge and was cut."""
    models = outlier_models()
    fig = charts.delta_figure(models)
    bar = fig.data[0]
    top = max(bar.x)
    for x, pos in zip(bar.x, bar.textposition):
        assert pos == ("inside" if x > charts.DELTA_INSIDE * top else "outside")
    assert list(bar.textposition)[-1] == "inside" and list(bar.textposition)[0] == "outside"
    # an outside label starts at most half way along the axis: the other half is its room
    assert fig.layout.xaxis.range[1] >= top * 1.2


def test_confusion_title_fits_a_third_of_the_page_and_rounds_as_the_text_does():
    fig = charts.confusion_figure(tables.confusion_frame(typed(metrics_fixture()).tmu.confusion), 84.5)
    lines = fig.layout.title.text.split("<br>")
    assert "84.5%" in fig.layout.title.text and "85%" not in fig.layout.title.text
    assert "label accuracy" in lines[1] and "agree" not in fig.layout.title.text  # not step 6's agreement
    assert all(len(re.sub(r"<[^>]+>", "", line)) <= 30 for line in lines)  # about 300 px at the title's size


def test_sweep_delta_figure_with_every_value_zero_says_so_on_an_axis_from_zero():
    long = pd.DataFrame({"class": ["1", "1"], "method": ["TMU", "FT"], "abs_delta": [0.0, 0.0]})
    fig = charts.sweep_delta_figure(long)
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] > 0  # not plotly's -1..1
    assert any("Every |Δ| is 0" in a.text for a in fig.layout.annotations)
    some = charts.sweep_delta_figure(long.assign(abs_delta=[2.0, 0.0]))
    assert not some.layout.annotations and some.layout.yaxis.range == (0, pytest.approx(2.2))


def test_presentation_makes_every_axis_label_large_and_dark():
    fig = charts.presentation(charts.feature_distributions(pd.DataFrame(feature_rows())), 340)
    axes = [fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))]
    assert len(axes) >= 6 and fig.layout.height == 340
    for axis in axes:
        assert axis.tickfont.size >= 16 and axis.tickfont.color == charts.PRESENT_INK
    assert all(a.font.color == charts.PRESENT_INK for a in fig.layout.annotations)  # subplot titles too
    metrics = metrics_fixture()
    metrics["forget_count"] = 100
    delta = charts.presentation(charts.delta_figure(tables.models_frame(typed(metrics)), verdict(typed(metrics))), 340)
    (note,) = [a for a in delta.layout.annotations if "noise floor" in a.text]
    assert note.font.size >= charts.PRESENT_FONT - 3 and note.font.color == charts.PRESENT_INK


def feature_rows() -> list[dict]:
    return [
        {"id": i, "NF": 0.1 * i, "AF": 0.2 * i, "CF": 0.3 * i, "p_easy": 0.5, "label": "easy" if i % 2 else "hard"}
        for i in range(6)
    ]


def test_one_palette_red_means_hard_and_nothing_else():
    import tomllib

    from ui import palette
    from ui.images import FRAME

    assert charts.LABEL_COLORS == {"easy": palette.EASY, "hard": palette.HARD}
    assert FRAME == palette.rgb(palette.CHOSEN) and palette.rgb(palette.CHOSEN) != palette.rgb(palette.HARD)
    theme = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["theme"]
    assert theme["primaryColor"].lower() == palette.CHOSEN  # chips and selections: the colour of a choice, not red
    spelled = [palette.EASY, palette.HARD, palette.EASY_LIGHT, palette.HARD_LIGHT, palette.CHOSEN]
    elsewhere = [
        f"{path.name}: {c}"
        for path in [*(ROOT / "ui").glob("*.py"), *(ROOT / "pages").glob("*.py")]
        if path.name != "palette.py"
        for c in spelled
        if c.lower() in path.read_text().lower()
    ]
    assert elsewhere == []  # defined once


@pytest.mark.parametrize(
    "value, column, text",
    [
        (None, "A_f", "—"),
        (float("nan"), "p", "—"),
        (10.2778, "A_f", "10.3"),
        (24.0, "gold hard", "24"),
        (4.5, "gold hard", "4.5"),  # an Avg row's mean of counts keeps its decimal
        (1.0, "noise floor (images)", "1"),
        (3, "classes", "3"),
        (0.03125, "p Holm", "0.031"),
        (1.23456, "t", "1.23"),
        ("tie", "standing", "tie"),
        (0, "seed", "0"),
        (10.27777, "NF", "10.3"),  # a raw feature: three significant digits
        (0.0031234, "CF", "0.00312"),
        (0.8234, "p_easy", "0.82"),
    ],
)
def test_cell_text_reads_as_a_reader_expects(value, column, text):
    assert tables.cell_text(value, column) == text


def test_readable_has_no_none_nan_or_float_counts_and_says_why_a_cell_is_empty():
    df = pd.DataFrame(
        {
            "class": ["8", "3", "non-finite left out"],
            "TMU |Δ|": [10.2778, None, 1.0],
            "p": [float("nan"), 0.5, 0.0],
            "gold hard": [24.0, 3.0, 0.0],
        }
    )
    out = tables.readable(df)
    assert out.values.tolist() == [
        ["8", "10.3", "—", "24"],
        ["3", "—", "0.5", "3"],
        ["non-finite left out", "1", "0", "0"],
    ]
    assert "None" not in out.to_string() and "nan" not in out.to_string()
    why = tables.absent_help(out)
    assert set(why) == {"TMU |Δ|", "p"} and "fewer than 2 classes" in why["p"]
    assert tables.readable(pd.DataFrame({"m": ["x"], "d": [0.12345]}), distance=True).iloc[0, 1] == "0.123"


def test_dashboard_warnings_name_widgets_not_command_line_flags():
    from ui.widgets import widget_words

    text = widget_words(
        "the twin has 12 distinct aux images: its easy/hard labels are thin evidence; a larger aux fraction "
        "(--aux-fraction) or a smaller forget set would help; no gold model (--gold none): measures are not computed; "
        "try --tmu-epochs 5"
    )
    assert "--" not in text
    assert "Aux fraction (Forget set page, Run settings)" in text and "(gold: none)" in text
    assert "the tmu epochs setting 5" in text


def test_the_per_model_table_reads_distances_to_three_decimals_and_delta_with_its_sign():
    models = tables.models_frame(typed(metrics_fixture()))
    text = tables.readable(models[list(tables.MODEL_TABLE_PARTS["accuracy"])]).set_index("label")
    assert text.loc["Negative gradient", "delta"] == "-70.0" and text.loc["Original", "delta"] == "+20.0"
    far = tables.readable(models[list(tables.MODEL_TABLE_PARTS["distance"])]).set_index("label")
    assert far.loc["TMU", "activation_distance"] == "0.100" and far.loc["TMU", "mia_auc"] == "—"
