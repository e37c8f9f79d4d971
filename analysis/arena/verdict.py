"""What the judge is asked, how its answer is read, and how the two orders of a pair combine.

The judge sees the task's question and two answers labelled A and B and must answer with exactly one
of ``A``, ``B`` or ``tie``. Backends wrap every question in the grounded-reasoning template, so a
well-behaved judge thinks first and puts its verdict in ``\\boxed{}``; a plain reply works as well.

Reading a verdict (``parse_verdict``), in this order:
1. the content of the last ``\\boxed{…}`` if it is exactly a verdict (``A``, ``b``, ``Tie``, ``(A)``,
   ``Answer B`` …);
2. otherwise the last standalone verdict token in the text after the last ``</think>`` (or the whole
   text): ``A`` / ``B`` in capitals, ``tie`` in any case; a lowercase ``a`` / ``b`` counts only when it
   is the whole reply, because "a" is also the English article ("a tough call" is no verdict);
3. otherwise ``invalid`` — recorded, counted in the invalid rate, left out of the fit.

Combining the two orders of one case (``combine_orders``): each order's verdict is first turned into
the model it favours. The case is a win for a model only if it wins in *both* orders; a split (each
model wins once, i.e. the judge preferred whichever answer sat in one position) or a tie in either
order is a tie; if either order is invalid the case is invalid for that pair. Position bias thus
becomes ties instead of wins.
"""

from __future__ import annotations

import re

A, B, TIE, INVALID = "A", "B", "tie", "invalid"

JUDGE_TEMPLATE = (
    "You are an experienced radiologist judging two answers to the same task about this chest X-ray.\n"
    "Task: {question}\n\n"
    "Answer A:\n{answer_a}\n\n"
    "Answer B:\n{answer_b}\n\n"
    "Which answer is more accurate and complete for this image? Reply with exactly one of: A, B, tie."
)

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_WHOLE = re.compile(
    r"^\W*(?:(?:answer|response|option|model)\s+)?(a|b|tie)\W*$",
    re.IGNORECASE,
)
# A/B in capitals (not inside a word, an id like "A1" or "B-lines"), "tie" in any case.
_TOKEN = re.compile(r"(?<![\w\-])(?:(A|B)|((?i:tie)))(?![\w\-])")


def judge_question(question: str, answer_a: str, answer_b: str, max_chars: int) -> str:
    def cut(s: str) -> str:
        s = (s or "").strip() or "(empty)"
        return s if len(s) <= max_chars else s[:max_chars] + " …"

    return JUDGE_TEMPLATE.format(question=question.strip(), answer_a=cut(answer_a), answer_b=cut(answer_b))


def _normal(token: str) -> str:
    return TIE if token.lower() == "tie" else token.upper()


def parse_verdict(text: str | None) -> str:
    """``A``, ``B``, ``tie`` or ``invalid`` (see the module docstring for the rule)."""
    if not text:
        return INVALID
    boxed = _BOXED.findall(text)
    if boxed:
        m = _WHOLE.match(boxed[-1])
        if m:
            return _normal(m.group(1))
    tail = text.rsplit("</think>", 1)[-1]
    m = _WHOLE.match(tail)
    if m:
        return _normal(m.group(1))
    tokens = _TOKEN.findall(tail)
    if not tokens:
        return INVALID
    letter, tie = tokens[-1]
    return _normal(letter or tie)


def favoured(verdict: str, first: str, second: str) -> str:
    """The model a verdict favours, given which model's answer was shown as A (``first``)."""
    return {A: first, B: second, TIE: TIE}.get(verdict, INVALID)


def combine_orders(v_ab: str, v_ba: str, model_a: str, model_b: str) -> str:
    """One case's outcome for the pair: ``model_a``, ``model_b``, ``tie`` or ``invalid``, from the
    verdict with model_a shown as A (``v_ab``) and the verdict with model_b shown as A (``v_ba``)."""
    x, y = favoured(v_ab, model_a, model_b), favoured(v_ba, model_b, model_a)
    if INVALID in (x, y):
        return INVALID
    return x if x == y else TIE
