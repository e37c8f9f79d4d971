"""``cxr jobs …``: look after submitted work (any executor), and probe a cluster allocation."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cli.common import CONFIG, OVERRIDES, stage_config
from cxr.config.schema import ProbeConfig

app = typer.Typer(
    help="Jobs: status, cancel, requeue and rerun of submitted work; cluster probe.", no_args_is_help=True
)
RUN_DIR = typer.Argument(..., help="A run or sweep folder (one that holds jobs.json).")
EXECUTOR = typer.Option(None, "--executor", "-e", help="local | slurm | debug (sets executor.kind).")


@app.command("status", epilog="Example: cxr jobs status runs/probe")
def status(run_dir: Path = RUN_DIR) -> None:
    """Print the state of every job submitted from RUN_DIR (sacct; squeue + markers without accounting)."""
    from jobs import control

    rows = control.status(run_dir)
    t = Table(title=f"jobs of {run_dir}")
    for col in ("submission", "job id", "state"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.group, r.job_id, r.state)
    Console().print(t)
    Console().print(control.summary(rows))


@app.command("cancel", epilog="Example: cxr jobs cancel runs/probe")
def cancel(run_dir: Path = RUN_DIR) -> None:
    """Cancel every unfinished job submitted from RUN_DIR; print the states after."""
    from jobs import control

    rows = control.cancel(run_dir)
    Console().print(f"cancel sent; now: {control.summary(rows)}")


@app.command("requeue", epilog="Example: cxr jobs requeue runs/sft-7b")
def requeue(run_dir: Path = RUN_DIR) -> None:
    """Checkpoint and requeue running Slurm jobs (sends USR2; `scontrol requeue` would not checkpoint)."""
    from jobs import control

    sent = control.requeue(run_dir)
    Console().print(f"USR2 sent to {len(sent)} running job(s): {' '.join(sent) or '-'}")


@app.command("rerun", epilog="Example: cxr jobs rerun runs/preprocess-archive")
def rerun(run_dir: Path = RUN_DIR) -> None:
    """Resubmit only the failed items of RUN_DIR's submissions, each with its original arguments."""
    from jobs import control

    subs = control.rerun_failed(run_dir)
    n = sum(len(s.job_ids) for s in subs)
    Console().print(
        f"resubmitted {n} failed item(s)" + (f": {' '.join(j for s in subs for j in s.job_ids)}" if n else "")
    )


@app.command(
    "probe", epilog="Example: cxr jobs probe -e slurm executor.nodes=2 executor.tasks_per_node=2 --dry-run"
)
def probe(
    executor: str | None = EXECUTOR,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the sbatch script instead of submitting."),
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Every task joins torch.distributed (gloo/NCCL) and all-reduces its rank: checks an allocation."""
    from jobs import examples
    from jobs.executor import sbatch_script
    from jobs.submission import submit

    cfg = stage_config(
        ProbeConfig, config, ([f"executor.kind={executor}"] if executor else []) + list(overrides or [])
    )
    folder = Path(cfg.folder)
    if dry_run:
        typer.echo(sbatch_script(cfg.executor, folder / "jobs" / "probe-N"))
        return
    sub = submit(examples.allreduce_probe, cfg=cfg.executor, run_dir=folder, name="probe")
    Console().print(f"submitted {sub.job_ids[0]} ({cfg.executor.kind}); waiting")
    sub.wait()
    (out,) = sub.outcomes()
    if not out.ok:
        raise typer.Exit(_fail(out))
    v = out.value
    Console().print(
        f"ok: {v['world_size']} task(s) on {v['num_nodes']} node(s), backend {v['backend']}, "
        f"master {v['master_addr']}:{v['master_port']}, all_reduce(rank) = {v['rank_sum']:.0f}"
    )


def _fail(out) -> int:
    Console(stderr=True).print(
        f"probe job {out.job_id} {out.state}: {(out.error or '').strip().splitlines()[-1:]}"
    )
    return 1
