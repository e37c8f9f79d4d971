"""CheXpert-rule: a small regex labeler for the 14 CheXpert observations in report text.

Why our own: no installable labeler runs offline here (the CheXpert labeler needs NegBio and a
parser, CheXbert needs model weights). This mimics the CheXpert labeler's three stages (mention,
then negation/uncertainty, then aggregation) with phrase lists and cue regexes. It is an
approximation: report its scores as "CheXpert-rule", never as CheXpert-labeler or CheXbert numbers.

Rules, in order:
- Text is lowercased and cut into clauses at sentence ends, ``; : ? !``, newlines and
  "but / however / although / though / whereas / except"; cues never reach across a clause.
- Mentions: the phrase lists below, on word boundaries; where phrases overlap the longest wins
  ("nodular opacity" is a Lung Lesion only). "Normal X" phrases ("heart size is normal", "normal
  mediastinum") label their finding NEGATIVE outright.
- Cues: pre-cues ("no", "possible") act on mentions after them in the clause, post-cues ("has
  resolved", "cannot be excluded") on mentions before them; two-way cues ("may", "questionable")
  act backwards only when no mention follows them ("effusion may be present" but "opacity may
  represent pneumonia"); "versus/vs" acts both ways. A stop ("which", "there is", "and mild ...")
  between cue and mention blocks it. A cue inside a mention ("borderline enlarged") applies to it.
- Negation against uncertainty on one mention: the cue nearer the mention wins, negation on a tie
  ("probably no effusion" is NEGATIVE, "no effusion, possible pneumonia" leaves pneumonia UNCERTAIN).
- Across mentions of one finding: POSITIVE beats UNCERTAIN beats NEGATIVE (CheXpert's aggregation).
- No Finding is POSITIVE when no finding but Support Devices is POSITIVE or UNCERTAIN (CheXpert's
  rule), including text that mentions nothing; it is absent for text with no letters or digits.
"""

from __future__ import annotations

import re

FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
# The five findings report-generation papers quote "5-label" (CheXpert competition) F1 on.
FIVE: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1

_BE = r"(?: (?:is|are|appears?|remains?|seems?))?"
_DEGREE = r"(?:(?:mildly|moderately|markedly|severely|slightly|borderline) )?"
_NORMAL = r"(?:normal(?: in size)?|unremarkable|within normal limits|not enlarged|not widened)"
_HEART = r"(?:heart(?: size)?|cardiac (?:silhouette|size|contours?))"
_MED = r"(?:(?:cardio)?mediastinal (?:silhouette|contours?|width)|(?:cardio)?mediastinum)"
_OPAC = r"(?:opacit(?:y|ies)|densit(?:y|ies)|opacification)"


def _p(finding: str | None, phrases: str, fixed: int | None = None) -> list:
    """One (finding, regex, fixed label) row per ", "-separated phrase regex, on word boundaries."""
    return [(finding, re.compile(rf"\b(?:{p})\b"), fixed) for p in phrases.split(", ")]


# (finding, regex, fixed label). A None finding is consumed and labels nothing: a pericardial
# effusion is not a pleural one, a pleural or septal "line" is not a support device. Bare
# "fibrosis" is Pleural Other because the CheXpert labeler files it there; costophrenic blunting
# is our addition, read as Pleural Effusion.
_PHRASES = [
    *_p(
        "Enlarged Cardiomediastinum",
        rf"(?:enlarged|widened|widening of the) {_MED}, mediastinal (?:widening|enlargement), "
        rf"{_MED}{_BE} {_DEGREE}(?:enlarged|widened|wide)",
    ),
    *_p("Enlarged Cardiomediastinum", rf"(?:normal|unremarkable) {_MED}, {_MED}{_BE} {_NORMAL}", NEGATIVE),
    *_p(
        "Cardiomegaly",
        r"cardiomegaly, enlarged (?:heart|cardiac silhouette), cardiac enlargement, "
        rf"enlargement of the (?:heart|cardiac silhouette), {_HEART}{_BE} {_DEGREE}(?:enlarged|increased)",
    ),
    *_p(
        "Cardiomegaly", rf"(?:normal(?:[- ]sized)?|unremarkable) {_HEART}, {_HEART}{_BE} {_NORMAL}", NEGATIVE
    ),
    *_p("Lung Opacity", rf"{_OPAC}, infiltrates?, infiltration, haziness, air-?space (?:disease|process)"),
    *_p(
        "Lung Lesion",
        rf"nodules?, nodular {_OPAC}, mass(?:es)?, lesions?, lump, tumou?rs?, neoplasms?, carcinoma",
    ),
    *_p("Edema", r"o?edema, (?:vascular|pulmonary) congestion, chf, heart failure"),
    *_p("Consolidation", r"consolidations?, consolidative"),
    *_p("Pneumonia", r"(?:broncho)?pneumonias?, infections?, infectious"),
    *_p("Atelectasis", r"atelectas[ie]s, atelectatic, collapsed?"),
    *_p("Pneumothorax", r"(?:hydro)?pneumothora(?:x|ces)"),
    *_p(
        "Pleural Effusion",
        r"effusions?, pleural fluid, hydrothorax, costophrenic (?:angle )?blunting, "
        r"blunting of the (?:\w+ )?costophrenic (?:angles?|sulc(?:us|i))",
    ),
    *_p(None, r"pericardial effusions?, (?:pleural|skin|septal|kerley(?: b)?) lines?, mid-line"),
    *_p(
        "Pleural Other",
        r"pleural thickening, fibrothorax, fibrosis, pleural (?:scarring|scars?|plaques?), "
        r"pleur(?:o-?|al[- ])parenchymal scar(?:ring|s)?",
    ),
    *_p("Fracture", r"fractures?, fractured"),
    *_p(
        "Support Devices",
        r"tubes?, lines?, catheters?, pacemakers?, pacer, wires?, clips?, ports?, stents?, devices?, "
        r"picc, drains?, hardware, icd, coils?, cannula, mediport",
    ),
]

# Cue kinds: neg/unc, then pre (acts forwards), post (backwards), both (backwards only when
# trailing), pair (both ways). "stop" blocks scope; "pseudo" swallows look-alikes ("no change").
# Each value is ", "-separated regexes; at one position the longest pattern is tried first.
_CUES = {
    "neg_pre": "no, not, without, nor, negative for, free of, clear of, no evidence of, no signs? of, "
    "absence of, rules out, resolution of",
    "neg_post": "ha(?:s|ve) resolved, ha(?:s|ve) cleared, is absent, are absent, "
    "not (?:seen|identified|visualized|present|evident|appreciated|demonstrated), "
    "no longer (?:seen|identified|visualized|present|evident)",
    "neg_both": "resolved, ruled out",
    "unc_pre": "possible, possibly, probable, probably, likely, suspicious for, suspicion (?:of|for), "
    "suggests?, suggestive of, suggesting, concerning for, concern for, question of, differential, "
    "presumed, can ?not exclude, can ?not rule out",
    "unc_post": "can ?not be (?:excluded|ruled out), (?:is )?not (?:excluded|ruled out), is possible",
    "unc_both": "may, might, could, suspected, questionable, equivocal, borderline, unlikely, uncertain",
    "unc_pair": "versus, vs",
    "stop": r"which, there (?:is|are), (?:and|with) (?:an? )?(?:mild|moderate|severe|small|large|new"
    r"|persistent|stable|minimal|trace|increas\w*|worsen\w*|improv\w*)",
    "pseudo": "no (?:significant |interval )*change, without change",
}
_KINDS = sorted(((k, p) for k, ps in _CUES.items() for p in ps.split(", ")), key=lambda kp: -len(kp[1]))
_CUE_RE = re.compile("|".join(rf"(?P<c{i}>\b(?:{p})\b)" for i, (_, p) in enumerate(_KINDS)))
_SPLIT = re.compile(r"(?<!\d)\.(?!\d)|[;:?!\n]|\b(?:but|however|although|though|whereas|except)\b")


def _label_clause(clause: str) -> list[tuple[str, int]]:
    """(finding, label) for each mention in one clause."""
    found = sorted(
        ((m.start(), m.end(), f, fixed) for f, rx, fixed in _PHRASES for m in rx.finditer(clause)),
        key=lambda t: (t[0] - t[1], t[0]),
    )
    spans: list[tuple[int, int, str | None, int | None]] = []
    for s, e, f, fixed in found:  # longest first; drop anything overlapping a kept span
        if all(e <= s2 or s >= e2 for s2, e2, _, _ in spans):
            spans.append((s, e, f, fixed))
    if not spans:
        return []
    spans.sort()
    cues = [(_KINDS[int(m.lastgroup[1:])][0], m.start(), m.end()) for m in _CUE_RE.finditer(clause)]
    stops = [(cs, ce) for k, cs, ce in cues if k == "stop"]
    out = []
    for i, (s, e, f, fixed) in enumerate(spans):
        if f is None:
            continue
        if fixed is not None:
            out.append((f, fixed))
            continue
        nearest = {"neg": None, "unc": None}
        for kind, cs, ce in cues:
            pol, _, way = kind.partition("_")
            if pol not in nearest:
                continue
            owner = next((j for j, (s2, e2, _, _) in enumerate(spans) if cs < e2 and ce > s2), None)
            if owner is not None:  # a cue inside a mention belongs to that mention only
                dist, gap = (0, None) if owner == i else (None, None)
            elif ce <= s and way != "post":
                dist, gap = s - ce, (ce, s)
            elif cs >= e and (
                way in ("post", "pair") or (way == "both" and not any(s2 >= ce for s2, *_ in spans))
            ):
                dist, gap = cs - e, (e, cs)
            else:
                dist, gap = None, None
            if dist is None or (gap and any(gap[0] <= a and b <= gap[1] for a, b in stops)):
                continue
            if nearest[pol] is None or dist < nearest[pol]:
                nearest[pol] = dist
        neg, unc = nearest["neg"], nearest["unc"]
        if neg is not None and (unc is None or neg <= unc):
            out.append((f, NEGATIVE))
        else:
            out.append((f, POSITIVE if unc is None else UNCERTAIN))
    return out


def label_report(text: str) -> dict[str, int]:
    """Finding -> POSITIVE/NEGATIVE/UNCERTAIN for each finding the report mentions, CheXpert order."""
    if not isinstance(text, str):
        raise TypeError(f"label_report wants a str, got {type(text).__name__}")
    votes: dict[str, set[int]] = {}
    for clause in _SPLIT.split(text.lower().replace("vs.", "vs")):
        for finding, label in _label_clause(clause):
            votes.setdefault(finding, set()).add(label)
    labels = {
        f: POSITIVE if POSITIVE in v else UNCERTAIN if UNCERTAIN in v else NEGATIVE for f, v in votes.items()
    }
    abnormal = any(v != NEGATIVE for f, v in labels.items() if f != "Support Devices")
    if not abnormal and any(c.isalnum() for c in text):
        labels["No Finding"] = POSITIVE
    return {f: labels[f] for f in FINDINGS if f in labels}


def positive_findings(labels: dict[str, int], uncertain_as: int = POSITIVE) -> set[str]:
    """The findings a label dict (this labeler's or CheXbert's) counts as present for F1."""
    if uncertain_as not in (POSITIVE, NEGATIVE):
        raise ValueError(f"uncertain_as must be POSITIVE (1) or NEGATIVE (0), got {uncertain_as!r}")
    return {f for f, v in labels.items() if v == POSITIVE or (v == UNCERTAIN and uncertain_as == POSITIVE)}


def _positives(text: str, uncertain_as: int) -> set[str]:
    return positive_findings(label_report(text), uncertain_as)


def _f1(tp: int, fp: int, fn: int) -> float:
    """F1 = 2TP / (2TP + FP + FN); 1.0 when nothing is positive on either side (perfect agreement)."""
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def findings_f1(pred: str, ref: str, *, uncertain_as: int = POSITIVE) -> float:
    """Positive-class F1 between the CheXpert-rule label sets of two reports (all 14 findings)."""
    p, r = _positives(pred, uncertain_as), _positives(ref, uncertain_as)
    return _f1(len(p & r), len(p - r), len(r - p))


def pair_counts(pred: str, ref: str, *, uncertain_as: int = POSITIVE) -> dict[str, tuple[int, int, int]]:
    """(TP, FP, FN) per finding for one pair of reports; findings positive on neither side are left out."""
    p, r = _positives(pred, uncertain_as), _positives(ref, uncertain_as)
    return {
        f: (int(f in p and f in r), int(f in p and f not in r), int(f in r and f not in p)) for f in p | r
    }


def f1_from_counts(counts: dict[str, list[int]]) -> dict:
    """Micro, macro and per-finding F1 from pooled (TP, FP, FN) per finding (see ``corpus_f1``)."""
    per = {f: _f1(*c) for f, c in counts.items() if any(c)}
    micro = _f1(*(sum(c[k] for c in counts.values()) for k in range(3)))
    return {"micro": micro, "macro": sum(per.values()) / len(per) if per else 1.0, "per_finding": per}


def corpus_f1(
    preds: list[str],
    refs: list[str],
    *,
    uncertain_as: int = POSITIVE,
    findings: tuple[str, ...] = FINDINGS,
) -> dict:
    """Micro and macro CheXpert-rule F1 over paired reports, on ``findings`` (all 14 by default,
    ``FIVE`` for the 5-label score).

    "micro" pools TP/FP/FN over the findings; "macro" averages "per_finding", which holds only the
    findings positive in some pred or ref (an F1 with no positives anywhere says nothing).
    """
    if len(preds) != len(refs):
        raise ValueError(f"corpus_f1 needs paired reports: {len(preds)} preds vs {len(refs)} refs")
    unknown = set(findings) - set(FINDINGS)
    if unknown:
        raise ValueError(f"corpus_f1: unknown findings {sorted(unknown)}")
    counts = {f: [0, 0, 0] for f in findings}  # tp, fp, fn
    for pred, ref in zip(preds, refs, strict=True):
        for f, c in pair_counts(pred, ref, uncertain_as=uncertain_as).items():
            if f in counts:
                counts[f] = [a + b for a, b in zip(counts[f], c, strict=True)]
    return f1_from_counts(counts)
