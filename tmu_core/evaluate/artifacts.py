"""What a run stores beside its metrics: one row per D_f sample (and per extra sample a method adds, such as
TMU's D_a) with every model's prediction, and the penultimate activations behind the embedding maps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data import Dataset, ForgetSet, to_float
from ..train import predict

EMBED_REMAIN_MAX = 1500  # D_r samples kept for the embedding plots (all of the forget class first)


@dataclass(frozen=True)
class SampleGroup:
    """Rows of the per-sample table: a role (forget, aux), images, ids and per-sample columns."""

    role: str
    x: torch.Tensor
    ids: np.ndarray
    source: np.ndarray
    augmented: np.ndarray
    columns: dict = field(default_factory=dict)
    truth: np.ndarray | None = None  # 1 = easy for this group's gold model
    truth_source: str = ""


def forget_group(
    data: Dataset, forget: ForgetSet, gold_easy: np.ndarray, reports: list, extra: dict | None = None
) -> SampleGroup:
    columns = {}
    for rep in reports:
        columns.update(rep.forget_columns())
    columns.update(extra or {})  # e.g. the gold ensemble's p_gold
    n = len(forget.ids)
    return SampleGroup(
        "forget",
        data.x[torch.as_tensor(forget.ids)],
        forget.ids,
        np.full(n, -1),
        np.zeros(n, bool),
        columns,
        gold_easy,
        "gold model",
    )


def sample_table(groups: list[SampleGroup], forget: ForgetSet, models: dict, device) -> pd.DataFrame:
    """One row per sample of every group: its columns, gold's verdict, every model's prediction and confidence."""
    c = forget.class_index
    frames = []
    for g in groups:
        df = pd.DataFrame(
            {
                "id": g.ids,
                "role": g.role,
                "class": c,
                "class_name": forget.class_name,
                "source_id": g.source,
                "augmented": g.augmented,
            }
        )
        for name, values in g.columns.items():
            df[name] = values
        if g.truth is not None:
            df["true_label"] = np.where(g.truth == 1, "easy", "hard")
            df["truth_source"] = g.truth_source
        for name, m in models.items():
            probs = F.softmax(predict(m, g.x, device), 1)
            conf, pr = probs.max(1)
            df[f"pred_{name}"] = pr.numpy()
            df[f"conf_{name}"] = conf.numpy()
            df[f"p_true_{name}"] = probs[:, c].numpy()
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def embeddings(data: Dataset, forget: ForgetSet, models: dict, extra_points: list, device, seed: int) -> dict:
    """Penultimate activations of `models` for a sample of D_r (class c first), D_f and any extra points."""
    rng = np.random.default_rng([seed, 89])
    remain_c = forget.remain_class_ids(data)
    others = np.setdiff1d(forget.remain_ids(data), remain_c)
    n_other = max(0, EMBED_REMAIN_MAX - len(remain_c))
    remain = np.concatenate([remain_c[:EMBED_REMAIN_MAX], rng.choice(others, min(n_other, len(others)), replace=False)])
    points = [
        ("remain", to_float(data.x[torch.as_tensor(remain)]), remain, data.y[torch.as_tensor(remain)].numpy()),
        (
            "forget",
            to_float(data.x[torch.as_tensor(forget.ids)]),
            forget.ids,
            np.full(len(forget.ids), forget.class_index),
        ),
        *extra_points,
    ]
    x = torch.cat([p[1] for p in points])
    out = {
        "ids": np.concatenate([p[2] for p in points]).astype(np.int64),
        "role": np.concatenate([np.full(len(p[1]), p[0]) for p in points]).astype("<U8"),
        "label": np.concatenate([p[3] for p in points]).astype(np.int64),
    }
    for name, model in models.items():
        out[f"emb_{name}"] = predict(model, x, device, what="embed").numpy().astype(np.float32)
    return out
