"""The grounded output parser: examples, agreement with the seed's reward code, and properties
(never raises, linear on hostile input)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mathruler.grader import extract_boxed_content

from cxr.format import GROUNDED_SUFFIX, find_boxes, grounded_prompt, parse_output
from cxr.format.parse import strip_tag_space

GOOD = (
    "<think> step 1: the right lower zone [34, 210, 120, 300] is opaque; "
    "step 2: the costophrenic angle [20.4, 280, 60, 330.6] is blunted </think> "
    "The answer is: \\boxed{pleural effusion|consolidation}"
)


def seed_format(p: str) -> bool:  # the seed's reward code, verbatim
    p = re.sub(r"\s*(<|>|/)\s*", r"\1", p)
    return bool(re.fullmatch(r"<think>.*</think>.*\\boxed\{.*\}.*", p, re.DOTALL))


def test_well_formed_output():
    p = parse_output(GOOD)
    assert p.format_ok
    assert p.answer == "pleural effusion|consolidation"
    assert p.boxes == [[34, 210, 120, 300], [20, 280, 60, 331]]
    assert len(p.steps) == 2 and p.steps[0].startswith("step 1") and p.steps[1].startswith("step 2")
    assert p.reasoning.startswith("step 1") and p.reasoning.endswith("blunted")
    assert p.raw == GOOD


@pytest.mark.parametrize(
    "text, fmt, answer",
    [
        ("", False, None),
        ("no tags at all", False, None),
        ("<think>x</think> \\boxed{yes}", True, "yes"),
        ("< think >x< / think >\\boxed{ yes }", True, "yes"),  # whitespace around tags, stripped answer
        ("<think>x</think>", False, None),  # no answer
        ("<think>x \\boxed{a}", False, "a"),  # answer but unclosed think
        ("<think>x</think> \\boxed{a{b}c}", True, "a{b}c"),  # nested braces balance
        ("<think>x</think> \\boxed{a} then \\boxed{b}", True, "b"),  # the last one counts
        ("<think>x</think> \\boxed{never closes", False, None),
        ("preamble <think>x</think>\\boxed{a}", False, "a"),  # must start with <think>
        ("<think>x</think>\\boxed{}", True, ""),
    ],
)
def test_edge_cases(text, fmt, answer):
    p = parse_output(text)
    assert p.format_ok is fmt
    assert p.format_ok == seed_format(text)
    assert p.answer == answer


def test_unclosed_think_keeps_reasoning_up_to_answer():
    p = parse_output("<think> step 1 look at [1,2,3,4] \\boxed{no}")
    assert p.reasoning == "step 1 look at [1,2,3,4]"
    assert p.boxes == [[1, 2, 3, 4]]


def test_steps_without_markers_split_on_lines_then_semicolons():
    assert parse_output("<think>a\n\nb\n</think>").steps == ["a", "b"]
    assert parse_output("<think>a; b ;c</think>").steps == ["a", "b", "c"]


def test_boxes_only_from_reasoning_and_need_four_numbers():
    p = parse_output("<think>[1,2,3] [1, 2, 3, 4, 5] [ -1 , 2.5, 3e, 4] [5,6,7,8]</think> \\boxed{[9,9,9,9]}")
    assert p.boxes == [[5, 6, 7, 8]]
    assert find_boxes("[-3, +4, 1.5, .5]") == [[-3, 4, 2, 0]]


def test_non_string_input_never_raises():
    assert parse_output(None).raw == ""
    assert parse_output(123).raw == "123"
    assert parse_output(b"\xff").format_ok is False


def test_prompt_carries_the_seed_suffix():
    assert GROUNDED_SUFFIX.endswith("The final answer MUST BE put in \\boxed{}.")
    assert grounded_prompt("  Is there an effusion? ") == "Is there an effusion? " + GROUNDED_SUFFIX


# -- properties -----------------------------------------------------------------------------------
PIECES = [
    "<think>",
    "</think>",
    "< think >",
    "</ think>",
    "\\boxed{",
    "{",
    "}",
    "[",
    "]",
    ",",
    " ",
    "\n",
    "step 1",
    "1",
    "23.5",
    "-7",
    "é",
    "😀",
    "/",
    "<",
    ">",
    "answer",
]
chunks = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=40).map("".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(chunks)
def test_parser_never_raises_and_agrees_with_seed(text):
    p = parse_output(text)
    assert p.format_ok == seed_format(text)
    expected = extract_boxed_content(text)
    assert (p.answer if p.answer is not None else "None") == expected
    assert strip_tag_space(text) == re.sub(r"\s*(<|>|/)\s*", r"\1", text)
    for b in p.boxes:
        assert len(b) == 4 and all(isinstance(v, int) for v in b)


@settings(max_examples=200)
@given(st.text())
def test_parser_total_on_arbitrary_unicode(text):
    p = parse_output(text)
    assert isinstance(p.steps, list) and isinstance(p.format_ok, bool)


@pytest.mark.parametrize(
    "text",
    [
        " " * 300_000 + "x",  # long whitespace run (quadratic for the seed's regex)
        "<think>" * 100_000,  # many opens, no close
        "<think></think>" + "\\boxed{" * 100_000,  # many unclosed answers
        "[" + "1" * 300_000,  # a digit run after a bracket
        "[1,2,3," + "9" * 300_000 + "]",
        "step 1 " * 50_000,
        "{" * 200_000 + "}" * 10,
    ],
    ids=["spaces", "opens", "boxed", "digits", "bigbox", "steps", "braces"],
)
def test_hostile_inputs_finish(text):
    # Each of these takes minutes with a backtracking implementation; here well under a second.
    p = parse_output(text)
    assert isinstance(p.format_ok, bool)
