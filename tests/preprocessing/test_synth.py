"""The synthetic archive: deterministic, every syntax, PHI planted where real archives have it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom

from preprocessing.synth import SYNTAXES, SynthSpec, synth_archive


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_deterministic_for_a_seed(tmp_path):
    spec = SynthSpec(studies=10, seed=11, min_size=96, max_size=128, bad_share=0.3)
    synth_archive(tmp_path / "a", spec)
    synth_archive(tmp_path / "b", spec)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    synth_archive(tmp_path / "c", SynthSpec(studies=10, seed=12, min_size=96, max_size=128, bad_share=0.3))
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_every_transfer_syntax_and_phi_where_real_archives_have_it(archive):
    root, truth = archive
    written = {v["syntax"] for v in truth["files"].values() if "syntax" in v}
    assert written == set(SYNTAXES)
    assert {v["mono1"] for v in truth["files"].values() if "syntax" in v} == {True, False}
    rel, info = next((r, v) for r, v in sorted(truth["files"].items()) if v.get("syntax") == "explicit")
    assert "CANARY-PHI-NAME" in rel and "CANARYACC" in rel  # folder and file names carry PHI
    ds = pydicom.dcmread(root / "dicom" / rel)
    assert ds.PatientName.family_name.startswith("CANARY-PHI-NAME")
    assert ds.RequestAttributesSequence[0].RequestedProcedureDescription.startswith("CANARY-PHI-NESTED")
    assert str(ds.private_block(0x0009, "CXRSYNTH")[0x01].value).startswith("CANARY-PHI-PRIVATE")
    assert "CANARY-PHI-NAME" in ds.ImageComments
    assert (root / "ris" / "ris.csv").read_text().startswith("accession_number,")
