"""The RIS export: CSV and JSON lines read alike; bad rows get an error naming the file and row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cxr.errors import UserError
from preprocessing.deid import Pseudonymizer
from preprocessing.ris import load_ris

P = Pseudonymizer(b"test-site-key-0123456789")
ROWS = [
    {
        "accession_number": "ACC1",
        "findings": "FINDINGS: small left effusion.",
        "labels": "effusion",
        "boxes": json.dumps([{"label": "effusion", "box": [10, 20, 60, 90]}]),
        "sop_instance_uid": "1.2.3.4",
    },
    {"accession_number": "ACC2", "findings": "FINDINGS: clear.", "labels": "", "boxes": ""},
]


def test_csv_and_json_lines_give_the_same_records(tmp_path):
    pd.DataFrame(ROWS).to_csv(tmp_path / "ris.csv", index=False)
    (tmp_path / "ris.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    a, b = load_ris(tmp_path / "ris.csv", P), load_ris(tmp_path / "ris.jsonl", P)
    pd.testing.assert_frame_equal(a, b)
    row = a.set_index("accession_id").loc[P.pseudonym("accession", "ACC1")]
    assert row["labels"] == ["effusion"] and json.loads(row["boxes"])[0]["box"] == [10, 20, 60, 90]
    assert row["box_image_id"] == P.pseudonym("image", "1.2.3.4")  # the index's pseudonym of that image
    assert a.set_index("accession_id").loc[P.pseudonym("accession", "ACC2"), "box_image_id"] == ""
    assert "ACC1" not in a.to_csv() and "1.2.3.4" not in a.to_csv()


def test_boxes_that_are_not_json_name_the_file_and_row(tmp_path):
    bad = [*ROWS, {**ROWS[1], "accession_number": "ACC3", "boxes": "[10, 20"}]
    pd.DataFrame(bad).to_csv(tmp_path / "ris.csv", index=False)
    with pytest.raises(UserError, match=r"ris\.csv: row 3: 'boxes' is not JSON"):
        load_ris(tmp_path / "ris.csv", P)
