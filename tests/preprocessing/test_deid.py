"""De-identification units: keyed pseudonyms, per-patient date shifts, year-only dates, age bands,
and the allow-list of attributes that may leave a DICOM header."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset

from preprocessing.deid import Pseudonymizer, age_band, safe_attributes

KEY = b"test-site-key-0123456789"


def test_pseudonyms_are_keyed_stable_and_kind_specific():
    p, q = Pseudonymizer(KEY), Pseudonymizer(b"another-site-key-98765")
    assert p.pseudonym("patient", "12345") == Pseudonymizer(KEY).pseudonym("patient", "12345")
    assert p.pseudonym("patient", "12345") != q.pseudonym("patient", "12345")  # the key decides
    assert p.pseudonym("patient", "12345") != p.pseudonym("study", "12345")
    assert p.pseudonym("patient", "12345").startswith("p") and len(p.pseudonym("patient", "1")) == 17
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonymizer(b"short")


def test_dates_shift_by_one_offset_per_patient():
    p = Pseudonymizer(KEY)
    a1, a2 = p.date("20200101", "pA"), p.date("20200315", "pA")
    interval = dt.date.fromisoformat(a2) - dt.date.fromisoformat(a1)
    assert interval == dt.date(2020, 3, 15) - dt.date(2020, 1, 1)  # intervals within a patient survive
    shifts = {
        (dt.date.fromisoformat(p.date("20200101", f"p{i}")) - dt.date(2020, 1, 1)).days for i in range(40)
    }
    assert len(shifts) > 30 and all(abs(s) <= 365 for s in shifts)  # patients get different shifts
    assert (
        p.date("2020-01-01", "pA") is None and p.date("20201341", "pA") is None and p.date("", "pA") is None
    )


def test_year_mode_keeps_only_the_year():
    assert Pseudonymizer(KEY, date_mode="year").date("20200315", "pA") == "2020"
    with pytest.raises(ValueError, match="date_mode"):
        Pseudonymizer(KEY, date_mode="month")


@pytest.mark.parametrize(
    ("age", "band"),
    [("064Y", "60-64"), ("065Y", "65-69"), ("011M", "0-4"), ("003W", "0-4"), ("089Y", "85-89")]
    + [("090Y", "90+"), ("104Y", "90+"), ("", None), ("abc", None), (None, None)],
)
def test_ages_are_banded_with_90_and_over_together(age, band):
    assert age_band(age) == band


def test_only_the_allow_list_leaves_the_header():
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JANE", "MRN-0042", "19500101"
    ds.AccessionNumber, ds.StudyInstanceUID, ds.SOPInstanceUID = "ACC-77", "1.2.3", "1.2.3.4"
    ds.InstitutionName, ds.StudyDate, ds.PatientAge, ds.PatientSex = "St Elsewhere", "20200315", "070Y", "F"
    ds.Modality, ds.ViewPosition, ds.PixelSpacing = "DX", "PA", [0.139, 0.139]
    attrs = safe_attributes(ds, Pseudonymizer(KEY))
    assert set(attrs) == {
        "patient_id",
        "study_id",
        "image_id",
        "accession_id",
        "modality",
        "view",
        "sex",
        "age_band",
        "study_date",
        "pixel_spacing_mm",
    }
    text = repr(attrs)
    for phi in ("DOE", "JANE", "MRN-0042", "19500101", "ACC-77", "Elsewhere", "2020-03-15", "1.2.3"):
        assert phi not in text
    assert (attrs["view"], attrs["sex"], attrs["age_band"]) == ("PA", "F", "70-74")
