"""One way in: the `tmu` command, its hidden background workers and the entry-point helper they share
(logging, SIGTERM as Ctrl-C, exit codes); no flag abbreviations; no import-path tricks."""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path

import pytest

from tmu_core.cli import WORKERS, main
from tmu_core.entry import run_entry
from tmu_core.errors import TMUError

pytestmark = pytest.mark.fast  # `make test-fast`

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_sigterm():
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "--gold-s", "3"], "unrecognized arguments: --gold-s 3"),  # not read as --gold-seeds
        (["train", "--forget-c", "3"], "unrecognized arguments: --forget-c 3"),
        (["sweep", "--class", "1"], "unrecognized arguments: --class 1"),
    ],
)
def test_abbreviated_flags_are_refused(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert needle in _one_line(capsys)


def test_workers_are_hidden_from_help_but_answer(capsys, runs_dir, restore_sigterm):
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert "execute" in listing and "_worker" not in listing
    assert set(WORKERS) == {"_worker-embedding", "_worker-ray", "_worker-sandbox"}
    assert main(["_worker-embedding"]) == 2
    assert "usage: tmu _worker-embedding" in _one_line(capsys)
    assert main(["_worker-embedding", "no-such-run", "original"]) == 2
    assert "no-such-run" in _one_line(capsys)
    assert main(["_worker-ray", "no-such-run"]) == 2
    assert "usage: tmu _worker-ray" in _one_line(capsys)


def _raise(exc):
    def body():
        raise exc

    return body


@pytest.mark.parametrize(
    "body,code,needle",
    [
        (lambda: 0, 0, None),
        (_raise(TMUError("bad forget class")), 2, "error: bad forget class"),
        (_raise(KeyboardInterrupt()), 130, "error: interrupted"),
        (_raise(ZeroDivisionError("boom")), 1, "error: unexpected ZeroDivisionError: boom (please report this)"),
    ],
)
def test_entry_maps_errors_to_exit_codes_with_one_line(body, code, needle, capsys, restore_sigterm):
    assert run_entry(body) == code
    err = capsys.readouterr().err.strip()
    assert err == (needle or "")


def test_a_stop_signal_ends_the_work_like_ctrl_c(capsys, restore_sigterm):
    def body():
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait()  # held until the signal ends it: a body that returned would give exit 0
        return 0

    assert run_entry(body) == 130
    assert _one_line(capsys) == "error: interrupted"


def test_no_import_path_tricks_or_private_ray_anywhere():
    """The package is installed (`pip install -e .`): no code outside tests/ edits sys.path or PYTHONPATH,
    and Ray is used through its public API."""
    pattern = re.compile(r"sys\.path|PYTHONPATH|ray\._private")
    files = [ROOT / "app.py", *[p for d in ("tmu_core", "ui", "pages", "benchmarks") for p in (ROOT / d).rglob("*.py")]]
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in files
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert len(files) > 40 and found == []


def test_a_ray_token_turns_on_token_mode_only_when_there(tmp_path, monkeypatch):
    from tmu_core.jobs.ray_executor import _use_token_if_any

    # a copy of the environment: what the function sets must not leak into later tests (Ray's among them)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    monkeypatch.setattr(os, "environ", {**env, "HOME": str(tmp_path)})
    _use_token_if_any()
    assert "RAY_AUTH_MODE" not in os.environ  # no token: nothing changes
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret")
    _use_token_if_any()
    assert os.environ["RAY_AUTH_MODE"] == "token"
    os.environ["RAY_AUTH_MODE"] = "disabled"  # an explicit choice is kept
    _use_token_if_any()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"


def test_library_warnings_do_not_break_the_one_line_output(tmp_path):
    """A library's warning (here as torch and Pillow word theirs, with a line break) goes to the debug log, not
    to the user's stderr: the error stays the only line. Run as a process, where no test harness records
    warnings."""
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "from PIL import Image\n"
        "from tmu_core.entry import run_entry\n"
        "from tmu_core.errors import TMUError\n"
        "def body():\n"
        "    warnings.warn('Detected pickle protocol 2 in the checkpoint.\\nThis was likely ...', UserWarning)\n"
        "    warnings.warn('Image size exceeds limit', Image.DecompressionBombWarning)\n"
        "    raise TMUError('bad input')\n"
        "raise SystemExit(run_entry(body))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: bad input", proc.stderr


def test_a_huge_message_is_cut():
    text = str(TMUError("x" * 10_000_000))
    assert len(text) < 2100 and "characters cut" in text
