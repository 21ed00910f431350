"""The teaching demo: one finished digits run and its original and gold models, bundled in the package.

The demo forgets 110 of the 125 training images of the digit 8: with most of the class gone the retrained
gold model misses about a sixth of them (A_f near 83%), so the methods differ visibly — some keep D_f at
100%, some drive it to 0, TMU lands between. `install()` copies the bundled run into the run store (the
dashboard shows it in seconds, with no training) and seeds the model cache with the bundled original and
gold state dicts under the keys the run used, so running the same configuration again trains neither.
The bundled run can also be read in place (`bundle_root()` is a run store of its own, holding only it), which
the guided demo does until the run is installed. `build()` regenerates the bundle (`python -m tmu_core.demo`): run it whenever the training recipe, the data
split or the results format changes (tests/test_demo.py fails while the bundle is stale).

Bundle layout (tmu_core/demo_bundle/, package data read with importlib.resources, so an installed `tmu`
has it as a checkout does):
    runs/demo-digits-c8-n110-s0/   config.json status.json metrics.json samples.csv embeddings.npz umap-<model>.npz
                   (activations stored in float16 to keep the bundle small; the UMAP maps are the ones computed
                   from the full-precision activations)
    models/                        <cache key>.pt <cache key>.json   the original and gold models, float32, exactly as trained
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from . import store
from .config import DataConfig, ForgetSpec, RunConfig, run_config_to_dict
from .data.recipes import default_train_config
from .errors import TMUError
from .jobs import embedding
from .jobs.pipeline import execute, start
from .store.paths import CONFIG, EMBEDDINGS, METRICS, SAMPLES, STATUS, umap_files

# pip installs a wheel unpacked, so the package data is a folder on disk: the bundled run is read in place
BUNDLE = Path(str(resources.files(__package__).joinpath("demo_bundle")))
RUN_ID = "demo-digits-c8-n110-s0"
METHODS = ("tmu", "finetune", "neggrad", "randlabel", "badteacher", "scrub", "salun")
UMAP_MODELS = ("original", "gold", "tmu")
RUN_FILES = (CONFIG, STATUS, METRICS, SAMPLES, EMBEDDINGS, *(umap_files(m)[0] for m in UMAP_MODELS))


def config() -> RunConfig:
    """The demo's run: digits, forget 110 of class 8's 125 training images, seed 0, TMU and six baselines."""
    return RunConfig(
        data=DataConfig(dataset="digits"),
        forget=ForgetSpec(forget_class="8", forget_count=110),
        train=default_train_config("digits"),
        methods=METHODS,
        seed=0,
        name="demo",
    )


def bundle_root(bundle: Path = BUNDLE) -> Path:
    """The bundle's run store (read-only): the demo run lies in it under RUN_ID."""
    return bundle / "runs"


def bundled(bundle: Path = BUNDLE) -> bool:
    return all((bundle_root(bundle) / RUN_ID / f).is_file() for f in RUN_FILES)


def installed(root: Path | None = None) -> bool:
    """Whether the run store holds a complete, intact copy of the demo run."""
    run = store.Run(RUN_ID, Path(root) if root is not None else store.runs_root())
    return run.dir.is_dir() and run.status().get("state") == "complete" and not run.damage()


def install(root: Path | None = None, bundle: Path = BUNDLE) -> store.Run:
    """The bundled demo run in the run store (copied there once; a complete copy is left alone), with the
    bundled original and gold models seeded into the model cache where absent. Returns the run."""
    root = Path(root) if root is not None else store.runs_root()
    if not bundled(bundle):
        raise TMUError(f"the demo bundle is missing in {bundle}; regenerate it with `python -m tmu_core.demo`")
    _seed_cache(bundle / "models")
    run = store.Run(RUN_ID, root)
    if installed(root):
        return run
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=root))  # complete before it gets its name
    try:
        for name in RUN_FILES:
            shutil.copyfile(bundle_root(bundle) / RUN_ID / name, tmp / name)
        status = json.loads((tmp / STATUS).read_text())
        status["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")  # installed now: the newest run in the list
        (tmp / STATUS).write_text(json.dumps(status, indent=1))
        if run.dir.exists():
            shutil.rmtree(run.dir, ignore_errors=True)  # an incomplete or damaged copy
        try:
            os.rename(tmp, run.dir)
        except OSError:
            if not run.dir.is_dir():  # another process installed it first otherwise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return store.open_run(RUN_ID, root)


def _seed_cache(models: Path) -> None:
    """Copy each bundled model (state dict and metadata) into the model cache unless that key is there."""
    for pt in sorted(models.glob("*.pt")):
        key = pt.stem
        meta = models / f"{key}.json"
        dest, dest_meta = store.model_cache_file(key), store.model_meta_file(key)
        if dest.exists() and dest_meta.exists() or not meta.is_file():
            continue
        with store.model_lock(key):
            store.atomic_write_bytes(dest, pt.read_bytes())  # the state first: a reader needs both files
            store.atomic_write_bytes(dest_meta, meta.read_bytes())


def build(bundle: Path = BUNDLE, log=print) -> dict:
    """Run the demo in a fresh temporary run store, compute its UMAP maps and write the bundle. Returns the
    run's metrics."""

    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("TMU_RUNS_DIR")
        os.environ["TMU_RUNS_DIR"] = tmp
        try:
            run = start(config())
            log(f"running the demo ({run.id}) in {tmp}")
            result = execute(run)
            for m in UMAP_MODELS:
                log(f"UMAP map of {m}")
                embedding.compute(run, m)
            out = bundle_root(bundle) / RUN_ID
            if bundle.exists():
                shutil.rmtree(bundle)
            out.mkdir(parents=True)
            (bundle / "models").mkdir()
            metrics = dict(run.metrics(), run_id=RUN_ID)
            (out / METRICS).write_text(json.dumps(metrics, indent=1))
            (out / CONFIG).write_text(json.dumps(run_config_to_dict(config()), indent=1))
            status = run.status()
            (out / STATUS).write_text(
                json.dumps(
                    {
                        "state": "complete",
                        "stage": "complete",
                        "progress": 1.0,
                        "message": "done",
                        "error": None,
                        "updated": status.get("updated"),
                        "stages": status.get("stages", {}),
                        "eta_seconds": 0.0,
                    },
                    indent=1,
                )
            )
            shutil.copyfile(run.dir / SAMPLES, out / SAMPLES)
            arrays = run.embeddings()
            np.savez_compressed(
                out / EMBEDDINGS, **{k: v.astype(np.float16) if k.startswith("emb_") else v for k, v in arrays.items()}
            )
            for m in UMAP_MODELS:
                shutil.copyfile(run.dir / umap_files(m)[0], out / umap_files(m)[0])
            for kind in ("original", "gold"):
                key = result["cache"][kind]
                shutil.copyfile(store.model_cache_file(key), bundle / "models" / f"{key}.pt")
                shutil.copyfile(store.model_meta_file(key), bundle / "models" / f"{key}.json")
        finally:
            if old is None:
                os.environ.pop("TMU_RUNS_DIR", None)
            else:
                os.environ["TMU_RUNS_DIR"] = old
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    log(f"bundle written to {bundle} ({size / 1e6:.2f} MB)")
    return metrics


def main(argv: list[str]) -> int:
    """`python -m tmu_core.demo [BUNDLE_DIR]`: regenerate the demo bundle (tmu_core/demo_bundle by default)."""

    logging.basicConfig(level=logging.WARNING)
    metrics = build(Path(argv[0]) if argv else BUNDLE)
    models = metrics["models"]
    print(
        f"gold A_f on D_f {models['gold']['acc_forget']:.1f}%  "
        + "  ".join(f"{m} |Δ| {v['abs_delta']:.1f}" for m, v in models.items() if m != "gold")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
