"""DICOM pixels → a display-ready float image in [0, 1] (bright = dense), with checks.

Order as the standard defines it: stored values → Modality LUT (rescale) → VOI LUT or window →
Presentation LUT Shape / MONOCHROME1 inversion. Each check raises ``Rejected`` with a reason a
person can act on. What checks cannot see: bit-rot that decodes into a plausible-looking image of
the right shape (e.g. damage confined to a few J2K code blocks) passes; only shape, constancy,
saturation and a histogram-plausibility test catch damage.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

J2K_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}


class Rejected(Exception):
    """A file that cannot become a training image; the message is the manifest's reason (no PHI)."""


@dataclass
class Decoded:
    image: np.ndarray  # float32, [0, 1], MONOCHROME2 sense
    decode_path: str  # e.g. "native", "j2k-reduce-2"
    orig_w: int
    orig_h: int
    scale_factor: int = 1  # >1 when a reduced-resolution decode shrank the image before resizing


def _reduced_j2k(ds: Dataset, reduce: int) -> np.ndarray:
    """Decode only the wavelet's lower-resolution levels (OpenJPEG's ``reduce``, through Pillow).

    Pillow's own ``im.reduce = n`` rounds the output size to nearest where OpenJPEG rounds up, and
    fails ("broken data stream") on sides not divisible by 2**n; so the tile is set up here with
    OpenJPEG's ceiling sizes (Pillow is pinned; tests/preprocessing cover this).
    """
    from PIL import Image, ImageFile
    from pydicom.encaps import generate_frames

    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    im = Image.open(io.BytesIO(frame))
    power = 1 << reduce
    w, h = -(-im.size[0] // power), -(-im.size[1] // power)
    t = im.tile[0]
    im._reduce = reduce
    im._size = (w, h)
    im.tile = [ImageFile._Tile(t[0], (0, 0, w, h), t[2], (t[3][0], reduce, im.layers, t[3][3], t[3][4]))]
    ImageFile.ImageFile.load(im)
    arr = np.asarray(im)
    bits = int(ds.get("BitsStored", 16))
    if arr.dtype == np.uint16 and bits < 16:  # Pillow scales < 16-bit samples up to 16 bits (I;16)
        arr = arr >> (16 - bits)
    return arr


def decode(ds: Dataset, *, j2k_reduce: int = 0) -> Decoded:
    """``ds`` read with pixels. ``j2k_reduce`` = n decodes J2K at 1/2**n size (one filter per run)."""
    if "PixelData" not in ds:
        raise Rejected("no pixel data (missing or dropped from a truncated file)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise Rejected(f"multi-frame image ({frames} frames): one radiograph per file expected")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows < 64 or cols < 64:
        raise Rejected(f"declared size {cols}x{rows} is too small for a radiograph")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise Rejected("not a greyscale image (SamplesPerPixel != 1)")
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    path, factor = "native", 1
    try:
        if j2k_reduce and ts in J2K_SYNTAXES:
            arr = _reduced_j2k(ds, j2k_reduce)
            path, factor = f"j2k-reduce-{j2k_reduce}", 2**j2k_reduce
        else:
            arr = ds.pixel_array
    except NotImplementedError:
        raise Rejected(f"unsupported transfer syntax {ts}") from None
    except StopIteration:
        raise Rejected("pixel data cannot be decoded: bad basic offset table") from None
    except Exception as e:  # codec errors: the class name only, messages can quote paths
        raise Rejected(f"pixel data cannot be decoded ({type(e).__name__})") from None
    expect = (-(-rows // factor), -(-cols // factor)) if factor > 1 else (rows, cols)
    if arr.shape != expect:
        raise Rejected(f"decoded shape {arr.shape} does not match the declared {expect}")
    bits = int(ds.get("BitsStored", 16))
    if factor == 1 and arr.max() >= (1 << bits) and int(ds.get("PixelRepresentation", 0)) == 0:
        raise Rejected(f"decoded values exceed the declared {bits} bits")
    img = apply_modality_lut(arr, ds).astype(np.float32)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        img = apply_voi_lut(img, ds, prefer_lut=True).astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    if hi - lo <= 0:
        raise Rejected("constant image")
    img = (img - lo) / (hi - lo)
    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1" or inverse:
        # MONOCHROME1 is displayed inverted; an INVERSE Presentation LUT Shape on MONOCHROME1
        # restates the same inversion, so it is applied once.
        img = 1.0 - img
    check_plausible(img)
    return Decoded(img, path, cols, rows, factor)


def check_plausible(img: np.ndarray) -> None:
    """Saturated, nearly binary or noise-like images are damage, not radiographs."""
    sat = float(np.mean((img <= 0.001) | (img >= 0.999)))
    if sat > 0.5:
        raise Rejected(f"implausible image: {sat:.0%} of pixels saturated")
    hist, _ = np.histogram(
        img[:: max(1, img.shape[0] // 256), :: max(1, img.shape[1] // 256)], bins=64, range=(0, 1)
    )
    if np.count_nonzero(hist) < 8:
        raise Rejected("implausible image: fewer than 8 of 64 grey-level bins used")
    # neighbouring pixels of a radiograph are strongly correlated; decoded bit-rot is not
    sub = img[:: max(1, img.shape[0] // 512), :: max(1, img.shape[1] // 512)]
    a, b = sub[:, :-1].ravel(), sub[:, 1:].ravel()
    if a.std() > 0 and b.std() > 0 and float(np.corrcoef(a, b)[0, 1]) < 0.5:
        raise Rejected("implausible image: neighbouring pixels are uncorrelated (noise or corrupt data)")


def read(path, *, stop_before_pixels: bool = False) -> Dataset:
    """Read a DICOM file; Rejected (no PHI in the reason) when it is not one or cannot be parsed."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except pydicom.errors.InvalidDicomError:
        raise Rejected("not a DICOM file (no DICM preamble)") from None
    except Exception as e:
        raise Rejected(f"DICOM header cannot be parsed ({type(e).__name__})") from None
