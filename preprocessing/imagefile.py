"""Image files (PNG 8/16-bit, JPEG) → the same ``Decoded`` as a DICOM decode.

Public datasets ship pixels already rendered for display (MIMIC-CXR-JPG, CheXpert: 8-bit JPEG;
PadChest: 16-bit PNG with the full detector range), so there are no LUTs to apply: the image is
min-max normalised, resampled to the letterbox content and checked like a decoded DICOM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from preprocessing.decode import Decoded, Rejected, _resample, finish, normalise

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header only."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def decode_image(path: str | Path, *, target: tuple[int, int] | None = None, dtype: str = "uint8") -> Decoded:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode not in ("L", "I;16", "I;16B", "I", "RGB", "LA"):
                raise Rejected(f"unsupported image mode {mode}")
            if mode in ("RGB", "LA"):
                im = im.convert("L")
            arr = np.asarray(im)
    except Rejected:
        raise
    except Exception as e:  # class name only: messages can quote paths
        raise Rejected(f"image file cannot be decoded ({type(e).__name__})") from None
    if arr.ndim != 2 or min(arr.shape) < 64:
        raise Rejected(f"decoded shape {arr.shape} is not a greyscale radiograph of at least 64 px")
    h, w = arr.shape
    values = _resample(arr, target)
    path_kind = (
        "png16" if arr.dtype != np.uint8 else Path(path).suffix.lower().lstrip(".").replace("jpeg", "jpg")
    )
    return finish(values, normalise(values), dtype, path_kind, w, h)
