"""Helpers for the dashboard tests: a tiny stored run, waiting on background work, AppTest and streamlit.

The stored run is made the way the Run page makes one (tmu_core.launch: a detached process), on 300
digits images with one-epoch methods, so the whole dashboard suite stays within a few minutes on two
shared cores. It checks plumbing and what the pages show, not accuracy.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from clitools import ROOT
from tmu_core import store
from tmu_core.jobs import embedding, launch
from tmu_core.config import DataConfig, ForgetSpec, RunConfig, TrainConfig
from tmu_core.data import load_dataset

APP = ROOT / "app.py"
PAGES = ("about", "demo", "forget_set", "run", "audit", "features", "embeddings", "alignment")
TITLES = {"about": "Twin Machine Unlearning", "demo": "Guided demo", "forget_set": "Forget set", "run": "Run", "audit": "Easy/hard audit",
          "features": "Features", "embeddings": "Embeddings", "alignment": "Alignment"}
ARTIFACTS = ROOT / "test-artifacts"

TINY_DATA = DataConfig(dataset="digits", train_per_class=30)
_ONE_EPOCH = {m: (("epochs", 1),) for m in ("finetune", "neggrad", "randlabel", "badteacher")}


def tiny_config(forget: ForgetSpec, name: str) -> RunConfig:
    """Digits, 30 training images per class, 3 training epochs, every method for one epoch."""
    tmu = (("cf_epochs", 1), ("clf_epochs", 20), ("epochs", 1), ("twin_epochs", 1))
    return RunConfig(data=TINY_DATA, forget=forget, train=TrainConfig(epochs=3, batch_size=32), device="cpu",
                     name=name, method_params=tuple(sorted({**_ONE_EPOCH, "tmu": tmu}.items())))


def wait_for(check, timeout: float, what: str, interval: float = 0.5):
    """Poll `check()` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_done(run: store.Run, timeout: float = 300) -> dict:
    status = wait_for(lambda: (lambda s: s if s.get("state") not in ("queued", "running") else None)(run.status()),
                      timeout, f"run {run.id}")
    assert status["state"] == "complete", f"{run.id}: {status.get('error')}\n{run.log_tail(lines=40)}"
    return status


def make_store() -> list[str]:
    """Two tiny runs launched side by side (one by count, one by hand-picked ids), then the UMAP map of the
    first's TMU model, and a sweep folder built from their results. Uses the current TMU_RUNS_DIR."""
    picked = tuple(int(i) for i in load_dataset(TINY_DATA, 0).class_ids(3)[:10])  # as the gallery would give them
    first = launch.start_run(tiny_config(ForgetSpec(forget_class="8", forget_count=10), "tiny-count"))
    second = launch.start_run(tiny_config(ForgetSpec(forget_class="3", forget_ids=picked), "tiny-picked"))
    for run in (first, second):
        wait_done(run)
    embedding.start(first, "tmu")
    wait_for(lambda: embedding.job_status(first, "tmu")["state"] != "running", 240, "the UMAP map")
    assert embedding.job_status(first, "tmu")["state"] == "complete", first.log_tail(first.umap_log_name("tmu"))
    results = [first.metrics(), second.metrics()]
    store.Sweep("sweep-tiny").save_results({"sweep_id": "sweep-tiny", "classes": [8, 3], "results": results})
    return [first.id, second.id]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(runs_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """`streamlit run app.py` headless on a loopback port, reading `runs_dir`; waits until it answers."""
    env = {**os.environ, "TMU_RUNS_DIR": str(runs_dir), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
                                 "--server.port", str(port), "--server.address", "127.0.0.1",
                                 "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy():
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(healthy, 60, "streamlit to answer")
    return proc


def plotly_specs(at) -> list[dict]:
    """The figures of an AppTest run (AppTest cannot look inside charts; their JSON spec it can)."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def values(array) -> np.ndarray:
    """A data array of a figure's JSON: plain list, or plotly's typed form {dtype, bdata, shape}."""
    if isinstance(array, dict) and "bdata" in array:
        out = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
        shape = array.get("shape")
        return out.reshape([int(n) for n in str(shape).split(",")]) if shape else out
    return np.asarray(array)


def tables_with(at, *columns: str) -> list:
    """The DataFrames shown by st.dataframe that have all `columns` (a display table has no key in AppTest)."""
    return [df.value for df in at.dataframe if all(c in df.value.columns for c in columns)]
