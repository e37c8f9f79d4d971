"""The seed's prompt text (DeepMedix-R1's published template), word for word."""

from __future__ import annotations

GROUNDED_SUFFIX = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final "
    "answer. The reasoning process MUST BE enclosed within <think> </think> tags. During this reasoning "
    "process, prioritize analyzing the local regions of the image by leveraging the bounding box "
    "coordinates in the format [x_min, y_min, x_max, y_max]. The final answer MUST BE put in \\boxed{}."
)

REPORT_INSTRUCTION = (
    'Please act as an experienced radiologist and generate the "FINDINGS" section of an X-ray report '
    "based on the provided image(s)."
)


def grounded_prompt(question: str) -> str:
    """The user turn the model sees: the task or question, then the grounded-reasoning suffix."""
    question = question.strip()
    return f"{question} {GROUNDED_SUFFIX}" if question else GROUNDED_SUFFIX


def chat_messages(question: str, *, system: str | None = None) -> list[dict]:
    """One-image chat in the processor's message format (the image is passed separately)."""
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append(
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": grounded_prompt(question)}],
        }
    )
    return messages
