"""`cxr tables` and `cxr report`: the analyst's view of any folder the harness writes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cxr.errors import UserError

TABLES_EPILOG = (
    "Example: cxr tables runs/sweeps/toy-lr      |      "
    "cxr tables runs/eval --sql \"SELECT metric, value FROM metrics WHERE slice = 'all'\" --csv m.csv      |      "
    'cxr tables runs/score/a runs/score/b --sql "SELECT source, avg(format_ok::INT) FROM scores GROUP BY 1". '
    "Views: runs + history (run folders), runs + summary (sweep), scores + failures, metrics (eval), "
    "ratings + winrate + judgments + outcomes (arena), images (shards, without patient/accession ids); "
    "folders of one kind stack into one view with a `source` column."
)

REPORT_EPILOG = (
    "Example: cxr report runs/report --eval runs/eval --sweep runs/sweeps/toy-lr --arena runs/arena "
    "--scores runs/score/archive-1 --references runs/data/test.parquet. "
    "Writes OUT/index.html (plots and tables, images embedded) and, with --scores, OUT/review.html "
    "(sampled shard images with predicted boxes, and reference boxes with --references)."
)


def _cell(v) -> str:
    s = "—" if v is None else " ".join(str(v).split())
    return s if len(s) <= 60 else s[:59] + "…"


def _print(df, title: str, limit: int) -> None:
    """The head, fitted to the terminal: columns that hold one value in every row are named in the
    caption instead of shown (a sweep's fixed config keys), and columns past the terminal's width are
    listed by name (pick them with --sql) rather than squeezed to nothing."""
    console = Console(soft_wrap=False)
    head = df.head(limit)
    same = (
        [c for c in df.columns if len(df) > 1 and df[c].astype(str).nunique(dropna=False) <= 1]
        if len(df.columns) > 8
        else []
    )
    cells = {c: [_cell(v) for v in head[c]] for c in df.columns if c not in same}
    shown, used = [], 4
    for c, vals in cells.items():
        w = min(28, max([len(str(c)), *map(len, vals)])) + 3
        if shown and used + w > console.width:
            break
        shown.append(c)
        used += w
    caption = f"{len(df)} rows × {len(df.columns)} columns" + (f"; first {limit}" if len(df) > limit else "")
    if same:
        caption += f"; the same in every row: {', '.join(f'{c}={_cell(df[c].iloc[0])}' for c in same)}"
    if len(shown) < len(cells):
        caption += f"; not shown (use --sql): {', '.join(map(str, list(cells)[len(shown) :]))}"
    t = Table(title=title, caption=caption, caption_justify="left")
    for c in shown:
        t.add_column(str(c), no_wrap=True, overflow="ellipsis", max_width=28)
    for i in range(len(head)):
        t.add_row(*(cells[c][i] for c in shown))
    console.print(t)


def tables(
    paths: list[Path] = typer.Argument(
        ..., help="Run, sweep, score, eval, arena or shards folders (or a glob of run folders)."
    ),
    sql: str = typer.Option(None, "--sql", help="SQL over the folders' views (DuckDB).", show_default=False),
    csv: Path = typer.Option(
        None, "--csv", help="Write the whole table (or query result) here.", show_default=False
    ),
    limit: int = typer.Option(20, "--limit", "-n", help="Rows to print."),
) -> None:
    """Open folders as tables: print the head, run SQL over them, or save CSV."""
    from analysis import tables as T

    if sql:
        import duckdb

        con = T.connect(*paths)
        try:
            df = con.sql(sql).df()
        except duckdb.Error as e:
            names = ", ".join(
                r[0]
                for r in con.sql(
                    "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
                ).fetchall()
            )
            raise UserError(f"--sql: {str(e).splitlines()[0]} (views: {names})") from None
        title = "query"
    else:
        kinds = {"run": "runs"}.get  # a glob the shell expanded: run folders, one table
        families = {kinds(T.kind(p), T.kind(p)) for p in paths}
        if len(families) > 1:
            raise UserError(
                f"{', '.join(map(str, paths))}: folders of different kinds ({', '.join(sorted(families))}); "
                "use --sql to query them together"
            )
        if len(paths) == 1:
            df = T.open(paths[0])
        else:  # one kind: stacked, with the folder each row came from
            import pandas as pd

            df = pd.concat([T.open(p).assign(source=Path(p).name) for p in paths], ignore_index=True)
        title = f"{paths[0] if len(paths) == 1 else f'{len(paths)} folders'} ({families.pop()})"
    if csv:
        df.to_csv(csv, index=False)
        Console(stderr=True).print(f"{len(df)} rows → {csv}")
    _print(df, title, limit)


def report(
    out: Path = typer.Argument(..., help="Folder for index.html and review.html."),
    eval_dir: Path = typer.Option(None, "--eval", help="A `cxr eval` folder.", show_default=False),
    sweep: Path = typer.Option(None, "--sweep", help="A sweep folder.", show_default=False),
    scores: Path = typer.Option(None, "--scores", help="A `cxr score` folder.", show_default=False),
    arena: Path = typer.Option(None, "--arena", help="A `cxr arena` folder.", show_default=False),
    shards: Path = typer.Option(
        None, "--shards", help="Shards for the review (default: the score folder's).", show_default=False
    ),
    references: Path = typer.Option(
        None,
        "--references",
        help="A `cxr build-data` split (.parquet) with reference boxes.",
        show_default=False,
    ),
    images: int = typer.Option(12, "--images", help="Images on the review page."),
    seed: int = typer.Option(0, "--seed", help="Seed of the image sample."),
) -> None:
    """Write an HTML report (plots with CIs, per-finding F1, sweep and arena comparisons) and an image review."""
    from analysis.report import build_report

    written = build_report(
        out,
        eval_dir=eval_dir,
        sweep_dir=sweep,
        scores_dir=scores,
        arena_dir=arena,
        shards_dir=shards,
        references=references,
        n_images=images,
        seed=seed,
    )
    for path in written.values():
        print(path)
