"""The memory-mapped fast path for uncompressed files gives exactly what pydicom gives, and every
file it cannot take (compressed, truncated, odd layouts) falls back to the full read."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from cxr.format.boxes import letterbox_record
from preprocessing.decode import ReadBuffer, Rejected, decode, native_pixels, read


def test_native_pixels_equal_pydicom_on_every_file(archive):
    root, truth = archive
    taken = 0
    for rel in sorted(truth["files"]):
        path = root / "dicom" / rel
        got = native_pixels(path)
        if got is None:
            continue
        taken += 1
        ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        assert ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"), f"{rel}: mapped a {ts.name} file"
        ref = pydicom.dcmread(path).pixel_array
        assert np.array_equal(np.asarray(got[1]), ref), rel
    assert taken >= 2


def test_truncated_and_compressed_files_fall_back(archive):
    root, truth = archive
    for rel, info in sorted(truth["files"].items()):
        compressed = info.get("syntax") not in (None, "explicit", "implicit")
        if info.get("bad") in ("truncated", "no-pixels", "not-dicom", "multiframe") or compressed:
            assert native_pixels(root / "dicom" / rel) is None, rel


def test_unused_high_bits_are_masked_as_pydicom_does(archive, tmp_path):
    root, truth = archive
    rel = next(
        r for r, v in sorted(truth["files"].items()) if v.get("syntax") == "explicit" and "bad" not in v
    )
    ds = pydicom.dcmread(root / "dicom" / rel)
    arr = ds.pixel_array.astype(np.uint16)
    ds.BitsStored, ds.HighBit = 12, 11
    arr = (arr >> 4) | np.uint16(0xF000)  # stored values in 12 bits, garbage above them
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    got = native_pixels(tmp_path / "x.dcm")
    assert got is not None
    assert int(np.asarray(got[1]).max()) < 4096
    assert np.array_equal(np.asarray(got[1]), pydicom.dcmread(tmp_path / "x.dcm").pixel_array)


def test_fast_and_full_read_decode_to_the_same_image(archive):
    root, truth = archive
    for rel, info in sorted(truth["files"].items()):
        if info.get("syntax") not in ("explicit", "implicit") or "bad" in info:
            continue
        path = root / "dicom" / rel
        ds, pixels = native_pixels(path)
        rec = letterbox_record(int(ds.Columns), int(ds.Rows), 128)
        target = (rec.content_w, rec.content_h)
        try:
            full = decode(read(path), target=target).image
        except Rejected:
            with pytest.raises(Rejected):
                decode(ds, target=target, pixels=pixels)
            continue
        assert np.array_equal(decode(ds, target=target, pixels=pixels).image, full), rel


def test_a_reused_buffer_gives_every_file_its_own_values(archive):
    """One ReadBuffer across files of different sizes: each result is exactly that file's pixels
    (the buffer grows when a file needs more), and a truncated file still falls back."""
    root, truth = archive
    buffer = ReadBuffer()
    seen = set()
    for rel in sorted(truth["files"]):
        got = native_pixels(root / "dicom" / rel, buffer)
        if got is None:
            assert native_pixels(root / "dicom" / rel) is None, rel
            continue
        seen.add(got[1].shape)
        assert np.array_equal(got[1], pydicom.dcmread(root / "dicom" / rel).pixel_array), rel
    assert len(seen) >= 2


def test_stored_is_the_quantised_display_image(archive):
    """``stored`` (one saturating multiply-add, then flipped for MONOCHROME1) is round(image × max)
    to within one grey level, for both stored types and every uncompressed image."""
    root, truth = archive
    checked = 0
    for rel, info in sorted(truth["files"].items()):
        if info.get("syntax") not in ("explicit", "implicit") or "bad" in info:
            continue
        ds = read(root / "dicom" / rel)
        rec = letterbox_record(int(ds.Columns), int(ds.Rows), 128)
        for dtype, maxv in (("uint8", 255), ("uint16", 65535)):
            try:
                dec = decode(ds, target=(rec.content_w, rec.content_h), dtype=dtype)
            except Rejected:
                continue
            ref = np.round(dec.image.astype(np.float64) * maxv)
            diff = np.abs(dec.stored.astype(np.float64) - ref)
            assert dec.stored.dtype == np.dtype(dtype) and dec.stored.shape == dec.image.shape
            assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (rel, dtype)
            checked += 1
    assert checked >= 4
