"""The CheXpert-rule labeler: hand-labelled sentences, hand-computed F1s, and never-raises properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxr.metrics.chexpert_rules import (
    FINDINGS,
    NEGATIVE,
    POSITIVE,
    UNCERTAIN,
    corpus_f1,
    findings_f1,
    label_report,
)

P, N, U = POSITIVE, NEGATIVE, UNCERTAIN
NF = {"No Finding": P}

CASES = [
    # The synthetic reports preprocessing/synth.py writes.
    (
        "FINDINGS: small left pleural effusion; enlarged cardiac silhouette.",
        {"Pleural Effusion": P, "Cardiomegaly": P},
    ),
    (
        "FINDINGS: right lower lobe consolidation; small apical pneumothorax.",
        {"Consolidation": P, "Pneumothorax": P},
    ),
    ("FINDINGS: nodule in the right upper lobe.", {"Lung Lesion": P}),
    ("FINDINGS: no acute cardiopulmonary abnormality.", NF),
    # One mention per finding.
    ("Widened mediastinum.", {"Enlarged Cardiomediastinum": P}),
    ("The cardiomediastinal silhouette is within normal limits.", {"Enlarged Cardiomediastinum": N, **NF}),
    ("Heart size is normal.", {"Cardiomegaly": N, **NF}),
    ("The heart size is enlarged.", {"Cardiomegaly": P}),
    ("Patchy opacities in both lung bases.", {"Lung Opacity": P}),
    ("Nodular opacity in the left lower lobe.", {"Lung Lesion": P}),  # the longer phrase wins
    ("Pulmonary vascular congestion.", {"Edema": P}),
    ("Bibasilar atelectasis.", {"Atelectasis": P}),
    ("Pleural thickening at the right apex.", {"Pleural Other": P}),
    ("Acute fracture of the left seventh rib.", {"Fracture": P}),
    ("Endotracheal tube and right PICC line in place.", {"Support Devices": P, **NF}),
    ("Small pericardial effusion.", NF),  # not a pleural effusion
    ("Blunting of the left costophrenic angle.", {"Pleural Effusion": P}),
    # Negation, before and after the mention.
    ("No pneumothorax.", {"Pneumothorax": N, **NF}),
    (
        "No evidence of pleural effusion, pneumothorax, or focal consolidation.",
        {"Pleural Effusion": N, "Pneumothorax": N, "Consolidation": N, **NF},
    ),
    ("The previously seen pneumothorax has resolved.", {"Pneumothorax": N, **NF}),
    ("Pleural effusion is not seen.", {"Pleural Effusion": N, **NF}),
    ("No interval change in cardiomegaly.", {"Cardiomegaly": P}),  # "no change" is not a negation
    # Uncertainty.
    ("Findings are concerning for pneumonia.", {"Pneumonia": U}),
    ("Pneumonia cannot be excluded.", {"Pneumonia": U}),
    ("Possible small left pleural effusion.", {"Pleural Effusion": U}),
    ("Atelectasis vs. pneumonia.", {"Atelectasis": U, "Pneumonia": U}),
    ("Heart size is borderline enlarged.", {"Cardiomegaly": U}),
    ("Small effusions may be present.", {"Pleural Effusion": U}),
    (
        "Left basilar opacity may represent atelectasis or pneumonia.",
        {"Lung Opacity": P, "Atelectasis": U, "Pneumonia": U},
    ),
    # Clause splits and scope stops.
    ("No pleural effusion; mild cardiomegaly.", {"Pleural Effusion": N, "Cardiomegaly": P}),
    ("No effusion but there is a right apical pneumothorax.", {"Pleural Effusion": N, "Pneumothorax": P}),
    ("No pneumothorax and mild cardiomegaly.", {"Pneumothorax": N, "Cardiomegaly": P}),
    ("No effusion, which is reassuring given the cardiomegaly.", {"Pleural Effusion": N, "Cardiomegaly": P}),
    ("Without effusion, there is a large pneumothorax.", {"Pleural Effusion": N, "Pneumothorax": P}),
    # Negation against uncertainty: the nearer cue wins.
    ("Probably no pleural effusion.", {"Pleural Effusion": N, **NF}),
    ("No pleural effusion, possible pneumonia.", {"Pleural Effusion": N, "Pneumonia": U}),
    # Aggregation across mentions: POSITIVE > UNCERTAIN > NEGATIVE.
    ("No focal consolidation. Right lower lobe consolidation is present.", {"Consolidation": P}),
    ("Possible pneumonia. No pneumonia.", {"Pneumonia": U}),
    ("Possible pneumonia. Right lower lobe pneumonia.", {"Pneumonia": P}),
    # No Finding: set when nothing but support devices is positive or uncertain; absent for empty text.
    ("Patient positioned supine.", NF),
    ("Stable sternotomy wires. No acute cardiopulmonary process.", {"Support Devices": P, **NF}),
    ("", {}),
    ("  .;  ", {}),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:50] or "<empty>" for c in CASES])
def test_label_report(text, expected):
    assert label_report(text) == expected


def test_cases_cover_every_finding_in_every_state_that_matters():
    seen = {(f, v) for _, exp in CASES for f, v in exp.items()}
    assert {f for f, _ in seen} == set(FINDINGS)
    assert {v for _, v in seen} == {P, N, U}


def test_labels_come_in_chexpert_order():
    labels = label_report("Pacemaker. Small effusion. Cardiomegaly. Rib fracture.")
    assert list(labels) == ["Cardiomegaly", "Pleural Effusion", "Fracture", "Support Devices"]
    assert len(FINDINGS) == 14 and FINDINGS[0] == "No Finding" and FINDINGS[-1] == "Support Devices"


def test_label_report_refuses_non_strings():
    with pytest.raises(TypeError, match="str"):
        label_report(None)


@pytest.mark.parametrize(
    ("pred", "ref", "uncertain_as", "expected"),
    [
        # {Cardiomegaly, Edema} vs {Cardiomegaly}: P = 1/2, R = 1, F1 = 2/3.
        ("Mild cardiomegaly and pulmonary edema.", "Mild cardiomegaly.", P, 2 / 3),
        ("", "", P, 1.0),  # both sets empty
        ("", "Cardiomegaly.", P, 0.0),
        ("Cardiomegaly.", "Small pleural effusion.", P, 0.0),
        # {No Finding} on both sides.
        ("No acute cardiopulmonary abnormality.", "Heart size is normal. No effusion.", P, 1.0),
        # Uncertain edema counts as positive: {C, E} vs {C} = 2/3; as negative: {C} vs {C} = 1.
        ("Cardiomegaly. Possible pulmonary edema.", "Cardiomegaly.", P, 2 / 3),
        ("Cardiomegaly. Possible pulmonary edema.", "Cardiomegaly.", N, 1.0),
        # {Effusion, Pneumothorax, Cardiomegaly} vs {Effusion}: P = 1/3, R = 1, F1 = 1/2.
        ("Effusion. Pneumothorax. Cardiomegaly.", "Small effusion.", P, 0.5),
    ],
)
def test_findings_f1(pred, ref, uncertain_as, expected):
    assert findings_f1(pred, ref, uncertain_as=uncertain_as) == pytest.approx(expected)


def test_findings_f1_rejects_an_uncertain_as_that_is_not_a_label():
    with pytest.raises(ValueError, match="uncertain_as"):
        findings_f1("a", "b", uncertain_as=UNCERTAIN)


def test_corpus_f1_micro_and_macro_by_hand():
    refs = [
        "FINDINGS: small left pleural effusion; enlarged cardiac silhouette.",  # {PE, C}
        "FINDINGS: right lower lobe consolidation.",  # {Cons}
        "FINDINGS: no acute cardiopulmonary abnormality.",  # {NF}
    ]
    preds = [
        "FINDINGS: small left pleural effusion.",  # {PE}: PE tp, C fn
        "FINDINGS: right lower lobe consolidation; small apical pneumothorax.",  # Cons tp, Ptx fp
        "FINDINGS: no acute cardiopulmonary abnormality.",  # NF tp
    ]
    out = corpus_f1(preds, refs)
    assert set(out) == {"micro", "macro", "per_finding"}
    assert out["per_finding"] == {
        "No Finding": 1.0,
        "Cardiomegaly": 0.0,
        "Consolidation": 1.0,
        "Pneumothorax": 0.0,
        "Pleural Effusion": 1.0,
    }
    assert out["micro"] == pytest.approx(6 / 8)  # tp 3, fp 1, fn 1: 2*3 / (2*3 + 1 + 1)
    assert out["macro"] == pytest.approx(3 / 5)


def test_corpus_f1_uncertain_as_negative_and_empty_corpus():
    out = corpus_f1(["Possible pneumonia."], ["Pneumonia."], uncertain_as=N)
    assert out["per_finding"] == {"Pneumonia": 0.0} and out["micro"] == 0.0
    assert corpus_f1(["Possible pneumonia."], ["Pneumonia."])["micro"] == 1.0
    assert corpus_f1([], []) == {"micro": 1.0, "macro": 1.0, "per_finding": {}}


def test_corpus_f1_names_both_lengths_when_they_differ():
    with pytest.raises(ValueError, match=r"2 preds vs 1 refs"):
        corpus_f1(["a", "b"], ["a"])


_REPORTISH = st.lists(
    st.sampled_from([c[0] for c in CASES] + ["no", "not", "may", "versus", ";", ".", " but ", "vs."]),
    max_size=6,
).map(" ".join)
_TEXT = st.one_of(st.text(max_size=200), _REPORTISH)


@settings(max_examples=300, deadline=None)
@given(_TEXT, _TEXT)
def test_never_raises_and_stays_in_range(a, b):
    labels = label_report(a)
    assert set(labels) <= set(FINDINGS)
    assert set(labels.values()) <= {P, N, U}
    # The No Finding rule holds for any text.
    abnormal = any(v != N for f, v in labels.items() if f not in ("No Finding", "Support Devices"))
    assert ("No Finding" in labels) == (not abnormal and any(c.isalnum() for c in a))
    for uncertain_as in (P, N):
        f1 = findings_f1(a, b, uncertain_as=uncertain_as)
        assert 0.0 <= f1 <= 1.0
        assert f1 == findings_f1(b, a, uncertain_as=uncertain_as)
        assert findings_f1(a, a, uncertain_as=uncertain_as) == 1.0
