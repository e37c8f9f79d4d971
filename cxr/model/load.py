"""Load a Qwen2.5-VL / Qwen3-VL model and its processor from a local folder; nothing downloads.

The embedded tiny model and a real 7B checkpoint go through the same two functions; only the
folder differs. ``local_files_only`` is forced so a typo never turns into a hub request.
"""

from __future__ import annotations

import json
from pathlib import Path

from cxr.errors import UserError

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "auto": "auto",
}


def check_model_dir(path: str | Path) -> Path:
    """A folder with config.json, written by save_pretrained; a one-line error otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"model folder {p} does not exist (build the embedded one with `cxr model tiny {p}`)")
    if not (p / "config.json").is_file():
        raise UserError(f"{p} is not a model folder: no config.json in it")
    try:
        json.loads((p / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{p / 'config.json'} is not valid JSON: {e.msg} at line {e.lineno}") from None
    return p


def model_type(path: str | Path) -> str:
    return json.loads((check_model_dir(path) / "config.json").read_text()).get("model_type", "")


def load_processor(
    path: str | Path,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    padding_side: str = "left",
):
    """The model's processor; image size bounds from the caller (config) win over the saved ones.
    Left padding: batched generation appends new tokens on the right."""
    from transformers import AutoProcessor

    p = check_model_dir(path)
    processor = AutoProcessor.from_pretrained(p, local_files_only=True)
    ip = processor.image_processor
    size = dict(ip.size) if getattr(ip, "size", None) else {}
    if min_pixels:
        size["shortest_edge"] = int(min_pixels)
    if max_pixels:
        size["longest_edge"] = int(max_pixels)
    if size:
        ip.size = size
    processor.tokenizer.padding_side = padding_side
    return processor


def load_model(
    path: str | Path, *, dtype: str = "float32", device: str = "cpu", attn_implementation: str | None = None
):
    """An image-text-to-text model in eval mode (Qwen2.5-VL, Qwen3-VL, … whatever config.json says)."""
    import torch
    from transformers import AutoModelForImageTextToText

    p = check_model_dir(path)
    if dtype not in _DTYPES:
        raise UserError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)}")
    name = _DTYPES[dtype]
    kwargs = {"dtype": name if name == "auto" else getattr(torch, name), "local_files_only": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(p, **kwargs)
    return model.to(device).eval()
