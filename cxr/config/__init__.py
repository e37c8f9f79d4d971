"""Stage configs: dataclasses → OmegaConf.structured ← YAML ← dotlist; run records."""

from cxr.config.load import load_config, resolve_secret, to_container, to_yaml
from cxr.config.pipeline import PipelineConfig
from cxr.config.runinfo import RunRecord, collect_meta
from cxr.config.schema import STAGES, DemoConfig, GenerateConfig, secret_field

STAGES["pipeline"] = PipelineConfig  # all stages in one file (`cxr pipeline`)
STAGES["demo-quick"] = STAGES["demo"]  # `cxr demo --quick`: one prompt through both backends
STAGES["demo"] = PipelineConfig  # `cxr demo`: the pipeline on the embedded default

__all__ = [
    "STAGES",
    "DemoConfig",
    "GenerateConfig",
    "RunRecord",
    "collect_meta",
    "load_config",
    "resolve_secret",
    "secret_field",
    "to_container",
    "to_yaml",
]
