"""Answers in words on synthetic result sets whose truth is known: the claim follows the
interval (a real effect, no effect, one seed), the mechanism follows the direction the numbers
show and is hedged when they are untested, a one-seed section says so once with the command
for more seeds, and every recipe of the four sheets gets an answer per sub-question."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_executor import InlineExecutor
from test_stats_findings import BASE, EFFECT, group, paired_ci, pct_ci, shifted

from cnnlab.experiments import recipe as ex
from cnnlab.experiments.report import answers, findings
from cnnlab.experiments.report.stats import Findings
from cnnlab.experiments.report.wording import because, contrast, paragraph
from cnnlab.experiments.run import run_recipe

WHY = {"higher": "Because up.", "lower": "Because down.", "same": "Because flat."}
TWO, DIRECT = "two digits, then add (5.2)", "sum directly (5.1)"


def test_a_real_effect_is_stated_with_its_interval() -> None:
    up = shifted(BASE, EFFECT)
    c = contrast("test_acc", group("a", up), group("b", BASE))
    assert c.direction == "higher"
    assert c.text == (f"a reached a higher test acc than b: {pct_ci(up)} vs {pct_ci(BASE)}, "
                      f"+0.50 percentage points ({paired_ci(up, BASE)}, paired by seed, "
                      f"3 seeds)")
    assert because(c, WHY) == "Because up."


def test_no_effect_is_not_distinguishable_and_says_why() -> None:
    same = shifted(BASE, [0.002, -0.003, 0.0015])
    c = contrast("test_acc", group("a", same), group("b", BASE))
    assert c.direction == "same"
    assert c.text.startswith("a and b are not distinguishable at this budget by test acc: ")
    assert c.text.endswith("paired by seed, 3 seeds, which contains 0)")
    assert because(c, WHY) == "Because flat."


@pytest.mark.parametrize("a, b, observed", [(0.097, 0.825, "lower"), (0.99, 0.98, "higher")])
def test_one_seed_states_the_numbers_and_hedges_the_mechanism(a: float, b: float,
                                                              observed: str) -> None:
    c = contrast("test_acc", group("a", [a]), group("b", [b]))
    assert c.direction == "untested" and c.observed == observed
    gap = f"{100 * (a - b):+.2f}"
    assert c.text == (f"a reached test acc {100 * a:.2f}% and b {100 * b:.2f}%, {gap} "
                      f"percentage points (one seed each, no interval)")
    assert "distinguishable" not in c.text
    assert because(c, WHY) == ("If more seeds confirm the gap, the reason is this: because "
                               f"{'down' if observed == 'lower' else 'up'}.")


def test_paragraph_capitalizes_and_ends_sentences() -> None:
    assert paragraph("a b", "", "c.", "d?") == "A b. C. D?"


def _q5(two: list[float], direct: list[float]) -> list[tuple[str, str]]:
    f = Findings(groups=[group(DIRECT, direct), group(TWO, two)])
    return answers.answer({"recipe": {"name": "huji_q5"}}, f)


def test_huji_5_3_names_the_better_strategy_and_why() -> None:
    two = shifted(BASE, [0.010, 0.011, 0.009])
    [(q, text)] = _q5(two, BASE)
    assert q == "5.3"
    assert text.startswith(f"Two digits, then add (5.2) reached a higher test acc than sum "
                           f"directly (5.1): {pct_ci(two)} vs {pct_ci(BASE)}, +1.00 "
                           f"percentage points")
    assert "The two-digit network learns 10 digit classes" in text
    assert "If more seeds" not in text


def test_huji_5_3_inside_the_noise_claims_no_winner() -> None:
    [(_, text)] = _q5(shifted(BASE, [0.002, -0.003, 0.0015]), BASE)
    assert "are not distinguishable at this budget by test acc" in text
    assert "did not show" in text and "higher test acc" not in text


def test_eth_bn_answers_both_questions() -> None:
    plain, bn = BASE, shifted(BASE, [0.010, 0.011, 0.009])
    bn_drop = shifted(bn, [0.002, -0.003, 0.0015])
    f = Findings(groups=[group("BN False, keep 1.0", plain), group("BN True, keep 1.0", bn),
                         group("BN True, keep 0.5", bn_drop)])
    got = dict(answers.answer({"recipe": {"name": "eth_bn"}}, f))
    assert got["Does batch normalization help?"].startswith(
        "BN True, keep 1.0 reached a higher test acc than BN False, keep 1.0")
    assert "zero mean and unit variance" in got["Does batch normalization help?"]
    drop = got["Is dropout still useful?"]
    assert "not distinguishable at this budget" in drop and "adds no measurable benefit" in drop


def test_a_missing_group_leaves_the_question_out() -> None:
    assert answers.answer(
        {"recipe": {"name": "huji_q5"}}, Findings(groups=[group(DIRECT, BASE)])) == []
    assert answers.answer({"recipe": {"name": "no-such"}}, Findings()) == []


def test_huji_2_1_lists_the_non_linear_layers() -> None:
    text = dict(answers.answer({"recipe": {"name": "huji_q2"}}, Findings()))["2.1"]
    assert "relu1, relu2, relu3 (ReLU, max(0, x)) and maxpool1, maxpool2" in text
    assert "conv1, conv2, fc1, fc2 are affine" in text
    assert "`conv5x5x32 avgpool2 conv5x5x64 avgpool2 fc1024 fc10`" in text


@pytest.mark.parametrize("name", ex.recipe_names())
def test_every_recipe_answers_its_sub_questions(name: str) -> None:
    """Each built-in recipe, its groups given synthetic 3-seed results (the first group best
    by a clear margin): at least one answer paragraph, each with a number and a period."""
    recipe = ex.load_recipe(name)
    labels = list(dict.fromkeys(j.group for j in ex.expand(recipe)))
    labels += [s["label"] + " winner" for s in recipe.searches]
    gs = []
    for i, label in enumerate(labels):
        g = group(label, shifted(BASE, [-0.01 * i] * 3))
        for r in g.runs:
            r.update(step_ms=10.0 + i, train_loss=0.1 + 0.01 * i, ratio=0.99 - 0.01 * i,
                     param_count=1000 * (i + 1), regularizer=50.0 - i, peak_rss_mib=100.0,
                     data_mib=10.0 * (i + 1))
        gs.append(g)
    f = Findings(groups=gs, params=[{"label": "shallow winner", "total": 1234, "spec": "s"},
                                    {"label": "deep winner", "total": 2345, "spec": "d"},
                                    {"label": "baseline", "total": 1111946, "spec": "b"}])
    got = answers.answer({"recipe": {"name": name}, "searches": recipe.searches}, f)
    assert got, name
    for q, text in got:
        assert q and text.endswith(".") and any(ch.isdigit() for ch in text), (q, text)
        assert "one seed" not in text  # three seeds each


def test_a_one_seed_section_says_so_once_with_the_command(tmp_path: Path) -> None:
    (tmp_path / "huji_q5.toml").write_text('title = "t"\nsheet = "s"\nquestion = "5"\n'
                                           'seeds = 1\n[base]\niterations = 100\n'
                                           'eval_every = 50\n[[variants]]\n'
                                           f'label = "{DIRECT}"\n[[variants]]\n'
                                           f'label = "{TWO}"\nkeep_prob = 0.5\n'
                                           '[findings]\nkind = "compare"\n'
                                           f'baseline = "{DIRECT}"\nspeed = []\n')
    path = run_recipe(ex.load_recipe(tmp_path / "huji_q5.toml"), InlineExecutor(),
                      tmp_path / "runs")
    doc = json.loads(path.read_text())
    doc["_path"] = str(path)
    f = findings.analyze(doc)
    assert f.sentences[0] == (
        "One seed per configuration: no number here has a confidence interval and no "
        "difference is tested, so none is called significant or not; `cnnlab experiment run "
        "huji_q5 --seeds 3` measures them.")
    everything = " ".join(f.sentences + [t for _, t in f.answers])
    assert "one seed each" not in everything and "not distinguishable" not in everything
    [(q, text)] = f.answers
    # the fake trainer: keep 0.5 adds 1 point, so the two-digit run is higher on its one seed
    assert q == "5.3" and text.startswith("Two digits, then add (5.2) reached test acc ")
    assert "+1.00 percentage points. If more seeds confirm the gap, the reason is this: " \
        in text


def test_ttic_3a_3b_from_the_stored_measurement() -> None:
    macs = [{"width": 256, "bottleneck": nb, "formula_bottleneck": 2 * 256 * nb * 7,
             "analyzer_bottleneck": 2 * 256 * nb * 7, "hook_bottleneck": 2 * 256 * nb * 7,
             "cheaper": nb < 128} for nb in (64, 128, 192)]
    init = [{"gamma": 2 ** -0.5, "branch": "synthetic", "var": [1.0, 0.998, 1.004]},
            {"gamma": 1.0, "branch": "synthetic", "var": [1.0, 2.01, 3.98]},
            {"gamma": 2 ** -0.5, "branch": "relu", "var": [1.0, 0.7, 0.5]}]
    doc = {"recipe": {"name": "ttic_bottleneck"},
           "measure": {"result": {"macs": macs, "init": init}}}
    got = dict(answers.answer(doc, Findings()))
    assert "2·N·N_bottle·(L - 1), against N²·(L - 1)" in got["3(a)"]
    assert "agree with the formula for N = 256, N_bottle = 64, 128, 192, and the bottleneck " \
        "is cheaper exactly when N_bottle < N/2 = 128" in got["3(a)"]
    assert "Var L_3 = 1.004, against 3.98 with gamma = 1, where the variances" in got["3(b)"]
    init[0]["var"][-1] = None  # a NaN stored as null: no number made up
    assert "3(b)" not in dict(answers.answer(doc, Findings()))


def test_huji_3_3_without_a_winner_says_so() -> None:
    doc = {"recipe": {"name": "huji_q3"}, "searches": [{"label": "shallow", "target": 0.95}]}
    f = Findings(groups=[group("shallow winner", BASE)])
    got = dict(answers.answer(doc, f))
    assert got["3.3"].startswith("No deep network reached 95% in this run's search")
