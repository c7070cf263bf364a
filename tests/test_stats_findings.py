"""Findings wording on synthetic result sets whose truth is known: a real effect (paired and
unpaired), no effect, one seed; sweeps that may or may not name a best value. Expected numbers
come from scipy.stats (the oracle) or by hand where noted."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from test_executor import InlineExecutor

from cnnlab.experiments import recipe as ex
from cnnlab.experiments.report import findings
from cnnlab.experiments.report.stats import Group, fmt, quote, table
from cnnlab.experiments.run import run_recipe

scipy_stats = pytest.importorskip("scipy.stats")

ORDER = ("mnist", 50, None, 0)  # (dataset, batch_size, train_size, validation)
BASE = [0.9800, 0.9850, 0.9770]
EFFECT = [0.0050, 0.0046, 0.0054]  # a real +0.5 point effect, seed by seed


def group(label: str, accs: list[float], order: tuple | None = ORDER,
          seeds: list[int] | None = None, metric: str = "test_acc") -> Group:
    runs = [{"seed": s, "_order": order, metric: a, "iterations": 1000, "train_acc": a + 0.01,
             "_curves": {"test_acc": [(500, a - 0.01), (1000, a)],
                         "train_time": [(500, 5.0 + s), (1000, 10.0 + s)]}}
            for s, a in zip(seeds or range(len(accs)), accs, strict=True)]
    return Group(label, {}, runs)


def pct_ci(values: list[float]) -> str:
    """mean ± t-interval half-width, from scipy."""
    n = len(values)
    half = scipy_stats.t.ppf(0.975, n - 1) * scipy_stats.sem(values)
    return f"{100 * statistics.fmean(values):.2f} ± {100 * half:.2f}%"


def paired_ci(a: list[float], b: list[float]) -> str:
    ci = scipy_stats.ttest_rel(a, b).confidence_interval()
    return f"95% CI {100 * ci.low:+.2f} to {100 * ci.high:+.2f}"


def welch_ci(a: list[float], b: list[float]) -> str:
    ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    return f"95% CI {100 * ci.low:+.2f} to {100 * ci.high:+.2f}"


def shifted(values: list[float], by: list[float]) -> list[float]:
    return [v + d for v, d in zip(values, by, strict=True)]


# ------------------------------------------------------------------------ compare


def test_real_effect_paired_by_seed_is_named() -> None:
    drop = shifted(BASE, EFFECT)
    f = findings.compare([group("base", BASE), group("drop", drop)], {"baseline": "base"})
    # by hand: differences 0.50, 0.46, 0.54 points; sd 0.04; t(0.975, 2) = 4.3027 -> ±0.0994
    assert paired_ci(drop, BASE) == "95% CI +0.40 to +0.60"
    assert f.sentences == [
        f"drop reached test acc {pct_ci(drop)} (95% CI, 3 seeds) vs base {pct_ci(BASE)} "
        f"(95% CI, 3 seeds), a difference of +0.50 percentage points (95% CI +0.40 to +0.60, "
        f"paired by seed, 3 seeds): better by this measure."]


def test_the_same_effect_unpaired_is_not_distinguishable() -> None:
    # another batch size: another data order, so no pairing; the seed-to-seed spread
    # (0.8 points) hides the 0.5-point effect from Welch's interval
    drop = shifted(BASE, EFFECT)
    f = findings.compare([group("base", BASE), group("drop", drop, ("mnist", 100, None, 0))],
                         {"baseline": "base"})
    assert f.sentences == [
        f"drop reached test acc {pct_ci(drop)} (95% CI, 3 seeds) vs base {pct_ci(BASE)} "
        f"(95% CI, 3 seeds), a difference of +0.50 percentage points ({welch_ci(drop, BASE)}, "
        f"Welch, 3 and 3 seeds): not distinguishable at this budget."]


def test_no_effect_is_not_ranked() -> None:
    same = shifted(BASE, [0.002, -0.003, 0.0015])
    f = findings.compare([group("base", BASE), group("other", same)], {"baseline": "base"})
    d = 100 * (statistics.fmean(same) - statistics.fmean(BASE))
    assert f.sentences == [
        f"other reached test acc {pct_ci(same)} (95% CI, 3 seeds) vs base {pct_ci(BASE)} "
        f"(95% CI, 3 seeds), a difference of {d:+.2f} percentage points "
        f"({paired_ci(same, BASE)}, paired by seed, 3 seeds): not distinguishable at this "
        f"budget."]
    assert "better" not in f.sentences[0] and "worse" not in f.sentences[0]


def test_one_seed_says_so_and_ranks_nothing() -> None:
    f = findings.compare([group("base", [0.98]), group("drop", [0.985])], {"baseline": "base"})
    assert f.sentences == [
        "drop reached test acc 98.50% vs base 98.00%, a difference of +0.50 percentage points "
        "(one seed each, no interval)."]


def test_a_large_one_seed_gap_is_stated_not_called_indistinguishable() -> None:
    """The issue's example: 9.70% vs 82.50% on one seed is a -72.80 point gap between two
    single runs, not "not distinguishable at this budget"."""
    f = findings.compare([group("SGD, gamma 1.0, L=4", [0.825]),
                          group("SGD, gamma 1/sqrt2, L=24", [0.097])],
                         {"baseline": "SGD, gamma 1.0, L=4"})
    assert f.sentences == [
        "SGD, gamma 1/sqrt2, L=24 reached test acc 9.70% vs SGD, gamma 1.0, L=4 82.50%, a "
        "difference of -72.80 percentage points (one seed each, no interval)."]
    assert "distinguishable" not in f.sentences[0]


def test_one_seed_against_several_says_which_side() -> None:
    f = findings.compare([group("base", BASE), group("drop", [0.985])], {"baseline": "base"})
    d = 100 * (0.985 - statistics.fmean(BASE))
    assert f.sentences == [
        f"drop reached test acc 98.50% vs base {pct_ci(BASE)}, a difference of {d:+.2f} "
        f"percentage points (one seed on one side, no interval)."]


def test_speed_ratio_only_when_distinguishable() -> None:
    base, fast = group("base", BASE), group("fast", BASE)
    for g, ms in ((base, [10.0, 10.2, 9.9]), (fast, [5.0, 5.1, 5.05])):
        for r, v in zip(g.runs, ms, strict=True):
            r["step_ms"] = v
    f = findings.compare([base, fast], {"baseline": "base", "metric": "step_ms"})
    assert f.sentences[0].startswith("fast reached ms/step 5.050 ± 0.124 (95% CI, 3 seeds) vs "
                                     "base 10.0 ± 0.4 (95% CI, 3 seeds), a difference of -5.0 "
                                     "(95% CI -5.3 to -4.7, paired by seed, 3 seeds): better")
    assert f.sentences[1].endswith(": 1.99x faster.")
    for r, v in zip(fast.runs, [9.0, 11.5, 10.0], strict=True):
        r["step_ms"] = v
    f = findings.compare([base, fast], {"baseline": "base", "metric": "step_ms"})
    assert f.sentences[1].endswith(": not distinguishable at this budget.")
    assert "faster" not in f.sentences[1] and "slower" not in f.sentences[1]


def test_threshold_and_curves_carry_their_seeds() -> None:
    g = group("q1", BASE)
    f = findings.curves([g, group("single", [0.98])], {"threshold": 0.974, "every": 500})
    its = [1000.0, 500.0, 1000.0]  # seed 1 (97.5% at iteration 500) crosses 97.4% early
    half = scipy_stats.t.ppf(0.975, 2) * scipy_stats.sem(its)
    assert f.sentences[0] == (f"After 1,000 iterations q1 reached {pct_ci(BASE)} test and "
                              f"{pct_ci(shifted(BASE, [0.01] * 3))} train accuracy "
                              f"(95% CI, 3 seeds).")
    assert f.sentences[1].startswith(f"q1 first reached 97.4% test accuracy at iteration "
                                     f"{statistics.fmean(its):,.0f} ± {half:,.0f} after ")
    assert f.sentences[1].endswith("s of training (95% CI, 3 seeds).")
    assert f.sentences[2] == ("After 1,000 iterations single reached 98.00% test and 99.00% "
                              "train accuracy (one seed, no interval).")
    assert f.sentences[3] == ("single first reached 97.4% test accuracy at iteration 1,000 "
                              "after 10.0 s of training (one seed, no interval).")
    assert f.tables[0][0] == "q1: accuracy every 500 iterations (95% CI, 3 seeds)"
    assert f.tables[0][1]["rows"][-1][2] == pct_ci(BASE)


def test_a_threshold_reached_by_some_seeds() -> None:
    f = findings.curves([group("q", BASE)], {"threshold": 0.98})
    assert f.sentences[1].endswith("s of training (2 of 3 seeds reached it: 95% CI over those "
                                   "2).")
    f = findings.curves([group("q", BASE)], {"threshold": 0.985})
    assert f.sentences[1] == ("q first reached 98.5% test accuracy at iteration 1,000 after "
                              "11.0 s of training (1 of 3 seeds reached it: one seed, no "
                              "interval).")
    f = findings.curves([group("q", BASE)], {"threshold": 0.99})
    assert f.sentences[1] == ("q did not reach 99% test accuracy within 1,000 iterations "
                              "(on any of 3 seeds).")


# ------------------------------------------------------------------------ sweeps


def keep_sweep(tops: dict[str, list[float]], **kw) -> findings.Findings:
    gs = [group(label, accs, **kw) for label, accs in tops.items()]
    return findings.sweep(gs, {"kind": "sweep", "param": "keep probability",
                               "table": ["test_acc"]})


def test_sweep_names_a_best_value_it_can_tell_apart() -> None:
    top, mid, low = shifted(BASE, [0.010, 0.011, 0.009]), shifted(BASE, EFFECT), BASE
    f = keep_sweep({"keep 1.0": low, "keep 0.5": top, "keep 0.7": mid})
    assert f.sentences == [
        f"The best keep probability by test acc was keep 0.5: {pct_ci(top)} (95% CI, 3 seeds); "
        f"the runner-up keep 0.7 had {pct_ci(mid)} (95% CI, 3 seeds), a difference of "
        f"-0.50 percentage points ({paired_ci(mid, top)}, paired by seed, 3 seeds), and the "
        f"worst, keep 1.0, {pct_ci(low)} (95% CI, 3 seeds)."]


def test_sweep_inside_the_noise_names_no_best() -> None:
    top, tie, low = shifted(BASE, EFFECT), shifted(BASE, [0.006, 0.001, 0.005]), BASE
    f = keep_sweep({"keep 1.0": low, "keep 0.5": top, "keep 0.7": tie})
    dt = 100 * (statistics.fmean(tie) - statistics.fmean(top))
    assert f.sentences == [
        f"No keep probability is distinguishably best by test acc at this budget: keep 0.5 "
        f"had the highest mean, {pct_ci(top)} (95% CI, 3 seeds); not distinguishable from it: "
        f"keep 0.7 at {pct_ci(tie)}, a difference of {dt:+.2f} percentage points "
        f"({paired_ci(tie, top)}, paired by seed, 3 seeds). Distinguishably worse than "
        f"keep 0.5: keep 1.0 at {pct_ci(low)}, a difference of -0.50 percentage points "
        f"(95% CI -0.60 to -0.40, paired by seed, 3 seeds)."]
    assert "best keep probability" not in f.sentences[0]


def test_sweep_needs_the_best_apart_from_every_value_not_just_the_runner_up() -> None:
    # runner-up clearly below; a noisy third value overlaps the top one
    top, runner = shifted(BASE, [0.010, 0.011, 0.009]), shifted(BASE, EFFECT)
    noisy = shifted(BASE, [-0.02, 0.03, -0.02])
    gs = [group("a", top), group("b", runner), group("c", noisy, ("mnist", 100, None, 0))]
    f = findings.sweep(gs, {"param": "value"})
    assert f.sentences[0].startswith("No value is distinguishably best by test acc at this "
                                     "budget: a had the highest mean")
    assert "not distinguishable from it: c at " in f.sentences[0]
    assert "Welch, 3 and 3 seeds" in f.sentences[0]
    assert "Distinguishably worse than a: b at " in f.sentences[0]


def test_sweep_with_one_seed_names_no_best() -> None:
    f = keep_sweep({"keep 1.0": [0.98], "keep 0.5": [0.985]})
    assert f.sentences == [
        "By test acc, highest first: keep 0.5 98.50%, keep 1.0 98.00% (one seed each, no "
        "interval: an order of single runs, not a ranking)."]
    assert "best" not in f.sentences[0]


def test_lower_is_better_sweeps_speak_of_the_lowest_mean() -> None:
    gs = [group(k, v, metric="test_loss") for k, v in
          (("lr 0.1", [0.30, 0.32, 0.31]), ("lr 0.01", [0.305, 0.30, 0.33]))]
    f = findings.sweep(gs, {"param": "lr", "metric": "test_loss"})
    assert f.sentences[0].startswith("No lr is distinguishably best by test loss at this "
                                     "budget: lr 0.1 had the lowest mean, 0.310 ± 0.025 (95% "
                                     "CI, 3 seeds)")


def test_diverged_seeds_are_counted() -> None:
    gs = [group("lr 0.1", BASE), group("lr 1.0", [float("nan")] * 3),
          group("lr 0.5", [0.97, float("nan"), 0.96])]
    f = findings.sweep(gs, {"param": "lr"})
    assert f.sentences[0] == ("Diverged (loss became NaN): lr 1.0 (all 3 of 3 seeds), "
                              "lr 0.5 (1 of 3 seeds).")
    # seed 1 of lr 0.5 is gone: the seed sets differ, so no pairs
    assert f"({welch_ci([0.97, 0.96], BASE)}, Welch, 2 and 3 seeds)" in f.sentences[1]


# ------------------------------------------------------------------------ tables, numbers


def test_tables_show_mean_ci_and_seeds() -> None:
    tbl = table([group("base", BASE), group("single", [0.98])], ["test_acc", "iterations"])
    assert tbl["header"] == ["configuration", "seeds", "test acc", "iterations"]
    assert tbl["rows"] == [["base", "3", pct_ci(BASE), "1,000"],
                           ["single", "1", "98.00%", "1,000"]]
    assert quote("test_acc", group("x", [0.98]).stat("test_acc")) == (
        "98.00% (one seed, no interval)")
    assert fmt("test_acc", group("x", []).stat("test_acc")) == "n/a"


# ------------------------------------------------------------------------ from run folders

HEAD = 'title = "t"\nsheet = "s"\nquestion = "1"\nseeds = 3\n'


def test_pairing_follows_the_saved_configs(tmp_path: Path) -> None:
    """Fake trainer (tests/test_executor.py): accuracy 0.90 + 0.02 (1 - keep) + 0.001 seed,
    independent of batch size; same batch size pairs, another one does not."""
    (tmp_path / "r.toml").write_text(HEAD + """
[base]
iterations = 100
eval_every = 50
[[variants]]
label = "plain"
[[variants]]
label = "dropout"
keep_prob = 0.5
[[variants]]
label = "big batch"
batch_size = 100
[findings]
kind = "compare"
baseline = "plain"
speed = []
""")
    path = run_recipe(ex.load_recipe(tmp_path / "r.toml"), InlineExecutor(), tmp_path / "runs")
    doc = json.loads(path.read_text())
    doc["_path"] = str(path)
    f = findings.analyze(doc)
    assert f.sentences[0].endswith("a difference of +1.00 percentage points (95% CI +1.00 to "
                                   "+1.00, paired by seed, 3 seeds): better by this measure.")
    assert f.sentences[1].endswith("a difference of +0.00 percentage points (95% CI -0.23 to "
                                   "+0.23, Welch, 3 and 3 seeds): not distinguishable at this "
                                   "budget.")


# ------------------------------------------------------------------------ batched groups


def batched(g: Group, clock: tuple | None, ms: list[float]) -> Group:
    """``g``'s runs trained as one batched group ``clock`` (the executor splits the group's
    time evenly, so every run gets the same ``step_ms``)."""
    for r, v in zip(g.runs, ms, strict=True):
        r["step_ms"], r["_batch"] = v, clock
    return g


def test_a_batched_groups_time_is_one_measurement_not_three_seeds() -> None:
    base = batched(group("base", BASE), ("b0", "b1", "b2"), [10.0] * 3)
    deep = batched(group("deep", BASE), ("d0", "d1", "d2"), [5.0] * 3)
    f = findings.compare([base, deep], {"baseline": "base"})
    one = "one measurement: 3 runs trained as one batched group, no interval"
    assert f.sentences[1] == (f"ms/step: deep 5.000 ({one}) vs base 10.0 ({one}), a "
                              "difference of -5.0 (one measurement, no interval): 2.00x faster "
                              "by the means, not a tested difference (one measurement).")
    assert "± 0.0" not in f.sentences[1]
    assert base.stat("step_ms").n == 1 and base.stat("step_ms").merged == 2
    # accuracies are per run even in a batched group: three seeds, paired
    assert base.stat("test_acc").n == 3
    assert table([base], ["step_ms"])["rows"] == [["base", "3", "10.0 (1 shared clock)"]]


def test_configurations_trained_in_one_batched_group_share_a_clock() -> None:
    clock = ("a0", "a1", "a2", "b0", "b1", "b2")
    a = batched(group("a", BASE), clock, [7.0] * 3)
    b = batched(group("b", shifted(BASE, EFFECT)), clock, [7.0] * 3)
    f = findings.compare([a, b], {"baseline": "a"})
    assert f.sentences[0].endswith("better by this measure.")  # accuracy: measured per run
    assert f.sentences[1].endswith("a difference of +0.000 (trained in one batched group: one "
                                   "shared clock, no interval): not a measured difference.")
    f = findings.sweep([a, b], {"param": "value", "metric": "step_ms"})
    assert f.sentences[0].startswith("No value is distinguishably best by ms/step at this "
                                     "budget")


def test_two_batched_groups_give_an_interval_over_two_measurements() -> None:
    g = group("g", BASE + [0.98])
    for r, (clock, v) in zip(g.runs, [("x", 8.0), ("x", 8.0), ("y", 9.0), ("y", 9.0)],
                             strict=True):
        r["step_ms"], r["_batch"] = v, clock
    st = g.stat("step_ms")
    assert (st.values, st.merged) == ([8.0, 9.0], 2)
    half = scipy_stats.t.ppf(0.975, 1) * scipy_stats.sem([8.0, 9.0])
    assert fmt("step_ms", st) == f"8.500 ± {half:.3f}"
    assert quote("step_ms", st).endswith("(95% CI, 2 measurements: 4 runs trained in batched "
                                         "groups)")


def test_runs_trained_alone_keep_one_time_each() -> None:
    g = batched(group("g", BASE), None, [10.0, 10.0, 10.0])
    assert g.stat("step_ms").n == 3 and g.stat("step_ms").merged == 0
