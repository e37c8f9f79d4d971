"""Rich tables of parsed generations (what the demo and `cxr generate` print)."""

from __future__ import annotations

from rich.table import Table

from cxr.inference.base import Generation


def _short(text: str | None, n: int) -> str:
    if text is None:
        return "—"
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def generations_table(gens: list[Generation], title: str = "Parsed outputs") -> Table:
    t = Table(title=title, show_lines=False)
    # Fixed-width columns keep their header; the raw text takes what is left of the terminal.
    for col, kw in [
        ("backend", {}),
        ("id", {"max_width": 20}),
        ("format_ok", {}),
        ("steps", {"justify": "right"}),
        ("boxes", {"max_width": 24}),
        ("answer", {"max_width": 20}),
        ("tokens", {"justify": "right"}),
    ]:
        t.add_column(
            col, no_wrap=True, overflow="ellipsis", min_width=min(len(col), kw.get("max_width", 99)), **kw
        )
    t.add_column("raw text", no_wrap=True, overflow="ellipsis", ratio=1)
    for g in gens:
        p = g.parsed
        t.add_row(
            g.backend,
            g.id,
            "yes" if p.format_ok else "no",
            str(len(p.steps)),
            _short(str(p.boxes[:3]) + (" …" if len(p.boxes) > 3 else ""), 40) if p.boxes else "[]",
            _short(p.answer, 30),
            str(len(g.token_ids)),
            _short(g.text, 50),
        )
    return t
