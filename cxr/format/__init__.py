"""The grounded output format: the seed's prompt, the parser, and box coordinate mapping."""

from cxr.format.boxes import ResizeRecord, letterbox_record, smart_resize_record
from cxr.format.parse import ParsedOutput, find_boxes, format_ok, last_boxed, parse_output
from cxr.format.prompt import GROUNDED_SUFFIX, REPORT_INSTRUCTION, chat_messages, grounded_prompt

__all__ = [
    "GROUNDED_SUFFIX",
    "REPORT_INSTRUCTION",
    "ParsedOutput",
    "ResizeRecord",
    "chat_messages",
    "find_boxes",
    "format_ok",
    "grounded_prompt",
    "last_boxed",
    "letterbox_record",
    "parse_output",
    "smart_resize_record",
]
