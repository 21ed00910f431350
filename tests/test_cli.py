"""The command line as a user meets it: real subprocesses, tiny budgets, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from clitools import ROOT, TINY_METHODS, TINY_TMU, TINY_TRAIN, assert_one_line_error, cli_env

from tmu_core.data import DATASETS
from tmu_core.methods import METHODS
from tmu_core.models import MODELS


@pytest.mark.parametrize("command,registry", [("datasets", DATASETS), ("models", MODELS), ("methods", METHODS)])
def test_listings_show_every_entry_with_its_summary(cli, command, registry):
    out = cli(command)
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(registry.names())
    summaries = dict(registry.describe())
    listed = {line.split()[0]: line for line in lines}
    assert set(listed) == set(summaries)
    for name, line in listed.items():
        assert line.endswith(summaries[name])
    if registry is METHODS:  # controls are marked as such
        assert {n for n, line in listed.items() if line.split()[1] == "(control)"} == {"random_k", "oracle_labels"}


def test_help_of_every_command_renders(cli):
    # argparse %-formats help texts; one '%' in a field's help once crashed `run --help`
    for command in ("train", "run"):
        out = cli(command, "--help")
        assert out.returncode == 0, out.stderr
        assert "--forget-class" in out.stdout and "Traceback" not in out.stderr
    assert "--tmu-pgd-eps" in out.stdout and "--finetune-epochs" in out.stdout


def _table(stdout: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split() for line in stdout.splitlines() if line.split()[:1] in (["original"], ["gold"])
    }


def test_train_prints_both_models_and_reuses_them_the_second_time(cli):
    first = cli("train", *TINY_TRAIN)
    assert first.returncode == 0, first.stderr
    assert "forget class 8 (8)" in first.stdout and "|D_f| 20" in first.stdout
    rows = _table(first.stdout)
    assert set(rows) == {"original", "gold"}
    for row in rows.values():
        a_test, a_r, a_f = map(float, row[1:4])
        assert 0 <= a_test <= 100 and 0 <= a_r <= 100 and 0 <= a_f <= 100
        assert row[-1] == "trained"
    second = cli("train", *TINY_TRAIN)
    assert second.returncode == 0, second.stderr
    again = _table(second.stdout)
    assert [r[-1] for r in again.values()] == ["cache", "cache"]
    assert [r[1:4] for r in again.values()] == [r[1:4] for r in rows.values()], (
        "the cached models give the same accuracies"
    )


def test_run_writes_a_complete_run_that_runs_lists(cli, runs_dir):
    out = cli("run", *TINY_TRAIN, *TINY_METHODS, "--json", "--name", "cli-smoke")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result["models"]) == {"original", "gold", "finetune"}
    run_dir = runs_dir / result["run_id"]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "complete"
    assert json.loads((run_dir / "metrics.json").read_text())["run_id"] == result["run_id"]
    listing = cli("runs")
    assert listing.returncode == 0
    assert result["run_id"] in listing.stdout and "complete" in listing.stdout
    again = cli("execute", result["run_id"])
    assert_one_line_error(again, "already complete")


@pytest.mark.parametrize(
    "args,needles",
    [
        ((), ("datasets", "train", "run")),  # no command: the valid commands are named
        (("train", "--dataset", "nope"), ("unknown dataset 'nope'", "digits", "cifar10", "imagefolder")),
        (("train", "--epochs", "abc"), ("--epochs", "invalid int value")),
        (("run", "--mechanism", "ascent"), ("--mechanism", "randlabel", "neggrad")),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, needles):
    assert_one_line_error(cli(*args), *needles)


def test_torchvision_dataset_offline_is_one_clear_line(cli, tmp_path):
    """The promised check: `python -m tmu_core train --dataset cifar10` with no data and no network."""
    out = cli("train", "--dataset", "cifar10", cwd=tmp_path, offline=True)
    line = assert_one_line_error(out, "cifar10", "could not be downloaded", str(tmp_path / "data" / "cifar10"))
    assert "--data-root" in line


def test_importing_the_core_never_imports_the_dashboard_stack(tmp_path):
    code = (
        "import importlib, pkgutil, sys, tmu_core\n"
        "names = [m.name for m in pkgutil.walk_packages(tmu_core.__path__, 'tmu_core.')\n"
        "         if not m.name.endswith('__main__')]  # __main__ would run the CLI\n"
        "for n in names: importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly'))\n"
        "print(len(names), bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    count, bad = out.stdout.strip().split(" ", 1)
    assert int(count) >= 15 and bad == "[]", out.stdout


def test_controls_run_tmus_unlearning_step_with_tmus_settings_whatever_flags_changed_them(cli, runs_dir):
    """--mechanism and --tmu-* unlearning flags reach random_k and oracle_labels (they price TMU's choice of
    samples, so nothing else may differ), also when TMU itself is not in the run; a control's own flag wins."""
    out = cli(
        "run",
        *TINY_TRAIN,
        "--methods",
        "oracle_labels",
        "random_k",
        "--mechanism",
        "neggrad",
        "--tmu-lr",
        "0.02",
        "--tmu-epochs",
        "1",
        "--random-k-lr",
        "0.03",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    stored = json.loads((runs_dir / json.loads(out.stdout)["run_id"] / "metrics.json").read_text())["method_config"]
    for control in ("oracle_labels", "random_k"):
        assert stored[control]["mechanism"] == "neggrad" and stored[control]["epochs"] == 1, control
    assert stored["oracle_labels"]["lr"] == 0.02 and stored["random_k"]["lr"] == 0.03


def test_a_controls_settings_follow_tmus_resolved_unlearning_settings():
    from tmu_core.methods import method_config

    for dataset in ("digits", "cifar10"):  # TMU's dataset defaults (digits: 3 epochs, half of D_r) carry over
        assert method_config("random_k", dataset) == method_config("tmu", dataset).unlearn
    run = {"tmu": (("mechanism", "heldout_kl"), ("retain_fraction", 0.2)), "random_k": (("lr", 0.5),)}
    cfg = method_config("oracle_labels", "digits", {"epochs": 7}, run)
    assert (cfg.mechanism, cfg.retain_fraction, cfg.epochs) == ("heldout_kl", 0.2, 7)
    assert method_config("random_k", "digits", {"lr": 0.5}, run).lr == 0.5


def test_run_prints_its_summary_from_the_stored_metrics(cli, runs_dir):
    """Without --json, `run` prints the summary read back from metrics.json as the schema's typed model: each
    model's row, the verdict, and TMU's split with its twin's fidelity."""
    out = cli(
        "run",
        *TINY_TRAIN,
        "--methods",
        "tmu",
        *TINY_TMU,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    run_id = lines[0].split()[1]
    stored = json.loads((runs_dir / run_id / "metrics.json").read_text())
    assert lines[0] == f"run {run_id}  (digits, small_cnn, class 8 8, |D_f| 20, device cpu)"
    tmu_row = next(line for line in lines if line.startswith("tmu "))
    assert tmu_row.split()[3] == f"{stored['models']['tmu']['acc_forget']:.2f}"
    assert any(line.startswith("verdict: ") for line in lines)
    t = stored["tmu"]
    assert (
        f"TMU label accuracy {t['label_accuracy']:.1f}%  predicted easy/hard {t['pred_easy']}/{t['pred_hard']}"
        in out.stdout
    )
    assert f"twin fidelity: M_t on D_a {t['twin_fidelity']['twin_acc_aux']:.1f}%" in out.stdout
    # the gold-free step check: achieved A_f against the predicted-easy share, stored and said in the verdict
    check = stored["step_check"]["tmu"]
    asked = 100.0 * t["pred_easy"] / (t["pred_easy"] + t["pred_hard"])
    assert check["asked_acc_forget"] == pytest.approx(asked)
    assert check["gap_images"] == round((stored["models"]["tmu"]["acc_forget"] - asked) * 20 / 100)
    assert "Does the step do what the split says? TMU's step kept A_f at" in out.stdout
