"""VQA accuracy per task, after answer normalisation.

Why normalise: the model answers inside ``\\boxed{}`` in free text ("Yes.", "The answer is (B)",
"PA view"); exact string match would score wording, not correctness. Normalisation: lower case,
"the answer is" / "answer:" prefixes dropped, punctuation and the articles a/an/the removed,
whitespace folded. Then per task:

- ``vqa_closed``: the first word must be yes/no ("true"/"false" read as yes/no);
- ``vqa_choice``: the option letter (A–D), whether written "B", "(b)", "b)", "option B" or "B. mass";
- ``vqa_open``: the normalised strings must be equal, with projection aliases
  (posteroanterior → pa, anteroposterior → ap, lateral → lat) and "view"/"projection" dropped.
"""

from __future__ import annotations

import re

_PREFIX = re.compile(r"^\s*(?:(?:so|thus|therefore),?\s+)?(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", re.I)
_PUNCT = re.compile(r"[^\w\s]")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_CHOICE = re.compile(r"^\s*(?:option\s+|choice\s+)?\(?([a-d])\)?(?:[\s.:)]|$)", re.I)
_YES_NO = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}
_OPEN_ALIASES = {"posteroanterior": "pa", "anteroposterior": "ap", "lateral": "lat", "lateral lat": "lat"}
_OPEN_DROP = re.compile(r"\b(?:view|projection|radiograph|chest|x ?ray)\b")


def normalize(text: object) -> str:
    s = "" if text is None else str(text)
    s = _PREFIX.sub("", s.strip())
    s = _PUNCT.sub(" ", s.lower())
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def closed(text: object) -> str:
    words = normalize(text).split()
    return _YES_NO.get(words[0], "") if words else ""


def choice(text: object) -> str:
    s = _PREFIX.sub("", "" if text is None else str(text).strip())
    m = _CHOICE.match(s)
    return m.group(1).upper() if m else ""


def open_answer(text: object) -> str:
    s = " ".join(_OPEN_DROP.sub(" ", normalize(text)).split())
    return _OPEN_ALIASES.get(s, s)


NORMALIZERS = {"vqa_closed": closed, "vqa_choice": choice, "vqa_open": open_answer}


def correct(task: str, pred: object, ref: object) -> bool:
    """True when the normalised prediction equals the normalised reference (never for an empty one)."""
    norm = NORMALIZERS[task]
    p = norm(pred)
    return bool(p) and p == norm(ref)
