"""CheXbert F1 from a staged checkpoint in the published format (a tiny one trained here): labels as
the authors' code gives them, the F1 counted like the CheXpert-rule F1, wired into `cxr eval`, and a
bad staged folder is a one-line error before any work."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.eval import evaluate
from analysis.eval.bootstrap import estimate, generator
from analysis.eval.chexbert import CONDITIONS, CheXbert, check_folder
from analysis.eval.labels import chexbert_stats
from cxr.errors import UserError
from cxr.metrics.chexpert_rules import FINDINGS, NEGATIVE, POSITIVE, UNCERTAIN
from tests.analysis.chexbert_fixture import NEG, POS, SENTENCES, UNC, build_chexbert
from tests.analysis.test_eval_run import cfg_for, make_inputs

OURS = {POS: POSITIVE, NEG: NEGATIVE, UNC: UNCERTAIN}


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    return build_chexbert(tmp_path_factory.mktemp("chexbert") / "weights")


def test_labels_are_the_checkpoints_classes_mapped_as_the_authors_map_them(staged):
    assert sorted(CONDITIONS) == sorted(FINDINGS) and CONDITIONS[-1] == "No Finding"  # same 14, head order
    labeler = CheXbert(staged)
    got = labeler.label(list(SENTENCES))
    assert got == [{c: OURS[k] for c, k in want.items()} for want in SENTENCES.values()]
    # the authors' text cleaning: whitespace runs and newlines folded, ends stripped
    assert labeler.label(["  Large left\n  pleural   effusion. "]) == [{"Pleural Effusion": POSITIVE}]


def test_chexbert_f1_counts_uncertain_as_positive_like_the_rule_f1(staged):
    preds = ["Large left pleural effusion.", "Cardiomegaly.", "The lungs are clear."]
    refs = ["Possible pleural effusion.", "Heart size is normal.", "Small right pneumothorax."]
    # effusion TP (uncertain ref counts), cardiomegaly FP, No Finding FP, pneumothorax FN
    stats = {n: s for s in chexbert_stats(preds, refs, CheXbert(staged)) for n in s.names}
    values = {}
    for stat in {id(s): s for s in stats.values()}.values():
        for name, (v, _, _) in zip(stat.names, estimate(stat, np.arange(3), 0, generator(0)), strict=True):
            values[name] = v
    assert values["chexbert_f1_micro_14"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 1))
    assert values["chexbert_f1_macro_14"] == pytest.approx((1 + 0 + 0 + 0) / 4)
    assert values["chexbert_f1_micro_5"] == pytest.approx(2 / (2 + 1))  # effusion TP, cardiomegaly FP
    assert values["chexbert.f1.Pleural Effusion"] == 1.0 and values["chexbert.f1.Pneumothorax"] == 0.0
    assert np.isnan(values["chexbert.f1.Edema"])


def test_cxr_eval_reports_chexbert_f1_when_weights_are_staged(staged, tmp_path):
    scores, data, _ = make_inputs(tmp_path)
    out = evaluate(cfg_for(scores, data, tmp_path / "out", f"chexbert_dir={staged}"), log=lambda s: None)
    table = pd.read_parquet(out / "metrics.parquet")
    rows = table[(table.task == "report") & (table.slice == "all")].set_index("metric")
    for name in ("chexbert_f1_micro_14", "chexbert_f1_macro_14", "chexbert_f1_micro_5"):
        assert 0.0 <= rows.loc[name, "value"] <= 1.0 and rows.loc[name, "n"] == 6
    summary = json.loads((out / "summary.json").read_text())
    assert "chexbert_f1" not in summary["skipped"] and "radgraph_f1" in summary["skipped"]
    assert "chexbert_f1_micro_14" in summary["headline"]["report"]


def test_a_bad_staged_folder_fails_before_any_work(staged, tmp_path):
    scores, data, _ = make_inputs(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        check_folder(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="chexbert.pth"):
        evaluate(cfg_for(scores, data, tmp_path / "o1", f"chexbert_dir={empty}"), log=lambda s: None)
    no_vocab = tmp_path / "no-vocab"
    no_vocab.mkdir()
    (no_vocab / "chexbert.pth").write_bytes((staged / "chexbert.pth").read_bytes())
    with pytest.raises(UserError, match="config.json \\+ vocab.txt"):
        evaluate(cfg_for(scores, data, tmp_path / "o2", f"chexbert_dir={no_vocab}"), log=lambda s: None)
    garbage = tmp_path / "garbage"
    (garbage / "bert-base-uncased").mkdir(parents=True)
    for f in ("config.json", "vocab.txt"):
        (garbage / "bert-base-uncased" / f).write_bytes((staged / "bert-base-uncased" / f).read_bytes())
    (garbage / "chexbert.pth").write_text("not a checkpoint")
    with pytest.raises(UserError, match="cannot be read as a torch checkpoint"):
        CheXbert(garbage)
    state = torch.load(staged / "chexbert.pth", weights_only=True)["model_state_dict"]
    torch.save(
        {"model_state_dict": {k: v for k, v in state.items() if "linear_heads.13" not in k}},
        garbage / "chexbert.pth",
    )
    with pytest.raises(UserError, match="linear heads .*expected 0..13"):
        CheXbert(garbage)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
