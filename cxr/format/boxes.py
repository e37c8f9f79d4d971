"""Boxes between the model's input-image pixels and the original image's pixels.

The model sees a resized (and possibly padded) image; its boxes are in that image's pixels. A
``ResizeRecord`` says how the input was made: ``input = original * scale + pad (left/top)`` per axis. It is
written next to every image that gets resized, so boxes can be mapped back for display or IoU
against annotations on the original image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ResizeRecord:
    orig_w: int
    orig_h: int
    content_w: int  # the resized image, before padding
    content_h: int
    pad_left: int = 0
    pad_top: int = 0
    pad_right: int = 0
    pad_bottom: int = 0

    def __post_init__(self) -> None:
        for name in ("orig_w", "orig_h", "content_w", "content_h"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ResizeRecord.{name} must be > 0, got {getattr(self, name)}")
        for name in ("pad_left", "pad_top", "pad_right", "pad_bottom"):
            if getattr(self, name) < 0:
                raise ValueError(f"ResizeRecord.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def input_w(self) -> int:
        return self.content_w + self.pad_left + self.pad_right

    @property
    def input_h(self) -> int:
        return self.content_h + self.pad_top + self.pad_bottom

    @property
    def scale_x(self) -> float:
        return self.content_w / self.orig_w

    @property
    def scale_y(self) -> float:
        return self.content_h / self.orig_h

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row) -> ResizeRecord:
        """From a mapping (an index.parquet row, a dict) that has the record's field names as keys."""
        return cls(*(int(row[f]) for f in FIELDS))

    # -- mapping -------------------------------------------------------------------------------
    def to_original(self, box: list[float], *, clip: bool = True) -> list[int]:
        """A box in model-input pixels → original-image pixels (rounded outward, clipped)."""
        x1, y1, x2, y2 = box
        ox1 = (x1 - self.pad_left) / self.scale_x
        oy1 = (y1 - self.pad_top) / self.scale_y
        ox2 = (x2 - self.pad_left) / self.scale_x
        oy2 = (y2 - self.pad_top) / self.scale_y
        out = [math.floor(ox1 + 1e-6), math.floor(oy1 + 1e-6), math.ceil(ox2 - 1e-6), math.ceil(oy2 - 1e-6)]
        return _clip(out, self.orig_w, self.orig_h) if clip else out

    def to_input(self, box: list[float], *, clip: bool = True) -> list[int]:
        """A box in original-image pixels → model-input pixels (rounded outward, clipped)."""
        x1, y1, x2, y2 = box
        out = [
            math.floor(x1 * self.scale_x + self.pad_left + 1e-6),
            math.floor(y1 * self.scale_y + self.pad_top + 1e-6),
            math.ceil(x2 * self.scale_x + self.pad_left - 1e-6),
            math.ceil(y2 * self.scale_y + self.pad_top - 1e-6),
        ]
        return _clip(out, self.input_w, self.input_h) if clip else out


FIELDS = ("orig_w", "orig_h", "content_w", "content_h", "pad_left", "pad_top", "pad_right", "pad_bottom")


def _clip(box: list[int], w: int, h: int) -> list[int]:
    x1, y1, x2, y2 = box
    return [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]


def smart_resize_record(
    orig_w: int, orig_h: int, *, min_pixels: int, max_pixels: int, factor: int = 28
) -> ResizeRecord:
    """The record for Qwen2-/2.5-VL's own resize (no padding; each side a multiple of ``factor``)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(orig_h, orig_w, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return ResizeRecord(orig_w=orig_w, orig_h=orig_h, content_w=w, content_h=h)


def letterbox_record(orig_w: int, orig_h: int, side: int) -> ResizeRecord:
    """The record for a square letterbox of ``side`` px: keep aspect, pad the short side evenly."""
    s = side / max(orig_w, orig_h)
    cw, ch = max(1, round(orig_w * s)), max(1, round(orig_h * s))
    left, top = (side - cw) // 2, (side - ch) // 2
    return ResizeRecord(orig_w, orig_h, cw, ch, left, top, side - cw - left, side - ch - top)


def boxes_on(boxes: list[dict], image_id: str) -> list[dict]:
    """The boxes of a study's record that belong on ``image_id``: a box the RIS drew on a named image
    carries that image's pseudonym (``image_id``) and goes there only; one naming no image goes on all."""
    return [b for b in boxes if b.get("image_id") in (None, "", image_id)]
