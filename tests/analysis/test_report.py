"""`cxr report`: both pages are written with their plots and images embedded; boxes land where the
shard geometry says; nothing from a shards folder's private side (patient/accession ids, private/) and
no unescaped model text reaches the HTML."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
from PIL import Image

from analysis.review import review_items, stored_from_input, stored_from_original
from tests.analysis.tables_fixtures import CANARY, env

PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def cxr(*args):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)], env=env(), capture_output=True, text=True
    )


def pngs(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in PNG.findall(html)]


def red(img: Image.Image) -> int:
    a = np.asarray(img).astype(int)
    return int(((a[..., 0] > 180) & (a[..., 1] < 130) & (a[..., 2] < 100)).sum())


def test_boxes_map_from_original_and_input_pixels_into_the_stored_image(report_shards):
    index = pd.read_parquet(report_shards / "index.parquet")
    padded = index[(index["pad_left"] + index["pad_top"]) > 0].iloc[0]  # a non-square original: letterboxed
    whole = [0, 0, int(padded["orig_w"]), int(padded["orig_h"])]
    content = [
        padded["pad_left"],
        padded["pad_top"],
        padded["pad_left"] + padded["content_w"],
        padded["pad_top"] + padded["content_h"],
    ]
    assert stored_from_original(padded, whole) == [int(v) for v in content]
    size = int(padded["size"])
    assert stored_from_input(size, 112, 112, [0, 0, 112, 112]) == [0, 0, size, size]
    # 128/112 px per input px, rounded outward
    assert stored_from_input(128, 112, 112, [10, 20, 60, 80]) == [11, 22, 69, 92]


def test_report_and_review_pages_embed_plots_and_images(
    toy_sweep, scores, eval_dir, arena_dir, references, tmp_path
):
    out = tmp_path / "report"
    r = cxr(
        "report", out, "--eval", eval_dir, "--sweep", toy_sweep, "--scores", scores, "--arena", arena_dir,
        "--references", references, "--images", 4,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    index = (out / "index.html").read_text()
    for alt in (
        "metrics with 95% CIs",
        "metrics by slice",
        "per-finding F1",
        "sweep comparison",
        "arena ratings",
        "win-rate matrix",
    ):
        assert f'alt="{alt}"' in index, alt
    figures = pngs(index)
    assert len(figures) == 7 and all(f.width > 100 for f in figures)
    assert "Cardiomegaly" in index and 'href="review.html"' in index
    review = (out / "review.html").read_text()
    cards = pngs(review)
    assert len(cards) == 4 and review.count('class="card"') == 4
    # every sampled image has a `findings` box (the whole original image) and a reference box: both drawn
    assert (
        "4 predicted" not in review and review.count("1 predicted") == 4 and review.count("1 reference") == 4
    )
    assert all(red(c) > 50 for c in cards)


def test_an_image_without_boxes_is_drawn_without_boxes(scores, report_shards):
    s = pd.read_parquet(scores)
    s["boxes_original"] = [[] for _ in range(len(s))]
    (item,) = review_items(s, report_shards, n=1)
    png = Image.open(io.BytesIO(base64.b64decode(item["png"].split(",", 1)[1]))).convert("RGB")
    assert item["n_pred"] == 0 and red(png) == 0


def test_no_phi_and_no_raw_markup_reach_the_pages(scores, report_shards, references, tmp_path):
    planted = shutil.copytree(scores, tmp_path / "scores")
    for part in planted.glob("part-*.parquet"):
        df = pd.read_parquet(part)
        df["answer"] = "<script>alert('x')</script>"
        df.to_parquet(part, index=False)
    out = tmp_path / "report"
    r = cxr(
        "report",
        out,
        "--scores",
        planted,
        "--shards",
        report_shards,
        "--references",
        references,
        "--images",
        50,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for page in ("index.html", "review.html"):
        html = (out / page).read_text()
        assert CANARY not in html, f"{page} shows PHI"
        assert str(report_shards / "private") not in html
    review = (out / "review.html").read_text()
    assert "<script>" not in review and "&lt;script&gt;" in review
    assert review.count('class="card"') == pd.read_parquet(scores)["image_id"].nunique()


def test_user_mistakes_are_one_line_errors(scores, tmp_path):
    r = cxr("report", tmp_path / "r")
    assert r.returncode == 2 and "nothing to report" in r.stderr and r.stderr.count("\n") == 1
    r = cxr("report", tmp_path / "r", "--scores", scores, "--shards", tmp_path)
    assert r.returncode == 2 and "no index.parquet" in r.stderr and r.stderr.count("\n") == 1
    r = cxr("report", tmp_path / "r", "--scores", tmp_path)
    assert r.returncode == 2 and "no part-*.parquet" in r.stderr and r.stderr.count("\n") == 1
    r = cxr("report", tmp_path / "r", "--eval", tmp_path / "missing")
    assert r.returncode == 2 and "--eval" in r.stderr
