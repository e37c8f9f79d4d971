"""`cxr pipeline CONFIG`: every stage's config in one file; the paths between stages are filled in.

```yaml
# cxr pipeline configs/pipeline.yaml -e slurm
workdir: /scratch/cxr-run
archive: /archive/dicom            # or synth.studies: 64 for a synthetic one
base_model: /models/Qwen2.5-VL-7B-Instruct
stages: [preprocess, build_data, sft, coldstart, grpo, score, eval]
sft: {max_steps: 2000, executor: {gpus_per_node: 8, time_min: 720}}
...
```
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cxr.config.schema import (
    BuildDataConfig,
    ExecutorConfig,
    GrpoConfig,
    PreprocessConfig,
    ScoreConfig,
    SftConfig,
)

PIPELINE_STAGES = ("preprocess", "build_data", "sft", "coldstart", "grpo", "score", "eval")
TRAINING = ("sft", "coldstart", "grpo")


@dataclass
class SynthConfig:
    studies: int = 0  # > 0: make a synthetic archive of this many studies in WORKDIR/archive (demo, tests)
    seed: int = 0
    min_size: int = 160  # pixels a side of the synthetic DICOMs
    max_size: int = 200
    bad_share: float = 0.05  # share of deliberately broken files (rejected with a reason, never lost)


def _coldstart() -> SftConfig:
    return SftConfig(stage="coldstart")


@dataclass
class PipelineConfig:
    workdir: str = "runs/pipeline"
    archive: str = ""  # the DICOM archive; empty → synth.studies must be > 0
    synth: SynthConfig = field(default_factory=SynthConfig)
    base_model: str = ""  # stage 1 starts here; empty → the tiny model is built in WORKDIR/tiny-model
    seed: int = 0
    stages: list[str] = field(default_factory=lambda: list(PIPELINE_STAGES))
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    build_data: BuildDataConfig = field(default_factory=BuildDataConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    coldstart: SftConfig = field(default_factory=_coldstart)
    grpo: GrpoConfig = field(default_factory=GrpoConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    eval_bootstrap: int = 200  # the eval stage's bootstrap resamples (its other settings: defaults)
    report: bool = True  # write WORKDIR/report/index.html at the end
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # the chain's kind (local|slurm|debug)

    def __post_init__(self) -> None:
        bad = [s for s in self.stages if s not in PIPELINE_STAGES]
        if bad:
            raise ValueError(f"stages: unknown {bad}; choose from {list(PIPELINE_STAGES)}")
        if not self.stages:
            raise ValueError("stages: empty")
        order = [PIPELINE_STAGES.index(s) for s in self.stages]
        if order != sorted(order) or len(set(order)) != len(order):
            raise ValueError(f"stages: give them once each, in pipeline order {list(PIPELINE_STAGES)}")
