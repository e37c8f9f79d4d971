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
    (box,) = json.loads(row["boxes"])
    assert row["labels"] == ["effusion"] and box["box"] == [10, 20, 60, 90]
    assert box["image_id"] == P.pseudonym("image", "1.2.3.4")  # the index's pseudonym of that image
    assert a.set_index("accession_id").loc[P.pseudonym("accession", "ACC2"), "boxes"] == "[]"
    assert "ACC1" not in a.to_csv() and "1.2.3.4" not in a.to_csv()


def test_json_lines_keep_values_as_written(tmp_path):
    """Digit-only accession numbers keep their leading zeros; labels and boxes may be real lists."""
    row = {"accession_number": "00123", "labels": ["a", "b"], "boxes": [{"label": "a", "box": [1, 2, 3, 4]}]}
    (tmp_path / "ris.jsonl").write_text(json.dumps(row) + "\n")
    (rec,) = load_ris(tmp_path / "ris.jsonl", P).to_dict("records")
    assert rec["accession_id"] == P.pseudonym("accession", "00123")
    assert list(rec["labels"]) == ["a", "b"] and json.loads(rec["boxes"])[0]["box"] == [1, 2, 3, 4]


def test_one_row_per_annotated_image_makes_one_record_with_every_box(tmp_path):
    rows = [
        {**ROWS[0], "sop_instance_uid": "1.2.3.4"},
        {
            **ROWS[0],
            "boxes": json.dumps([{"label": "effusion", "box": [5, 5, 9, 9]}]),
            "sop_instance_uid": "1.2.3.5",
        },
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "ris.csv", index=False)
    (rec,) = load_ris(tmp_path / "ris.csv", P).to_dict("records")
    assert [b["image_id"] for b in json.loads(rec["boxes"])] == [
        P.pseudonym("image", "1.2.3.4"),
        P.pseudonym("image", "1.2.3.5"),
    ]


@pytest.mark.parametrize("boxes", ["[10, 20", '{"box": [1, 2, 3, 4]}', '[{"label": "a"}]'])
def test_bad_boxes_name_the_file_and_row(tmp_path, boxes):
    bad = [*ROWS, {**ROWS[1], "accession_number": "ACC3", "boxes": boxes}]
    pd.DataFrame(bad).to_csv(tmp_path / "ris.csv", index=False)
    with pytest.raises(UserError, match=r"ris\.csv: row 3: 'boxes'"):
        load_ris(tmp_path / "ris.csv", P)


def test_a_bad_ris_export_stops_preprocess_before_any_work(archive, deid_key, tmp_path):
    from jobs.preprocess import preprocess

    from .conftest import preprocess_cfg

    root, _ = archive
    pd.DataFrame([{**ROWS[0], "boxes": "[1, 2"}]).to_csv(tmp_path / "ris.csv", index=False)
    with pytest.raises(UserError, match="row 1: 'boxes'"):
        preprocess(
            preprocess_cfg(root, tmp_path / "shards", f"ris={tmp_path / 'ris.csv'}"), log=lambda s: None
        )
    assert not (tmp_path / "shards" / "plan.parquet").exists()
