"""Cached loaders: st.cache_resource for the dataset and the device (shared, never mutated), st.cache_data
for tables and galleries.

A complete run never changes, so its files are cached by (runs root, run id); the root is part of the
key because tests and users may point TMU_RUNS_DIR elsewhere. Runs that are still going are never cached.
"""

from __future__ import annotations

import json
import threading

import pandas as pd
import streamlit as st

from tmu_core import store
from tmu_core.config import DataConfig, ForgetSpec, TrainConfig, run_config_from_dict, run_config_to_dict
from tmu_core.data import Dataset, load_dataset
from tmu_core.jobs import embedding, preview
from tmu_core.jobs.pipeline import run_dataset
from tmu_core.store.schema import MetricsFile
from tmu_core.train import pick_device

from .images import FRAME, data_urls


def root() -> str:
    return str(store.runs_root().resolve())


def as_json(cfg) -> str:
    """A config as a stable string: a cache key, and the way back with DataConfig(**json.loads)."""
    return json.dumps(cfg.model_dump(mode="json"), sort_keys=True)


@st.cache_resource(show_spinner=False)
def device() -> str:
    return str(pick_device())


@st.cache_resource(show_spinner=False)
def warm_umap(root_dir: str) -> int | None:
    """Once per server and run store: compile UMAP's code in the background if it is not cached yet."""
    return embedding.warm()


_PRELOADING: dict[tuple[str, int], threading.Thread] = {}
_PRELOADED: dict[tuple[str, int], Dataset] = {}


@st.cache_resource(show_spinner=False)
def preload(data_json: str, seed: int) -> None:
    """Once per server: load a dataset in a background thread (the demo's digits, seconds on a busy CPU), so the
    first page that needs it finds it loaded instead of loading it after the click."""
    key = (data_json, seed)

    def work() -> None:
        try:
            _PRELOADED[key] = load_dataset(DataConfig(**json.loads(data_json)), seed)
        except Exception:  # noqa: BLE001 - the page that needs it loads it again and reports why
            pass

    thread = threading.Thread(target=work, name="tmu-preload-dataset", daemon=True)
    _PRELOADING[key] = thread
    thread.start()


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def dataset(data_json: str, seed: int, own_json: str = "") -> Dataset:
    """A registered dataset's split, or (`own_json`: a run on the user's own model) the images that run read."""
    if own_json:
        return run_dataset(
            run_config_from_dict({"data": json.loads(data_json), "own": json.loads(own_json), "seed": seed})
        )
    thread = _PRELOADING.pop((data_json, seed), None)
    if thread is not None:
        thread.join()
    loaded = _PRELOADED.pop((data_json, seed), None)
    return loaded if loaded is not None else load_dataset(DataConfig(**json.loads(data_json)), seed)


@st.cache_data(show_spinner=False, max_entries=64)
def forget_preview(data_json: str, spec_json: str, train_json: str, seed: int) -> preview.ForgetPreview:
    spec = json.loads(spec_json)
    spec["forget_ids"] = tuple(spec["forget_ids"])
    return preview.forget_preview(
        dataset(data_json, seed),
        DataConfig(**json.loads(data_json)),
        ForgetSpec(**spec),
        TrainConfig(**json.loads(train_json)),
        seed,
    )


@st.cache_data(show_spinner="Drawing the gallery…", max_entries=16)
def class_gallery(data_json: str, seed: int, class_index: int, limit: int) -> pd.DataFrame:
    """The first `limit` training samples of a class: id, image and framed image (PNG data URLs)."""
    data = dataset(data_json, seed)
    ids = preview.class_pool(data, class_index)[:limit]
    imgs = preview.images(data, ids)
    return pd.DataFrame({"id": ids.astype(int), "image": data_urls(imgs), "framed": data_urls(imgs, frame=FRAME)})


def run_data_config(run_cfg: dict) -> tuple[str, int, str]:
    """(data_json, seed, own_json) of a run's config.json (as `store.Run.config` checked it), for `dataset`:
    own_json is empty unless the run is on the user's own model (then its data are the user's folders)."""
    cfg = run_config_from_dict(run_cfg)
    own = json.dumps(run_config_to_dict(cfg)["own"], sort_keys=True) if cfg.own.active else ""
    return as_json(DataConfig(**run_cfg["data"])), int(run_cfg.get("seed", 0)), own


@st.cache_data(show_spinner=False, max_entries=32)
def metrics(root_dir: str, run_id: str) -> MetricsFile:
    """metrics.json as the store's typed model (tmu_core.store.schema.MetricsFile)."""
    return store.open_run(run_id, root_dir).metrics_model()


@st.cache_data(show_spinner=False, max_entries=32)
def config(root_dir: str, run_id: str) -> dict:
    return store.open_run(run_id, root_dir).config()


@st.cache_data(show_spinner="Loading the samples…", max_entries=16)
def samples(root_dir: str, run_id: str) -> pd.DataFrame:
    """samples.csv with an `image` column: D_f rows show their image, D_a rows their aux source image."""
    run = store.open_run(run_id, root_dir)
    df = run.samples()
    data = dataset(*run_data_config(run.config()))
    run.check_samples_fit(df, len(data.y))  # ids within the data, not past it
    image_ids = df["id"].where(df["role"] == "forget", df["source_id"]).astype(int).to_numpy()
    df.insert(0, "image", data_urls(preview.images(data, image_ids)))
    return df


@st.cache_data(show_spinner=False, max_entries=32)
def embedding_models(root_dir: str, run_id: str) -> list[str]:
    return store.open_run(run_id, root_dir).embedding_models()


@st.cache_data(show_spinner=False, max_entries=16)
def umap_map(root_dir: str, run_id: str, model: str, version: str) -> dict:
    """A stored UMAP map (its version token is part of the key, so a recomputed map is re-read)."""
    return embedding.load(store.open_run(run_id, root_dir), model)


@st.cache_data(show_spinner=False, max_entries=8)
def aligned_maps(root_dir: str, run_id: str, models: tuple[str, ...], versions: tuple[str, ...]) -> dict:
    """Stored maps of `models`, aligned onto the first one's frame (versions are part of the key)."""
    run = store.open_run(run_id, root_dir)
    return embedding.aligned({m: embedding.load(run, m) for m in models})


@st.cache_data(show_spinner=False, max_entries=8)
def class_names(root_dir: str, run_id: str) -> list[str]:
    """The run's class names by index (for cluster labels)."""
    return list(dataset(*run_data_config(config(root_dir, run_id))).classes)


@st.cache_data(show_spinner=False, max_entries=8)
def sweep_results(root_dir: str, sweep_id: str, version: str) -> list[dict]:
    typed = store.Sweep(sweep_id, root_dir).results_model()  # the store's SweepFile: each result typed
    return [r.model_dump(mode="json", exclude_unset=True) for r in typed.results]


@st.cache_data(show_spinner=False, max_entries=8)
def sweep_tuning_classes(root_dir: str, sweep_id: str, version: str) -> list[int]:
    """The classes a sweep names as used to choose defaults (none for sweeps made before it could say)."""
    return list(store.Sweep(sweep_id, root_dir).results_model().tuning_classes)


@st.cache_data(show_spinner=False, max_entries=32)
def training_images(data_json: str, seed: int, own_json: str, ids: tuple[int, ...]) -> pd.DataFrame:
    """id and image (data URL) of training samples, for a selection's gallery."""
    data = dataset(data_json, seed, own_json)
    return pd.DataFrame({"id": list(ids), "image": data_urls(preview.images(data, list(ids)))})


@st.cache_data(show_spinner=False, max_entries=32)
def aux_pool_misses(data_json: str, train_json: str, seed: int, class_index: int, original_cached: bool) -> int | None:
    """Aux pool images of the class that the cached original gets wrong (None before it is trained); the flag
    `original_cached` is part of the key, so the count appears once the original exists."""
    return preview.aux_pool_misses(
        dataset(data_json, seed),
        DataConfig(**json.loads(data_json)),
        TrainConfig(**json.loads(train_json)),
        seed,
        class_index,
    )
