"""Report Arena: an LLM judge compares `cxr score` folders pairwise (both orders, ties allowed);
a Bradley–Terry fit with ties (Davidson) and case-bootstrap CIs ranks them. See ``run.py``."""

from analysis.arena.bradley_terry import Fit, bootstrap_strengths, fit_davidson, simulate_davidson
from analysis.arena.run import run_arena
from analysis.arena.verdict import combine_orders, parse_verdict

__all__ = [
    "Fit",
    "bootstrap_strengths",
    "combine_orders",
    "fit_davidson",
    "parse_verdict",
    "run_arena",
    "simulate_davidson",
]
