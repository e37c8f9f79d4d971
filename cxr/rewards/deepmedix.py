"""The seed's (DeepMedix-R1) RL reward, reproduced bit for bit from its public reward code.

Specification: ../shared/notes/seed-and-peers.md, "The seed's exact RL reward". Two known defects are
kept on purpose, because this is the reproduction (``cxr.rewards.corrected`` has the fixes):
- the report branch scores BLEU on raw strings, so its n-grams are *characters*;
- the coordinate term rewards emitting in-range boxes, never compares them with a reference.
A third follows from the spec: a completion without ``\\boxed{}`` answers the string ``"None"``, which
matches a ground truth of "none" exactly.

The regexes are the seed's except where they backtrack quadratically (tag-space normalisation, the
format check, the coordinate number form): those are linear rewrites that accept exactly the same
strings (tests compare them with the seed's literal regexes on random input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from cxr.format.parse import format_ok, last_boxed, strip_tag_space

# The seed's `[-+]?\d*\.?\d+` denotes the same strings as this unambiguous form.
_SEED_NUM = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
COORD_RE = re.compile(rf"\[({_SEED_NUM}(?:,\s*{_SEED_NUM}){{3}})\]")
THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
SCALE = 1.5  # the seed multiplies every accuracy branch by 1.5
BOX_OK, BOX_BAD, COORD_CAP, MAX_COORD = 0.05, -0.2, 0.15, 512.0


@dataclass(frozen=True)
class SeedScore:
    overall: float
    accuracy: float
    format: float
    coordinate: float


def normalize(p: str) -> str:
    """``re.sub(r"\\s*(<|>|/)\\s*", r"\\1", p)``."""
    return strip_tag_space(p)


def extract_answer(p: str) -> str:
    """mathruler's ``extract_boxed_content``: "None" when absent/unclosed; empty becomes " "."""
    ans = last_boxed(p)
    ans = "None" if ans is None else ans
    return ans or " "


def format_reward(p: str) -> float:
    return 1.0 if format_ok(p) else 0.0


def is_list_answer(g: str) -> bool:
    return "|" in g and len(g.strip().split()) <= 20


def is_short_answer(g: str) -> bool:
    return len(g.strip().split()) <= 2


def list_f1(ans: str, g: str) -> float:
    labels = [x.strip().lower() for x in g.strip().split("|")]
    preds = [x.strip().lower() for x in ans.strip().split("|")]
    tp = len(set(labels) & set(preds))
    precision, recall = tp / len(preds), tp / len(labels)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge1():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def bleu(reference, hypothesis, weights) -> float:
    """nltk ``sentence_bleu`` with smoothing method2. Strings give character n-grams (the seed's
    call); token lists give word n-grams."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return float(
        sentence_bleu(
            [reference], hypothesis, weights=weights, smoothing_function=SmoothingFunction().method2
        )
    )


def rouge1(ans: str, g: str) -> float:
    return float(_rouge1().score(ans, g)["rouge1"].fmeasure)


def report_score(ans: str, g: str) -> float:
    """(BLEU-1 + BLEU-4 + ROUGE-1) / 3 with the seed's raw-string (character) BLEU."""
    b1 = bleu(g, ans, (1, 0, 0, 0))
    b4 = bleu(g, ans, (0.25, 0.25, 0.25, 0.25))
    return (b1 + b4 + rouge1(ans, g)) / 3


def accuracy_reward(p: str, g: str) -> float:
    ans = extract_answer(p)
    if is_list_answer(g):
        return SCALE * list_f1(ans, g)
    if is_short_answer(g):
        return SCALE if ans.lower() == g.lower() else 0.0
    return SCALE * report_score(ans, g)


def coordinate_reward(p: str) -> float:
    m = THINK_RE.search(p)
    if not m:
        return 0.0
    total = 0.0
    for box in COORD_RE.findall(m.group(1)):
        total += BOX_OK if max(float(v) for v in box.split(",")) <= MAX_COORD else BOX_BAD
    return min(total, COORD_CAP)


def deepmedix_reward(completion: str, ground_truth: str) -> SeedScore:
    p = normalize(completion)
    acc, fmt, coord = accuracy_reward(p, ground_truth), format_reward(p), coordinate_reward(p)
    return SeedScore(overall=0.9 * acc + 0.1 * fmt + coord, accuracy=acc, format=fmt, coordinate=coord)
