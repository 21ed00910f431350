"""TMU's three features per sample (paper §4.2), computed for D_a in the twin problem and D_f in the real one.

NF  nearest distance: mean of the k smallest distances from a sample's penultimate activation to those
    of the reference set (class-c remain samples). Easy samples have close neighbours.
AF  adversarial: see attacks.adversarial_feature.
CF  curriculum loss: per-sample loss under a same-architecture network trained from scratch for 1-2
    epochs; easy samples are learned first, so their loss is small. By default that network trains on
    part of D_r only (TMUConfig.cf_held_out), never on the samples it scores.
Scaling is fitted on D_a and applied unchanged to D_f (or, with `scale_per_problem`, each problem on its own).

Two optional features ask gold's question directly, from the held-out network (the CF network trained on
part of D_r only, which never saw D_a or D_f, so both problems are measured alike):
HNF  NF in the held-out network's embedding space (reference: the class's remaining training samples).
HM   the held-out network's margin on class c (its class-c logit minus the largest other one).

SI   self-influence (tmu.influence), the data-attribution peer: the squared loss gradient of a sample on
     the model that trained on it (twin: M_t; real: M_o). Computed when asked for as a feature or as the peer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..errors import TMUError
from ..train import fit, predict, seed_everything

FEATURES = ("NF", "AF", "CF")  # the paper's three: the default
HELD_OUT_FEATURES = ("HNF", "HM")  # from the held-out network (see above)
PEER_FEATURES = ("SI",)  # self-influence, the data-attribution peer
ALL_FEATURES = FEATURES + HELD_OUT_FEATURES + PEER_FEATURES


def nearest_distance(
    query: torch.Tensor, reference: torch.Tensor, k: int = 5, distance: str = "euclidean", normalize: bool = True
) -> torch.Tensor:
    """NF: mean of the k smallest distances from each query row to the reference rows.

    Args: query (N, D), reference (M, D) embeddings; k <= M; distance 'euclidean' or 'cosine';
    normalize: L2-normalise rows first (euclidean only). Returns (N,) float32.
    """

    if k < 1 or k > len(reference):
        raise TMUError(
            f"NF k={k} is not valid: the reference set has {len(reference)} samples; choose 1..{len(reference)}"
        )
    q, r = query.float(), reference.float()
    if distance == "cosine":
        d = 1 - F.normalize(q, dim=1) @ F.normalize(r, dim=1).T
    else:
        if normalize:
            q, r = F.normalize(q, dim=1), F.normalize(r, dim=1)
        d = torch.cdist(q, r)
    return d.clamp_min(0).topk(k, dim=1, largest=False).values.mean(1)


def curriculum_losses(
    make_model,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    queries: list[tuple[torch.Tensor, int]],
    cfg: TrainConfig,
    device: torch.device,
    seed: int,
) -> tuple[list[torch.Tensor], torch.nn.Module]:
    """CF: train a fresh model briefly on (x_train, y_train); per-sample CE for each (x, label) query, and the net."""
    seed_everything(seed + 53)
    net = make_model()
    fit(net, x_train, y_train, cfg, device, seed=seed + 53, stage="curriculum")
    out = []
    for x, label in queries:
        logits = predict(net, x, device)
        out.append(F.cross_entropy(logits, torch.full((len(x),), label, dtype=torch.long), reduction="none"))
    return out, net


def class_margin(logits: torch.Tensor, label: int) -> torch.Tensor:
    """HM: the class-`label` logit minus the largest other logit, per row (positive = classified right)."""
    other = logits.clone()
    other[:, label] = float("-inf")
    return logits[:, label] - other.max(1).values


@dataclass
class Scaler:
    """Per-feature transform fitted on D_a: optional log1p, then standardise, then clip."""

    mean: np.ndarray
    std: np.ndarray
    log: bool
    clip: float

    signed: np.ndarray | None = None  # columns that may be negative (HM): no log1p for them

    @classmethod
    def fit(cls, f: np.ndarray, log: bool = True, clip: float = 5.0, signed: np.ndarray | None = None) -> Scaler:
        signed = np.zeros(f.shape[1], bool) if signed is None else np.asarray(signed, bool)
        g = _log(f, log, signed)
        return cls(g.mean(0), g.std(0) + 1e-8, log, clip, signed)

    def transform(self, f: np.ndarray) -> np.ndarray:
        g = _log(f, self.log, self.signed if self.signed is not None else np.zeros(f.shape[1], bool))
        return np.clip((g - self.mean) / self.std, -self.clip, self.clip)


def _log(f: np.ndarray, log: bool, signed: np.ndarray) -> np.ndarray:
    return np.where(signed, f, np.log1p(np.maximum(f, 0))) if log else f
