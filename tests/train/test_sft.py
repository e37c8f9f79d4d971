"""`cxr train sft` on the tiny model (single CPU process): checkpoints, resume, export, and learning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cxr.config import DemoConfig, load_config
from cxr.config.schema import SftConfig
from cxr.inference import Request, make_backend
from cxr.train.records import SftRecords
from cxr.train.sft import latest_complete_checkpoint, run_sft

from .conftest import MAX_PIXELS


def sft_overrides(data, shards, out, model, *extra) -> list[str]:
    """The overrides every SFT test shares (later ones win), for the CLI and for load_config alike."""
    return [
        f"data={data}",
        f"shards={shards}",
        f"out={out}",
        f"model.path={model}",
        "batch_size=4",
        "lr=1e-3",
        "logging_steps=1",
        f"image.max_pixels={MAX_PIXELS}",
        *extra,
    ]


def sft_cfg(data, shards, out, model, *extra):
    return load_config(SftConfig, overrides=sft_overrides(data, shards, out, model, *extra))


def greedy_tokens_hf_and_vllm(model_path, data, shards, n: int, max_new_tokens: int):
    """Greedy token ids for n training prompts, from transformers and from vLLM, on one export."""
    import dataclasses

    recs = SftRecords(data, shards, stage="instruction", split="train")
    reqs = [Request(recs.image(k), recs.prompt_text(k)) for k in range(n)]
    gen = load_config(
        DemoConfig,
        overrides=[
            f"generate.model.path={model_path}",
            f"generate.sampling.max_new_tokens={max_new_tokens}",
            f"generate.image.max_pixels={MAX_PIXELS}",
        ],
    ).generate
    with make_backend(gen) as hf:
        a = [g.token_ids for g in hf.generate(reqs)]
    with make_backend(dataclasses.replace(gen, backend="vllm")) as vl:
        b = [g.token_ids for g in vl.generate(reqs)]
    return a, b


def test_checkpoints_resume_and_export(sft_data, tiny_model, tmp_path, cxr_bin):
    data, shards = sft_data
    out = tmp_path / "run"
    r = subprocess.run(
        [
            cxr_bin,
            "train",
            "sft",
            *sft_overrides(data, shards, out, tiny_model, "max_steps=4", "save_steps=2"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir() and (out / "export").is_dir()
    assert list((out / "logs").rglob("events.out.tfevents*")), "TensorBoard logs are written by default"
    run_sft(sft_cfg(data, shards, out, tiny_model, "max_steps=6", "save_steps=2"))  # same run folder: resume
    meta = json.loads((out / "meta.json").read_text())
    assert meta["resumed_from"] == "checkpoint-4" and meta["global_step"] == 6 and len(meta["restarts"]) == 1
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]  # one continuous curve


def test_an_incomplete_checkpoint_is_not_resumed_from(tmp_path):
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-20").mkdir()  # killed mid-save: no trainer_state.json
    assert latest_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


@pytest.mark.vllm
def test_export_loads_in_transformers_and_vllm_with_the_same_greedy_output(sft_data, tiny_model, tmp_path):
    data, shards = sft_data
    path = run_sft(
        sft_cfg(data, shards, tmp_path / "run", tiny_model, "max_steps=3", "save_steps=100", "report_to=[]")
    )
    a, b = greedy_tokens_hf_and_vllm(path, data, shards, n=3, max_new_tokens=16)
    assert a == b


def _format_rate(model_path: Path, data: Path, shards: Path) -> float:
    recs = SftRecords(data, shards, stage="coldstart", split="test")
    gen = load_config(
        DemoConfig,
        overrides=[
            f"generate.model.path={model_path}",
            "generate.sampling.max_new_tokens=320",
            f"generate.image.max_pixels={MAX_PIXELS}",
        ],
    ).generate
    with make_backend(gen) as be:
        gens = be.generate(
            [Request(recs.image(k), str(recs.rows["question"].iloc[k])) for k in range(len(recs))]
        )
    return sum(g.parsed.format_ok for g in gens) / len(gens)


@pytest.mark.slow
def test_cold_start_teaches_the_grounded_format(sft_data, tiny_model, tmp_path):
    """Learning, not just running: a broken trainer (no gradient, wrong labels, lost images) stays near 0."""
    data, shards = sft_data
    before = _format_rate(Path(tiny_model), data, shards)
    path = run_sft(
        sft_cfg(
            data,
            shards,
            tmp_path / "run",
            tiny_model,
            "stage=coldstart",
            "max_steps=150",
            "batch_size=8",
            "lr=3e-3",
            "freeze_vision=false",
            "save_steps=1000",
            "logging_steps=20",
            "report_to=[]",
        )
    )
    after = _format_rate(Path(path), data, shards)
    assert before <= 0.1 and after >= 0.6, (before, after)


@pytest.mark.vllm
def test_two_process_zero3_trains_resumes_and_exports_a_loadable_model(
    sft_data, tiny_model, tmp_path, cxr_bin
):
    """Real DeepSpeed ZeRO-3 over gloo, 2 processes via the local executor (one task per 'GPU')."""
    import os

    data, shards = sft_data
    out = tmp_path / "run"
    args = [
        cxr_bin,
        "train",
        "sft",
        *sft_overrides(
            data,
            shards,
            out,
            tiny_model,
            "save_steps=2",
            "batch_size=2",
            "deepspeed=configs/deepspeed/zero3.json",
            "executor.tasks_per_node=2",
            "report_to=[]",
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    repo = Path(__file__).resolve().parents[2]
    for steps in (4, 6):
        r = subprocess.run(
            [*args, f"max_steps={steps}"], capture_output=True, text=True, timeout=900, env=env, cwd=repo
        )
        assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["resumed_from"] == "checkpoint-4" and meta["global_step"] == 6
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]
    assert list((out / "checkpoint-6").glob("global_step*")), "a DeepSpeed (ZeRO) checkpoint was written"
    # the export is consolidated: full tensors, canonical keys; transformers and vLLM agree on it
    from safetensors import safe_open

    with safe_open(out / "export" / "model.safetensors", "pt") as f:
        assert all(f.get_slice(k).get_shape() != [0] for k in f.keys())
    a, b = greedy_tokens_hf_and_vllm(out / "export", data, shards, n=2, max_new_tokens=12)
    assert a == b


@pytest.mark.slurm
@pytest.mark.slow
def test_zero3_on_two_slurm_nodes_survives_preemption(sft_data, tiny_model, slurm_run_dir):
    """2 nodes x 1 task on the testbed; USR2 mid-training (as at preemption) → checkpoint at the next
    step, requeue, resume in the same run folder, finish and export."""
    import time

    from jobs import control
    from jobs.sft import sft_task
    from jobs.submission import submit

    data, shards = sft_data
    out = slurm_run_dir / "run"
    repo = Path(__file__).resolve().parents[2]
    cfg = sft_cfg(
        data,
        shards,
        out,
        tiny_model,
        "max_steps=40",
        "save_steps=1000",
        "report_to=[]",
        f"deepspeed={repo / 'configs' / 'deepspeed' / 'zero3.json'}",
        "executor.kind=slurm",
        "executor.nodes=2",
        "executor.tasks_per_node=1",
        "executor.cpus_per_task=2",
        "executor.mem_gb=3",
        "executor.time_min=30",
        "executor.setup=[export OMP_NUM_THREADS=1]",
    )
    job = submit(sft_task, cfg, cfg=cfg.executor, run_dir=out, name="sft")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until it is training (a logged step in TensorBoard-free state)
        if (
            set(job.states().values()) == {"RUNNING"}
            and (out / "meta.json").is_file()
            and list((out / "jobs").rglob("*_0_log.out"))
        ):
            if "'loss'" in "".join(p.read_text() for p in (out / "jobs").rglob("*_0_log.out")):
                break
        time.sleep(1)
    assert control.requeue(out) == job.job_ids
    assert job.wait(timeout_s=600) == {job.job_ids[0]: "COMPLETED"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["global_step"] == 40 and meta["resumed_from"] and len(meta["restarts"]) >= 1
    assert (out / "export" / "model.safetensors").is_file()
    state = json.loads((out / meta["resumed_from"] / "trainer_state.json").read_text())
    assert 0 < state["global_step"] < 40  # saved mid-run, at the signal


def test_time_out_budget_counts_only_time_outs(tmp_path):
    from jobs.sft import count_timeout

    count_timeout(tmp_path, 30, time_min=60, budget=0)  # early USR2 in a 1-hour job: a preemption
    assert not (tmp_path / "timeouts.json").exists()
    count_timeout(tmp_path, 50 * 60, time_min=60, budget=1)  # past min(0.8 T, T - 10 min): a time-out
    with pytest.raises(RuntimeError, match="timed out 2 times"):
        count_timeout(tmp_path, 55, time_min=1, budget=1)


def test_teacher_acceptance_follows_the_seed_reward():
    from cxr.data.teacher import accepts

    good = "<think> step 1: the region [1, 2, 30, 40] shows effusion </think> The answer is: \\boxed{Effusion|nodule}"
    assert accepts(good, "nodule|effusion") == (True, "")
    assert accepts(good, "effusion") == (False, "wrong answer")
    assert accepts("no think \\boxed{yes}", "yes") == (False, "format")
    assert accepts("<think> x </think> \\boxed{YES}", "yes") == (True, "")
    report = "<think> x [1, 1, 9, 9] </think> \\boxed{FINDINGS: clear lungs.}"
    assert accepts(report, "FINDINGS: small effusion.") == (True, "")
    assert accepts(report, "FINDINGS: small effusion.", reports=False) == (False, "report")


def test_teacher_samples_through_a_real_backend(sft_data, tiny_model):
    """A random tiny teacher writes nothing acceptable: every record is tried and rejected with a reason."""
    from cxr.data.teacher import teacher_samples

    data, shards = sft_data
    recs = SftRecords(data, shards, stage="coldstart", split="test")
    rows = recs.rows.head(4)
    gen = load_config(
        DemoConfig,
        overrides=[
            f"generate.model.path={tiny_model}",
            "generate.sampling.max_new_tokens=24",
            "generate.sampling.temperature=1.0",
            f"generate.image.max_pixels={MAX_PIXELS}",
        ],
    ).generate
    with make_backend(gen) as be:
        kept, why = teacher_samples(rows, recs.image, be, tries=2)
    assert len(kept) == 0 and sum(why.values()) == 2 * len(rows) and set(why) <= {"format", "no answer"}


def test_build_data_with_a_teacher_records_what_it_kept(sft_data, tiny_model, tmp_path):
    from cxr.config.schema import BuildDataConfig
    from cxr.data.build import build_dataset

    data, shards = sft_data
    out = tmp_path / "data"
    build_dataset(
        load_config(
            BuildDataConfig,
            overrides=[
                f"shards={shards}",
                f"out={out}",
                f"image.max_pixels={MAX_PIXELS}",
                "tasks=[vqa_closed]",
                f"teacher.model.path={tiny_model}",
                "teacher.sampling.max_new_tokens=16",
                "teacher_tries=1",
            ],
        )
    )
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta["teacher"]) <= {"train", "val", "test"} and meta["teacher"]["train"]["records"] > 0
    assert (
        meta["teacher"]["train"]["kept"] + sum(meta["teacher"]["train"]["rejected"].values())
        == meta["teacher"]["train"]["records"]
    )
    assert (out / "coldstart-teacher-train.parquet").is_file()


def test_lora_gradient_checkpointing_and_stage_two_from_stage_one(sft_data, tiny_model, tmp_path):
    from transformers import AutoModelForImageTextToText

    data, shards = sft_data
    stage1 = run_sft(
        sft_cfg(
            data,
            shards,
            tmp_path / "s1",
            tiny_model,
            "max_steps=2",
            "report_to=[]",
            "lora.enabled=true",
            "lora.r=4",
            "gradient_checkpointing=true",
        )
    )
    merged = AutoModelForImageTextToText.from_pretrained(stage1)  # LoRA merged into plain weights
    assert not any("lora" in k for k in merged.state_dict())
    stage2 = run_sft(
        sft_cfg(data, shards, tmp_path / "s2", stage1, "stage=coldstart", "max_steps=2", "report_to=[]")
    )
    meta = json.loads((tmp_path / "s2" / "meta.json").read_text())
    assert meta["kind"] == "sft-coldstart" and Path(stage2, "model.safetensors").is_file()
    import yaml

    assert yaml.safe_load((tmp_path / "s2" / "config.yaml").read_text())["model"]["path"] == stage1
