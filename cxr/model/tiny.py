"""The embedded default: a tiny, randomly initialised Qwen2.5-VL built locally, with no download.

Same architecture, processor, chat template and special tokens as Qwen2.5-VL-7B-Instruct, so every
code path (HF generate, vLLM, TRL, DeepSpeed) runs on it unchanged; only the sizes differ. head_dim
is 64 because vLLM's CPU attention rejects smaller heads. Deterministic for a seed: the tokenizer
corpus and the weights both come from it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cxr.format.prompt import GROUNDED_SUFFIX, REPORT_INSTRUCTION

# Qwen2's special tokens, in Qwen's order, plus the reasoning tags the grounded format uses.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Not "special": decoding with skip_special_tokens=True must keep them in the text.
REASONING_TOKENS = ["<think>", "</think>"]
# Qwen2's pre-tokenizer split pattern.
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

_FINDINGS = [
    "no focal consolidation",
    "mild cardiomegaly",
    "small left pleural effusion",
    "right lower lobe opacity",
    "no pneumothorax",
    "clear lungs",
    "atelectasis at the bases",
    "support devices in place",
    "pulmonary edema",
    "enlarged cardiac silhouette",
    "nodule in the right upper lobe",
    "normal mediastinum",
]


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the embedded model (text head_dim = hidden / heads = 64)."""

    vocab_size: int = 2048
    hidden_size: int = 256
    intermediate_size: int = 512
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_depth: int = 2
    vision_hidden: int = 64
    vision_heads: int = 1
    vision_intermediate: int = 0  # 0: 2 × vision_hidden
    text_vocab: int = 0  # > tokenizer size: a wider embedding (benchmarks/gpu.py: the 7B's 152,064 rows)
    min_pixels: int = 56 * 56
    max_pixels: int = 224 * 224


def _corpus(seed: int, n: int = 3000) -> list[str]:
    """Text that looks like the prompts and answers the harness handles, so BPE learns useful merges."""
    rng = random.Random(seed)
    lines = [GROUNDED_SUFFIX, REPORT_INSTRUCTION]
    for _ in range(n):
        f = rng.sample(_FINDINGS, 2)
        b = [rng.randint(0, 512) for _ in range(4)]
        lines.append(
            f"<think> step 1: look at [{b[0]}, {b[1]}, {b[2]}, {b[3]}] and see {f[0]}; "
            f"step 2: {f[1]}. </think> The answer is: \\boxed{{{f[0]}|{f[1]}}}"
        )
    lines += [f"{i} {i * 7 % 513} [{i}, {i + 1}]" for i in range(600)]
    return lines


def build_tokenizer(seed: int, spec: TinySpec):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    vocab = tok.get_vocab()
    # Merges as tuples: transformers' Qwen2Tokenizer rejects "a b" strings (stack.md).
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        for m in json.loads(tok.to_str())["model"]["merges"]
    ]
    hf = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    hf.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    hf.add_tokens(REASONING_TOKENS, special_tokens=False)
    hf.chat_template = chat_template()
    return hf


def chat_template() -> str:
    return resources.files("cxr.model").joinpath("chat_template.jinja").read_text()


FAMILIES = ("qwen2.5-vl", "qwen3-vl")


def build_processor(tokenizer, spec: TinySpec, family: str = "qwen2.5-vl"):
    from transformers import Qwen2VLImageProcessor

    if family == "qwen3-vl":  # 16 px patches (32 px after the 2x2 merge), its own video processor
        from transformers import Qwen3VLProcessor
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        image = Qwen2VLImageProcessor(patch_size=16, min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
        return Qwen3VLProcessor(
            image_processor=image,
            tokenizer=tokenizer,
            video_processor=Qwen3VLVideoProcessor(),
            chat_template=tokenizer.chat_template,
        )
    from transformers import Qwen2_5_VLProcessor, Qwen2VLVideoProcessor

    image = Qwen2VLImageProcessor(min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
    return Qwen2_5_VLProcessor(
        image_processor=image,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=tokenizer.chat_template,
    )


def _configs(tokenizer, spec: TinySpec, family: str):
    ids = tokenizer.convert_tokens_to_ids
    head_dim = spec.hidden_size // spec.num_heads
    unit = head_dim // 16  # mrope sections (t, h, w) sum to head_dim / 2, in Qwen's 2:3:3 shape
    text = {
        "vocab_size": max(len(tokenizer), spec.text_vocab),
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": [2 * unit, 3 * unit, 3 * unit],
        },
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }
    vision = {
        "depth": spec.vision_depth,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate or 2 * spec.vision_hidden,
        "num_heads": spec.vision_heads,
        "out_hidden_size": spec.hidden_size,
    }
    if family == "qwen3-vl":
        text.update(head_dim=head_dim)
        text["rope_parameters"]["mrope_interleaved"] = True
        vision.update(num_position_embeddings=64, deepstack_visual_indexes=[0])
    else:
        text.update(max_window_layers=spec.num_layers)
        vision.update(fullatt_block_indexes=[spec.vision_depth - 1])
    tokens = {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }
    return text, vision, tokens


def build_model(tokenizer, spec: TinySpec, seed: int, family: str = "qwen2.5-vl"):
    import torch
    from transformers import GenerationConfig

    if family == "qwen3-vl":
        from transformers import Qwen3VLConfig as Config
        from transformers import Qwen3VLForConditionalGeneration as Model
    else:
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model
    text, vision, tokens = _configs(tokenizer, spec, family)
    config = Config(text_config=text, vision_config=vision, tie_word_embeddings=False, **tokens)
    torch.manual_seed(seed)
    model = Model(config).eval()
    ids = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=[ids("<|im_end|>"), ids("<|endoftext|>")],
        pad_token_id=ids("<|endoftext|>"),
        do_sample=False,
    )
    return model


def build_tiny(
    out: str | Path,
    seed: int = 0,
    spec: TinySpec | None = None,
    family: str = "qwen2.5-vl",
    dtype: str = "float32",
) -> Path:
    """Write a tiny Qwen2.5-VL (or Qwen3-VL) — model, tokenizer, processor — to ``out`` with
    ``save_pretrained``. Qwen2.5-VL is the default: the seed model's architecture. ``dtype``
    bfloat16 builds big specs (benchmarks/gpu.py) in half the memory and time."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    spec = spec or TinySpec()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(seed, spec)
    processor = build_processor(tokenizer, spec, family)
    import torch

    default = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        model = build_model(tokenizer, spec, seed, family)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
