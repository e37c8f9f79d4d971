"""Model and processor loading (local folders only) and the embedded tiny model."""

from cxr.model.load import check_model_dir, load_model, load_processor
from cxr.model.tiny import TinySpec, build_tiny

__all__ = ["TinySpec", "build_tiny", "check_model_dir", "load_model", "load_processor"]
