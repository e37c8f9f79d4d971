"""Parser speed: cxr.format.parse_output vs the seed's own regexes (baseline), same inputs, same run."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, report  # noqa: E402
from mathruler.grader import extract_boxed_content  # noqa: E402

from cxr.format import parse_output  # noqa: E402


def seed_check(p: str) -> tuple[bool, str]:
    p = re.sub(r"\s*(<|>|/)\s*", r"\1", p)
    ok = bool(re.fullmatch(r"<think>.*</think>.*\\boxed\{.*\}.*", p, re.DOTALL))
    return ok, extract_boxed_content(p)


def outputs(n: int) -> list[str]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        steps = "; ".join(
            f"step {k}: region [{rng.randint(0, 400)}, {rng.randint(0, 400)}, "
            f"{rng.randint(0, 512)}, {rng.randint(0, 512)}] looks normal"
            for k in range(1, 6)
        )
        out.append(f"<think> {steps} </think> The answer is: \\boxed{{no acute findings}}")
    return out


def main() -> None:
    texts = outputs(2000)
    base = best_of(lambda: [seed_check(t) for t in texts])
    ours = best_of(lambda: [parse_output(t) for t in texts])
    rows = [
        {"case": "2000 model-like outputs", "baseline s": base, "cxr s": ours, "cxr/baseline": ours / base}
    ]
    for n in (5_000, 10_000, 20_000):
        hostile = " " * n + "x"
        b = best_of(lambda h=hostile: seed_check(h), repeat=1)
        o = best_of(lambda h=hostile: parse_output(h), repeat=1)
        rows.append({"case": f"{n} spaces then x", "baseline s": b, "cxr s": o, "cxr/baseline": o / b})
    report(
        "parse",
        rows,
        "cxr also extracts steps and boxes, which the baseline does not; "
        "the seed's whitespace regex is quadratic in a whitespace run's length.",
    )


if __name__ == "__main__":
    main()
