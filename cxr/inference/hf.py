"""transformers ``generate``: batched, left padding, the model's processor."""

from __future__ import annotations

from cxr.config.schema import GenerateConfig
from cxr.inference.base import GenerationBackend, Prepared, banned_token_ids
from cxr.model import load_model, load_processor


class HFBackend(GenerationBackend):
    name = "hf"

    def __init__(self, cfg: GenerateConfig, *, device: str | None = None):
        super().__init__(cfg)
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._processor = load_processor(
            cfg.model.path,
            min_pixels=cfg.image.min_pixels,
            max_pixels=cfg.image.max_pixels,
            padding_side="left",
        )
        self.model = load_model(
            cfg.model.path,
            dtype=cfg.model.dtype,
            device=self.device,
            attn_implementation=cfg.model.attn_implementation,
        )
        self._banned = banned_token_ids(self._processor.tokenizer)

    @property
    def processor(self):
        return self._processor

    def _gen_kwargs(self) -> dict:
        s = self.cfg.sampling
        kw = {
            "max_new_tokens": s.max_new_tokens,
            "suppress_tokens": self._banned,
            "repetition_penalty": s.repetition_penalty,
        }
        if s.temperature > 0:
            kw.update(
                do_sample=True,
                temperature=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k if s.top_k > 0 else None,
            )
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kw

    def _generate(self, prepared: list[Prepared]) -> list[tuple[str, list[int]]]:
        import torch

        tok = self._processor.tokenizer
        eos = self.model.generation_config.eos_token_id
        stop = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | {tok.pad_token_id}
        out: list[tuple[str, list[int]]] = []
        bs = self.cfg.batch_size
        torch.manual_seed(self.cfg.sampling.seed)
        for start in range(0, len(prepared), bs):
            batch = prepared[start : start + bs]
            inputs = self._processor(
                text=[p.prompt for p in batch],
                images=[p.image for p in batch],
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                seqs = self.model.generate(**inputs, **self._gen_kwargs())
            new = seqs[:, inputs["input_ids"].shape[1] :].tolist()
            for ids in new:
                # Cut at the first stop token; what follows is padding for the batch's longest row.
                cut = next((i for i, t in enumerate(ids) if t in stop), len(ids))
                ids = ids[: cut + 1] if cut < len(ids) else ids
                out.append((tok.decode(ids, skip_special_tokens=True), ids))
        return out

    def close(self) -> None:
        self.model = None
