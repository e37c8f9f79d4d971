"""The ``cxr`` command. Sub-commands live in small modules; this file wires them and owns error
handling: a ``UserError`` is one line on stderr and exit code 2 (``--debug`` shows the traceback);
anything else is a bug and keeps its traceback."""

from __future__ import annotations

import os
import sys

import click
import typer
from rich.console import Console
from rich.markup import escape

from cli import (
    analysis_cmd,
    arena_cmd,
    config_cmd,
    data_cmd,
    demo_cmd,
    eval_cmd,
    generate_cmd,
    ingest_cmd,
    jobs_cmd,
    model_cmd,
    pipeline_cmd,
    score_cmd,
    sweep_cmd,
    train_cmd,
)
from cli.common import STATE
from cxr.errors import UserError

app = typer.Typer(
    name="cxr",
    help="Train and run a grounded-reasoning chest X-ray VLM (DeepMedix-R1 recipe) on Slurm or one CPU machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and library logs."),
) -> None:
    STATE.debug = debug or os.environ.get("CXR_DEBUG") == "1"
    if not STATE.debug:
        # Library chatter (vLLM INFO lines, weight-loading bars) drowns the one table users want.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


app.add_typer(model_cmd.app, name="model")
app.add_typer(config_cmd.app, name="config")
app.add_typer(jobs_cmd.app, name="jobs")
app.add_typer(train_cmd.app, name="train")
app.add_typer(sweep_cmd.app, name="sweep")
app.command("generate", epilog=generate_cmd.EPILOG)(generate_cmd.generate)
app.command("demo", epilog=demo_cmd.EPILOG)(demo_cmd.demo)
app.command("synth", epilog=data_cmd.SYNTH_EPILOG)(data_cmd.synth)
app.command("preprocess", epilog=data_cmd.PREPROCESS_EPILOG)(data_cmd.preprocess)
app.command("ingest", epilog=ingest_cmd.EPILOG)(ingest_cmd.ingest)
app.command("build-data", epilog=data_cmd.BUILD_EPILOG)(data_cmd.build_data)
app.command("score", epilog=score_cmd.EPILOG)(score_cmd.score)
app.command("eval", epilog=eval_cmd.EPILOG)(eval_cmd.eval_)
app.command("arena", epilog=arena_cmd.EPILOG)(arena_cmd.arena)
app.command("pipeline", epilog=pipeline_cmd.EPILOG)(pipeline_cmd.pipeline)
app.command("tables", epilog=analysis_cmd.TABLES_EPILOG)(analysis_cmd.tables)
app.command("report", epilog=analysis_cmd.REPORT_EPILOG)(analysis_cmd.report)


def main(argv: list[str] | None = None) -> None:
    # Nothing here may download: a missing local file must fail, never reach for a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        rv = app(args=argv, prog_name="cxr", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except UserError as e:
        if STATE.debug:
            raise
        err.print(f"[bold red]error:[/] {escape(str(e))}", markup=True)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
