"""De-identification by allow-list: keyed pseudonyms, shifted dates, age bands.

Nothing from a DICOM header reaches the shards or tables unless it is named in ``safe_attributes``;
identifiers become HMAC-SHA256 pseudonyms under a site key (from env/file, never written anywhere),
so the same patient/study gets the same pseudonym in every run and archive of the site, and nobody
without the key can link back. Dates are shifted by a per-patient offset (intervals within a patient
survive) or cut to the year. Ages are banded (5 years; 90+ together, as HIPAA's safe harbour asks).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from pydicom.dataset import Dataset

VIEWS = {
    "PA": "PA",
    "AP": "AP",
    "LL": "LAT",
    "RL": "LAT",
    "LAT": "LAT",
    "LATERAL": "LAT",
    "LLD": "LAT",
    "RLD": "LAT",
}


class Pseudonymizer:
    def __init__(self, key: bytes, *, date_mode: str = "shift", max_shift_days: int = 365):
        if len(key) < 16:
            raise ValueError("the de-identification key must be at least 16 bytes")
        if date_mode not in ("shift", "year"):
            raise ValueError(f"date_mode must be 'shift' or 'year', got {date_mode!r}")
        self._key, self.date_mode, self.max_shift_days = key, date_mode, max_shift_days

    def pseudonym(self, kind: str, value: str, length: int = 16) -> str:
        # surrogateescape: a file name that is not UTF-8 still has a pseudonym (its own bytes)
        msg = f"{kind}\x00{value}".encode("utf-8", "surrogateescape")
        mac = hmac.new(self._key, msg, hashlib.sha256).hexdigest()
        return f"{kind[0]}{mac[:length]}"

    def date(self, value: str, patient_pseudonym: str) -> str | None:
        """A DICOM DA (YYYYMMDD) → shifted ISO date, or the year only; None when unreadable."""
        m = re.fullmatch(r"\s*(\d{4})(\d{2})(\d{2})\s*", value or "")
        if not m:
            return None
        try:
            d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
        if self.date_mode == "year":
            return f"{d.year}"
        span = 2 * self.max_shift_days + 1
        shift = int(self.pseudonym("dateshift", patient_pseudonym)[1:9], 16) % span - self.max_shift_days
        return (d + dt.timedelta(days=shift)).isoformat()


def age_band(age: str | None) -> str | None:
    """DICOM AS ('064Y', '011M') → '60-64'; 90 and over → '90+'; None when absent."""
    m = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY])\s*", age or "")
    if not m:
        return None
    years = int(m.group(1)) / {"D": 365.25, "W": 52.18, "M": 12, "Y": 1}[m.group(2)]
    if years >= 90:
        return "90+"
    lo = int(years // 5) * 5
    return f"{lo}-{lo + 4}"


def safe_attributes(ds: Dataset, p: Pseudonymizer) -> dict:
    """The allow-list: the only header values that leave the DICOM file (plus pseudonyms)."""
    patient = p.pseudonym("patient", str(ds.get("PatientID", "")) or str(ds.get("PatientName", "")))
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        spacing_mm = [float(spacing[0]), float(spacing[1])] if spacing else None
    except (TypeError, ValueError, IndexError):
        spacing_mm = None
    sex = str(ds.get("PatientSex", "")).strip().upper()
    return {
        "patient_id": patient,
        "study_id": p.pseudonym("study", str(ds.get("StudyInstanceUID", ""))),
        "image_id": p.pseudonym("image", str(ds.get("SOPInstanceUID", ""))),
        "accession_id": p.pseudonym("accession", str(ds.get("AccessionNumber", "")).strip()),
        "modality": str(ds.get("Modality", "")).upper(),
        "view": VIEWS.get(str(ds.get("ViewPosition", "")).strip().upper(), "UNKNOWN"),
        "sex": sex if sex in ("F", "M", "O") else None,
        "age_band": age_band(str(ds.get("PatientAge", ""))),
        "study_date": p.date(str(ds.get("StudyDate", "")), patient),
        "pixel_spacing_mm": spacing_mm,
    }
