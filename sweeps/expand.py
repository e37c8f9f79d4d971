"""Spec → runs: grid / random points, each resolved to the job's typed config and named by a hash.

A run's id is a hash of what it computes: the job kind and its resolved config without the output
folder and executor settings. The same spec gives the same ids in any process, and a run that two
points resolve to (a random draw repeated) runs once.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import itertools
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cxr.config.load import _explain, _parse_override, _read_yaml, check_secrets
from cxr.errors import ConfigError
from cxr.runfolder import identity
from jobs.registry import JobKind
from sweeps.spec import SweepMode, SweepSpec


@dataclass
class Run:
    id: str
    index: int
    params: dict[str, Any]  # the axis (and seed) values that make this run, dotted keys
    config: dict  # the resolved job config (plain data; written as runs/<id>/config.yaml)


def run_id(job: str, config: dict) -> str:
    blob = json.dumps({"job": job, "config": identity(config)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def nested(params: dict[str, Any]) -> dict:
    """{'a.b': 1} → {'a': {'b': 1}}: overrides as data, so a value keeps its type (no string parsing)."""
    out: dict = {}
    for key, value in params.items():
        node = out
        *parents, leaf = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    return out


def _round(x: float) -> float:
    return float(f"{x:.6g}")  # readable configs, and the same id on every platform


def draw(axis: Any, rng: np.random.Generator) -> Any:
    if isinstance(axis, list):
        return axis[int(rng.integers(len(axis)))]
    ((dist, arg),) = axis.items()
    if dist == "choice":
        return arg[int(rng.integers(len(arg)))]
    lo, hi = arg
    if dist == "int":
        return int(rng.integers(int(lo), int(hi) + 1))
    if dist == "loguniform":
        return _round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return _round(rng.uniform(lo, hi))


def points(spec: SweepSpec, kind: JobKind) -> list[dict[str, Any]]:
    """The axis values of every run, in a fixed order (grid: first axis slowest; then seeds)."""
    keys = list(spec.axes)
    if spec.mode == SweepMode.grid:
        base = [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(spec.axes[k] for k in keys))
        ]
    elif spec.mode == SweepMode.random:
        rng = np.random.default_rng(spec.sampler_seed)
        base = [{k: draw(spec.axes[k], rng) for k in keys} for _ in range(spec.samples)]
    else:
        raise ValueError("bayes sweeps have no points in advance")
    if not spec.seeds:
        return base
    return [{**p, kind.seed_key: s} for p in base for s in spec.seeds]


def base_config(spec: SweepSpec, kind: JobKind) -> DictConfig:
    """The job's structured config ← its preset ← the spec's base YAML ← the spec's overrides."""
    cfg = OmegaConf.structured(kind.config)
    sources: list[tuple[str, Any]] = [(f"job preset {p!r}", _parse_override(p)) for p in kind.preset]
    if spec.base:
        sources.append((spec.base, _read_yaml(Path(spec.base))))
    sources += [(f"override {o!r}", _parse_override(o)) for o in spec.overrides]
    for source, data in sources:
        try:
            cfg = OmegaConf.merge(cfg, data)
        except OmegaConfBaseException as e:
            raise _explain(e, source) from None
    return cfg


def resolve(base: DictConfig, params: dict[str, Any], where: str) -> tuple[Any, dict]:
    """(typed config, plain dict) for one point; a ConfigError naming the point and key."""
    try:
        cfg = OmegaConf.merge(base, nested(params))
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{where}: {_explain(e, 'config')}") from None
    except ValueError as e:  # the config dataclass's own range checks
        raise ConfigError(f"{where}: {e}") from None
    check_secrets(obj)
    return obj, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


class Resolver:
    """``resolve`` for many points, fast: OmegaConf type-checks each distinct axis value once (an
    unknown key or a wrong type fails there, naming the point); each run is then the base dict with
    its converted values set, and the config dataclass is built from it so its own range checks run
    on every combination. ~0.3 ms a run instead of OmegaConf's ~2 ms (a 1,000-run sweep submits in
    under a second)."""

    def __init__(self, base: DictConfig, schema: type):
        self.base, self.schema = base, schema
        self.plain = OmegaConf.to_container(base, resolve=True, enum_to_str=True)
        self.values: dict[tuple[str, str], Any] = {}

    def value(self, key: str, value: Any, where: str) -> Any:
        memo = (key, json.dumps(value, sort_keys=True, default=str))
        if memo not in self.values:
            _, config = resolve(self.base, {key: value}, where)
            node = config
            for k in key.split("."):
                node = node[k]
            self.values[memo] = node
        return self.values[memo]

    def __call__(self, params: dict[str, Any], where: str) -> dict:
        config = json.loads(json.dumps(self.plain))  # a deep copy, quickly
        for key, value in params.items():
            *parents, leaf = key.split(".")
            node = config
            for k in parents:
                node = node[k]
            node[leaf] = self.value(key, value, where)
        try:
            check_secrets(build(self.schema, config))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{where}: {e}") from None
        return config


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls: type, data: dict) -> Any:
    """The dataclass ``cls`` from plain data already type-checked by OmegaConf (nested dataclasses
    built too), so ``__post_init__`` checks run."""
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = build(hint, value)
        elif isinstance(hint, type) and issubclass(hint, enum.Enum) and value is not None:
            value = hint(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(base config)"


def expand(spec: SweepSpec, kind: JobKind) -> list[Run]:
    """Every run of a grid/random sweep, resolved and validated before anything is submitted."""
    resolver = Resolver(base_config(spec, kind), kind.config)
    runs: list[Run] = []
    seen: set[str] = set()
    for p in points(spec, kind):
        config = resolver(p, f"run {label(p)}")
        rid = run_id(kind.name, config)
        if rid in seen:
            continue
        seen.add(rid)
        runs.append(Run(rid, len(runs), p, config))
    return runs


def check_space(spec: SweepSpec, kind: JobKind) -> int:
    """Bayes: the base config and every axis's choices and bounds resolve (trials draw their configs
    later, in the workers; a value that can never work is an error now, not a failed trial)."""
    resolver = Resolver(base_config(spec, kind), kind.config)
    resolver({}, "the base config")
    n = 0
    for key, axis in spec.axes.items():
        values = axis if isinstance(axis, list) else next(iter(axis.values()))
        for v in values:
            resolver({key: v}, f"axis {key}={v}")
            n += 1
    return n
