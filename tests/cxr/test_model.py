"""The embedded tiny model: built locally, loaded through the same code as a real checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from cxr.data.synthetic import synthetic_cxr
from cxr.errors import UserError
from cxr.format import chat_messages
from cxr.model import check_model_dir, load_model, load_processor


def test_tiny_model_round_trip(tiny_model, tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    proc = load_processor(tiny_model)
    model = load_model(tiny_model)
    assert isinstance(proc, Qwen2_5_VLProcessor) and isinstance(model, Qwen2_5_VLForConditionalGeneration)
    text_cfg = model.config.text_config
    assert text_cfg.hidden_size // text_cfg.num_attention_heads == 64  # vLLM's CPU attention needs >= 64
    assert sum(p.numel() for p in model.parameters()) < 5_000_000

    # Reasoning tags are ordinary tokens: decoding with skip_special_tokens keeps them.
    tok = proc.tokenizer
    ids = tok("<think> a </think> \\boxed{b}<|im_end|>")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "<think> a </think> \\boxed{b}"

    prompt = proc.apply_chat_template(chat_messages("Effusion?"), add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|><|image_pad|><|vision_end|>Effusion?" in prompt and prompt.endswith(
        "<|im_start|>assistant\n"
    )
    inputs = proc(text=[prompt], images=[synthetic_cxr(200, 240)], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()

    # save_pretrained → load gives the same weights (what a checkpoint round trip relies on)
    model.save_pretrained(tmp_path / "copy")
    proc.save_pretrained(tmp_path / "copy")
    again = load_model(tmp_path / "copy")
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_processor_size_bounds_come_from_config(tiny_model):
    proc = load_processor(tiny_model, min_pixels=28 * 28, max_pixels=112 * 112)
    grid = proc.image_processor(images=[synthetic_cxr(400, 400)], return_tensors="pt")["image_grid_thw"][0]
    assert int(grid[1] * grid[2]) * 14 * 14 <= 112 * 112


def test_bad_model_folders_are_named(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        check_model_dir(tmp_path / "nope")
    with pytest.raises(UserError, match="no config.json"):
        check_model_dir(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(UserError, match="config.json is not valid JSON"):
        check_model_dir(tmp_path)
    with pytest.raises(UserError, match="dtype 'float8'"):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
        load_model(tmp_path, dtype="float8")


def test_same_loading_code_serves_qwen3_vl(tmp_path):
    """A Qwen3-VL folder (16 px patches, deepstack) goes through the same loader and HF backend."""
    import dataclasses

    from transformers import Qwen3VLForConditionalGeneration

    from cxr.config import DemoConfig, load_config
    from cxr.inference import Request, make_backend
    from cxr.model import build_tiny

    path = build_tiny(tmp_path / "q3", seed=0, family="qwen3-vl")
    assert isinstance(load_model(path), Qwen3VLForConditionalGeneration)
    cfg = load_config(DemoConfig, overrides=[f"generate.model.path={path}"]).generate
    with make_backend(
        dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, max_new_tokens=6))
    ) as be:
        (g,) = be.generate([Request(synthetic_cxr(300, 260), "Effusion?")])
    assert 0 < len(g.token_ids) <= 6
    assert g.resize.input_w % 32 == 0 and g.resize.input_h % 32 == 0  # 16 px patches, 2x2 merge
