"""Our decode equals independent decoders (dcmtk, gdcm) for every transfer syntax: exactly for
lossless, within ±1 for lossy DCT JPEG. Files encoded by dcmtk/gdcm too, not only by pydicom."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from preprocessing.decode import decode, read
from tests.conftest import require_tool

DECODER = {  # syntax → how the oracle turns the file into uncompressed explicit little endian
    "explicit": ["dcmconv", "+te"],
    "implicit": ["dcmconv", "+te"],
    "deflate": ["dcmconv", "+te"],
    "rle": ["dcmdrle"],
    "jpeg-lossless": ["dcmdjpeg"],
    "jpeg-baseline": ["dcmdjpeg"],
    "jpeg-ls": ["dcmdjpls"],
    "j2k-lossless": ["gdcmconv", "--raw"],
    "j2k-lossy": ["gdcmconv", "--raw"],
}


def oracle_pixels(cmd: list[str], src: Path, tmp: Path) -> np.ndarray:
    require_tool(cmd[0])
    out = tmp / f"{src.stem}-{cmd[0]}.dcm"
    subprocess.run([*cmd, str(src), str(out)], check=True, capture_output=True)
    return pydicom.dcmread(out).pixel_array


@pytest.mark.parametrize("syntax", sorted(DECODER))
def test_pixels_equal_the_oracle(archive, syntax, tmp_path):
    root, truth = archive
    rels = [r for r, v in sorted(truth["files"].items()) if v.get("syntax") == syntax]
    assert rels, f"the archive has no {syntax} file"
    for rel in rels:
        ours = read(root / "dicom" / rel).pixel_array.astype(np.int32)
        theirs = oracle_pixels(DECODER[syntax], root / "dicom" / rel, tmp_path).astype(np.int32)
        assert ours.shape == theirs.shape
        if syntax == "jpeg-baseline":
            assert np.abs(ours - theirs).max() <= 1
        else:
            assert np.array_equal(ours, theirs), f"{syntax}: {np.count_nonzero(ours != theirs)} pixels differ"


@pytest.mark.parametrize(
    "encoder",
    [["dcmcjpls", "+el"], ["dcmcrle"], ["dcmcjpeg", "+e1", "+un"], ["gdcmconv", "--j2k"]],
    ids=lambda c: c[0],
)
def test_files_encoded_by_dcmtk_and_gdcm_decode_exactly(archive, encoder, tmp_path):
    root, truth = archive
    rel = next(r for r, v in sorted(truth["files"].items()) if v.get("syntax") == "explicit")
    src = root / "dicom" / rel
    require_tool(encoder[0])
    enc = tmp_path / "enc.dcm"
    subprocess.run([*encoder, str(src), str(enc)], check=True, capture_output=True)
    assert (
        pydicom.dcmread(enc).file_meta.TransferSyntaxUID != pydicom.dcmread(src).file_meta.TransferSyntaxUID
    )
    assert np.array_equal(read(enc).pixel_array, read(src).pixel_array)
    assert np.array_equal(decode(read(enc)).image, decode(read(src)).image)


def test_monochrome1_and_2_give_the_same_image(archive, tmp_path):
    root, truth = archive
    rel = next(r for r, v in sorted(truth["files"].items()) if v.get("syntax") == "explicit")
    ds = read(root / "dicom" / rel)
    maxv = (1 << int(ds.BitsStored)) - 1
    a = ds.pixel_array
    ds2 = read(root / "dicom" / rel)
    ds2.PixelData = (maxv - a).astype(a.dtype).tobytes()
    mono = str(ds.PhotometricInterpretation)
    ds2.PhotometricInterpretation = "MONOCHROME2" if mono == "MONOCHROME1" else "MONOCHROME1"
    ds2.PresentationLUTShape = "IDENTITY" if mono == "MONOCHROME1" else "INVERSE"
    ds2.WindowCenter = maxv - float(ds.WindowCenter)  # the same window, on the inverted values
    assert np.allclose(decode(ds).image, decode(ds2).image, atol=1e-6)
    for dtype in ("uint8", "uint16"):  # and what is stored: quantised upright, then flipped exactly
        a, b = decode(ds, dtype=dtype).stored, decode(ds2, dtype=dtype).stored
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1 and np.mean(a != b) < 0.01


def test_real_chest_rg1_in_all_four_encodings():
    from pydicom.data import get_testdata_file

    from preprocessing.decode import ReadBuffer
    from preprocessing.shards import _decode_file, to_stored

    out, buffer = {}, ReadBuffer()
    for name in ("UNCR", "UNCI", "J2KR", "J2KI"):
        path = get_testdata_file(f"RG1_{name}.dcm")
        assert path, "pydicom-data is not installed"
        d = _decode_file(Path(path), 512, 0, "uint16", buffer)  # what write_shard runs per file
        out[name], rec = to_stored(d, 512)
        assert (rec.orig_w, rec.orig_h) == (1841, 1955)
    assert np.array_equal(out["UNCR"], out["J2KR"])  # lossless
    assert np.abs(out["UNCI"].astype(int) - out["J2KI"].astype(int)).mean() < 0.01 * 65535  # lossy, close


def test_reduced_resolution_j2k_decode_is_recorded():
    from pydicom.data import get_testdata_file

    d = decode(read(get_testdata_file("RG1_J2KR.dcm")), j2k_reduce=2)
    assert (
        d.decode_path == "j2k-reduce-2"
        and d.image.shape == (489, 461)
        and (d.orig_w, d.orig_h) == (1841, 1955)
    )


def test_oracle_tools_exist_where_required():
    for tool in ("dcmdjpeg", "gdcmconv"):
        require_tool(tool)
    assert shutil.which("dcmconv")


def test_reduced_j2k_has_the_full_decode_intensities():
    from pydicom.data import get_testdata_file

    ds = read(get_testdata_file("RG1_J2KR.dcm"))
    assert abs(float(decode(ds, j2k_reduce=2).image.mean()) - float(decode(ds).image.mean())) < 0.02


@pytest.mark.parametrize("seed", [1, 2])
def test_reduced_j2k_keeps_the_stored_bit_depth(seed, tmp_path):
    from preprocessing.synth import SynthSpec, synth_archive

    root = tmp_path / "a"
    synth_archive(
        root,
        SynthSpec(studies=8, seed=seed, min_size=256, max_size=300, bad_share=0, syntaxes=["j2k-lossless"]),
    )
    seen = set()
    for f in sorted((root / "dicom").rglob("*.dcm")):
        ds = read(f)
        seen.add(int(ds.BitsStored))
        full, red = decode(ds), decode(ds, j2k_reduce=1)
        assert abs(float(full.image.mean()) - float(red.image.mean())) < 0.03, (ds.BitsStored, f.name)
    assert len(seen) >= 2  # several bit depths covered


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_own_window_equals_pydicoms_voi_lut(archive, function):
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    root, truth = archive
    rel = next(r for r, v in sorted(truth["files"].items()) if v.get("syntax") == "explicit")
    ds = read(root / "dicom" / rel)
    maxv = (1 << int(ds.BitsStored)) - 1
    ds.WindowCenter, ds.WindowWidth = maxv * 0.55, maxv * 0.8  # clips some pixels on both sides
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.VOILUTFunction = function
    ref = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    if ds.PhotometricInterpretation == "MONOCHROME1":
        ref = 1 - ref
    assert np.abs(decode(ds).image - ref).max() < 1e-3
    assert np.abs(decode(ds).stored.astype(int) - np.round(ref * 255)).max() <= 1
