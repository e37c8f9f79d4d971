"""DICOM pixels → the stored image (uint8/uint16, bright = dense, letterbox content), with checks.

Order as the standard defines it: stored values → Modality LUT (rescale) → VOI LUT or window →
Presentation LUT Shape / MONOCHROME1 inversion. Each check raises ``Rejected`` with a reason a
person can act on. What checks cannot see: bit-rot that decodes into a plausible-looking image of
the right shape (e.g. damage confined to a few J2K code blocks) passes; only shape, constancy,
saturation and a histogram-plausibility test catch damage.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from preprocessing.journal import task_failure

J2K_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}


class Rejected(Exception):
    """A file that cannot become a training image; the message is the manifest's reason (no PHI)."""


@dataclass
class Decoded:
    """A decoded radiograph at its resampled size, and its stored (quantised, checked) form.

    The display image is ``clip(values * scale + offset, 0, 1)``, bright = dense, min-max normalised:
    rescale, a linear window, the normalisation and MONOCHROME1 inversion compose into this one
    multiply-add, so quantising applies the whole chain in a single pass (``quantize``).
    """

    values: np.ndarray  # resampled stored values: uint8/uint16, float32 after table LUTs or a sigmoid
    scale: float
    offset: float
    decode_path: str  # e.g. "native", "j2k-reduce-2"
    orig_w: int
    orig_h: int
    scale_factor: int = 1  # >1 when a reduced-resolution decode shrank the image before resizing
    stored: np.ndarray | None = None  # quantize(dtype), what the shard keeps (before the letterbox)

    @property
    def image(self) -> np.ndarray:
        """The display image, float32 in [0, 1] (for analyses and tests; shards use ``stored``)."""
        v = self.values.astype(np.float64) * self.scale + self.offset
        return np.clip(v, 0, 1).astype(np.float32)

    def quantize(self, dtype: str) -> np.ndarray:
        """round(image × max) as ``dtype`` (uint8 | uint16), in one saturating pass.

        ``cv2.normalize`` (MINMAX) is a multiply-add with saturation, 6x faster than ``addWeighted``
        here; it takes the range endpoints, not the factors, and orders them, so an inverted tone is
        quantised upright and then flipped exactly (max - v).
        """
        import cv2

        maxv = int(np.iinfo(dtype).max)
        depth = {"uint8": cv2.CV_8U, "uint16": cv2.CV_16U}[str(np.dtype(dtype))]
        scale, offset, flip = self.scale, self.offset, self.scale < 0
        if flip:
            scale, offset = -scale, 1.0 - offset
        vmin, vmax = cv2.minMaxLoc(self.values)[:2]
        if vmax > vmin:
            lo, hi = (vmin * scale + offset) * maxv, (vmax * scale + offset) * maxv
            out = cv2.normalize(self.values, None, lo, hi, cv2.NORM_MINMAX, depth)
        else:  # one value throughout: normalize would map it to ``lo``, which is what it is anyway
            v = round(min(max((vmin * scale + offset) * maxv, 0), maxv))
            out = np.full(self.values.shape, v, np.dtype(dtype))
        return cv2.bitwise_not(out) if flip else out


def finish(
    values: np.ndarray,
    tone: tuple[float, float],
    dtype: str,
    decode_path: str,
    orig_w: int,
    orig_h: int,
    scale_factor: int = 1,
) -> Decoded:
    """Quantise to ``dtype`` and run the plausibility checks on exactly what will be stored."""
    dec = Decoded(values, tone[0], tone[1], decode_path, orig_w, orig_h, scale_factor)
    dec.stored = dec.quantize(dtype)
    check_plausible(dec.stored)
    return dec


def normalise(values: np.ndarray, scale: float = 1.0, offset: float = 0.0, clip: bool = False):
    """The (scale, offset) that maps ``values`` through ``u = values*scale + offset`` (clipped to
    [0, 1] first when ``clip``) and then min-max onto [0, 1].

    Exact, not an approximation: clipping and the affine maps are monotone, so the extremes of the
    clipped image are the clipped extremes of ``u``, and (clip(u) - lo) / (hi - lo) equals
    clip((u - lo) / (hi - lo), 0, 1).
    """
    import cv2

    vmin, vmax = cv2.minMaxLoc(values)[:2]
    lo, hi = sorted((vmin * scale + offset, vmax * scale + offset))
    if clip:
        lo, hi = min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)
    if not hi - lo > 0:
        raise Rejected("constant image")
    return scale / (hi - lo), (offset - lo) / (hi - lo)


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
    dtype: str = "uint8",
) -> Decoded:
    """``ds`` read with pixels. ``j2k_reduce`` = n decodes J2K at 1/2**n size (one filter per run);
    ``target`` = (w, h) resamples to that size (the letterbox content) before the LUTs; ``pixels``:
    the stored values when the caller already has them (``native_pixels``), else ``ds.pixel_array``;
    ``dtype``: what ``stored`` (and the checks) use."""
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
    alloc, bits = int(ds.get("BitsAllocated", 0) or 0), int(ds.get("BitsStored", 0) or 0)
    if alloc not in (8, 16) or not 1 <= bits <= alloc:
        # Values themselves never exceed BitsStored: the bits above it are masked (below), which
        # PS3.5 8.1.1 says are not part of the value (old files keep overlays there).
        raise Rejected(
            f"the header declares {bits} bits stored in {alloc} allocated (8 or 16, stored ≤ allocated)"
        )
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if pixels is None and ts in _NATIVE_LE | {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}:
        need = rows * cols * alloc // 8
        have = len(ds.PixelData or b"")
        if have < need:
            raise Rejected(f"pixel data is {have} bytes, the header declares {need}: truncated file")
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
        uid = ts if re.fullmatch(r"[0-9.]{1,64}", ts) else "(not a UID)"
        raise Rejected(f"unsupported transfer syntax {uid}") from None
    except StopIteration:
        raise Rejected("pixel data cannot be decoded: bad basic offset table") from None
    except BaseException as e:  # codec errors: the class name only, messages can quote paths
        if not codec_failure(e):
            raise
        raise Rejected(f"pixel data cannot be decoded ({type(e).__name__})") from None
    expect = (-(-rows // factor), -(-cols // factor)) if factor > 1 else (rows, cols)
    if arr.shape != expect:
        raise Rejected(f"decoded shape {arr.shape} does not match the declared {expect}")
    if pixels is None and bits < alloc and arr.dtype.kind == "u" and int(arr.max()) >= (1 << bits):
        # pydicom masks bits above BitsStored itself, except after J2K / JPEG-LS codecs, which decode
        # at the codestream's own precision; mask them here too (native_pixels already has)
        arr = arr & np.array((1 << bits) - 1, arr.dtype)
    fn = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    window = _window_params(ds)
    tables = "ModalityLUTSequence" in ds or "VOILUTSequence" in ds
    if tables or (window and fn == "SIGMOID"):
        # table lookups index stored values, a sigmoid is not linear: apply them before resampling
        if tables:
            arr = apply_voi_lut(apply_modality_lut(arr, ds), ds, prefer_lut=True)
        else:
            (c, w), (slope, intercept) = window, _rescale(ds)
            arr = 1.0 / (1.0 + np.exp(-4.0 * (arr * slope + intercept - c) / max(w, 1e-6)))
        values = _resample(np.asarray(arr, np.float32), target)
        tone = normalise(values)
    else:
        # Rescale and window are per-pixel and linear where they do not clip, so they commute with
        # the (area-averaging) downscale except at clipped edges: downscale the stored values first,
        # then fold rescale, window, normalisation and inversion into one multiply-add.
        values = _resample(arr, target)
        slope, intercept = _rescale(ds)
        if window is None:
            tone = normalise(values, slope, intercept)
        else:
            c, w = window
            if fn == "LINEAR_EXACT":  # PS3.3 C.11.2.1.3.2
                k, m = 1.0 / max(w, 1e-6), 0.5 - c / max(w, 1e-6)
            else:  # LINEAR, C.11.2.1.2.1
                w = max(w, 1.0)
                k = 1.0 / max(w - 1, 1e-6)
                m = 0.5 - (c - 0.5) * k
            tone = normalise(values, slope * k, intercept * k + m, clip=True)
    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1" or inverse:
        # MONOCHROME1 is displayed inverted; an INVERSE Presentation LUT Shape on MONOCHROME1
        # restates the same inversion, so it is applied once.
        tone = (-tone[0], 1.0 - tone[1])
    return finish(values, tone, dtype, path, cols, rows, factor)


def codec_failure(e: BaseException) -> bool:
    """An error from decoding one file, to be recorded and passed over, not one that must stop the task.
    Rust codecs (pylibjpeg-rle) panic on some damaged streams, and pyo3's ``PanicException`` derives
    from BaseException, not Exception: without this a single bad file would end the array task."""
    if task_failure(e):  # out of memory or an I/O error: not the file's fault
        return False
    return isinstance(e, Exception) or type(e).__name__ == "PanicException"


def _resample(arr: np.ndarray, target: tuple[int, int] | None) -> np.ndarray:
    """To ``target`` (w, h), antialiased when shrinking; uint8, uint16 and float32 keep their type (a
    resampled integer image is rounded to integers, as OpenCV does).

    Large shrinks go through exact 2×2 halvings first (OpenCV's vectorised INTER_AREA path, about
    2.5x faster per source pixel than one arbitrary-ratio INTER_AREA pass). A halving of an odd side
    drops its last row or column: at most one source pixel per halving, under 0.5 px of the stored image.
    The last shrink, of less than 2x, supersamples bilinearly to exactly twice the target and halves
    that: a box as wide as the step, so at least as antialiased as INTER_AREA at that ratio, which
    costs 4x more at ratios near 2 (1.5 ms per image); plain bilinear would alias fine detail and noise
    (tests/preprocessing/test_resample.py).
    """
    import cv2

    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        arr = arr.astype(np.float32)
    if target is not None and (arr.shape[1], arr.shape[0]) != tuple(target):
        w, h = target
        while arr.shape[1] >= 2 * w or arr.shape[0] >= 2 * h:  # each axis while it is 2x too big
            fx, fy = 1 + (arr.shape[1] >= 2 * w), 1 + (arr.shape[0] >= 2 * h)
            hh, ww = arr.shape[0] // fy, arr.shape[1] // fx
            arr = cv2.resize(arr[: fy * hh, : fx * ww], (ww, hh), interpolation=cv2.INTER_AREA)
        if (arr.shape[1], arr.shape[0]) != (w, h):
            arr = np.ascontiguousarray(arr)
            if arr.shape[1] > w or arr.shape[0] > h:
                arr = cv2.resize(arr, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
                arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_AREA)
            else:  # enlarging a small image
                arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(arr)


def _rescale(ds: Dataset) -> tuple[float, float]:
    """Modality LUT as (slope, intercept)."""
    return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)


def _window_params(ds: Dataset) -> tuple[float, float] | None:
    """The first VOI window (center, width), or None. The function (PS3.3 C.11.2.1.2: LINEAR,
    LINEAR_EXACT, SIGMOID) is applied by ``decode``."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    c, w = ds.WindowCenter, ds.WindowWidth
    c = float(c[0] if isinstance(c, pydicom.multival.MultiValue) else c)
    w = float(w[0] if isinstance(w, pydicom.multival.MultiValue) else w)
    return c, w


def check_plausible(img: np.ndarray) -> None:
    """Saturated, nearly binary or noise-like images are damage, not radiographs. ``img``: the
    quantised image (uint8 or uint16) that would be stored."""
    import cv2

    maxv = int(np.iinfo(img.dtype).max)
    edge = int(0.001 * maxv)  # within 0.1 % of black or white
    half = img[::2]  # every other row: the statistics below do not need every pixel
    sat = (np.count_nonzero(half <= edge) + np.count_nonzero(half >= maxv - edge)) / half.size
    if sat > 0.5:
        raise Rejected(f"implausible image: {sat:.0%} of pixels saturated")
    grid = img[:: max(1, img.shape[0] // 256), :: max(1, img.shape[1] // 256)]
    bins = cv2.calcHist([np.ascontiguousarray(grid)], [0], None, [64], [0, maxv + 1])  # 64 grey bins
    if np.count_nonzero(bins) < 8:
        raise Rejected("implausible image: fewer than 8 of 64 grey-level bins used")
    # neighbouring pixels of a radiograph are strongly correlated; decoded bit-rot is not
    sub = img[:: max(1, img.shape[0] // 128)].astype(np.float32)
    a, b = sub[:, :-1], sub[:, 1:]
    a, b = a - a.mean(), b - b.mean()
    saa, sbb = float(np.vdot(a, a)), float(np.vdot(b, b))
    if saa > 0 and sbb > 0 and float(np.vdot(a, b)) / np.sqrt(saa * sbb) < 0.5:
        raise Rejected("implausible image: neighbouring pixels are uncorrelated (noise or corrupt data)")


_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}  # implicit / explicit VR little endian


class ReadBuffer:
    """One reusable byte buffer for a worker's pixel reads (``native_pixels(..., buffer=)``).

    A fresh 5-10 MB array per image costs page faults and kernel zero-fill before the first byte is
    read, and a memory map costs its page-table set-up on every pass; reading into memory that is
    already mapped (and, for the next step, still in cache) is the cheapest way in (benchmarks/preprocess.py).
    """

    def __init__(self) -> None:
        self._buf = np.empty(0, np.uint8)

    def take(self, nbytes: int) -> np.ndarray:
        if self._buf.size < nbytes:
            self._buf = np.empty(nbytes, np.uint8)
        return self._buf[:nbytes]


def native_pixels(path, buffer: ReadBuffer | None = None) -> tuple[Dataset, np.ndarray] | None:
    """Header plus the stored values, for uncompressed little-endian single-frame unsigned greyscale
    files; None for anything else (the caller reads the whole file).

    Why: ``pydicom.dcmread(f).pixel_array`` copies every pixel twice (file → bytes → array) before the
    resize reads them once more; here the header is parsed without the pixels and the pixels are read
    once, straight into ``buffer`` when one is given (the array is then a view of it, valid until the
    buffer's next use). Values are what pydicom returns: unused high bits above BitsStored are masked.
    """
    try:
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, defer_size=1 << 16)
            elem = ds.get_item("PixelData", keep_deferred=True)
            ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
            rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
            alloc, bits = int(ds.get("BitsAllocated", 0)), int(ds.get("BitsStored", 0))
            nbytes = rows * cols * alloc // 8
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
                and elem.length >= nbytes
            )
            if not simple:
                return None
            raw = buffer.take(nbytes) if buffer is not None else np.empty(nbytes, np.uint8)
            if os.preadv(fh.fileno(), [raw], elem.value_tell) != nbytes:
                return None  # truncated: the full read names the problem
    except Exception:  # anything unusual: the full read decides, with its own reasons
        return None
    arr = raw.view("<u2" if alloc == 16 else np.uint8).reshape(rows, cols)
    if bits < alloc and int(arr.max()) >= (1 << bits):
        np.bitwise_and(arr, np.array((1 << bits) - 1, dtype=arr.dtype), out=arr)
    return ds, arr


@contextlib.contextmanager
def quiet_pydicom():
    """pydicom warns (and logs) about malformed values by quoting them, and a malformed date or name
    is PHI: inside this, nothing is validated on reading and no warning is shown (checks are ours)."""
    settings = pydicom.config.settings
    mode = settings.reading_validation_mode
    settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        settings.reading_validation_mode = mode


def read(path, *, stop_before_pixels: bool = False) -> Dataset:
    """Read a DICOM file; Rejected (no PHI in the reason) when it is not one or cannot be parsed."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except pydicom.errors.InvalidDicomError:
        raise Rejected("not a DICOM file (no DICM preamble)") from None
    except Exception as e:
        if task_failure(e):
            raise  # the disk or the machine, not the file: the caller decides (preprocessing/journal.py)
        raise Rejected(f"DICOM header cannot be parsed ({type(e).__name__})") from None
