"""Generation backends behind one interface: ``hf`` (transformers) and ``vllm``."""

from __future__ import annotations

from cxr.config.schema import BackendName, GenerateConfig
from cxr.inference.base import Generation, GenerationBackend, Request


def make_backend(cfg: GenerateConfig) -> GenerationBackend:
    """The backend ``cfg.backend`` names; heavy imports happen only for the one chosen."""
    if BackendName(cfg.backend) is BackendName.vllm:
        from cxr.inference.vllm_backend import VllmBackend

        return VllmBackend(cfg)
    from cxr.inference.hf import HFBackend

    return HFBackend(cfg)


__all__ = ["Generation", "GenerationBackend", "Request", "make_backend"]
