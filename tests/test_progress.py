"""The run's progress bar tells the truth: weighted by expected time, never backwards, with time left."""

from __future__ import annotations

import pytest

from tmu_core.config import DataConfig, ForgetSpec, RunConfig
from tmu_core.data.recipes import default_train_config
from tmu_core.jobs.pipeline import StatusWriter, stage_weights
from tmu_core.store.schema import RunStatus
from tmu_core.train import Progress


class FakeRun:
    """Records every status write (what status.json would hold after each)."""

    def __init__(self):
        self.writes: list[dict] = []

    def set_status(self, **fields):
        self.writes.append(fields)

    def cancel_requested(self):
        return False


def digits_cfg(methods=("tmu", "finetune", "random_k", "oracle_labels")) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="digits"),
        forget=ForgetSpec(forget_class="8", forget_count=110),
        train=default_train_config("digits"),
        methods=tuple(methods),
        seed=0,
    )


def drive(writer: StatusWriter, cfg: RunConfig) -> list[float]:
    """A run's reports in pipeline order, with a control reporting TMU's unlearning step as tmu:unlearn."""
    writer.begin("data")
    writer.done("data", 0.1)
    for kind in ("original", "gold"):
        writer.begin(kind)
        for e in range(1, 6):
            writer(Progress(kind, e / 5, f"epoch {e}/5"))
        writer.done(kind, 5.0)
    for m in cfg.methods:
        writer.begin(m)
        if m == "tmu":
            writer(Progress("tmu:aux", 1.0, "done"))
            for f in (0.3, 0.6, 1.0):
                writer(Progress("tmu:twin", f))
        for f in (0.2, 0.5, 1.0):  # random_k and oracle_labels run TMU's unlearning step: stage tmu:unlearn
            writer(Progress("tmu:unlearn" if m != "finetune" else m, f))
        writer.done(m, 0.5)
    writer.begin("evaluate")
    writer.done("evaluate", 1.0)
    return [w["progress"] for w in writer.run.writes if "progress" in w]


def test_progress_never_goes_back_when_controls_report_tmu_unlearn():
    cfg = digits_cfg()
    values = drive(
        StatusWriter(FakeRun(), ["data", "original", "gold", *cfg.methods, "evaluate"], stage_weights(cfg)), cfg
    )
    assert all(b >= a for a, b in zip(values, values[1:])), values
    assert values[-1] == 1.0


def test_training_dominates_the_bar():
    """After the original and gold models are trained most of the bar is full (the old equal-stage bar read
    2 of 8 stages = 25% there)."""
    cfg = digits_cfg()
    writer = StatusWriter(FakeRun(), ["data", "original", "gold", *cfg.methods, "evaluate"], stage_weights(cfg))
    writer.begin("data")
    writer.done("data", 0.1)
    for kind in ("original", "gold"):
        writer.begin(kind)
        writer.done(kind, 10.0)
    assert writer.run.writes[-1]["progress"] > 0.6


def test_cached_model_carries_no_weight():
    cfg = digits_cfg(("tmu",))
    writer = StatusWriter(FakeRun(), ["data", "original", "gold", "tmu", "evaluate"], stage_weights(cfg))
    writer.cached("original")
    writer.cached("gold")
    writer.begin("data")
    writer.done("data", 0.1)
    writer.begin("original")
    writer.done("original", 14.0, cached=True)
    writer.begin("gold")
    writer.done("gold", 9.0, cached=True)
    assert writer.run.writes[-1]["progress"] < 0.1  # TMU and evaluate, still to come, are most of the work


def test_each_stage_has_elapsed_and_time_left():
    cfg = digits_cfg(("tmu",))
    run = FakeRun()
    writer = StatusWriter(run, ["data", "original", "gold", "tmu", "evaluate"], stage_weights(cfg))
    writer.begin("data")
    writer.done("data", 0.1)
    writer.begin("original")
    writer.times["original"]["started"] -= 10.0  # ten seconds into the original's training
    writer(Progress("original", 0.5, "epoch 15/30"))
    status = run.writes[-1]
    assert status["stages"]["original"]["elapsed"] >= 10.0
    assert 8.0 <= status["stages"]["original"]["left"] <= 12.0  # half done in 10 s: about 10 s left
    assert status["eta_seconds"] > status["stages"]["original"]["left"]  # gold and the rest are still to come
    assert status["stage"] == "original"


def test_control_stage_is_named_by_the_control():
    cfg = digits_cfg(("random_k",))
    run = FakeRun()
    writer = StatusWriter(run, ["data", "original", "gold", "random_k", "evaluate"], stage_weights(cfg))
    writer.begin("random_k")
    writer(Progress("tmu:unlearn", 1.0))
    assert run.writes[-1]["stage"].startswith("random_k")


def test_stage_line_shows_elapsed_and_time_left():
    from ui import tables

    stages = {"original": {"state": "running", "elapsed": 75.0, "left": 30.0}}
    line = tables.stage_line(RunStatus.model_validate({"state": "running", "stages": stages}))
    assert "1 min 15 s so far" in line and "about 30 s left" in line
    text = tables.progress_text(
        RunStatus.model_validate(
            {"state": "running", "progress": 0.5, "stage": "gold", "eta_seconds": 125, "started": 0.0}
        )
    )
    assert text.startswith("50% · gold") and "about 2 min 05 s left" in text


def test_a_stop_signal_while_the_cli_builds_its_parser_is_one_line(monkeypatch, capsys):
    """Cancelling a queued run sends SIGTERM while `execute` is still importing torch (building its parser):
    run.log got a KeyboardInterrupt traceback. It is one line and exit status 130."""
    from tmu_core import cli

    def interrupted():
        raise KeyboardInterrupt()

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["execute", "whatever"]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"


@pytest.mark.fast
def test_time_left_never_grows_by_more_than_the_time_that_passed(monkeypatch):
    """A stage that turns out slower than its weight said would raise the estimate at once; it may grow only by
    the seconds that passed since the last one."""
    import tmu_core.jobs.pipeline as P

    clock = {"t": 1000.0}
    monkeypatch.setattr(P.time, "time", lambda: clock["t"])
    monkeypatch.setattr(P.time, "monotonic", lambda: clock["t"])
    cfg = digits_cfg(("tmu",))
    writer = StatusWriter(FakeRun(), ["data", "original", "gold", "tmu", "evaluate"], stage_weights(cfg))
    writer.begin("data")
    clock["t"] += 1.0
    writer.done("data", 1.0)
    writer.begin("original")
    estimates = []
    for f in (0.05, 0.1, 0.5, 1.0):  # a fast start, then the stage slows down a lot
        clock["t"] += 1.0 if f <= 0.1 else 60.0
        writer(Progress("original", f))
        estimates.append((clock["t"], writer.run.writes[-1]["eta_seconds"]))
    known = [(t, e) for t, e in estimates if e is not None]
    assert len(known) >= 2
    for (t0, e0), (t1, e1) in zip(known, known[1:]):
        assert e1 <= e0 + (t1 - t0) + 0.1


@pytest.mark.fast
def test_a_request_over_several_classes_reports_class_k_of_n():
    """TMU over a request of three classes reports one monotone fraction of its stage, class by class, weighted
    by each class's files."""
    from types import SimpleNamespace

    import numpy as np

    from tmu_core.tmu.request import ByClass

    seen = []
    parts = [SimpleNamespace(ids=np.arange(n), class_name=c) for n, c in ((10, "3"), (30, "5"), (10, "8"))]
    by = ByClass(seen.append, parts)
    for i in range(3):
        by.i = i
        for stage in ("twin", "nf", "af", "cf", "classifier"):
            by(Progress(f"tmu:{stage}", 1.0, "done"))
    by(Progress("tmu:unlearn", 1.0, "done"))
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert seen[0].message.startswith("class 3 (1 of 3)") and any("class 5 (2 of 3)" in p.message for p in seen)
    share = np.diff([0.0] + [p.fraction for p in seen if "classifier" in p.message])
    assert share[1] > share[0] and share[1] > share[2]  # the class with three times the files weighs more
