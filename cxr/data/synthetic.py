"""A synthetic chest-radiograph-like image: two lung fields, a mediastinum, ribs, noise.

No patient data; deterministic for a seed. Used by the demo and tests wherever a plausible
grey-level image is needed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def synthetic_cxr(
    width: int = 320, height: int = 384, seed: int = 0, *, opacity: bool = False
) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("L", (width, height), 200)  # soft tissue: bright on a radiograph
    d = ImageDraw.Draw(img)
    w, h = width, height
    jitter = lambda s: int(rng.integers(-s, s + 1))  # noqa: E731
    # lungs are dark (air), the mediastinum between them bright
    d.ellipse([w * 0.12 + jitter(4), h * 0.15, w * 0.47, h * 0.85 + jitter(6)], fill=60)
    d.ellipse([w * 0.53, h * 0.15, w * 0.88 + jitter(4), h * 0.85 + jitter(6)], fill=60)
    d.ellipse([w * 0.40, h * 0.45, w * 0.68, h * 0.80], fill=190)  # heart
    for k in range(8):  # ribs
        y = h * (0.2 + 0.08 * k)
        d.arc([w * 0.08, y - h * 0.05, w * 0.5, y + h * 0.05], 180, 360, fill=120, width=3)
        d.arc([w * 0.5, y - h * 0.05, w * 0.92, y + h * 0.05], 180, 360, fill=120, width=3)
    if opacity:  # a right lower-zone opacity for tests that want a finding
        d.ellipse([w * 0.18, h * 0.6, w * 0.36, h * 0.78], fill=150)
    img = img.filter(ImageFilter.GaussianBlur(2))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, (height, width))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")
