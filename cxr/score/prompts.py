"""The prompt set `cxr score` can ask, each with the seed's reasoning suffix."""

from __future__ import annotations

import hashlib

from cxr.format import REPORT_INSTRUCTION, grounded_prompt

PROMPTS: dict[str, str] = {
    "report": REPORT_INSTRUCTION,
    "findings": "List all findings in this chest X-ray, separated by '|'.",
    "view": "What is the projection of this chest radiograph?",
}


def prompt_text(task: str) -> str:
    return grounded_prompt(PROMPTS[task])


def prompt_id(task: str, text: str | None = None) -> str:
    """Names the exact text asked (the task's prompt, or ``text``), so a changed template is visible in
    every row."""
    text = prompt_text(task) if text is None else text
    return f"{task}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
