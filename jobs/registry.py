"""Job kinds a sweep (or any caller that runs many configs) can run by name.

A kind is a config dataclass and a function that runs one config *inside the current task*, in the
run folder ``cfg.out``, resuming from whatever that folder holds (checkpoints, done parts). It logs
its metrics to ``RUN/metrics.jsonl`` (``{"step": N, key: value}``, last line per key wins).

Built in: ``sft``, ``coldstart``, ``grpo``, ``score``, ``score+eval`` and ``toy``. Another package adds its own with
``job: "package.module:KIND"`` in a sweep spec, where ``KIND`` is a ``JobKind``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cxr.config.schema import EvalConfig, ExecutorConfig, ExecutorKind, GrpoConfig, ScoreConfig, SftConfig
from cxr.errors import UserError
from jobs.examples import ToyConfig, toy_regression


@dataclass(frozen=True)
class JobKind:
    name: str
    config: type  # the stage's config dataclass (with ``out``, ``executor`` and usually ``seed``)
    run: Callable[[Any], Any]  # run(cfg) in this process; raises on failure
    preset: tuple[str, ...] = ()  # dotlist applied before the sweep's base config
    seed_key: str = "seed"  # what a sweep's ``seeds:`` sets
    about: str = ""


def _sft(cfg: SftConfig) -> Any:
    from jobs.sft import sft_task

    return sft_task(cfg)


def _grpo(cfg: GrpoConfig) -> Any:
    from jobs.grpo import grpo_task

    return grpo_task(cfg)


def _score(cfg: ScoreConfig) -> dict:
    """Score the whole archive inside this task into RUN/scores (its parts one after another: a sweep
    task holds one model), then log the folder's totals as this run's metrics."""
    from cxr.config.runinfo import RunRecord
    from jobs.score import score, status

    with RunRecord(cfg.out, cfg, kind="score"):  # scores in RUN/scores: that folder stays one table
        local = replace(
            cfg, out=str(Path(cfg.out) / "scores"), executor=ExecutorConfig(kind=ExecutorKind.debug)
        )
        out = score(local, log=lambda s: None)
    st = status(out)
    metrics = {k: st[k] for k in ("rows", "failed_rows", "prompts_per_s") if st[k] is not None}
    with (Path(cfg.out) / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 0, **metrics}) + "\n")
    return metrics


@dataclass
class ScoreEvalConfig:
    """`job: score+eval` in a sweep: score a build-data split's records, then evaluate them. The
    scoring lands in RUN/scores, the metrics in RUN/eval; the whole-set numbers become the run's
    metrics (``<task>/<metric>``), so a sweep over sampling or models ranks by eval metrics."""

    out: str = ""
    records: str = ""  # a build-data split parquet (e.g. DATA/test.parquet): its questions and answers
    score: ScoreConfig = field(default_factory=ScoreConfig)
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(bootstrap=200, bootstrap_corpus=50))
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)


def _score_eval(cfg: ScoreEvalConfig) -> dict:
    from analysis.eval import evaluate
    from cxr.config.runinfo import RunRecord
    from jobs.score import score

    if not cfg.records:
        raise UserError(
            "score+eval needs records=DATA/<split>.parquet (the questions to score and their answers)"
        )
    run = Path(cfg.out)
    with RunRecord(run, cfg, kind="score+eval"):
        local = replace(
            cfg.score,
            out=str(run / "scores"),
            records=cfg.records,
            executor=ExecutorConfig(kind=ExecutorKind.debug),
        )
        scores = score(local, log=lambda s: None)
        ev = evaluate(
            replace(cfg.eval, scores=str(scores), references=cfg.records, out=str(run / "eval")),
            log=lambda s: None,
        )
    head = json.loads((ev / "summary.json").read_text()).get("headline", {})
    metrics = {
        f"{t}/{m}": v["value"] for t, ms in head.items() for m, v in ms.items() if v.get("value") is not None
    }
    with (run / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 0, **metrics}) + "\n")
    return metrics


REGISTRY: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    REGISTRY[kind.name] = kind
    return kind


register(JobKind("sft", SftConfig, _sft, about="stage 1: instruction SFT"))
register(
    JobKind("coldstart", SftConfig, _sft, preset=("stage=coldstart",), about="stage 2: reasoning cold start")
)
register(JobKind("grpo", GrpoConfig, _grpo, about="stage 3: online GRPO"))
register(JobKind("score", ScoreConfig, _score, seed_key="sampling.seed", about="score an archive"))
register(
    JobKind(
        "score+eval",
        ScoreEvalConfig,
        _score_eval,
        seed_key="score.sampling.seed",
        about="score records, evaluate",
    )
)
register(JobKind("toy", ToyConfig, toy_regression, about="least-squares SGD in seconds: rehearse a sweep"))


def get(name: str) -> JobKind:
    """A built-in kind by name, or ``package.module:ATTR`` naming a ``JobKind``."""
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
        mod, _, attr = name.partition(":")
        try:
            kind = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise UserError(f"job {name!r} cannot be imported: {e}") from None
        if not isinstance(kind, JobKind):
            raise UserError(f"job {name!r} is a {type(kind).__name__}, not a jobs.registry.JobKind")
        return kind
    known = ", ".join(sorted(REGISTRY))
    raise UserError(f"unknown job {name!r}: use one of {known}, or package.module:KIND")
