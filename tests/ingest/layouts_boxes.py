"""VinDr-CXR, MS-CXR and PadChest layouts (boxes per reader, x/y/w/h boxes, 16-bit PNG), as published;
the shared writers and the MIMIC-CXR / CheXpert layouts are in tests/ingest/layouts.py."""

from __future__ import annotations

from pathlib import Path

from tests.ingest.layouts import CANARY, write_csv, write_dicom, write_png16

# -- VinDr-CXR --------------------------------------------------------------------------------------
VINDR_LABELS = [
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture", "Consolidation",
    "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung cavity", "Lung cyst", "Lung Opacity",
    "Mediastinal shift", "Nodule/Mass", "Pleural effusion", "Pleural thickening", "Pneumothorax",
    "Pulmonary fibrosis", "Rib fracture", "Other lesion", "COPD", "Lung tumor", "Pneumonia", "Tuberculosis",
    "Other disease", "No finding",
]  # fmt: skip
VINDR_BOXES = ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"]


def vindr_layout(root: Path) -> dict:
    """3 training images read by 3 radiologists (R8, R9, R10), 2 test images (consensus, no rad_id)."""
    truth = {"ids": [], "boxes": {}, "sizes": {}}
    for split, n in (("train", 3), ("test", 2)):
        labels, boxes = [], []
        for i in range(n):
            image = f"{CANARY}{split}{i:03d}" + "0" * 10
            w, h = 320 + 16 * i, 280
            write_dicom(
                root / split / f"{image}.dicom",
                w,
                h,
                seed=100 + i + (10 if split == "test" else 0),
                PatientName=f"{CANARY}^NAME",  # never read: only the allow-listed attributes are
                PatientSex="F" if i % 2 else "M",
                PatientAge=f"{45 + i:03d}Y",
                ViewPosition="PA",
            )
            truth["ids"].append(image)
            truth["sizes"][image] = (w, h)
            readers = ["R8", "R9", "R10"] if split == "train" else [""]
            for r, rad in enumerate(readers):
                row = {"image_id": image, "rad_id": rad, **{c: 0 for c in VINDR_LABELS}}
                if i == 0:  # no finding
                    row["No finding"] = 1
                    boxes.append({"image_id": image, "rad_id": rad, "class_name": "No finding"})
                else:
                    row["Cardiomegaly"] = 1
                    box = [100.0 + 3 * r, 150.0 + 2 * r, 220.5 + r, 230.0 + 4 * i]
                    boxes.append(
                        {
                            "image_id": image,
                            "rad_id": rad,
                            "class_name": "Cardiomegaly",
                            **dict(zip(VINDR_BOXES[3:], box, strict=True)),
                        }
                    )
                    truth["boxes"].setdefault(image, []).append(("Cardiomegaly", box, rad or "consensus"))
                    if r == 0:  # only one reader marks a nodule
                        row["Nodule/Mass"] = 1
                        nod = [30.0, 40.0, 61.0, 75.0]
                        boxes.append(
                            {
                                "image_id": image,
                                "rad_id": rad,
                                "class_name": "Nodule/Mass",
                                **dict(zip(VINDR_BOXES[3:], nod, strict=True)),
                            }
                        )
                        truth["boxes"][image].append(("Nodule/Mass", nod, rad or "consensus"))
                if split == "test":
                    row.pop("rad_id")
                labels.append(row)
        cols = ["image_id"] + (["rad_id"] if split == "train" else []) + VINDR_LABELS
        write_csv(root / "annotations" / f"image_labels_{split}.csv", labels, cols)
        bcols = VINDR_BOXES if split == "train" else [c for c in VINDR_BOXES if c != "rad_id"]
        write_csv(root / "annotations" / f"annotations_{split}.csv", boxes, bcols)
    return truth


# -- MS-CXR -----------------------------------------------------------------------------------------
MS_CXR = [
    "dicom_id",
    "category_name",
    "label_text",
    "path",
    "x",
    "y",
    "w",
    "h",
    "image_width",
    "image_height",
]


def ms_cxr_layout(root: Path, mimic_root: Path, mimic_truth: dict) -> dict:
    """Boxes on the first three MIMIC images; the third declares twice its file's size (a resized copy)."""
    rows, truth = [], {}
    for n, (d, info) in enumerate(list(mimic_truth["images"].items())[:3]):
        w, h = info["size"]
        dw, dh = (2 * w, 2 * h) if n == 2 else (w, h)
        x, y, bw, bh = 40 + 10 * n, 50, 90, 70 + n
        s = info["subject"]
        rows.append(
            {
                "dicom_id": d,
                "category_name": "Pneumonia",
                "label_text": "left lower lobe opacity",
                "path": f"files/p{s[:2]}/p{s}/s.../{d}.jpg",
                "x": x * dw // w,
                "y": y * dh // h,
                "w": bw * dw // w,
                "h": bh * dh // h,
                "image_width": dw,
                "image_height": dh,
            }
        )
        truth[d] = [x, y, x + bw, y + bh]
    write_csv(root / "MS_CXR_Local_Alignment_v1.0.0.csv", rows, MS_CXR)
    return truth


# -- PadChest ---------------------------------------------------------------------------------------
PADCHEST = [
    "ImageID", "ImageDir", "StudyDate_DICOM", "StudyID", "PatientID", "PatientBirth", "PatientSex_DICOM",
    "ViewPosition_DICOM", "Projection", "Pediatric", "MethodProjection", "Modality_DICOM", "Manufacturer_DICOM",
    "PhotometricInterpretation_DICOM", "PixelRepresentation_DICOM", "PixelAspectRatio_DICOM",
    "SpatialResolution_DICOM", "BitsStored_DICOM", "WindowCenter_DICOM", "WindowWidth_DICOM", "Rows_DICOM",
    "Columns_DICOM", "XRayTubeCurrent_DICOM", "Exposure_DICOM", "ExposureInuAs_DICOM", "ExposureTime",
    "RelativeXRayExposure_DICOM", "ReportID", "Report", "MethodLabel", "Labels", "Localizations",
    "LabelsLocalizationsBySentence", "labelCUIS", "LocalizationsCUIS",
]  # fmt: skip


def padchest_layout(root: Path) -> dict:
    rows, truth = [], {"ids": [], "images": {}}
    projections = ["PA", "L", "AP_horizontal", "COSTAL", "PA", "AP"]
    for i in range(6):
        patient = f"{CANARY}{i // 2:06d}patient"
        study = f"{CANARY}{i:06d}study"
        image = f"{CANARY}_{i:04d}_image.png"
        write_png16(root / str(i % 2) / image, 300, 270 + i, seed=200 + i)
        truth["ids"] += [patient, study, image]
        truth["images"][image] = {"patient": patient, "projection": projections[i]}
        labels = "['normal']" if i % 3 == 0 else "['pleural effusion', 'cardiomegaly', 'normal']"
        rows.append(
            {
                "ImageID": image,
                "ImageDir": i % 2,
                "StudyDate_DICOM": "20140915",
                "StudyID": study,
                "PatientID": patient,
                "PatientBirth": "1950.0",
                "PatientSex_DICOM": "F" if i % 2 else "M",
                "ViewPosition_DICOM": "POSTEROANTERIOR",
                "Projection": projections[i],
                "Report": "derrame pleural",
                "MethodLabel": "Physician",
                "Labels": labels,
            }
        )
    write_csv(root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", rows, PADCHEST, gz=True)
    return truth
