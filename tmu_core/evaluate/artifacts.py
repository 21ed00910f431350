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
    labels: np.ndarray | None = None  # each row's class (default: the forget set's class)


def forget_group(
    data: Dataset, forget: ForgetSet, gold_easy: np.ndarray | None, reports: list, extra: dict | None = None
) -> SampleGroup:
    """D_f's rows: every report's columns, gold's verdict (none without a gold model), each sample's class."""
    columns = {"file": data.sample_names(forget.ids)}  # how the user names each sample (their file, or its id)
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
        data.y[torch.as_tensor(forget.ids)].numpy(),
    )


def sample_table(groups: list[SampleGroup], forget: ForgetSet, models: dict, device, classes=None) -> pd.DataFrame:
    """One row per sample of every group: its class, its columns, gold's verdict (where there is a gold model),
    every model's prediction and confidence. `classes`: the data set's class names (rows of several classes)."""
    frames = []
    for g in groups:
        labels = g.labels if g.labels is not None else np.full(len(g.ids), forget.class_index)
        names = [classes[k] for k in labels] if classes is not None else forget.class_name
        df = pd.DataFrame(
            {
                "id": g.ids,
                "role": g.role,
                "class": labels.astype(np.int64),
                "class_name": names,
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
            df[f"p_true_{name}"] = probs[torch.arange(len(labels)), torch.as_tensor(labels)].numpy()
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
            data.y[torch.as_tensor(forget.ids)].numpy(),
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


SCORE_COLUMNS = ("NF", "AF", "CF", "HNF", "HM", "SI", "p_easy")  # a method's per-sample scores, kept in the audit


def audit_table(samples: pd.DataFrame, data: Dataset) -> pd.DataFrame:
    """One row per forgotten sample, in the user's words: its file (or id), class, the scores, verdict and action
    of the method that split D_f (where one did; its words never contradict its p(easy)), its rank, every model's
    predicted class, and gold's verdict where the run has a gold model."""
    f = samples[samples["role"] == "forget"]
    df = pd.DataFrame({"path": data.sample_names(f["id"]), "class": f["class_name"].astype(str).to_numpy()})
    for col in (*SCORE_COLUMNS, "verdict", "action"):
        if col in f:
            df[col] = f[col].to_numpy()
    if "rank_p_easy" in f:
        df["rank_in_class"] = f["rank_p_easy"].to_numpy()  # 1 = the file a retrain is least likely to get right
    if "p_easy_peer" in f:
        df["p_easy_peer"] = f["p_easy_peer"].to_numpy()
    for col in f.columns:
        if col.startswith("pred_") and col != "pred_label":
            df[col] = [data.classes[int(k)] for k in f[col]]
    if "true_label" in f and f["true_label"].notna().all():
        df["gold_verdict"] = f["true_label"].to_numpy()
    return df
