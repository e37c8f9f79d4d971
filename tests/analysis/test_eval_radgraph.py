"""RadGraph F1 from a staged folder (analysis.eval.radgraph): a tiny random-weight RadGraph built with
the package's own classes (tests/analysis/radgraph_fixture.py), loaded and scored with no network; the
numbers equal the package's F1RadGraph; an incomplete folder is a UserError naming what is missing."""

from __future__ import annotations

import json
import os
import shutil
import socket

import numpy as np
import pytest

from analysis.eval.bootstrap import estimate, generator
from analysis.eval.radgraph import LEVELS, RadGraphF1, check_folder, metric_names, radgraph_stats
from cxr.errors import UserError
from tests.analysis.radgraph_fixture import PUBMEDBERT, build_radgraph_folder

LONG = " ".join(["mild left pleural effusion ."] * 25)  # > 64 wordpieces: folded into BERT windows
PREDS = [
    "No evidence of acute cardiopulmonary process.",
    "Mild left effusion.",
    "",
    "   ",
    LONG,
    "Chest tube.",
]
REFS = [
    "No evidence of acute cardiopulmonary process.",
    "Small right pneumothorax, edema.",
    "Normal.",
    "Chest.",
]
REFS += [LONG, "Chest tube."]
IDENTICAL = [0, 4, 5]


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection or Hub download fails the test."""
    attempts = []

    def refuse(self, address, *a, **k):
        attempts.append(address)
        raise AssertionError(f"network access to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    import radgraph.radgraph

    def no_download(*a, **k):
        raise AssertionError("radgraph tried to download its model")

    monkeypatch.setattr(radgraph.radgraph, "download_model", no_download)
    yield attempts
    assert not attempts


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    return build_radgraph_folder(tmp_path_factory.mktemp("radgraph") / "stage")


@pytest.fixture(scope="module")
def scorer(staged):
    return RadGraphF1(staged, cuda=-1)


def test_loads_offline_and_scores(staged, no_network):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    before = sorted(p.name for p in staged.rglob("*"))
    scorer = RadGraphF1(staged, cuda=-1)
    values = scorer.scores(PREDS, REFS)
    assert values.shape == (len(PREDS), len(LEVELS))
    assert ((values >= 0) & (values <= 1)).all()
    entities = [len(a["entities"]) for a in scorer.annotate(PREDS)]
    assert all(entities[k] for k in IDENTICAL)  # random weights still tag spans: the 1.0 branch runs
    for k in IDENTICAL:  # same text, same entities: F1 1, or 0 where there is no entity (the package's rule)
        assert (values[k] == (1.0 if entities[k] else 0.0)).all(), (k, values[k])
    assert (values[2:4] == 0).all()  # empty / whitespace-only prediction: 0, not an error
    assert entities[2] == entities[3] == 0
    assert sorted(p.name for p in staged.rglob("*")) == before  # the staged folder is only read


def test_same_numbers_as_the_package(staged, scorer, tmp_path):
    """F1RadGraph itself, on a copy of the stage whose config names the BERT by its local path."""
    from radgraph import F1RadGraph

    copy = tmp_path / "cache"
    shutil.copytree(staged / "radgraph", copy / "radgraph")
    cfg = json.loads((copy / "radgraph" / "config.json").read_text())
    local = str(staged / PUBMEDBERT)
    cfg["dataset_reader"]["token_indexers"]["bert"]["model_name"] = local
    cfg["model"]["embedder"]["token_embedders"]["bert"]["model_name"] = local
    (copy / "radgraph" / "config.json").write_text(json.dumps(cfg))
    keep = [k for k, p in enumerate(PREDS) if p == "" or p.strip()]  # the package fails on whitespace-only
    preds, refs = [PREDS[k] for k in keep], [REFS[k] for k in keep]
    f1 = F1RadGraph(reward_level="all", model_type="radgraph", model_cache_dir=str(copy), cuda=-1)
    mean, (simple, partial, complete), _, _ = f1(refs=refs, hyps=preds)
    ours = scorer.scores(preds, refs)
    by_level = {"simple": simple, "partial": partial, "complete": complete}
    for j, level in enumerate(LEVELS):
        np.testing.assert_allclose(ours[:, j], by_level[level])
    np.testing.assert_allclose(ours.mean(axis=0), [mean[1], mean[0], mean[2]])


def test_stats_bootstrap_over_cases(staged):
    logged = []
    (stat,) = radgraph_stats(PREDS, REFS, str(staged), log=logged.append)
    assert list(stat.names) == ["radgraph_f1", "radgraph_f1_simple", "radgraph_f1_complete"] == metric_names()
    assert "radgraph: 6 cases" in logged[0]
    idx = np.arange(len(PREDS))
    point = np.asarray(stat.fn(idx))
    assert point.shape == (3,) and ((point >= 0) & (point <= 1)).all()
    np.testing.assert_allclose(stat.fn(np.array([0, 0])), stat.fn(np.array([0])))
    assert np.isnan(stat.fn(np.array([], dtype=np.int64))).all()
    for value, low, high in estimate(stat, idx, 50, generator(0, "report", "all", "all", stat.names[0])):
        assert low <= value <= high or np.isclose(low, high)
    assert metric_names("radgraph-xl")[0] == "radgraph_xl_f1"


def _damaged(staged, tmp_path, damage):
    copy = tmp_path / "stage"
    shutil.copytree(staged, copy)
    damage(copy)
    return copy


def _drop_key(root):
    path = root / "radgraph" / "config.json"
    cfg = json.loads(path.read_text())
    del cfg["model"]["modules"]
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "radgraph" / "weights.th").unlink(), "weights.th is missing"),
        (
            lambda r: (r / "radgraph" / "vocabulary" / "radgraph__ner_labels.txt").unlink(),
            "radgraph__ner_labels",
        ),
        (lambda r: (r / "radgraph" / "config.json").write_text("{"), "not readable JSON"),
        (_drop_key, "no key model.modules"),
        (lambda r: shutil.rmtree(r / "microsoft"), "BiomedNLP-PubMedBERT.*not staged"),
        (lambda r: [(r / PUBMEDBERT / f).unlink() for f in ("vocab.txt", "tokenizer.json")], "no vocab.txt"),
        (lambda r: (r / PUBMEDBERT / "config.json").unlink(), "has no config.json"),
        (lambda r: (r / "radgraph").rename(r / "radgraph-xl"), r"no radgraph/ folder \(found radgraph-xl/\)"),
    ],
)
def test_incomplete_folder_is_a_user_error(staged, tmp_path, damage, message):
    root = _damaged(staged, tmp_path, damage)
    with pytest.raises(UserError, match=message):
        check_folder(str(root))


def test_bad_folder_names(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        check_folder(str(tmp_path / "absent"))
    with pytest.raises(UserError, match="model_type"):
        check_folder(str(tmp_path), model_type="echograph")
    with pytest.raises(UserError, match="weights.th is missing"):  # the scorer checks before loading
        (tmp_path / "radgraph" / "vocabulary").mkdir(parents=True)
        (tmp_path / "radgraph" / "config.json").write_text("{}")
        RadGraphF1(tmp_path)


@pytest.mark.skipif(not os.environ.get("CXR_RADGRAPH_DIR"), reason="CXR_RADGRAPH_DIR: real staged weights")
def test_real_weights_give_the_packages_published_numbers():
    """With the real RadGraph staged, the example of the package's own tests (tests/radgraph_test.py)."""
    refs = [
        "no acute cardiopulmonary abnormality",
        "et tube terminates 2 cm above the carina retraction by several centimeters is recommended for more "
        "optimal placement bibasilar consolidations better assessed on concurrent chest ct",
        "there is no significant change since the previous exam the feeding tube and nasogastric tube have "
        "been removed",
        "unchanged mild pulmonary edema no radiographic evidence pneumonia",
        "no evidence of acute pulmonary process moderately large size hiatal hernia",
        "no acute intrathoracic process",
    ]
    hyps = [
        "no acute cardiopulmonary abnormality",
        "endotracheal tube terminates 2 5 cm above the carina bibasilar opacities likely represent "
        "atelectasis or aspiration",
        "there is no significant change since the previous exam",
        "unchanged mild pulmonary edema and moderate cardiomegaly",
        "no evidence of acute cardiopulmonary process moderate hiatal hernia",
        "no acute cardiopulmonary process",
    ]
    values = RadGraphF1(os.environ["CXR_RADGRAPH_DIR"]).scores(hyps, refs)
    published = {  # simple, partial, complete per case, as the package's test asserts them
        "simple": [1.0, 0.4, 0.5714285714285715, 0.8, 0.5714285714285715, 0.4],
        "partial": [1.0, 0.26666666666666666, 0.5714285714285715, 0.4, 0.42857142857142855, 0.4],
        "complete": [1.0, 0.23529411764705885, 0.5714285714285715, 0.4, 0.4, 0.4],
    }
    for j, level in enumerate(LEVELS):
        np.testing.assert_allclose(values[:, j], published[level], atol=1e-9)


def test_cxr_eval_reports_radgraph_f1_when_weights_are_staged(staged, tmp_path, no_network):
    import pandas as pd

    from analysis.eval import evaluate
    from tests.analysis.test_eval_run import cfg_for, make_inputs

    scores, data, _ = make_inputs(tmp_path)
    out = evaluate(cfg_for(scores, data, tmp_path / "out", f"radgraph_dir={staged}"), log=lambda s: None)
    table = pd.read_parquet(out / "metrics.parquet")
    rows = table[(table.task == "report") & (table.slice == "all")].set_index("metric")
    for name in metric_names("radgraph"):
        assert 0.0 <= rows.loc[name, "value"] <= 1.0 and rows.loc[name, "n"] == 6
    summary = json.loads((out / "summary.json").read_text())
    assert "radgraph_f1" not in summary["skipped"] and "radgraph_f1" in summary["headline"]["report"]
    with pytest.raises(UserError, match="no radgraph/ folder"):
        evaluate(cfg_for(scores, data, tmp_path / "o2", f"radgraph_dir={tmp_path}"), log=lambda s: None)
    assert not (tmp_path / "o2").exists()
