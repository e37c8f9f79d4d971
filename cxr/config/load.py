"""Build a stage config: ``OmegaConf.structured(schema)`` ← YAML file ← dotlist overrides.

Every failure is a ``ConfigError`` whose one-line message names the file or override and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from cxr.config.schema import SECRET
from cxr.errors import ConfigError

T = TypeVar("T")


def _explain(e: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(e, "full_key", None) or ""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, ConfigKeyError) or "not in struct" in msg:
        return ConfigError(f"{source}: unknown key '{key}'")
    if isinstance(e, ValidationError):
        return ConfigError(f"{source}: bad value for '{key}': {msg}")
    return ConfigError(f"{source}: {'key ' + repr(key) + ': ' if key else ''}{msg}")


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _parse_override(item: str) -> DictConfig:
    if "=" not in item or item.startswith("="):
        raise ConfigError(f"override {item!r}: expected key=value (e.g. sampling.temperature=0.7)")
    try:
        return OmegaConf.from_dotlist([item])
    except OmegaConfBaseException as e:
        raise ConfigError(f"override {item!r}: {str(e).splitlines()[0]}") from None


def load_config(schema: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """The typed config object for ``schema`` (a dataclass instance), validated."""
    cfg = OmegaConf.structured(schema)
    if path is not None:
        p = Path(path)
        try:
            cfg = OmegaConf.merge(cfg, _read_yaml(p))
        except OmegaConfBaseException as e:
            raise _explain(e, str(p)) from None
    for item in overrides:  # one at a time, so an error names the override that caused it
        try:
            cfg = OmegaConf.merge(cfg, _parse_override(item))
        except OmegaConfBaseException as e:
            raise _explain(e, f"override {item!r}") from None
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise _explain(e, "config") from None
    except ValueError as e:  # a dataclass's own range check (__post_init__)
        raise ConfigError(str(e)) from None
    check_secrets(obj)
    return obj  # type: ignore[return-value]


# -- secrets ------------------------------------------------------------------------------------
def _secret_paths(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """(dotted key, owning object, attribute) for every secret field in a config tree."""
    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if f.metadata.get(SECRET):
            yield key, obj, f.name
        elif dataclasses.is_dataclass(value):
            yield from _secret_paths(value, key + ".")


def check_secrets(obj: Any) -> None:
    for key, owner, attr in _secret_paths(obj):
        ref = getattr(owner, attr) or ""
        if ref and not ref.startswith(("env:", "file:")):
            raise ConfigError(
                f"'{key}' is a secret: give a reference (env:VAR_NAME or file:/path), never the value itself"
            )


def resolve_secret(ref: str, key: str = "secret") -> str:
    """The value behind ``env:NAME`` / ``file:PATH``; errors name the key, never the value."""
    import os

    if not ref:
        raise ConfigError(f"'{key}' is not set (give env:VAR_NAME or file:/path)")
    kind, _, where = ref.partition(":")
    if kind == "env":
        if where not in os.environ:
            raise ConfigError(f"'{key}': environment variable {where} is not set")
        return os.environ[where]
    if kind == "file":
        p = Path(where).expanduser()
        if not p.is_file():
            raise ConfigError(f"'{key}': secret file {p} does not exist")
        return p.read_text().strip()
    raise ConfigError(f"'{key}': expected env:VAR_NAME or file:/path")


# -- dumping ------------------------------------------------------------------------------------
def to_container(obj: Any) -> dict:
    """Plain dict of a config object with secret fields reduced to their references (or redacted)."""
    check_secrets(obj)
    data = OmegaConf.to_container(OmegaConf.structured(obj), resolve=True, enum_to_str=True)
    for key, owner, attr in _secret_paths(obj):
        ref = getattr(owner, attr) or ""
        node = data
        *parents, leaf = key.split(".")
        for k in parents:
            node = node[k]
        node[leaf] = ref if ref.startswith(("env:", "file:")) or not ref else "***"
    return data  # type: ignore[return-value]


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_container(obj), sort_keys=False)
