"""DICOM pixels → a display-ready float image in [0, 1] (bright = dense), with checks.

Order as the standard defines it: stored values → Modality LUT (rescale) → VOI LUT or window →
Presentation LUT Shape / MONOCHROME1 inversion. Each check raises ``Rejected`` with a reason a
person can act on. What checks cannot see: bit-rot that decodes into a plausible-looking image of
the right shape (e.g. damage confined to a few J2K code blocks) passes; only shape, constancy,
saturation and a histogram-plausibility test catch damage.
"""

from __future__ import annotations

import io
import os
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


def decode(
    ds: Dataset,
    *,
    j2k_reduce: int = 0,
    target: tuple[int, int] | None = None,
    pixels: np.ndarray | None = None,
) -> Decoded:
    """``ds`` read with pixels. ``j2k_reduce`` = n decodes J2K at 1/2**n size (one filter per run);
    ``target`` = (w, h) resamples to that size (the letterbox content) before the LUTs; ``pixels``:
    the stored values when the caller already has them (``native_pixels``), else ``ds.pixel_array``."""
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
        if pixels is not None:
            arr = pixels
        elif j2k_reduce and ts in J2K_SYNTAXES:
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
    unchecked = pixels is None  # native_pixels has masked its values to BitsStored already
    if (
        unchecked
        and factor == 1
        and int(arr.max()) >= (1 << bits)
        and int(ds.get("PixelRepresentation", 0)) == 0
    ):
        raise Rejected(f"decoded values exceed the declared {bits} bits")
    if "ModalityLUTSequence" in ds or "VOILUTSequence" in ds:
        # table lookups index stored values: apply them before any resampling
        arr = apply_voi_lut(apply_modality_lut(arr, ds), ds, prefer_lut=True).astype(np.float32)
        img = _resample(arr, target)
    else:
        # Rescale and window are per-pixel and linear where they do not clip, so they commute with
        # the (area-averaging) downscale except at clipped edges: downscale first, then 25x fewer pixels.
        img = _resample(arr, target)
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        if (slope, intercept) != (1.0, 0.0):
            img = img * np.float32(slope) + np.float32(intercept)
        img = _window(img, ds)
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
    return Decoded(img.astype(np.float32, copy=False), path, cols, rows, factor)


def _resample(arr: np.ndarray, target: tuple[int, int] | None) -> np.ndarray:
    """To ``target`` (w, h), antialiased when shrinking (area averaging); float32 out.

    Large shrinks go through exact 2×2 halvings first (OpenCV's vectorised INTER_AREA path, about
    2.5x faster per source pixel than one arbitrary-ratio INTER_AREA pass, which dominated the per-image
    cost), then one pass of less than 2x. A halving of an odd side drops its last row or column: at
    most one source pixel per halving, under 0.5 px of the stored image.
    """
    import cv2

    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        arr = arr.astype(np.float32)
    if target is not None and (arr.shape[1], arr.shape[0]) != tuple(target):
        w, h = target
        while arr.shape[1] >= 2 * w and arr.shape[0] >= 2 * h:
            hh, ww = arr.shape[0] // 2, arr.shape[1] // 2
            arr = cv2.resize(arr[: 2 * hh, : 2 * ww], (ww, hh), interpolation=cv2.INTER_AREA)
        if (arr.shape[1], arr.shape[0]) != (w, h):
            # the last shrink is under 2x: area averaging above 1.5x; below, bilinear (its 2-pixel kernel
            # spans the step) is 5x cheaper than OpenCV's non-integer INTER_AREA and looks the same
            ratio = arr.shape[1] / w
            arr = cv2.resize(
                np.ascontiguousarray(arr),
                (w, h),
                interpolation=cv2.INTER_AREA if ratio > 1.5 else cv2.INTER_LINEAR,
            )
    return np.asarray(arr).astype(np.float32, copy=False)


def _window(img: np.ndarray, ds: Dataset) -> np.ndarray:
    """The first VOI window (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID) into [0, 1]; none → as is."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return img
    c, w = ds.WindowCenter, ds.WindowWidth
    c = float(c[0] if isinstance(c, pydicom.multival.MultiValue) else c)
    w = float(w[0] if isinstance(w, pydicom.multival.MultiValue) else w)
    fn = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    if fn == "SIGMOID":
        return (1.0 / (1.0 + np.exp(-4.0 * (img - c) / max(w, 1e-6)))).astype(np.float32)
    if fn == "LINEAR_EXACT":
        return np.clip((img - c) / max(w, 1e-6) + 0.5, 0, 1)
    if w < 1:
        w = 1.0
    return np.clip((img - (c - 0.5)) / max(w - 1, 1e-6) + 0.5, 0, 1)


def check_plausible(img: np.ndarray) -> None:
    """Saturated, nearly binary or noise-like images are damage, not radiographs."""
    half = img[::2]  # every other row: the statistics below do not need every pixel
    sat = float(np.count_nonzero((half <= 0.001) | (half >= 0.999))) / half.size
    if sat > 0.5:
        raise Rejected(f"implausible image: {sat:.0%} of pixels saturated")
    grid = img[:: max(1, img.shape[0] // 256), :: max(1, img.shape[1] // 256)]
    bins = np.clip((grid * 64).astype(np.int32), 0, 63)  # np.histogram's 64 bins on [0, 1]
    if np.count_nonzero(np.bincount(bins.ravel(), minlength=64)) < 8:
        raise Rejected("implausible image: fewer than 8 of 64 grey-level bins used")
    # neighbouring pixels of a radiograph are strongly correlated; decoded bit-rot is not
    sub = half[:: max(1, half.shape[0] // 256), :: max(1, half.shape[1] // 512)].astype(np.float64)
    a, b = sub[:, :-1] - sub[:, :-1].mean(), sub[:, 1:] - sub[:, 1:].mean()
    saa, sbb = float(np.vdot(a, a)), float(np.vdot(b, b))
    if saa > 0 and sbb > 0 and float(np.vdot(a, b)) / np.sqrt(saa * sbb) < 0.5:
        raise Rejected("implausible image: neighbouring pixels are uncorrelated (noise or corrupt data)")


_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}  # implicit / explicit VR little endian


def native_pixels(path) -> tuple[Dataset, np.ndarray] | None:
    """Header plus a read-only memory map of the stored values, for uncompressed little-endian
    single-frame unsigned greyscale files; None for anything else (the caller reads the whole file).

    Why: ``pydicom.dcmread(f).pixel_array`` copies every pixel twice (file → bytes → array) before the
    resize reads them once more; mapping the file lets the resize be the only pass. Values are what
    pydicom returns: unused high bits above BitsStored are masked the same way.
    """
    try:
        ds = pydicom.dcmread(path, defer_size=1 << 16)
        elem = ds.get_item("PixelData", keep_deferred=True)
        ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
        rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
        alloc, bits = int(ds.get("BitsAllocated", 0)), int(ds.get("BitsStored", 0))
        simple = (
            elem is not None
            and ts in _NATIVE_LE
            and alloc in (8, 16)
            and 1 <= bits <= alloc
            and int(ds.get("PixelRepresentation", 0)) == 0
            and int(ds.get("SamplesPerPixel", 1)) == 1
            and int(ds.get("NumberOfFrames", 1) or 1) == 1
            and rows >= 64
            and cols >= 64
            and getattr(elem, "value_tell", None) is not None
            and elem.length >= rows * cols * alloc // 8
        )
        if not simple or os.path.getsize(path) < elem.value_tell + rows * cols * alloc // 8:
            return None
        arr = np.memmap(
            path, dtype="<u2" if alloc == 16 else "u1", mode="r", offset=elem.value_tell, shape=(rows, cols)
        )
    except Exception:  # anything unusual: the full read decides, with its own reasons
        return None
    if bits < alloc and int(arr.max()) >= (1 << bits):
        arr = arr & np.array((1 << bits) - 1, dtype=arr.dtype)
    return ds, arr


def read(path, *, stop_before_pixels: bool = False) -> Dataset:
    """Read a DICOM file; Rejected (no PHI in the reason) when it is not one or cannot be parsed."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except pydicom.errors.InvalidDicomError:
        raise Rejected("not a DICOM file (no DICM preamble)") from None
    except Exception as e:
        raise Rejected(f"DICOM header cannot be parsed ({type(e).__name__})") from None
