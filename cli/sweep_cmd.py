"""``cxr sweep launch|status|resume|collect``: hyperparameter sweeps as one throttled array."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cli.common import OVERRIDES

app = typer.Typer(
    help="Sweeps: grid / random / Bayesian search over config keys, one throttled array, resumable.",
    no_args_is_help=True,
)
DIR = typer.Argument(..., help="A sweep folder (made by `cxr sweep launch`).")
EXECUTOR = typer.Option(None, "--executor", "-e", help="local | slurm | debug (sets executor.kind).")
STYLE = {
    "completed": "green",
    "failed": "red",
    "timeout": "red",
    "cancelled": "yellow",
    "preempted": "yellow",
}


@app.command(
    "launch",
    epilog="Example: cxr sweep launch configs/sweeps/toy-lr.yaml -e slurm executor.partition=gpu "
    "executor.array_parallelism=8 --dry-run",
)
def launch(
    spec_file: Path = typer.Argument(..., metavar="SPEC", help="The sweep spec (YAML); see configs/sweeps/."),
    executor: str | None = EXECUTOR,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the run count, the first configs and the sbatch script; submit nothing.",
    ),
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Expand SPEC into runs (id = hash of the resolved config), validate them all, write the sweep
    folder and submit one array (`%N` throttle = executor.array_parallelism). Returns once queued
    (Slurm); the local executor runs the sweep here and prints its status."""
    from sweeps.launch import launch as do_launch
    from sweeps.launch import preview
    from sweeps.spec import load_spec

    spec = load_spec(spec_file, ([f"executor.kind={executor}"] if executor else []) + list(overrides or []))
    if dry_run:
        typer.echo(preview(spec))
        return
    out = do_launch(spec)
    sub = out.submission
    what = "worker task(s)" if spec.mode == "bayes" else "run(s)"
    Console().print(
        f"sweep {spec.name}: {out.runs} {what} submitted ({', '.join(sub.job_ids[:1])}…) → {out.folder}"
    )
    _finish(out.folder, sub)


def _finish(folder: Path, sub) -> None:
    if sub is not None and sub.group.kind != "slurm":
        sub.wait()  # local / debug: the runs are this machine's; show where they ended
        _print_status(folder)
    else:
        Console().print(f"follow with: cxr sweep status {folder}")


@app.command("status", epilog="Example: cxr sweep status runs/sweeps/toy-lr")
def status(folder: Path = DIR) -> None:
    """A table of the sweep's runs: state (pending, running, completed, failed, timeout, preempted,
    cancelled), reason, job id, attempts."""
    _print_status(folder)


def _print_status(folder: Path) -> None:
    from sweeps.status import counts, run_states

    rows = run_states(folder)
    t = Table(title=f"sweep {folder}")
    for col in ("run", "settings", "state", "reason", "job", "attempts"):
        t.add_column(col, overflow="fold" if col in ("settings", "reason") else "ellipsis")
    for r in rows:
        settings = " ".join(f"{k}={v}" for k, v in r.params.items())
        if "trial" in r.extra:
            settings = f"trial {r.extra['trial']}: {settings}"
        style = STYLE.get(r.state, "")
        t.add_row(
            r.id,
            settings,
            f"[{style}]{r.state}[/]" if style else r.state,
            r.reason,
            r.job_id or "-",
            str(r.attempts),
        )
    c = Console()
    c.print(t)
    c.print(", ".join(f"{n} {s}" for s, n in counts(rows).items()) or "no runs yet")


@app.command(
    "resume", epilog="Example: cxr sweep resume runs/sweeps/toy-lr clip_norm=1 executor.time_min=120"
)
def resume(
    folder: Path = DIR, executor: str | None = EXECUTOR, overrides: list[str] | None = OVERRIDES
) -> None:
    """Resubmit only the runs that did not complete (same ids, same folders; preempted and timed-out
    runs resume from their checkpoints). Overrides fix the cause: executor.* for scheduling, other
    keys for the runs' configs (not axis keys). Bayes sweeps: the unspent trial budget."""
    from sweeps.launch import resume as do_resume

    out = do_resume(folder, list(overrides or []), executor)
    if out.submission is None:
        Console().print(f"nothing to resume in {folder}: every run completed or is still active")
        return
    Console().print(f"resubmitted {out.runs} ({', '.join(out.submission.job_ids[:1])}…)")
    _finish(out.folder, out.submission)


@app.command("collect", epilog="Example: cxr sweep collect runs/sweeps/toy-lr")
def collect(folder: Path = DIR) -> None:
    """Write DIR/results.parquet (+ .csv): one row per run — flattened config, final and best metrics,
    job id, node, wall time, restarts, state — and DIR/summary.parquet (+ .csv): mean ± std over seeds."""
    from sweeps.collect import collect as do_collect

    results, summary, df = do_collect(folder)
    Console().print(
        f"{len(df)} run(s) → {results} (+ .csv); mean ± std over seeds → {summary} (+ .csv)\n"
        f"  pandas.read_parquet('{results}')  |  duckdb: FROM '{results}'"
    )
