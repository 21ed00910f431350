"""uint8 images -> PNG data URLs for st.dataframe's ImageColumn.

Small images (8x8 digits) are enlarged by whole-pixel repetition, so the browser shows crisp pixels
instead of a blur. Nothing here touches tensors: the arrays come from tmu_core.preview.images.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image

from .palette import CHOSEN, rgb

FRAME = rgb(CHOSEN)  # marks the samples of D_f in a gallery: the colour of a choice, not red (red means hard)


def png_data_url(img: np.ndarray, min_side: int = 48, frame: tuple[int, int, int] | None = None) -> str:
    """One image (H, W, C) uint8 with C in {1, 3} -> "data:image/png;base64,...", optionally framed in a colour."""
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 1|3) image, got {img.dtype} {img.shape}")
    k = max(1, math.ceil(min_side / max(img.shape[:2])))
    big = img.repeat(k, axis=0).repeat(k, axis=1)
    if frame is not None:
        big = np.repeat(big, 3, axis=2) if big.shape[2] == 1 else big.copy()
        w = max(2, big.shape[0] // 12)
        big[:w], big[-w:], big[:, :w], big[:, -w:] = frame, frame, frame, frame
    buf = io.BytesIO()
    Image.fromarray(big[:, :, 0] if big.shape[2] == 1 else big).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def data_urls(imgs: np.ndarray, min_side: int = 48, frame: tuple[int, int, int] | None = None) -> list[str]:
    """A batch (N, H, W, C) -> N data URLs."""
    return [png_data_url(im, min_side, frame) for im in imgs]
