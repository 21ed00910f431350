"""The original model M_o (trained on D_r ∪ D_f) and the gold model M_g (retrained on D_r alone).

Both use the same recipe and are cached in the run store under a hash of everything that made them, so
a second run with the same inputs reuses them. The original does not depend on which samples will be
forgotten (it saw the whole training pool), so one original serves every forget set of a split; the
gold model's key includes the forget ids. A file lock makes concurrent runs build a model once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import store
from .config import DataConfig, TrainConfig
from .data import Dataset, ForgetSet
from .data.sources import user_path
from .errors import TMUError
from .models import Net, build_model
from .train import Progress, ProgressFn, fit, seed_everything

log = logging.getLogger(__name__)


@dataclass
class Trained:
    model: Net
    seconds: float  # wall time of the training that made it (also when loaded from the cache)
    cached: bool
    key: str


def _data_identity(data_cfg: DataConfig) -> dict:
    """The data section as the cache key sees it: a data folder by its absolute path, so that `../x` typed in
    another working folder is another key, and `../x` and the same folder typed absolutely (as a sweep passes
    it to its runs) are one."""
    data = data_cfg.model_dump()
    if data["data_root"]:
        data["data_root"] = str(user_path(data["data_root"]).resolve())
    return data


def cache_key(kind: str, data_cfg: DataConfig, train_cfg: TrainConfig, seed: int, ids: np.ndarray) -> str:
    blob = json.dumps(
        {
            "kind": kind,
            "data": _data_identity(data_cfg),
            "train": train_cfg.model_dump(),
            "seed": seed,
            "ids": hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest(),
        },
        sort_keys=True,
    )
    return f"{kind}-{data_cfg.dataset}-{train_cfg.model}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"


def new_model(data: Dataset, train_cfg: TrainConfig) -> Net:
    return build_model(train_cfg.model, data.channels, data.num_classes, data.size, data.mean, data.std)


def train_cached(
    kind: str,
    data: Dataset,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    ids: np.ndarray,
    seed: int,
    device: torch.device,
    progress: ProgressFn = None,
    should_stop=None,
) -> Trained:
    """Train a model on the training ids `ids` (or load it from the cache)."""
    key = cache_key(kind, data_cfg, train_cfg, seed, ids)
    path = store.model_cache_file(key)
    meta_path = store.model_meta_file(key)
    with store.model_lock(key):
        if path.exists() and meta_path.exists():
            try:
                model = new_model(data, train_cfg)
                state = store.load_state(path)
                if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
                    raise TMUError("its weights are not finite numbers")
                model.load_state_dict(state)
                meta = store.read_model_meta(key)
                log.info("%s model loaded from cache %s", kind, key)
                if progress:
                    progress(Progress(kind, 1.0, "loaded from cache"))
                return Trained(model.to(device).eval(), float(meta["seconds"]), True, key)
            except (TMUError, RuntimeError) as exc:
                log.warning("cached %s model %s is unusable (%s); training again", kind, key, exc)
        seed_everything(seed)
        model = new_model(data, train_cfg)
        ids_t = torch.as_tensor(ids)
        t0 = time.perf_counter()
        fit(
            model,
            data.x[ids_t],
            data.y[ids_t],
            train_cfg,
            device,
            seed=seed,
            stage=kind,
            progress=progress,
            should_stop=should_stop,
        )
        seconds = time.perf_counter() - t0
        store.save_state(path, model.state_dict())
        store.atomic_write_json(
            meta_path, {"kind": kind, "seconds": seconds, "n_train": int(len(ids)), "device": str(device)}
        )
        return Trained(model.eval(), seconds, False, key)


def original_and_gold(
    data: Dataset,
    data_cfg: DataConfig,
    forget: ForgetSet,
    train_cfg: TrainConfig,
    seed: int,
    device: torch.device,
    progress: ProgressFn = None,
    should_stop=None,
) -> tuple[Trained, Trained]:
    original = train_cached("original", data, data_cfg, train_cfg, data.train_ids, seed, device, progress, should_stop)
    gold = train_cached(
        "gold", data, data_cfg, train_cfg, forget.remain_ids(data), gold_seed(seed, 0), device, progress, should_stop
    )
    return original, gold


GOLD_SEED_STRIDE = 1000  # gold k of a run with seed s trains with seed s + 500 + 1000 k (gold 0 is the run's gold)
GOLD_SEED_OFFSET = 500  # gold is a retrain from scratch: it never starts from the original's initial weights


def gold_seed(seed: int, k: int) -> int:
    """Training seed of gold k of a gold ensemble; k = 0 is the run's gold. Offset from the run's seed, so no
    gold shares the original's initialisation or data order (EVALUATION.md §5), as a real retrain would not."""
    return seed + GOLD_SEED_OFFSET + GOLD_SEED_STRIDE * k


def reference_key(kind: str, data_cfg: DataConfig, train_cfg: TrainConfig, seed: int, ids: np.ndarray) -> str:
    """The cache key of a run's original ("original", trained from the run's seed) or its gold ("gold", trained
    from gold_seed(seed, 0)): the one place that pairs a reference model with its training seed."""
    return cache_key(kind, data_cfg, train_cfg, seed if kind == "original" else gold_seed(seed, 0), ids)


def extra_golds(
    data: Dataset,
    data_cfg: DataConfig,
    forget: ForgetSet,
    train_cfg: TrainConfig,
    seed: int,
    k: int,
    device: torch.device,
    progress: ProgressFn = None,
    should_stop=None,
) -> list[Trained]:
    """Golds 1..k-1 of a k-gold ensemble: the gold recipe on the same D_r, only the training seed differs;
    cached like the run's gold (k = 1 trains nothing)."""
    remain = forget.remain_ids(data)
    return [
        train_cached("gold", data, data_cfg, train_cfg, remain, gold_seed(seed, j), device, progress, should_stop)
        for j in range(1, k)
    ]
