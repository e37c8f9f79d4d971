"""The sweep spec (YAML → ``SweepSpec``) and its axes.

```yaml
# cxr sweep launch configs/sweeps/toy-lr.yaml --executor slurm
name: toy-lr
job: toy                       # sft | coldstart | grpo | score | toy | package.module:KIND
base: ""                       # the job's YAML config (optional); `overrides` apply on top
overrides: [epochs=10]
mode: grid                     # grid | random | bayes
axes:
  lr: [0.01, 0.1]              # a list: grid values (random: a choice; bayes: categorical)
  batch_size: {int: [8, 64]}   # random/bayes: integer uniform, bounds included
  clip_norm: {uniform: [0, 2]}
  noise: {loguniform: [1e-3, 1]}
  dim: {choice: [4, 8]}
seeds: [0, 1, 2]               # every config once per seed (grid, random)
samples: 20                    # random: configs drawn
metric: {name: val_loss, mode: min}
executor: {kind: slurm, array_parallelism: 4, time_min: 60}   # %4 throttle
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cxr.config import load_config
from cxr.config.schema import ExecutorConfig
from cxr.errors import ConfigError

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SweepMode(StrEnum):
    grid = "grid"
    random = "random"
    bayes = "bayes"


@dataclass
class MetricSpec:
    name: str = ""  # a key of the runs' metrics.jsonl (val_loss, train_loss, reward, …)
    mode: str = "min"  # min | max
    use: str = "final"  # final | best: which value of the run counts (bayes objective, sorting)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max") or self.use not in ("final", "best"):
            raise ValueError("metric: mode must be min|max and use final|best")


@dataclass
class BayesSpec:
    trials: int = 20  # the budget: trials that end (completed or failed) before the study stops
    parallelism: int = 4  # worker tasks asking the study for trials at once
    startup_trials: int = 5  # random trials before TPE takes over

    def __post_init__(self) -> None:
        if self.trials < 1 or self.parallelism < 1 or self.startup_trials < 0:
            raise ValueError("bayes: trials and parallelism must be >= 1, startup_trials >= 0")


@dataclass
class SweepSpec:
    name: str = ""
    job: str = ""
    base: str = ""
    overrides: list[str] = field(default_factory=list)
    mode: SweepMode = SweepMode.grid
    axes: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    samples: int = 0
    sampler_seed: int = 0  # random draws and the TPE sampler: the same spec gives the same runs
    metric: MetricSpec = field(default_factory=MetricSpec)
    bayes: BayesSpec = field(default_factory=BayesSpec)
    out: str = ""  # the sweep folder; default runs/sweeps/<name>
    executor: ExecutorConfig = field(default_factory=lambda: ExecutorConfig(array_parallelism=4))

    def __post_init__(self) -> None:
        if not self.name or not _NAME.match(self.name):
            raise ValueError("sweep: 'name' is required (letters, digits, _ . -)")
        if not self.job:
            raise ValueError(
                "sweep: 'job' is required (sft, coldstart, grpo, score, toy or package.module:KIND)"
            )
        if not self.axes and not self.seeds:
            raise ValueError("sweep: give 'axes' and/or 'seeds'")
        for key, axis in self.axes.items():
            check_axis(key, axis, self.mode)
        if self.mode == SweepMode.random and self.samples < 1:
            raise ValueError("sweep: mode random needs 'samples' >= 1")
        if self.mode == SweepMode.bayes:
            if not self.metric.name:
                raise ValueError("sweep: mode bayes needs 'metric.name' (what the study optimises)")
            if self.seeds:
                raise ValueError(
                    "sweep: mode bayes takes no 'seeds' (a trial is one run); set the seed in 'overrides'"
                )
            if not self.axes:
                raise ValueError("sweep: mode bayes needs 'axes' (the search space)")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("sweep: 'seeds' repeats a value")

    @property
    def folder(self) -> Path:
        return Path(self.out or f"runs/sweeps/{self.name}")


def check_axis(key: str, axis: Any, mode: SweepMode) -> None:
    """One line naming the axis for every malformed axis."""
    if key == "out" or key.split(".")[0] == "executor" or key.endswith("_executor"):
        raise ValueError(
            f"axis '{key}': output folders and executor settings belong to the sweep, not to runs"
        )
    if isinstance(axis, list):
        if not axis:
            raise ValueError(f"axis '{key}': an empty list")
        return
    if not isinstance(axis, dict) or len(axis) != 1 or next(iter(axis)) not in DISTRIBUTIONS:
        raise ValueError(f"axis '{key}': a list of values, or one of {{{': …}, {'.join(DISTRIBUTIONS)}: …}}")
    ((dist, arg),) = axis.items()
    if mode == SweepMode.grid:
        raise ValueError(f"axis '{key}': '{dist}' draws values; it needs mode random or bayes")
    if dist == "choice":
        if not isinstance(arg, list) or not arg:
            raise ValueError(f"axis '{key}': choice takes a non-empty list")
        return
    if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(v, (int, float)) for v in arg)):
        raise ValueError(f"axis '{key}': {dist} takes [low, high]")
    lo, hi = arg
    if not lo < hi:
        raise ValueError(f"axis '{key}': {dist} needs low < high, got [{lo}, {hi}]")
    if dist == "loguniform" and lo <= 0:
        raise ValueError(f"axis '{key}': loguniform needs low > 0")
    if dist == "int" and not all(float(v).is_integer() for v in arg):
        raise ValueError(f"axis '{key}': int takes integer bounds")


def load_spec(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    """The spec from YAML ← dotlist; errors name the file or override and the key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep spec {p} does not exist")
    try:
        return load_config(SweepSpec, p, overrides)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}" if str(p) not in str(e) else str(e)) from None
