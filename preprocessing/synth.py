"""A synthetic hospital archive: CXR-like DICOMs in many transfer syntaxes, planted PHI canaries,
a RIS export with findings, labels and boxes, and a share of bad files. Deterministic for a seed.

Layout::

    ARCHIVE/dicom/<PatientName>_<PatientID>/<StudyDate>_<Accession>/IMG<k>_<PatientID>.dcm   (PHI in names, as in real exports)
    ARCHIVE/ris/ris.csv          accession, patient id, findings text, labels, boxes (in the pixels of the
                                 image named by sop_instance_uid: the study's first, frontal one)
    ARCHIVE/truth.json           what was planted: canaries, bad files and why, per-file syntax (for tests)

Pixels come from the real chest radiograph in pydicom-data (RG1, a CR PA) when it is installed,
else from ``cxr.data.synthetic``; each image gets its own crop, scale, bit depth and polarity.
Encoders: pydicom (RLE, JPEG-LS, JPEG 2000, deflate) and dcmtk's ``dcmcjpeg`` (JPEG lossless and
baseline; those syntaxes are left out, with a note in truth.json, where dcmtk is not installed).
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "deflate": DeflatedExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg-lossless": JPEGLosslessSV1,
    "jpeg-ls": JPEGLSLossless,
    "j2k-lossless": JPEG2000Lossless,
    "j2k-lossy": JPEG2000,
    "jpeg-baseline": JPEGBaseline8Bit,
}
LOSSY = {"j2k-lossy", "jpeg-baseline"}
BAD_KINDS = [
    "truncated",
    "no-pixels",
    "bitrot",
    "not-dicom",
    "ct",
    "multiframe",
    "bad-offset-table",
    "unsupported-syntax",
]
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root
FINDINGS = [
    ("effusion", "small left pleural effusion"),
    ("cardiomegaly", "enlarged cardiac silhouette"),
    ("consolidation", "right lower lobe consolidation"),
    ("pneumothorax", "small apical pneumothorax"),
    ("nodule", "nodule in the right upper lobe"),
]


@dataclass
class SynthSpec:
    studies: int = 20
    seed: int = 0
    min_size: int = 2000
    max_size: int = 3000
    bad_share: float = 0.1
    syntaxes: list[str] = field(default_factory=lambda: list(SYNTAXES))


def canary(kind: str, i: int) -> str:
    return f"CANARY-PHI-{kind}-{i:04d}"


def _base_image() -> np.ndarray:
    """Chest content as float32 in [0, 1], bright = dense (MONOCHROME2 sense)."""
    try:
        from pydicom.data import get_testdata_file

        path = get_testdata_file("RG1_UNCR.dcm")
    except Exception:
        path = None
    if path:
        a = pydicom.dcmread(path).pixel_array.astype(np.float32)
        a = a.max() - a  # RG1 is MONOCHROME1
    else:
        from cxr.data.synthetic import synthetic_cxr

        a = np.asarray(synthetic_cxr(1841, 1955).convert("L"), dtype=np.float32)
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - lo) / (hi - lo), 0, 1)


def _variant(base: np.ndarray, rng: np.random.Generator, w: int, h: int, lateral: bool) -> np.ndarray:
    import cv2

    bh, bw = base.shape
    s = rng.uniform(0.85, 1.0)
    ch, cw = int(bh * s), int(bw * s)
    y0, x0 = rng.integers(0, bh - ch + 1), rng.integers(0, bw - cw + 1)
    crop = base[y0 : y0 + ch, x0 : x0 + cw]
    if lateral:  # no lateral source image: a squeezed, mirrored variant stands in
        crop = crop[:, ::-1][:, cw // 6 : cw - cw // 6]
    img = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if w < cw else cv2.INTER_LINEAR)
    gain, gamma = rng.uniform(0.9, 1.1), rng.uniform(0.85, 1.15)
    img = np.clip(img * gain, 0, 1) ** gamma
    return np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1).astype(np.float32)


def _dataset(
    i: int,
    k: int,
    rng: np.random.Generator,
    img: np.ndarray,
    *,
    bits: int,
    mono1: bool,
    modality: str,
    view: str,
    study_uid: str,
    patient: dict,
    accession: str,
    seed: int,
) -> Dataset:
    maxv = (1 << bits) - 1
    stored = np.round(img * maxv).astype(np.uint16)
    if mono1:
        stored = (maxv - stored).astype(np.uint16)
    ds = Dataset()
    sop_class = (
        DigitalXRayImageStorageForPresentation if modality == "DX" else ComputedRadiographyImageStorage
    )
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(UID_ROOT, entropy_srcs=[str(seed), "sop", str(i), str(k)])
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid(UID_ROOT, entropy_srcs=[str(seed), "series", str(i), str(k)])
    ds.Modality = modality
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = patient["birth"]
    ds.PatientSex = patient["sex"]
    ds.PatientAge = f"{patient['age']:03d}Y"
    ds.StudyDate = patient["study_date"]
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.InstitutionName = canary("INST", i)
    ds.ReferringPhysicianName = canary("DOC", i) + "^DR"
    ds.StudyDescription = f"CHEST {view} for {canary('TEXT', i)}"
    ds.ImageComments = f"Patient {patient['name']} called back, see {accession}"
    req = Dataset()
    req.AccessionNumber = accession
    req.RequestedProcedureDescription = canary("NESTED", i)
    ds.RequestAttributesSequence = Sequence([req])
    block = ds.private_block(0x0009, "CXRSYNTH", create=True)
    block.add_new(0x01, "LO", canary("PRIVATE", i))
    ds.PixelSpacing = [0.143, 0.143]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = maxv // 2
    ds.WindowWidth = maxv
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = (stored.astype(np.uint8) if bits <= 8 else stored).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _write(ds: Dataset, path: Path, syntax: str) -> str:
    """Encode as ``syntax``; returns the syntax actually written (jpeg-* fall back without dcmtk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    uid = SYNTAXES[syntax]
    if syntax in ("explicit", "implicit", "deflate"):
        ds.file_meta.TransferSyntaxUID = uid
        ds.save_as(path, enforce_file_format=True, implicit_vr=syntax == "implicit", little_endian=True)
    elif syntax in ("rle", "jpeg-ls", "j2k-lossless"):
        ds.compress(uid, encoding_plugin="pylibjpeg" if syntax == "rle" else "", generate_instance_uid=False)
        ds.save_as(path, enforce_file_format=True)
    elif syntax == "j2k-lossy":
        ds.compress(uid, j2k_cr=[15], encoding_plugin="pylibjpeg", generate_instance_uid=False)
        ds.save_as(path, enforce_file_format=True)
    else:  # dcmtk: JPEG lossless SV1 / baseline
        exe = shutil.which("dcmcjpeg")
        if exe is None:
            ds.save_as(path, enforce_file_format=True)
            return "explicit"
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in.dcm"
            ds.save_as(src, enforce_file_format=True)
            flags = ["+un"] + (["+e1"] if syntax == "jpeg-lossless" else ["+eb", "+sr"])  # +un: keep UIDs
            subprocess.run([exe, *flags, str(src), str(path)], check=True, capture_output=True)
    return syntax


def _corrupt(kind: str, path: Path, ds: Dataset, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "not-dicom":
        path.write_text("Scanned requisition form, see paper chart.\n")
    elif kind == "truncated":
        _write(ds, path, "explicit")
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
    elif kind == "no-pixels":
        del ds.PixelData
        ds.save_as(path, enforce_file_format=True)
    elif kind == "bitrot":  # one 4 KB disk block of garbage inside an RLE codestream
        _write(ds, path, "rle")
        data = bytearray(path.read_bytes())
        start = len(data) // 2
        for j in range(start, min(len(data) - 16, start + 4096)):
            data[j] = rng.randrange(256)
        path.write_bytes(bytes(data))
    elif kind == "ct":
        ds.Modality = "CT"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.BodyPartExamined = "ABDOMEN"
        _write(ds, path, "explicit")
    elif kind == "multiframe":
        ds.NumberOfFrames = 2
        ds.PixelData = ds.PixelData * 2
        _write(ds, path, "explicit")
    elif kind == "bad-offset-table":
        _write(ds, path, "rle")
        bad = pydicom.dcmread(path)
        from pydicom.encaps import encapsulate, generate_frames

        frames = list(generate_frames(bad.PixelData, number_of_frames=1))
        raw = bytearray(encapsulate(frames, has_bot=True))
        # the offset table item claims 6 bytes: not whole 32-bit offsets, and every fragment after it
        # is misread (a single frame's offsets themselves are ignored by decoders, so damage them
        # where they are still read: the item's length)
        raw[4:8] = (6).to_bytes(4, "little")
        bad.PixelData = bytes(raw)
        bad.save_as(path, enforce_file_format=True)
    elif kind == "unsupported-syntax":
        _write(ds, path, "explicit")
        bad = pydicom.dcmread(path)
        bad.file_meta.TransferSyntaxUID = "1.2.840.113619.5.2"  # an old GE private syntax
        bad.save_as(path, enforce_file_format=False)


def synth_archive(root: str | Path, spec: SynthSpec) -> dict:
    root = Path(root)
    (root / "dicom").mkdir(parents=True, exist_ok=True)
    (root / "ris").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    prng = random.Random(spec.seed)
    base = _base_image()
    truth: dict = {"seed": spec.seed, "files": {}, "canaries": [], "notes": []}
    ris_rows = []
    n_bad_target = int(round(spec.studies * spec.bad_share))
    n_good = 0  # good files so far: syntaxes cycle over them, so every syntax appears once there are enough
    for i in range(spec.studies):
        patient = {
            "name": f"{canary('NAME', i)}^DOE",
            "id": canary("ID", i),
            "sex": prng.choice("FM"),
            "birth": f"19{10 + i % 80:02d}{1 + i % 12:02d}{1 + i % 27:02d}",
            "age": prng.randint(18, 95),
            "study_date": f"20{10 + prng.randint(0, 14):02d}{prng.randint(1, 12):02d}{prng.randint(1, 28):02d}",
        }
        accession = f"CANARYACC{i:05d}"  # AccessionNumber is SH: 16 characters at most
        truth["canaries"] += [
            canary(k, i) for k in ("NAME", "ID", "INST", "DOC", "TEXT", "NESTED", "PRIVATE")
        ]
        truth["canaries"].append(accession)
        truth["canaries"].append(patient["birth"])
        study_uid = generate_uid(UID_ROOT, entropy_srcs=[str(spec.seed), "study", str(i)])
        folder = (
            root / "dicom" / f"{patient['name']}_{patient['id']}" / f"{patient['study_date']}_{accession}"
        )
        views = ["PA", "LL"] if prng.random() < 0.3 else [prng.choice(["PA", "AP"])]
        for k, view in enumerate(views):
            side = int(rng.integers(spec.min_size, spec.max_size + 1))
            w, h = (int(side * 0.85), side) if view != "LL" else (int(side * 0.8), side)
            syntax = spec.syntaxes[n_good % len(spec.syntaxes)]
            bits = 8 if syntax == "jpeg-baseline" else int(prng.choice([12, 14, 16]))
            mono1 = prng.random() < 0.4
            modality = prng.choice(["CR", "DX"])
            img = _variant(base, rng, w, h, lateral=view == "LL")
            ds = _dataset(
                i,
                k,
                rng,
                img,
                bits=bits,
                mono1=mono1,
                modality=modality,
                view=view,
                study_uid=study_uid,
                patient=patient,
                accession=accession,
                seed=spec.seed,
            )
            if k == 0:  # the RIS's boxes are drawn on the study's first (frontal) image
                box_image = (w, h, str(ds.SOPInstanceUID))
            path = folder / f"IMG{k:03d}_{patient['id']}.dcm"  # PHI in file names too, as some exports do
            rel = str(path.relative_to(root / "dicom"))
            if i < n_bad_target and k == 0:
                kind = BAD_KINDS[i % len(BAD_KINDS)]
                _corrupt(kind, path, ds, prng)
                truth["files"][rel] = {"bad": kind}
                continue
            written = _write(ds, path, syntax)
            n_good += 1
            truth["files"][rel] = {
                "syntax": written,
                "bits": bits,
                "mono1": mono1,
                "modality": modality,
                "view": view,
                "size": [w, h],
                "lossy": written in LOSSY,
            }
        labels = prng.sample(FINDINGS, prng.randint(0, 2))
        boxes = []
        w, h, box_uid = box_image
        for name, _ in labels:
            if prng.random() < 0.6:
                x1, y1 = prng.randint(0, w // 2), prng.randint(0, h // 2)
                bw, bh = prng.randint(16, max(17, w // 3)), prng.randint(16, max(17, h // 3))
                boxes.append({"label": name, "box": [x1, y1, x1 + bw, y1 + bh]})
        text = "; ".join(t for _, t in labels) or "no acute cardiopulmonary abnormality"
        ris_rows.append(
            {
                "accession_number": accession,
                "patient_id": patient["id"],
                "study_date": patient["study_date"],
                "findings": f"FINDINGS: {text}.",
                "labels": "|".join(n for n, _ in labels),
                "boxes": json.dumps(boxes),
                "sop_instance_uid": box_uid,
            }
        )
    if shutil.which("dcmcjpeg") is None:
        truth["notes"].append(
            "dcmtk not installed: jpeg-lossless and jpeg-baseline files were written uncompressed"
        )
    with (root / "ris" / "ris.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ris_rows[0]) if ris_rows else ["accession_number"])
        writer.writeheader()
        writer.writerows(ris_rows)
    truth["spec"] = asdict(spec)
    (root / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    return truth
