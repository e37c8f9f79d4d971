"""Raw model text → reasoning, steps, boxes, answer, format_ok. Never raises, linear time.

The format (seed-and-peers.md): ``<think> step 1 with [x1, y1, x2, y2]; step 2 … </think> The answer
is: \\boxed{answer}``. ``answer`` and ``format_ok`` follow the seed's reward code exactly (mathruler's
``extract_boxed_content`` and its format regex) so parsed tables and rewards never disagree; both are
written as scans rather than backtracking regexes so that hostile or huge outputs stay linear.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

_SPACE_RUN = re.compile(r"\s+")
_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
# One unambiguous number form (no `\d*\.?\d+`, which backtracks quadratically on digit runs).
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
BOX_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_STEP_MARK = re.compile(r"(?i)\bstep\s*\d{1,4}\s*[:.)\-]?")

Box = list[int]


@dataclass
class ParsedOutput:
    reasoning: str = ""
    steps: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    answer: str | None = None
    format_ok: bool = False
    raw: str = ""

    def to_row(self) -> dict:
        return asdict(self)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{`` up to its balancing ``}``, stripped (mathruler semantics);
    None when there is none or it never closes."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def strip_tag_space(text: str) -> str:
    """The seed's ``re.sub(r"\\s*(<|>|/)\\s*", r"\\1", text)``: whitespace runs touching '<', '>' or
    '/' are dropped. Done run by run because that regex is quadratic on long whitespace runs."""
    out, last = [], 0
    for m in _SPACE_RUN.finditer(text):
        a, b = m.span()
        if (a > 0 and text[a - 1] in "<>/") or (b < len(text) and text[b] in "<>/"):
            out.append(text[last:a])
            last = b
    out.append(text[last:])
    return "".join(out)


def format_ok(text: str) -> bool:
    """The seed's check, ``re.fullmatch(r"<think>.*</think>.*\\\\boxed\\{.*\\}.*", norm, re.DOTALL)``,
    as a scan: the leftmost occurrence of each piece is the best choice, so first-finds decide."""
    norm = strip_tag_space(text)
    if not norm.startswith("<think>"):
        return False
    i = norm.find("</think>", len("<think>"))
    if i < 0:
        return False
    j = norm.find("\\boxed{", i + len("</think>"))
    if j < 0:
        return False
    return norm.find("}", j + len("\\boxed{")) >= 0


def _to_int(s: str) -> int | None:
    try:
        v = float(s)
    except ValueError:
        return None
    if v != v or abs(v) > 1e9:  # NaN or absurd: not a pixel coordinate
        return None
    return int(round(v))


def find_boxes(text: str) -> list[Box]:
    boxes = []
    for m in BOX_RE.finditer(text):
        vals = [_to_int(g) for g in m.groups()]
        if all(v is not None for v in vals):
            boxes.append(vals)  # type: ignore[arg-type]
    return boxes


def split_steps(reasoning: str) -> list[str]:
    """'step 1 …; step 2 …' markers when present, else non-empty lines, else ';'-separated parts."""
    text = reasoning.strip()
    if not text:
        return []
    marks = [m.start() for m in _STEP_MARK.finditer(text)]
    if marks:
        cuts = ([0] if marks[0] > 0 else []) + marks + [len(text)]
        parts = [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    elif "\n" in text:
        parts = text.splitlines()
    else:
        parts = text.split(";")
    return [p.strip(" \t\r\n;") for p in parts if p.strip(" \t\r\n;")]


def parse_output(raw: object) -> ParsedOutput:
    """Parse one completion. Non-string input is coerced to ``str`` (None → "")."""
    try:
        text = "" if raw is None else raw if isinstance(raw, str) else str(raw)
    except Exception:
        text = ""
    reasoning = ""
    o = _THINK_OPEN.search(text)
    if o:
        c = _THINK_CLOSE.search(text, o.end())
        if c:
            reasoning = text[o.end() : c.start()]
        else:  # unclosed <think>: keep what was reasoned, up to the answer if there is one
            end = text.find("\\boxed{", o.end())
            reasoning = text[o.end() : end if end >= 0 else len(text)]
    reasoning = reasoning.strip()
    return ParsedOutput(
        reasoning=reasoning,
        steps=split_steps(reasoning),
        boxes=find_boxes(reasoning),
        answer=last_boxed(text),
        format_ok=format_ok(text),
        raw=text,
    )
