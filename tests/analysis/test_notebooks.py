"""The notebooks in analysis/notebooks run headless (nbclient, the venv's python3 kernel) against
small real folders and save their plots; a cell that raises fails the test with its traceback."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.analysis.tables_fixtures import env
from tests.conftest import REPO

NOTEBOOKS = Path(REPO) / "analysis" / "notebooks"


def run(name: str, tmp_path: Path, **inputs) -> Path:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    out = tmp_path / "plots"
    e = {**env(), **{k: str(v) for k, v in inputs.items()}, "CXR_NB_OUT": str(out), "MPLBACKEND": "Agg"}
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=e)  # raises CellExecutionError on the first failing cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "a cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return out


def pngs(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.png") if p.stat().st_size > 1000}


def test_every_notebook_is_tested():
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == {
        "review_scores.ipynb",
        "compare_sweep.ipynb",
        "arena.ipynb",
    }


def test_review_scores_notebook(scores, tmp_path):
    out = run("review_scores.ipynb", tmp_path, CXR_SCORES=scores, CXR_NB_IMAGES=3)
    assert pngs(out / "review_scores") == {"scores_overview.png", "review_images.png"}


def test_compare_sweep_notebook_on_an_uncollected_sweep(toy_sweep, tmp_path):
    import shutil

    bare = shutil.copytree(toy_sweep, tmp_path / "sweep")
    (bare / "results.parquet").unlink()
    out = run("compare_sweep.ipynb", tmp_path, CXR_SWEEP=bare, CXR_NB_METRIC="val_loss")
    assert pngs(out / "compare_sweep") == {"sweep_comparison.png", "curves.png"}


def test_arena_notebook(arena_dir, tmp_path):
    out = run("arena.ipynb", tmp_path, CXR_ARENA=arena_dir)
    assert pngs(out / "arena") == {"ratings.png", "winrate.png"}


@pytest.mark.parametrize("name", ["review_scores.ipynb", "compare_sweep.ipynb", "arena.ipynb"])
def test_notebooks_are_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "clear outputs before committing"
    )
    assert "os.environ" in nb.cells[1].source, "the first code cell takes the inputs from the environment"
