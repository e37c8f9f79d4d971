"""Plot helpers on small synthetic tables: which rows they draw and the numbers they draw."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import plots


def metrics(names: list[str]) -> pd.DataFrame:
    v = np.linspace(0.1, 0.9, len(names))
    return pd.DataFrame(
        {"metric": names, "task": "report", "slice": "all", "slice_value": "all", "value": v}
    ).assign(ci_low=lambda d: d["value"] - 0.05, ci_high=lambda d: d["value"] + 0.05, n=10)


def test_per_finding_f1_rows_are_told_from_aggregates_whatever_the_separator():
    names = [
        "bleu_4",
        "chexpert_rule.f1.micro",
        "chexpert_rule.f1.5.macro",
        "chexpert_rule.f1_14",
        "chexpert_rule.f1.Edema",
        "chexpert_rule/f1/Pleural Effusion",
        "chexbert_f1.Cardiomegaly",
        "radgraph_f1",
        "chexpert_rule_f1_micro_14",  # the names `cxr eval` writes today
        "chexpert_rule_f1_macro_5",
        "finding_list_f1_micro",
        "chexpert_rule_f1_Lung Opacity",
    ]
    agg, per = plots.split_findings(metrics(names))
    assert per[["family", "finding"]].values.tolist() == [
        ["chexpert_rule", "Edema"],
        ["chexpert_rule", "Pleural Effusion"],
        ["chexbert", "Cardiomegaly"],
        ["chexpert_rule", "Lung Opacity"],
    ]
    assert agg["metric"].tolist() == ["bleu_4", "chexpert_rule.f1.micro", "chexpert_rule.f1.5.macro",
                                      "chexpert_rule.f1_14", "radgraph_f1", "chexpert_rule_f1_micro_14",
                                      "chexpert_rule_f1_macro_5", "finding_list_f1_micro"]  # fmt: skip
    assert plots.per_finding_f1(metrics(["bleu_4", "radgraph_f1"])) is None
    fig = plots.per_finding_f1(metrics(names))
    assert [a.get_title() for a in fig.axes] == ["chexpert_rule per finding", "chexbert per finding"]


def test_sweep_comparison_draws_the_mean_over_seeds_per_value_and_a_line_per_second_key():
    rows = [
        {
            "run_id": f"{lr}-{bs}-{seed}",
            "state": "completed",
            "cfg.lr": lr,
            "cfg.bs": bs,
            "cfg.seed": seed,
            "final.loss": lr * 10 + bs + seed,
        }  # fmt: skip
        for lr in (0.01, 0.1)
        for bs in (1, 2)
        for seed in (0, 1, 2)
    ]
    rows.append({**rows[0], "run_id": "x", "state": "failed", "final.loss": 1e6})  # failed runs are left out
    fig = plots.sweep_comparison(pd.DataFrame(rows))
    ax = fig.axes[0]
    lines = {label: line for line, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    assert set(lines) == {"bs=1", "bs=2", "runs"}
    xs, ys = lines["bs=2"].lines[0].get_data()
    assert list(xs) == [0.01, 0.1] and np.allclose(ys, [0.1 + 2 + 1, 1 + 2 + 1])  # seeds 0,1,2 average to 1
    assert plots.sweep_comparison(pd.DataFrame(rows).assign(**{"cfg.lr": 0.1, "cfg.bs": 1})) is None
