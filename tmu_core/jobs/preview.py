"""What a forget set will mean before anything is trained: D_f, the class's counts, Eq. 3's |D_a|, cached models.

The dashboard's Forget set page shows this while the user chooses. The aux sizing is TMU's own
(`twin.build_aux` with the method's settings for the dataset), so the preview says what the run will do,
augmentation cap included. Also the uint8 images of samples, for galleries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import store
from ..config import DataConfig, ForgetSpec, TrainConfig
from ..data import Dataset, resolve_forget
from ..methods import method_config, primary_method
from ..references import new_model, reference_key
from ..tmu.twin import build_aux
from ..train import predict


@dataclass(frozen=True)
class ForgetPreview:
    """D_f and what it implies. `aux` is build_aux's sizing: requested, available, augmented, used, capped."""

    class_index: int
    class_name: str
    class_count: int  # training samples of the class (D_r^c + D_f)
    forget_ids: tuple[int, ...]
    remain_class: int  # |D_r^c|
    aux: dict


def forget_preview(
    data: Dataset,
    data_cfg: DataConfig,
    spec: ForgetSpec,
    train_cfg: TrainConfig,
    seed: int,
    tmu_settings: dict | None = None,
) -> ForgetPreview:
    """Resolve `spec` on `data` (raises TMUError naming the valid range) and size the twin's D_a.

    Args:
        tmu_settings: overrides of TMU's config (aux_scale, aux_max_factor); its dataset defaults otherwise.
    """

    forget = resolve_forget(data, spec, seed)
    twin = method_config(primary_method(), data_cfg.dataset, tmu_settings or {}).twin
    aux = build_aux(
        data, forget, seed, twin.aux_max_factor, allow_flip=train_cfg.augment != "none", size_scale=twin.aux_scale
    )
    return ForgetPreview(
        forget.class_index,
        forget.class_name,
        int(len(data.class_ids(forget.class_index))),
        tuple(int(i) for i in forget.ids),
        int(len(forget.remain_class_ids(data))),
        aux.sizing,
    )


def cached_models(
    data: Dataset, data_cfg: DataConfig, train_cfg: TrainConfig, seed: int, forget_ids
) -> dict[str, bool]:
    """Whether the original and gold models of this recipe and forget set are in the model cache already."""
    remain = np.setdiff1d(data.train_ids, np.asarray(forget_ids, dtype=np.int64))
    return {
        kind: store.model_cache_file(reference_key(kind, data_cfg, train_cfg, seed, ids)).exists()
        for kind, ids in (("original", data.train_ids), ("gold", remain))
    }


def class_pool(data: Dataset, class_index: int) -> np.ndarray:
    """Training ids of one class: the samples a forget set can be drawn from."""
    return data.class_ids(class_index)


def images(data: Dataset, ids) -> np.ndarray:
    """Training images by sample id as uint8 (N, H, W, C) arrays, ready to encode for a gallery."""
    ids = np.array(ids, dtype=np.int64)  # a copy: ids may come read-only from pandas or a cache
    return data.x[torch.from_numpy(ids)].permute(0, 2, 3, 1).contiguous().numpy()


def aux_pool_misses(
    data: Dataset, data_cfg: DataConfig, train_cfg: TrainConfig, seed: int, class_index: int
) -> int | None:
    """How many of the class's aux pool images the cached original model gets wrong: the twin's hard examples
    before any augmentation (an augmented copy of an easy image is rarely hard). None while the original is not
    in the model cache (it is trained at the start of the run)."""

    path = store.model_cache_file(reference_key("original", data_cfg, train_cfg, seed, data.train_ids))
    if not path.exists():
        return None
    model = new_model(data, train_cfg)
    model.load_state_dict(store.load_state(path))
    pool = torch.as_tensor(data.class_ids(class_index, pool="aux"))
    logits = predict(model, data.x[pool], torch.device("cpu"))
    return int((logits.argmax(1) != class_index).sum())
