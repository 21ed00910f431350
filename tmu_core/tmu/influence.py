"""Self-influence, the data-attribution peer of TMU's easy/hard forecast.

TracIn (Pruthi et al. 2020) estimates how much training on z lowered z's own loss: the sum over saved
checkpoints of lr * ||grad_theta loss(z)||^2. A sample the model had to memorise (atypical, mislabelled)
keeps a large gradient for long, so its self-influence is large; Feldman and Zhang's memorisation score asks
the same question (would a model trained without z still get z right?), which is gold's question for D_f.
With no saved checkpoints the final model alone is used (lr 1): its gradient norm is the cheap version.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ..data import to_float


def self_influence(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device,
    checkpoints: list[dict] | None = None,
    lrs: list[float] | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-sample self-influence: sum_k lr_k * ||grad loss(x_i, y_i; theta_k)||^2.

    Args: model (its architecture; its weights when `checkpoints` is None); x (N, C, H, W) images, uint8 or
    float in [0,1]; y (N,) labels; checkpoints: state dicts of saved training checkpoints, with `lrs` their
    learning rates (default 1 each). Returns (N,) float64, >= 0."""
    if len(x) == 0:
        return np.zeros(0)
    net = model.to(device).eval()
    states = checkpoints or [{k: v.detach() for k, v in net.state_dict().items()}]
    rates = lrs or [1.0] * len(states)
    out = np.zeros(len(x))
    for state, lr in zip(states, rates):
        params = {k: v.detach().to(device) for k, v in state.items() if k in dict(net.named_parameters())}
        buffers = {k: v.to(device) for k, v in state.items() if k not in params}

        def loss_one(p, xi, yi, buffers=buffers):
            logits = functional_call(net, (p, buffers), (xi.unsqueeze(0),))
            return F.cross_entropy(logits, yi.unsqueeze(0))

        per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            xb = (to_float(xb) if xb.dtype == torch.uint8 else xb.float()).to(device)
            g = per_sample(params, xb, torch.as_tensor(y[start : start + batch_size]).long().to(device))
            sq = sum(v.flatten(1).pow(2).sum(1) for v in g.values())
            out[start : start + len(xb)] += lr * sq.detach().cpu().double().numpy()
    return out


def peer_score(si: np.ndarray) -> np.ndarray:
    """The peer's score on TMU's scale (higher = more likely easy): minus the log self-influence."""
    return -np.log(np.asarray(si, dtype=np.float64) + 1e-12)
