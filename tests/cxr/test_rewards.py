"""Rewards: the seed's reward reproduced exactly (hand-derived tables + a literal oracle), corrected
components, mixes and the TRL adapter."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mathruler.grader import extract_boxed_content

from cxr.rewards import PRESETS, TrlReward, resolve_mix, score, trl_reward_funcs
from cxr.rewards import corrected as cor
from cxr.rewards import deepmedix as seed

B = "\\boxed"


def seed_oracle(p: str, g: str) -> tuple[float, float, float, float]:
    """The seed's reward code as published (seed-and-peers.md), literal regexes and mathruler."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_score import rouge_scorer

    p = re.sub(r"\s*(<|>|/)\s*", r"\1", p)
    fmt = 1.0 if re.fullmatch(r"<think>.*</think>.*\\boxed\{.*\}.*", p, re.DOTALL) else 0.0
    ans = extract_boxed_content(p)
    if ans == "":
        ans = " "
    if "|" in g and len(g.strip().split()) <= 20:
        labels = [x.strip().lower() for x in g.strip().split("|")]
        preds = [x.strip().lower() for x in ans.strip().split("|")]
        tp = len(set(labels) & set(preds))
        pr, rc = tp / len(preds), tp / len(labels)
        acc = 1.5 * (0.0 if pr + rc == 0 else 2 * pr * rc / (pr + rc))
    elif len(g.strip().split()) <= 2:
        acc = 1.5 if ans.lower() == g.lower() else 0.0
    else:
        sm = SmoothingFunction().method2
        b1 = sentence_bleu([g], ans, weights=(1, 0, 0, 0), smoothing_function=sm)
        b4 = sentence_bleu([g], ans, weights=(0.25, 0.25, 0.25, 0.25), smoothing_function=sm)
        r1 = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True).score(ans, g)["rouge1"].fmeasure
        acc = 1.5 * (b1 + b4 + r1) / 3
    coord = 0.0
    m = re.search(r"<think>(.*?)</think>", p, re.DOTALL)
    if m:
        for box in re.findall(r"\[([-+]?\d*\.?\d+(?:,\s*[-+]?\d*\.?\d+){3})\]", m.group(1)):
            coord += 0.05 if max(float(v) for v in box.split(",")) <= 512 else -0.2
        coord = min(coord, 0.15)
    return 0.9 * acc + 0.1 * fmt + coord, acc, fmt, coord


def think(steps: str, answer: str | None) -> str:
    tail = f" The answer is: {B}{{{answer}}}" if answer is not None else " The answer is yes"
    return f"<think> {steps} </think>{tail}"


# (completion, ground truth, accuracy, format, coordinate) — every value derived by hand from the spec.
CHAR_B4 = (1 * (6 / 8) * (3 / 7) * (2 / 6)) ** 0.25  # 'cc bb aa' vs 'aa bb cc', method2 on characters
SEED_TABLE = [
    # short answer: case-insensitive exact match; one in-range box
    (think("step 1: [10, 20, 30, 40]", "Yes"), "yes", 1.5, 1.0, 0.05),
    # short answer, wrong
    (think("step 1: [10, 20, 30, 40]", "no"), "yes", 0.0, 1.0, 0.05),
    # nested braces: the last \boxed{ up to its balancing brace
    (think("x", "wrong") + f" {B}{{\\frac{{1}}{{2}}}}", "\\frac{1}{2}", 1.5, 1.0, 0.0),
    # missing box: answer "None", no format; a ground truth "none" then matches (the seed's quirk)
    (think("[1, 2, 3, 4]", None), "yes", 0.0, 0.0, 0.05),
    (think("[1, 2, 3, 4]", None), "none", 1.5, 0.0, 0.05),
    # box > 512 costs 0.2; "[1,2,3,4]" (no space) counts
    (think("[0, 0, 600, 10] and [1,2,3,4]", "no"), "no", 1.5, 1.0, -0.15),
    # more than 3 boxes: +0.05 each, capped at 0.15
    (think("[1, 1, 2, 2] [1, 1, 3, 3] [1, 1, 4, 4] [1, 1, 5, 5]", "no"), "no", 1.5, 1.0, 0.15),
    # the cap applies to the sum: 5 good (0.25) + 1 bad (-0.2) = 0.05
    (think("[1,1,2,2] [1,1,3,3] [1,1,4,4] [1,1,5,5] [1,1,6,6] [1,1,999,6]", "no"), "no", 1.5, 1.0, 0.05),
    # no lower bound
    (think("[0,0,900,900] [0,0,900,900] [0,0,900,900]", "no"), "no", 1.5, 1.0, -0.6),
    # boxes outside <think> or malformed ones do not count
    (think("[1 ,2,3,4] [ 1,2,3,4]", "no [1, 2, 3, 4]"), "no", 0.0, 1.0, 0.0),
    # whitespace around tags is normalised before the format check
    (f"< think > a < / think > {B}{{yes}}", "yes", 1.5, 1.0, 0.0),
    # list answer: set F1 of '|'-split, stripped, lower-cased labels: P = R = 1/2
    (think("", "Effusion | nodule"), "effusion|cardiomegaly", 0.75, 1.0, 0.0),
    # duplicates count in the list length: P = 1/2, R = 1/2
    (think("", "effusion|effusion"), "effusion|cardiomegaly", 0.75, 1.0, 0.0),
    # report: identical text scores the full 1.5
    (think("", "small left pleural effusion"), "small left pleural effusion", 1.5, 1.0, 0.0),
    # report: same characters in another word order: char BLEU-1 = 1, char BLEU-4 by hand, ROUGE-1 = 1
    (think("", "cc bb aa"), "aa bb cc", 1.5 * (1 + CHAR_B4 + 1) / 3, 1.0, 0.0),
    # empty answer becomes " ": 1 char vs 8, brevity penalty e^(1-8); char p1 = 1, p2..p4 = (0+1)/(1+1)
    (think("", ""), "aa bb cc", 1.5 * (math.exp(-7) + math.exp(-7) * (1 / 8) ** 0.25 + 0) / 3, 1.0, 0.0),
]


@pytest.mark.parametrize(("p", "g", "acc", "fmt", "coord"), SEED_TABLE)
def test_seed_reward_table(p, g, acc, fmt, coord):
    s = seed.deepmedix_reward(p, g)
    assert s.accuracy == pytest.approx(acc, abs=1e-12)
    assert s.format == fmt
    assert s.coordinate == pytest.approx(coord, abs=1e-12)
    assert s.overall == pytest.approx(0.9 * acc + 0.1 * fmt + coord, abs=1e-12)
    assert (s.overall, s.accuracy, s.format, s.coordinate) == pytest.approx(seed_oracle(p, g), abs=1e-12)


def test_character_and_word_bleu_differ():
    # 'on acute amede' has exactly the characters of 'no acute edema': char BLEU-1 = 1; words: 1 of 3.
    g, a = "no acute edema", "on acute amede"
    assert seed.bleu(g, a, (1, 0, 0, 0)) == 1.0
    assert seed.bleu(g.split(), a.split(), (1, 0, 0, 0)) == pytest.approx(1 / 3)
    # 'cc bb aa' vs 'aa bb cc': word bigrams 0/2 → 1/3, trigrams 0/1 → 1/2, 4-grams 0/1 → 1/2 (method2)
    word_b4 = (1 * (1 / 3) * (1 / 2) * (1 / 2)) ** 0.25
    assert cor.answer_words(think("", "cc bb aa"), "aa bb cc") == pytest.approx((1 + word_b4 + 1) / 3)
    assert seed.accuracy_reward(think("", "cc bb aa"), "aa bb cc") == pytest.approx(1.5 * (2 + CHAR_B4) / 3)
    assert CHAR_B4 != pytest.approx(word_b4, abs=1e-3)


def test_rouge1_uses_stemming():
    assert seed.rouge1("bilateral effusion noted", "bilateral effusions noted") == 1.0


# Text from an alphabet that hits every branch: tags, braces, boxes, numbers, '|', spaces.
PIECES = [
    "<think>",
    "</think>",
    "< / think >",
    B + "{",
    "{",
    "}",
    "[",
    "]",
    ",",
    ", ",
    "|",
    " ",
    "\n",
    "/",
    "512",
    "513",
    "7",
    "-3",
    ".5",
    "1.25",
    "yes",
    "No",
    "effusion",
    "none",
    "a",
    "The answer is:",
]
texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
truths = st.sampled_from(
    ["yes", "no", "none", "effusion|nodule", "small left pleural effusion", "[1,2,3,4]", ""]
)


@settings(max_examples=300, deadline=None)
@given(texts, truths)
def test_seed_reward_matches_literal_oracle(p, g):
    if not g.strip():
        g = "a"
    s = seed.deepmedix_reward(p, g)
    assert (s.overall, s.accuracy, s.format, s.coordinate) == pytest.approx(seed_oracle(p, g), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.one_of(texts, st.text(max_size=200)), truths, st.sampled_from(["report", "vqa_closed", "findings"]))
def test_rewards_never_raise_and_stay_in_range(p, g, task):
    g = g or "a"
    rec = {"answer": g, "task": task, "boxes": [{"label": "x", "box": [1, 2, 30, 40]}]}
    for preset in PRESETS:
        out = score(p, rec, resolve_mix(preset))
        for name, v in out.items():
            assert v is None or math.isfinite(v), name
    s = seed.deepmedix_reward(p, g)
    assert 0 <= s.accuracy <= 1.5 and s.format in (0.0, 1.0) and s.coordinate <= 0.15
    for v in (cor.answer_words(p, g), cor.grounding_iou(p, rec["boxes"] and [[1, 2, 30, 40]])):
        assert 0.0 <= v <= 1.0
    f = cor.report_findings(p, g, task)
    assert f is None if task != "report" else 0.0 <= f <= 1.0


def test_answer_words_missing_box_is_zero():
    # The seed gives 1.5 to a completion with no \boxed{} when the truth is "none"; the corrected score does not.
    p = think("[1, 2, 3, 4]", None)
    assert seed.accuracy_reward(seed.normalize(p), "none") == 1.5
    assert cor.answer_words(p, "none") == 0.0
    assert cor.answer_words(think("", "None"), "none") == 1.0


REF = [[10, 10, 50, 50], [100, 100, 200, 200]]


@pytest.mark.parametrize(
    ("text", "refs", "expected"),
    [
        (think("[10, 10, 50, 50] and [100, 100, 200, 200]", "yes"), REF, 1.0),
        # one of two found, no false positive: P = 1, R = 1/2
        (think("[10, 10, 50, 50]", "yes"), REF, 2 / 3),
        # IoU([10,10,50,50],[10,10,50,30]) = 800/1600 = 0.5: matched at threshold 0.5
        (think("[10, 10, 50, 30]", "yes"), REF[:1], 1.0),
        # IoU 0.4 < 0.5: no match
        (think("[10, 10, 50, 26]", "yes"), REF[:1], 0.0),
        # one-to-one: two copies of one good box near one reference (distinct boxes) → P = 1/2, R = 1
        (think("[10, 10, 50, 50] [10, 10, 50, 49]", "yes"), REF[:1], 2 / 3),
        # the same box cited twice (reasoning and answer) is one claim
        (think("[10, 10, 50, 50]", "[10, 10, 50, 50]"), REF[:1], 1.0),
        # boxes required but absent
        (think("no boxes here", "yes"), REF, 0.0),
        # no reference boxes: not applicable
        (think("[10, 10, 50, 50]", "yes"), [], None),
    ],
)
def test_grounding_iou(text, refs, expected):
    got = cor.grounding_iou(text, refs, 0.5)
    assert got == (None if expected is None else pytest.approx(expected))


def test_report_findings_component():
    truth = "FINDINGS: small left pleural effusion; enlarged cardiac silhouette."
    same = think("", "Pleural effusion on the left. The heart is enlarged, cardiomegaly.")
    half = think("", "Small left pleural effusion. No cardiomegaly.")
    assert cor.report_findings(same, truth, "report") == pytest.approx(1.0)
    assert cor.report_findings(half, truth, "report") == pytest.approx(2 / 3)  # P = 1, R = 1/2
    assert cor.report_findings(same, truth, "vqa_closed") is None
    assert cor.report_findings(think("", None), truth, "report") == 0.0


def test_mixes_and_trl_adapter():
    assert resolve_mix("deepmedix") == PRESETS["deepmedix"]
    assert resolve_mix("deepmedix", {"grounding_iou": 2.0}) == {"grounding_iou": 2.0}
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        resolve_mix("nope")
    with pytest.raises(ValueError, match="unknown component"):
        resolve_mix("deepmedix", {"bleu_chars": 1.0})
    p = think("[10, 10, 50, 50]", "yes")
    rec = {"answer": "yes", "task": "vqa_closed", "boxes": '[{"label": "x", "box": [10, 10, 50, 50]}]'}
    out = score(p, rec, resolve_mix("corrected"))
    assert out["grounding_iou"] == 1.0 and out["report_findings"] is None
    assert out["total"] == pytest.approx(1.0 * 1.0 + 0.1 * 1.0 + 0.5 * 1.0)
    funcs, weights = trl_reward_funcs(resolve_mix("deepmedix"))
    assert [f.__name__ for f in funcs] == ["deepmedix_accuracy", "deepmedix_format", "deepmedix_coordinate"]
    assert weights == [0.9, 0.1, 1.0]
    conv = [
        [{"role": "assistant", "content": p}],
        [{"role": "assistant", "content": [{"type": "text", "text": p}]}],
    ]
    assert TrlReward("deepmedix_accuracy")(conv, answer=["yes", "no"], task=None, boxes=None) == [1.5, 0.0]
    # TRL's weighted sum reproduces the seed's overall
    total = sum(w * f([p], answer=["yes"])[0] for f, w in zip(funcs, weights, strict=True))
    assert total == pytest.approx(seed.deepmedix_reward(p, "yes").overall)
