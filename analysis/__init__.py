"""Analyst tables, plots, reports and notebooks over the folders the harness writes.

``import analysis; analysis.open(path)`` opens any run, sweep, score, eval, arena or shards folder as a
DataFrame; ``analysis.connect(*folders)`` gives DuckDB views over them. Reads only; imports only ``cxr``.
"""

from analysis.tables import (
    connect,
    kind,
    open,  # noqa: A004
    open_arena,
    open_eval,
    open_history,
    open_runs,
    open_scores,
    open_shards,
    open_sweep,
    open_sweep_summary,
)

__all__ = [
    "connect",
    "kind",
    "open",
    "open_arena",
    "open_eval",
    "open_history",
    "open_runs",
    "open_scores",
    "open_shards",
    "open_sweep",
    "open_sweep_summary",
]
