"""The Easy/hard audit page's forecast section: a retrain's predicted A_f with its interval, the rule in words,
the reliability curves, and the plain message when the twin had no hard example."""

from __future__ import annotations

import shutil

import pytest
from apptools import ROOT, plotly_specs
from streamlit.testing.v1 import AppTest

from tmu_core import store

BINS = [{"p_mean": 0.3, "truth_mean": 0.25, "n": 4}, {"p_mean": 0.92, "truth_mean": 0.9, "n": 40}]


def audit_with(synthetic_runs, runs_dir, **tmu_fields) -> AppTest:
    src, ids = synthetic_runs
    shutil.copytree(src / ids[0], runs_dir / ids[0])
    run = store.open_run(ids[0], runs_dir)
    metrics = run.read_json("metrics.json")
    metrics["tmu"].update(tmu_fields)
    run.write_json("metrics.json", metrics)
    at = AppTest.from_file(str(ROOT / "pages" / "audit.py"), default_timeout=120)
    at.session_state["run_id"] = run.id
    return at.run()


FORECAST = {
    "predicted_acc_forget": 84.2,
    "low": 71.0,
    "high": 93.0,
    "level": 0.9,
    "files": 100,
    "calibration": "Platt scaling on cross-fitted twin scores",
    "reasons": ["only 14 distinct aux images (under 20) calibrate p(easy)"],
}


def test_audit_shows_the_forecast_its_interval_rule_and_reliability(synthetic_runs, runs_dir):
    at = audit_with(
        synthetic_runs,
        runs_dir,
        forecast=FORECAST,
        decision_rule="prior: the 3 file(s) of lowest p(easy) are hard",
        reliability_twin=BINS,
        reliability_gold=BINS[1:],
        ece_twin=0.04,
        ece_gold=0.02,
    )
    assert not at.exception, [e.value for e in at.exception]
    values = {m.label: m.value for m in at.metric}
    assert values["Predicted A_f of a retrain"] == "84.2%" and values["90% interval"] == "71 – 93%"
    assert "Gold's A_f (the check)" in values
    assert any("wide because only 14 distinct aux images" in i.value for i in at.info)
    assert any("Decision rule: prior: the 3 file(s)" in c.value for c in at.caption)
    rel = [s for s in plotly_specs(at) if "Reliability" in s["layout"]["title"]["text"]]
    assert rel and [t["name"] for t in rel[0]["data"]] == [
        "calibrated",
        "held-out twin samples (D_a)",
        "D_f against gold",
    ]


def test_audit_says_it_cannot_tell_when_the_twin_had_no_hard_example(synthetic_runs, runs_dir):
    at = audit_with(synthetic_runs, runs_dir, forecast=FORECAST, undecided=True, reliability_twin=BINS[1:])
    assert not at.exception, [e.value for e in at.exception]
    assert any("cannot tell which files a retrain would get wrong" in w.value for w in at.warning)
    assert any("for want of a hard twin example" in s.value for s in at.subheader)


@pytest.mark.fast
def test_a_run_without_a_forecast_shows_no_forecast_section():
    from ui.forecast import show_forecast

    class Old:  # a TMU summary stored before the forecast existed
        forecast = None

    assert show_forecast(Old(), None) is None
