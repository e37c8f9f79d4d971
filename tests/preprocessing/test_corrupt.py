"""Damaged pixels: each check rejects what it is for, with its reason; a damaged codestream is
rejected or decoded, never allowed to stop the task (a Rust codec's panic included); and the limit:
damage confined to a few JPEG 2000 code blocks decodes into a plausible image and passes."""

from __future__ import annotations

import random

import numpy as np
import pydicom
import pytest

from preprocessing.decode import Rejected, decode, read
from preprocessing.synth import _write

SIDE = 256


def _smooth(rng: np.random.Generator) -> np.ndarray:
    """A radiograph-like 12-bit image: smooth structure plus a little noise."""
    y, x = np.mgrid[:SIDE, :SIDE] / SIDE
    img = 1500 + 1200 * np.sin(3 * x) * np.cos(2 * y) + 600 * x + rng.normal(0, 15, (SIDE, SIDE))
    return np.clip(img, 0, 4095).astype(np.uint16)


def _file(archive, tmp_path, pixels: np.ndarray, name: str, syntax: str = "explicit", bits: int = 12):
    root, truth = archive
    rel = next(r for r, v in sorted(truth["files"].items()) if v.get("syntax") == "explicit")
    ds = pydicom.dcmread(root / "dicom" / rel)
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    for k in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if k in ds:
            delattr(ds, k)
    ds.PixelData = pixels.astype("<u2").tobytes()
    path = tmp_path / f"{name}.dcm"
    _write(ds, path, syntax)
    return path


def _rejects(path, why: str) -> None:
    with pytest.raises(Rejected, match=why):
        decode(read(path), target=(128, 128))


def test_a_plausible_image_passes(archive, tmp_path):
    dec = decode(read(_file(archive, tmp_path, _smooth(np.random.default_rng(0)), "ok")), target=(128, 128))
    assert dec.stored.shape == (128, 128)


def test_a_constant_image_is_rejected(archive, tmp_path):
    _rejects(_file(archive, tmp_path, np.full((SIDE, SIDE), 1000), "constant"), "constant image")


def test_a_mostly_saturated_image_is_rejected(archive, tmp_path):
    img = _smooth(np.random.default_rng(1))
    img[: SIDE * 2 // 3] = 0  # two thirds black: a lost half of a codestream often decodes like this
    _rejects(_file(archive, tmp_path, img, "saturated"), "saturated")


def test_a_nearly_binary_image_is_rejected(archive, tmp_path):
    y, x = np.mgrid[:SIDE, :SIDE]
    levels = np.array([1500, 1600, 1700, 1800])  # blocks the 2x area halving keeps pure
    img = levels[(x // 64 + y // 64) % 4]
    img[:, :10], img[:, -10:] = 0, 4000  # the extremes only at the edges
    _rejects(_file(archive, tmp_path, img, "binary"), "fewer than 8 of 64 grey-level bins")


def test_noise_is_rejected(archive, tmp_path):
    noise = np.random.default_rng(2).integers(0, 4096, (SIDE, SIDE))
    _rejects(_file(archive, tmp_path, noise, "noise"), "uncorrelated")


def test_garbage_over_most_of_the_image_is_rejected(archive, tmp_path):
    rng = np.random.default_rng(3)
    img = _smooth(rng)
    img[SIDE // 4 :] = rng.integers(0, 4096, (SIDE - SIDE // 4, SIDE))  # a decoder gone astray
    _rejects(_file(archive, tmp_path, img, "garbage"), "uncorrelated")


def test_inconsistent_bit_depths_are_rejected(archive, tmp_path):
    path = _file(archive, tmp_path, _smooth(np.random.default_rng(4)), "bits")
    ds = pydicom.dcmread(path)
    ds.BitsStored = 17
    ds.save_as(path)
    _rejects(path, "declares 17 bits stored in 16 allocated")


@pytest.mark.parametrize("syntax", ["explicit", "rle"])
def test_values_beyond_the_declared_bits_are_masked_as_the_standard_says(archive, tmp_path, syntax):
    """Bits above BitsStored are not part of the value (PS3.5 8.1.1; old files keep overlays there)."""
    img = _smooth(np.random.default_rng(5))
    high = img.copy()
    high[:128] |= 0xF000
    a = decode(read(_file(archive, tmp_path, high, "high", syntax=syntax)), target=(128, 128))
    b = decode(read(_file(archive, tmp_path, img, "plain", syntax=syntax)), target=(128, 128))
    np.testing.assert_array_equal(a.stored, b.stored)


@pytest.mark.parametrize("syntax", ["rle", "jpeg-ls", "j2k-lossless"])
def test_a_damaged_codestream_is_rejected_or_decoded_never_fatal(archive, tmp_path, syntax):
    """4 KB and 64-byte runs of random bytes at several places: each file ends as Rejected or as an
    image, whatever the codec does (pylibjpeg-rle panics on some: pyo3's PanicException is not an
    Exception)."""
    path = _file(archive, tmp_path, _smooth(np.random.default_rng(6)), "clean", syntax=syntax)
    clean = bytearray(path.read_bytes())
    start = len(clean) - len(pydicom.dcmread(path).PixelData)
    rng, outcomes = random.Random(0), []
    for frac in (0.2, 0.5, 0.8):
        for n in (64, 4096):
            data = bytearray(clean)
            at = start + int((len(clean) - start) * frac)
            for j in range(at, min(len(data) - 16, at + n)):
                data[j] = rng.randrange(256)
            bad = tmp_path / f"rot-{frac}-{n}.dcm"
            bad.write_bytes(bytes(data))
            try:
                decode(read(bad), target=(128, 128))
                outcomes.append("ok")
            except Rejected:
                outcomes.append("rejected")
    if syntax == "rle":
        assert outcomes.count("rejected") >= 4, outcomes


def test_the_limit_damage_in_a_few_j2k_code_blocks_passes(archive, tmp_path):
    """What the checks cannot see (README, Limits): OpenJPEG decodes a damaged lossless codestream
    without an error, and the damage stays local, so the image still looks like a radiograph."""
    img = _smooth(np.random.default_rng(7))
    path = _file(archive, tmp_path, img, "j2k", syntax="j2k-lossless")
    data = bytearray(path.read_bytes())
    at = len(data) - len(pydicom.dcmread(path).PixelData) // 2
    rng = random.Random(1)
    for j in range(at, at + 64):
        data[j] = rng.randrange(256)
    path.write_bytes(bytes(data))
    got = pydicom.dcmread(path).pixel_array
    changed = np.count_nonzero(got != img)
    assert 0 < changed < img.size  # wrong pixels, decoded without an error ...
    decode(read(path), target=(128, 128))  # ... and passed by every check


def test_bits_above_the_declared_are_masked_after_a_j2k_codec_too(archive, tmp_path):
    """A J2K codestream at 16-bit precision in a file that declares 12 bits stored: pydicom returns
    the codestream's values, and the bits above 12 are masked here as for every other syntax."""
    img = _smooth(np.random.default_rng(8))
    high = img.copy()
    high[:128] |= 0xF000
    path = _file(archive, tmp_path, high, "j2k16", syntax="j2k-lossless", bits=16)
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.save_as(path)
    assert int(pydicom.dcmread(path).pixel_array.max()) > 4095  # what the codec gives
    a = decode(read(path), target=(128, 128))
    b = decode(read(_file(archive, tmp_path, img, "plain")), target=(128, 128))
    np.testing.assert_array_equal(a.stored, b.stored)
