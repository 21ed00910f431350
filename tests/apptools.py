"""Helpers for the dashboard tests: stored runs, waiting on background work, AppTest and streamlit.

Two stores: `synthetic_store` writes complete runs directly with the store's writers (schema-valid files
whose numbers agree with each other, made in a second), for the tests of what the pages show (AppTest and the
browser); `launch_pair` makes two the way the Run page does (tmu_core.launch: detached processes), for the test
about computing them side by side. Both use 300 digits images, so nothing checks accuracy.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from clitools import ROOT
from streamlit.testing.v1 import AppTest

from tmu_core import store
from tmu_core.config import DataConfig, ForgetSpec, RunConfig, TrainConfig
from tmu_core.data import load_dataset, resolve_forget
from tmu_core.jobs import launch
from tmu_core.store.schema import MetricsFile, read_metrics


def typed(metrics: dict) -> MetricsFile:
    """A metrics dict (hand-made, or metrics.json as read) as the store reads it back: its typed model."""
    return read_metrics(metrics, "a test's metrics")


APP = ROOT / "app.py"


def router_test(timeout: float, tmp: Path | None = None) -> AppTest:
    """app.py under AppTest as a server runs it once any session has run st.navigation.

    AppTest starts every run as a fresh server does: a pages/ folder beside the main script means Streamlit's
    legacy multipage mode, in which a page asked for by name runs alone (tests/test_nav.py shows it). On a server
    the mode ends for good at the first st.navigation; under AppTest it comes back at each run. So the router
    tests run app.py through a link in a folder without pages/ (the same file; its pages are absolute paths),
    and `switch_page("pages/x.py")` finds the page beside the real app.py.
    """
    folder = Path(tmp or tempfile.mkdtemp(prefix="tmu-router-"))
    link = folder / "app.py"
    if not link.exists():
        link.symlink_to(APP)
    return _RouterTest(str(link), default_timeout=timeout)


class _RouterTest(AppTest):
    def switch_page(self, page_path: str) -> AppTest:
        return super().switch_page(str(ROOT / page_path))


PAGES = ("about", "demo", "forget_set", "run", "audit", "features", "embeddings", "alignment")
TITLES = {
    "about": "Twin Machine Unlearning",
    "demo": "Guided demo",
    "forget_set": "Forget set",
    "run": "Run",
    "audit": "Easy/hard audit",
    "features": "Features",
    "embeddings": "Embeddings",
    "alignment": "Alignment",
}
ARTIFACTS = ROOT / "test-artifacts"

TINY_DATA = DataConfig(dataset="digits", train_per_class=30)
_ONE_EPOCH = {m: (("epochs", 1),) for m in ("finetune", "neggrad", "randlabel", "badteacher")}


def tiny_config(forget: ForgetSpec, name: str) -> RunConfig:
    """Digits, 30 training images per class, 3 training epochs, every method for one epoch."""
    tmu = (("cf_epochs", 1), ("clf_epochs", 20), ("epochs", 1), ("twin_epochs", 1))
    return RunConfig(
        data=TINY_DATA,
        forget=forget,
        train=TrainConfig(epochs=3, batch_size=32),
        device="cpu",
        name=name,
        method_params=tuple(sorted({**_ONE_EPOCH, "tmu": tmu}.items())),
    )


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
    status = wait_for(
        lambda: (lambda s: s if s.get("state") not in ("queued", "running") else None)(run.status()),
        timeout,
        f"run {run.id}",
    )
    assert status["state"] == "complete", f"{run.id}: {status.get('error')}\n{run.log_tail(lines=40)}"
    return status


def launch_pair() -> list[str]:
    """Two tiny runs launched side by side (one by count, one by hand-picked ids) as the Run page launches them,
    waited for. Uses the current TMU_RUNS_DIR."""
    picked = tuple(int(i) for i in load_dataset(TINY_DATA, 0).class_ids(3)[:10])  # as the gallery would give them
    first = launch.start_run(tiny_config(ForgetSpec(forget_class="8", forget_count=10), "tiny-count"))
    second = launch.start_run(tiny_config(ForgetSpec(forget_class="3", forget_ids=picked), "tiny-picked"))
    for run in (first, second):
        wait_done(run)
    return [first.id, second.id]


SYNTHETIC_MODELS = {
    "original": 1.0,
    "gold": 0.5,
    "tmu": 0.7,
    "finetune": 1.0,
    "neggrad": 0.6,
    "randlabel": 0.8,
    "badteacher": 0.9,
}  # share of D_f each model still classifies as the forget class
EMBEDDED = ("original", "gold", "tmu")  # the models whose activations a run keeps


def synthetic_run(forget: ForgetSpec, name: str, aux_count: int = 15, remain_points: int = 60) -> store.Run:
    """A complete run of `tiny_config(forget, name)` written directly with the store's writers: config and
    status as the pipeline writes them, and made-up but consistent results (every model's D_f accuracy, gold
    truth and agreement follow from the per-sample table; TMU's summary from its easy/hard labels; activations
    in class clusters). The ids are the real D_f and aux images, so the pages show the right pictures."""
    from tmu_core.jobs.pipeline import start

    cfg = tiny_config(forget, name)
    data = load_dataset(cfg.data, cfg.seed)
    fs = resolve_forget(data, cfg.forget, cfg.seed)
    c, n_f = fs.class_index, len(fs.ids)
    rng = np.random.default_rng(len(name) + n_f)
    run = start(cfg)
    other = (c + 1) % data.num_classes
    # D_f predictions: the first share of D_f keeps class c, the rest goes to another class
    preds = {m: np.where(np.arange(n_f) < round(share * n_f), c, other) for m, share in SYNTHETIC_MODELS.items()}
    aux_src = np.resize(data.class_ids(c, pool="aux"), aux_count)
    feats_f, feats_a = rng.gamma(2.0, 1.0, (n_f, 3)), rng.gamma(2.0, 1.0, (aux_count, 3))
    p_easy_f, p_easy_a = rng.uniform(0, 1, n_f), rng.uniform(0, 1, aux_count)
    threshold = 0.4
    truth_f = np.where(preds["gold"] == c, "easy", "hard")  # gold's prediction is D_f's truth
    truth_a = np.where(np.arange(aux_count) % 4 == 3, "hard", "easy")
    rows = []
    for i in range(n_f + aux_count):
        forget_row = i < n_f
        j = i if forget_row else i - n_f
        row = {
            "id": int(fs.ids[j]) if forget_row else j,
            "role": "forget" if forget_row else "aux",
            "class": c,
            "class_name": fs.class_name,
            "source_id": -1 if forget_row else int(aux_src[j]),
            "augmented": bool(not forget_row and j >= len(set(aux_src.tolist()))),
        }
        f = feats_f[j] if forget_row else feats_a[j]
        p = p_easy_f[j] if forget_row else p_easy_a[j]
        row.update(
            {
                "NF": f[0],
                "AF": f[1],
                "CF": f[2],
                "p_easy": p,
                "pred_label": "easy" if p > threshold else "hard",
                "true_label": truth_f[j] if forget_row else truth_a[j],
                "truth_source": "gold model" if forget_row else "original model (twin gold)",
            }
        )
        for m in SYNTHETIC_MODELS:
            pred = int(preds[m][j]) if forget_row else c
            conf = float(rng.uniform(0.4, 0.9))
            row.update({f"pred_{m}": pred, f"conf_{m}": conf, f"p_true_{m}": conf if pred == c else 1 - conf})
        rows.append(row)
    samples = pd.DataFrame(rows)
    acc_f = {m: 100.0 * float(np.mean(p == c)) for m, p in preds.items()}
    models = {
        m: {
            "acc_test": 90.0 - 2 * k,
            "acc_remain": 95.0 - k,
            "acc_forget": acc_f[m],
            "delta": acc_f[m] - acc_f["gold"],
            "abs_delta": abs(acc_f[m] - acc_f["gold"]),
            "sample_agreement": 100.0 * float(np.mean(preds[m] == preds["gold"])),
            "activation_distance": 0.0 if m == "gold" else 0.1 + 0.05 * k,
            "mia": 0.0,
            "mia_auc": 50.0 + k,
            "seconds": 1.0 + k,
            **({"cached": False} if m in ("original", "gold") else {}),
        }
        for k, m in enumerate(SYNTHETIC_MODELS)
    }
    pred_f = samples[samples.role == "forget"].pred_label.to_numpy()
    confusion = {
        f"{t}_as_{p}": int(np.sum((truth_f == t) & (pred_f == p))) for t in ("easy", "hard") for p in ("easy", "hard")
    }
    subsets = ("NF", "AF", "CF", "NF+AF", "NF+CF", "AF+CF", "NF+AF+CF")
    label_accuracy = 100.0 * float(np.mean(truth_f == pred_f))
    tmu = {
        "label_accuracy": label_accuracy,
        "confusion": confusion,
        "label_accuracy_by_features": {
            k: (label_accuracy if k == "NF+AF+CF" else 10.0 * (i + 2)) for i, k in enumerate(subsets)
        },
        "auc_p_easy": 60.0,
        "pred_easy": int(np.sum(pred_f == "easy")),
        "pred_hard": int(np.sum(pred_f == "hard")),
        "gold_easy": int(np.sum(truth_f == "easy")),
        "gold_hard": int(np.sum(truth_f == "hard")),
        "aux_count": aux_count,
        "aux_easy": int(np.sum(truth_a == "easy")),
        "aux_hard": int(np.sum(truth_a == "hard")),
        "aux_sizing": {
            "requested": aux_count,
            "available": len(set(aux_src.tolist())),
            "augmented": 0,
            "used": aux_count,
            "capped": False,
            "max_factor": 4.0,
            "remain_class": 20,
            "forget": n_f,
        },
        "threshold": threshold,
        "rule": "prior",
        "twin_hard_rate": 0.25,
        "features_used": ["NF", "AF", "CF"],
        "stage_seconds": {
            "twin": 0.2,
            "nf": 0.1,
            "af": 0.3,
            "cf": 0.2,
            "classifier": 0.1,
            "ablation": 0.5,
            "unlearn": 0.3,
        },
        "twin_fidelity": {
            "twin_acc_aux": 93.3,
            "twin_loss_aux": 0.62,
            "original_acc_forget": 100.0,
            "original_loss_forget": 0.70,
            "twin_epochs": 1.0,
            "bags": 1,
        },
        "warnings": [
            "the twin problem has only 14 distinct aux images of this class (under 20): its easy/hard "
            "labels are thin evidence; a larger aux fraction (--aux-fraction) or a smaller forget set "
            "would help"
        ],
    }
    from tmu_core.methods import config_dict, method_config

    methods = list(SYNTHETIC_MODELS)[2:]
    params = dict(cfg.method_params)
    metrics = {
        "run_id": run.id,
        "dataset": "digits",
        "model": cfg.train.model,
        "forget_class": c,
        "forget_class_name": fs.class_name,
        "forget_count": n_f,
        "seed": cfg.seed,
        "device": "cpu",
        "models": models,
        "cost_ratio": 0.8,
        "method_config": {m: config_dict(method_config(m, "digits", dict(params.get(m, ())))) for m in methods},
        "train_config": {"model": cfg.train.model, "epochs": 3, "batch_size": 32},
        "diverged": {},
        "tmu": tmu,
        "stage_seconds": {"data": 0.0, "original": 7.0, "gold": 1.4, **{m: 1.0 for m in methods}, "evaluate": 3.0},
    }
    run.save_samples(samples)
    run.save_metrics(metrics)
    remain = np.setdiff1d(data.train_ids, fs.ids)[:remain_points]
    ids = np.concatenate([fs.ids, aux_src, remain]).astype(np.int64)
    role = np.array(["forget"] * n_f + ["aux"] * aux_count + ["remain"] * len(remain))
    label = np.asarray(data.y)[ids].astype(np.int64)
    centres = rng.normal(0, 5, (data.num_classes, 16))
    run.save_embeddings(
        ids=ids,
        role=role,
        label=label,
        **{f"emb_{m}": (centres[label] + rng.normal(0, 1, (len(ids), 16))).astype(np.float32) for m in EMBEDDED},
    )
    run.set_status(
        state="complete",
        stage="complete",
        progress=1.0,
        message="done",
        stages={s: {"state": "done", "seconds": 1.0} for s in ("data", "original", "gold", *methods, "evaluate")},
    )
    return run


def synthetic_store() -> list[str]:
    """Two complete runs (one by count, one by hand-picked ids, as `launch_pair` launches them), the UMAP map of
    the first's TMU model and a sweep of the two, written directly: no training, no UMAP fit. Uses TMU_RUNS_DIR."""
    picked = tuple(int(i) for i in load_dataset(TINY_DATA, 0).class_ids(3)[:10])
    first = synthetic_run(ForgetSpec(forget_class="8", forget_count=10), "tiny-count")
    second = synthetic_run(ForgetSpec(forget_class="3", forget_ids=picked), "tiny-picked")
    arrays = first.embeddings()
    angle = np.linspace(0, 2 * np.pi, len(arrays["ids"]), endpoint=False)
    first.save_umap_map(
        "tmu",
        ids=arrays["ids"],
        role=arrays["role"],
        label=arrays["label"],
        xy=np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32) * (1 + arrays["label"][:, None]),
    )
    first.set_umap_job("tmu", state="complete")
    results = [first.metrics(), second.metrics()]
    store.Sweep("sweep-tiny").save_results({"sweep_id": "sweep-tiny", "classes": [8, 3], "results": results})
    return [first.id, second.id]


def start_streamlit(runs_dir: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """`streamlit run app.py` headless on a loopback port the server picks itself (port 0: no port is chosen here
    and bound later, which another process could take in between), reading `runs_dir`. Waits until it answers;
    returns (process, port)."""
    env = {**os.environ, "TMU_RUNS_DIR": str(runs_dir), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(APP),
                "--server.headless",
                "true",
                "--server.port",
                "0",
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def port():
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}: {log.read_text()[-2000:]}")
        found = re.search(r"(?:started on 127\.0\.0\.1|URL: http://[\w.]+):(\d+)", log.read_text())
        return int(found.group(1)) if found else None

    port = wait_for(port, 60, "streamlit to name its port")

    def healthy():
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(healthy, 60, "streamlit to answer")
    return proc, port


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
