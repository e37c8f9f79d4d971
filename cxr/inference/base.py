"""One generation interface, two implementations (``hf``, ``vllm``); callers never branch on which.

A backend takes ``Request`` s (an image and a question) and returns ``Generation`` s: raw text, token
ids, the parsed grounded output, and the resize record that maps its boxes back to the original
image. Both backends render the prompt with the model's own chat template and ban the vision
placeholder tokens in sampling (a sampled ``<|image_pad|>`` breaks the next forward pass:
"Image features and image tokens do not match").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from cxr.config.schema import GenerateConfig
from cxr.errors import UserError
from cxr.format import ParsedOutput, ResizeRecord, chat_messages, parse_output, smart_resize_record

BANNED_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_pad|>", "<|vision_start|>")


@dataclass
class Request:
    image: Image.Image | str | Path
    question: str
    id: str = ""


@dataclass
class Generation:
    id: str
    text: str
    token_ids: list[int]
    parsed: ParsedOutput
    resize: ResizeRecord | None = None
    backend: str = ""

    def to_row(self) -> dict:
        row = {"id": self.id, "backend": self.backend, **self.parsed.to_row()}
        row["num_tokens"] = len(self.token_ids)
        if self.resize is not None:
            row["input_size"] = [self.resize.input_w, self.resize.input_h]
        return row


@dataclass
class Prepared:
    """A request after the shared work: RGB image, rendered prompt, resize record."""

    id: str
    image: Image.Image
    prompt: str
    resize: ResizeRecord
    extra: dict = field(default_factory=dict)


def open_image(image: Image.Image | str | Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    p = Path(image)
    if not p.is_file():
        raise UserError(f"image {p} does not exist")
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"image {p} cannot be read: {e.__class__.__name__}") from None


def banned_token_ids(tokenizer) -> list[int]:
    vocab = tokenizer.get_vocab()
    return sorted({vocab[t] for t in BANNED_TOKENS if t in vocab})


class GenerationBackend(ABC):
    name: str = ""

    def __init__(self, cfg: GenerateConfig):
        self.cfg = cfg

    @property
    @abstractmethod
    def processor(self): ...

    def prepare(self, requests: Sequence[Request]) -> list[Prepared]:
        ip = self.processor.image_processor
        factor = ip.patch_size * ip.merge_size
        out = []
        for i, r in enumerate(requests):
            img = open_image(r.image)
            prompt = self.processor.apply_chat_template(
                chat_messages(r.question), add_generation_prompt=True, tokenize=False
            )
            rec = smart_resize_record(
                img.width,
                img.height,
                min_pixels=self.cfg.image.min_pixels,
                max_pixels=self.cfg.image.max_pixels,
                factor=factor,
            )
            out.append(Prepared(r.id or str(i), img, prompt, rec))
        return out

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        prepared = self.prepare(requests)
        raw = self._generate(prepared)
        return [
            Generation(p.id, text, ids, parse_output(text), p.resize, self.name)
            for p, (text, ids) in zip(prepared, raw, strict=True)
        ]

    @abstractmethod
    def _generate(self, prepared: list[Prepared]) -> list[tuple[str, list[int]]]:
        """(text, completion token ids) per prepared request, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
