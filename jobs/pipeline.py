"""`cxr pipeline`: preprocess → build_data → sft → coldstart → grpo → score → eval as one chain of
jobs (``afterok`` on Slurm, in order locally). Each stage is one job sized by its own ``executor``
and runs in that job's process; a rerun skips stages whose done marker matches their config, and
each stage resumes from what its folder holds (shards, checkpoints, scored parts).

    WORKDIR/archive/            synthetic DICOMs (synth.studies > 0)
    WORKDIR/shards/ data/ sft/ coldstart/ grpo/ scores/ eval/ report/
    WORKDIR/pipeline/<stage>.done.json   stage, config hash, seconds, result
    WORKDIR/pipeline/private/   (0700) the chain's jobs.json, job pickles and logs: they carry the
                                archive path, which can name patients
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cxr.config.load import to_container
from cxr.config.pipeline import PIPELINE_STAGES, TRAINING, PipelineConfig
from cxr.config.runinfo import write_atomic
from cxr.config.schema import ExecutorConfig, ExecutorKind
from cxr.errors import UserError
from jobs.chain import Link, submit_chain

IN_PROCESS = ExecutorConfig(kind=ExecutorKind.debug)  # arrays inside a stage's job run in its process


def _p(cfg: PipelineConfig, *parts: str) -> str:
    return str(Path(cfg.workdir).resolve().joinpath(*parts))


def model_after(cfg: PipelineConfig, stage: str) -> str:
    """The model a stage starts from: the export of the last training stage before it in this run,
    else ``base_model`` (or the tiny model)."""
    before = [
        s for s in TRAINING if s in cfg.stages and PIPELINE_STAGES.index(s) < PIPELINE_STAGES.index(stage)
    ]
    if before:
        return _p(cfg, before[-1], "export")
    return cfg.base_model or _p(cfg, "tiny-model")


def plan(cfg: PipelineConfig) -> dict[str, Any]:
    """Every stage's config with the paths between stages filled in."""
    shards, data = _p(cfg, "shards"), _p(cfg, "data")
    archive = cfg.archive or _p(cfg, "archive", "dicom")
    ris = cfg.preprocess.ris or (_p(cfg, "archive", "ris", "ris.csv") if not cfg.archive else "")
    out: dict[str, Any] = {
        "preprocess": replace(cfg.preprocess, archive=archive, shards=shards, ris=ris),
        "build_data": replace(cfg.build_data, shards=shards, out=data, seed=cfg.seed),
    }
    for stage in TRAINING:
        c = getattr(cfg, stage)
        model = replace(c.model, path=model_after(cfg, stage))
        out[stage] = replace(c, data=data, shards=shards, out=_p(cfg, stage), model=model)
    records = str(Path(data) / f"{cfg.eval_split}.parquet") if cfg.eval_split else ""
    out["score"] = replace(
        cfg.score,
        shards=shards,
        out=_p(cfg, "scores"),
        records=records,
        model=replace(cfg.score.model, path=model_after(cfg, "score")),
    )
    out["eval"] = replace(
        cfg.eval, scores=_p(cfg, "scores"), references=records, shards=shards, out=_p(cfg, "eval")
    )
    return {s: out[s] for s in cfg.stages}


def config_hash(stage_cfg: Any) -> str:
    data = stage_cfg if isinstance(stage_cfg, dict) else to_container(stage_cfg)
    data = {k: v for k, v in data.items() if k != "executor"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def marker(cfg: PipelineConfig, stage: str) -> Path:
    return Path(cfg.workdir) / "pipeline" / f"{stage}.done.json"


def is_done(cfg: PipelineConfig, stage: str, stage_cfg: Any) -> bool:
    try:
        return json.loads(marker(cfg, stage).read_text())["config_hash"] == config_hash(stage_cfg)
    except (OSError, ValueError, KeyError):
        return False


def run_stage(stage: str, cfg: PipelineConfig) -> Any:
    """One stage, in this process (what each job of the chain runs)."""
    stage_cfg = plan(cfg)[stage]
    t0 = time.time()
    result = _STAGES[stage](cfg, stage_cfg)
    if result is None and stage in TRAINING:
        raise SystemExit(0)  # stopped for a requeue; the requeued job finishes the stage
    m = marker(cfg, stage)
    m.parent.mkdir(parents=True, exist_ok=True)
    record = {"stage": stage, "config_hash": config_hash(stage_cfg), "seconds": round(time.time() - t0, 1)}
    write_atomic(m, json.dumps({**record, "result": result}, default=str, indent=1) + "\n")
    return result


def _preprocess(cfg: PipelineConfig, c) -> dict:
    from jobs.preprocess import preprocess

    if not cfg.archive and not (Path(cfg.workdir) / "archive" / "truth.json").is_file():
        from preprocessing.synth import SynthSpec, synth_archive

        s = cfg.synth
        spec = SynthSpec(
            studies=s.studies, seed=s.seed, min_size=s.min_size, max_size=s.max_size, bad_share=s.bad_share
        )
        truth = synth_archive(Path(cfg.workdir) / "archive", spec)
        write_atomic(Path(cfg.workdir) / "archive" / "truth.json", json.dumps({"files": len(truth["files"])}))
    manifest = preprocess(replace(c, executor=IN_PROCESS), log=lambda s: print(s, flush=True))
    return {k: int(v) for k, v in manifest["status"].value_counts().items()}


def _build_data(cfg: PipelineConfig, c) -> dict:
    from cxr.data.build import build_dataset

    return build_dataset(c)


def _train(cfg: PipelineConfig, c) -> str | None:
    from jobs.sft import sft_task

    return sft_task(c)


def _grpo(cfg: PipelineConfig, c) -> str | None:
    from cxr.config.schema import RolloutMode
    from jobs.grpo import grpo_task

    if RolloutMode(c.rollout.mode) is RolloutMode.server:
        raise UserError(
            "grpo.rollout.mode=server needs its own vLLM job: run `cxr train grpo` for that stage"
        )
    return grpo_task(c)


def _score(cfg: PipelineConfig, c) -> dict:
    from cxr.score.output import RUN_FILE, run_hashes
    from jobs.score import score, status

    rec = Path(c.out) / RUN_FILE
    if rec.is_file() and json.loads(rec.read_text())["hashes"] != run_hashes(c):
        # a stage before this one ran again (another model, other records): these scores are derived output,
        # so they are set aside whole rather than mixed with the new model's
        n = 1
        while Path(f"{c.out}.replaced-{n}").exists():
            n += 1
        os.replace(c.out, f"{c.out}.replaced-{n}")
        print(
            f"score: earlier scores came from another model/prompt/sampling: moved to {c.out}.replaced-{n}",
            flush=True,
        )
    out = score(replace(c, executor=IN_PROCESS), log=lambda s: print(s, flush=True))
    st = status(out)
    return {k: st[k] for k in ("rows", "failed_rows", "prompts_per_s")}


def _eval(cfg: PipelineConfig, c) -> dict:
    from analysis.eval import evaluate

    return headline(evaluate(c, log=lambda s: print(s, flush=True)))


def headline(eval_dir: Path, n: int = 6) -> dict:
    """A few whole-set numbers of an eval folder (task/metric: value), for summaries."""
    head = json.loads((Path(eval_dir) / "summary.json").read_text()).get("headline", {})
    keep = ("bleu_4", "rouge_l", "cider", "chexpert_rule_f1_micro_14", "accuracy", "map", "format_ok_rate")
    flat = {
        f"{t}/{m}": round(v["value"], 3)
        for t, ms in head.items()
        for m, v in ms.items()
        if v.get("value") is not None
    }
    picked = {k: v for k, v in flat.items() if k.split("/", 1)[1] in keep}
    return dict(list(picked.items())[:n]) or dict(list(flat.items())[:n])


_STAGES = {
    "preprocess": _preprocess,
    "build_data": _build_data,
    "sft": _train,
    "coldstart": _train,
    "grpo": _grpo,
    "score": _score,
    "eval": _eval,
}


def demo_key(cfg: PipelineConfig) -> PipelineConfig:
    """A synthetic archive needs a pseudonym key too: one random key per workdir, in a 0600 file, when
    the configured one (env:CXR_DEID_KEY by default) is not set."""
    ref = cfg.preprocess.key
    if cfg.archive or not ref.startswith("env:") or ref[4:] in os.environ:
        return cfg
    path = Path(cfg.workdir).resolve() / "pipeline" / "private" / "deid.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if not path.is_file():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return replace(cfg, preprocess=replace(cfg.preprocess, key=f"file:{path}"))


def prepare(cfg: PipelineConfig) -> PipelineConfig:
    """Absolute workdir, the demo key, and the tiny base model when none is named."""
    if "preprocess" in cfg.stages and not cfg.archive and cfg.synth.studies <= 0:
        raise UserError(
            "pipeline: give archive=/path/to/dicom, or synth.studies=N (> 0) for a synthetic archive"
        )
    cfg = replace(cfg, workdir=str(Path(cfg.workdir).resolve()))
    cfg = demo_key(cfg)
    if not cfg.base_model and any(s in cfg.stages for s in (*TRAINING, "score")):
        tiny = Path(cfg.workdir) / "tiny-model"
        if not (tiny / "config.json").is_file():
            from cxr.model import build_tiny

            build_tiny(tiny, seed=cfg.seed)
    return cfg


def pipeline(cfg: PipelineConfig, log=print):
    """Submit the stages not done yet as one chain; locally they run in order and this returns when
    the chain ends. Returns (ChainRun or None, {stage: "done before" | "submitted"})."""
    cfg = prepare(cfg)
    stages = plan(cfg)
    names = list(stages)
    first = next((i for i, s in enumerate(names) if not is_done(cfg, s, stages[s])), len(names))
    todo = names[first:]  # a stage that runs again changes what every later stage reads: they run too
    status = {s: ("done before" if s not in todo else "submitted") for s in stages}
    for s in stages:
        if s not in todo:
            log(f"{s}: done before (same config) — skipped")
    if not todo:
        return None, status
    private = Path(cfg.workdir) / "pipeline" / "private"
    private.mkdir(parents=True, exist_ok=True)
    os.chmod(private, 0o700)
    kind = ExecutorKind(cfg.executor.kind)
    links = [Link(s, run_stage, args=(s, cfg), executor=_stage_executor(cfg, s, kind)) for s in todo]

    def progress(link: Link, state: str, seconds: float) -> None:
        log(f"{link.name}: {state.lower()} in {seconds:.0f} s")

    run = submit_chain(links, cfg=cfg.executor, run_dir=private, on_done=progress)
    return run, status


def write_report(cfg: PipelineConfig) -> Path | None:
    """WORKDIR/report/index.html (+ review.html) from whatever the run has: eval, scores, references."""
    from analysis.report import build_report

    work = Path(cfg.workdir)
    evald, scores = work / "eval", work / "scores"
    refs = work / "data" / f"{cfg.eval_split}.parquet" if cfg.eval_split else None
    if not (evald / "metrics.parquet").is_file() and not any(scores.glob("part-*.parquet")):
        return None
    written = build_report(
        work / "report",
        eval_dir=evald if (evald / "metrics.parquet").is_file() else None,
        scores_dir=scores if any(scores.glob("part-*.parquet")) else None,
        references=refs if refs is not None and refs.is_file() else None,
    )
    return Path(written["index"])


def _stage_executor(cfg: PipelineConfig, stage: str, kind: ExecutorKind) -> ExecutorConfig:
    own = (
        getattr(getattr(cfg, stage, None), "executor", None) or cfg.executor
    )  # build_data, eval: the chain's
    return replace(own, kind=kind, job_name=f"cxr-{stage}")
