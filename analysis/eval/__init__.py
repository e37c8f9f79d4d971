"""Evaluation of scored model outputs against references (`cxr eval`): XrayBench-style metrics,
bootstrap CIs and slices, written as one tidy table. See ``analysis.eval.run``."""

from analysis.eval.run import evaluate

__all__ = ["evaluate"]
