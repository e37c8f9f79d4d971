"""``cxr report OUT``: one self-contained HTML page of plots and tables, plus an image-review page.

Self-contained (plots and images embedded as base64 PNG) so the two files can be mailed or attached to
a ticket without the folders they came from. Tables are escaped by pandas and everything else by
Jinja2's autoescape: a model's raw text cannot inject markup into the page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from analysis import plots, tables
from analysis.review import review_items, sample_from_counts
from cxr.errors import UserError

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]))


def _table(df: pd.DataFrame, max_rows: int = 60) -> Markup:
    return Markup(
        df.head(max_rows).to_html(
            index=False, escape=True, na_rep="—", float_format=lambda v: f"{v:.4g}", border=0
        )
    )


def _fig(fig, alt: str) -> dict | None:
    return None if fig is None else {"alt": alt, "src": plots.data_uri(plots.png_bytes(fig))}


def _section(id_: str, title: str, figures: list, tables_: list, note: str = "") -> dict:
    return {"id": id_, "title": title, "figures": [f for f in figures if f], "tables": tables_, "note": note}


def eval_section(folder: Path) -> dict:
    m = tables.open_eval(folder)
    overall = m[m["slice"].astype(str) == "all"] if "slice" in m.columns else m
    cols = [c for c in ("metric", "task", "value", "ci_low", "ci_high", "n") if c in m.columns]
    summary = tables._read_json(folder / "summary.json")
    scalars = {k: v for k, v in summary.items() if isinstance(v, str | int | float | bool)}
    figs = [
        _fig(plots.metrics_with_ci(m), "metrics with 95% CIs"),
        _fig(plots.metrics_by_slice(m), "metrics by slice"),
        _fig(plots.per_finding_f1(m), "per-finding F1"),
    ]
    tabs = [_table(overall[cols], 200)]
    if scalars:
        tabs.insert(
            0, _table(pd.DataFrame({"key": list(scalars), "value": [str(v) for v in scalars.values()]}))
        )
    slices = sorted(set(m["slice"].astype(str)) - {"all"}) if "slice" in m.columns else []
    note = f"Whole set; slices in metrics.parquet: {', '.join(slices)}." if slices else "Whole set."
    return _section("eval", "Evaluation", figs, tabs, note)


def sweep_section(folder: Path) -> dict:
    results = tables.open_sweep(folder)
    summary = tables.open_sweep_summary(folder)
    states = (
        results["state"].value_counts().rename_axis("state").reset_index() if "state" in results else None
    )
    keys = tables.varying_keys(results)
    note = f"{len(results)} runs; varying: {', '.join(k.removeprefix('cfg.') for k in keys) or 'nothing'}."
    tabs = [_table(states)] if states is not None else []
    return _section(
        "sweep",
        "Sweep",
        [_fig(plots.sweep_comparison(results), "sweep comparison")],
        [*tabs, _table(summary)],
        note,
    )


PER_TASK_SQL = """
SELECT task, count(*) AS rows, count(DISTINCT image_id) AS images, avg(format_ok::DOUBLE) AS format_ok,
       avg((finish_reason = 'length')::DOUBLE) AS cut_at_max_tokens, avg(len(boxes)) AS boxes_per_row,
       avg(num_tokens) AS tokens
FROM scores GROUP BY task ORDER BY task
"""


def scores_section(folder: Path, con) -> dict:
    """Aggregated by DuckDB over the parts in place: a whole archive's rows never sit in memory."""
    per = con.sql(PER_TASK_SQL).df()
    rows, images = con.sql("SELECT count(*), count(DISTINCT image_id) FROM scores").fetchall()[0]
    fail = folder / "_failures.parquet"
    n_fail = len(pd.read_parquet(fail)) if fail.is_file() else 0
    note = f"{rows} rows, {images} images, {n_fail} failed rows."
    return _section(
        "scores", "Scores", [_fig(plots.scores_overview(per), "scores per task")], [_table(per)], note
    )


def review_page(con, shards: Path, references: pd.DataFrame | None, n: int, seed: int) -> tuple[list, int]:
    """The sampled images' rows only are read: the draw uses per-image box counts."""
    counts = con.sql("SELECT image_id, sum(len(boxes_original)) AS n FROM scores GROUP BY image_id").df()
    ids = sample_from_counts(counts.set_index("image_id")["n"].fillna(0), n, seed)
    con.register("_ids", pd.DataFrame({"image_id": ids}))
    rows = con.sql(
        "SELECT image_id, task, answer, format_ok, boxes_original FROM scores WHERE image_id IN "
        "(SELECT image_id FROM _ids)"
    ).df()
    return review_items(rows, shards, references=references, ids=ids), len(counts)


def arena_section(folder: Path) -> dict:
    r = tables.open_arena(folder)
    figs = [_fig(plots.arena_ratings(r), "arena ratings")]
    if (folder / "winrate.parquet").is_file():
        figs.append(_fig(plots.winrate_matrix(tables.open_arena(folder, "winrate")), "win-rate matrix"))
    return _section("arena", "Report Arena", figs, [_table(r.sort_values("strength", ascending=False))])


def _shards_of(scores_dir: Path, shards: Path | None) -> Path:
    if shards is None:
        cfg = tables.score_run(scores_dir).get("config") or {}
        if not cfg.get("shards"):
            raise UserError(f"{scores_dir}: _run.json names no shards folder; pass --shards DIR")
        shards = Path(cfg["shards"])
    if not (shards / "index.parquet").is_file():
        raise UserError(f"{shards}: no index.parquet (not a shards folder); pass --shards DIR")
    return shards


def build_report(
    out: str | Path,
    *,
    eval_dir: str | Path | None = None,
    sweep_dir: str | Path | None = None,
    scores_dir: str | Path | None = None,
    arena_dir: str | Path | None = None,
    shards_dir: str | Path | None = None,
    references: str | Path | None = None,
    n_images: int = 12,
    seed: int = 0,
) -> dict[str, Path]:
    """Write OUT/index.html (and OUT/review.html when scores are given); returns their paths."""
    given = {"eval": eval_dir, "sweep": sweep_dir, "scores": scores_dir, "arena": arena_dir}
    for name, d in given.items():
        if d is not None and not Path(d).is_dir():
            raise UserError(f"{d}: no such folder (--{name})")
    if not any(given.values()):
        raise UserError(f"{out}: nothing to report; pass at least one of --eval, --sweep, --scores, --arena")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections, written = [], {}
    if eval_dir:
        sections.append(eval_section(Path(eval_dir)))
    if sweep_dir:
        sections.append(sweep_section(Path(sweep_dir)))
    if arena_dir:
        sections.append(arena_section(Path(arena_dir)))
    con = None
    if scores_dir:
        tables.score_parts(scores_dir)  # a folder without parts: a one-line error, not a SQL one
        con = tables.connect(scores_dir)
    if con is not None:
        sections.append(scores_section(Path(scores_dir), con))
    env = _env()
    if con is not None:
        refs = None
        if references is not None:
            if not Path(references).is_file():
                raise UserError(f"{references}: no such references parquet (--references)")
            refs = pd.read_parquet(references, columns=["image_id", "boxes", "input_w", "input_h"])
        shards = _shards_of(Path(scores_dir), Path(shards_dir) if shards_dir else None)
        items, n_scored = review_page(con, shards, refs, n_images, seed)
        html = env.get_template("review.html.j2").render(
            title="Image review", items=items, has_refs=refs is not None, n_images=n_scored, seed=seed
        )
        written["review"] = out / "review.html"
        written["review"].write_text(html)
    inputs = [(k, str(v)) for k, v in given.items() if v]
    html = env.get_template("report.html.j2").render(
        title="cxr report", sections=sections, inputs=inputs, review="review" in written
    )
    written["index"] = out / "index.html"
    written["index"].write_text(html)
    return written
