"""Regimes of `mrt-engine compare` (issue 25 items 3-4): the registry, the mechanism metrics, the
preregistered verdict (docs/prereg/doubt_bisect.md), the warm-start gates, and --quick of each
regime end to end."""
import json
import math
import random

import pytest

from mrt_engine.experiments.compare.rule import regime_verdict, secondary_differences, secondary_lines
from mrt_engine.experiments.gates import (
    Gate,
    TraceJ,
    bisect_profile,
    disjoint_gate,
    doubt_profile,
    empty_prefix_gate,
    episodes_gate,
    forced_j,
    largest_fall,
    largest_rise,
    j_by_cut,
    median_rises,
    pass_gate,
    reliability_gate,
)
from mrt_engine.experiments.regimes import REGIMES, VERDICTS, MechanismMetric, get_regime

pytestmark = pytest.mark.usefixtures("one_thread")

DOUBT, BISECT, DIGIT = REGIMES["doubt"], REGIMES["bisect"], REGIMES["digit"]


# -- the registry ---------------------------------------------------------------------------------
def test_regimes_name_their_preset_rule_and_arms():
    from mrt_engine.experiments.compare.arms import ARMS, DEFAULT_ARMS
    from mrt_engine.experiments.compare.run import QUICK_EVAL, EvalSpec, regime_eval_spec

    # digit is today's comparison: its arms, seeds, folder and measurement
    assert DIGIT.arms == DEFAULT_ARMS and (DIGIT.seeds, DIGIT.first_seed, DIGIT.output) == (3, 0, "runs/compare")
    assert DIGIT.preset == "compare" and DIGIT.mechanism is None
    assert regime_eval_spec(DIGIT, {}, quick=False) == EvalSpec() and regime_eval_spec(DIGIT, {}, quick=True) == QUICK_EVAL
    # doubt and bisect: the prereg's primary arm, controls, seeds 100-109, margin, 16 samples per problem
    for regime, preset in ((DOUBT, "compare_doubt"), (BISECT, "compare_bisect")):
        assert regime.preset == preset and regime.task == regime.name and regime.output == f"runs/compare_{regime.name}"
        assert regime.arms == ("mrt_dense_centred", "grpo", "placebo", "placebo_within")
        assert set(regime.arms) | set(regime.secondary) <= set(ARMS)
        assert (regime.seeds, regime.first_seed, regime.margin) == (10, 100, 0.02)
        assert regime.placebos == ("placebo", "placebo_within") and regime.j_profile is not None
        spec = regime_eval_spec(regime, {"rollout": {"max_tokens": 300}}, quick=False)
        # regret at the rollout budget (the largest) is what a rule reads; budget forcing is skipped
        assert spec.num_samples == 16 and spec.num_branches == 8 and spec.budgets == [75, 150, 300]
        assert spec.forcing_budget is None
    assert DOUBT.mechanism.name == "unrecovered doubt rate" and [m.name for m in DOUBT.metrics][1] == "doubt rate"
    assert BISECT.mechanism.denominator == "episodes"
    with pytest.raises(ValueError, match="unknown regime 'digits'"):
        get_regime("digits")


def test_mechanism_metric_is_a_mean_over_traces_or_a_ratio_of_sums():
    record = {"num_traces": 4, "sums": {"doubt": 2.0, "unrecovered_doubt": 1.0, "episodes": 10.0, "redundant": 3.0}}
    assert DOUBT.mechanism.value(record) == 0.25  # 1 of 4 traces
    assert BISECT.mechanism.value(record) == pytest.approx(0.3)  # 3 of 10 episodes
    assert math.isnan(BISECT.mechanism.value({"num_traces": 0, "sums": {"episodes": 0.0, "redundant": 0.0}}))
    with pytest.raises(ValueError, match="not 'redundant'"):
        BISECT.mechanism.value({"num_traces": 1, "sums": {"episodes": 1.0}})
    with pytest.raises(ValueError, match="mechanism record"):
        DOUBT.mechanism.value(None)  # an evaluation without the task's hook


def test_mechanism_sums_over_completions_of_a_stub_task():
    from mrt_engine.experiments.compare.evaluate import mechanism_sums
    from mrt_engine.rl.rollout import Sample
    from mrt_engine.tasks import Problem, Task

    def counts(problem, completion):
        return {"doubt": float("Wait, maybe" in completion), "unrecovered_doubt": float(completion.endswith("{3}."))}

    stub = Task("stub_doubt", "stub", generate=None, trace=None, max_mistakes=lambda p: 0, verifier=None,
                mechanism=counts)
    p = Problem("p0", "x?", "5", "stub_doubt")
    texts = ["Yes, x = 5.\n\nWait, maybe not.\n\n\\boxed{3}.", "Yes, x = 5. \\boxed{5}.", "Wait, maybe \\boxed{5}."]
    samples = [Sample(p, 0, [1], [2], t) for t in texts]
    assert mechanism_sums(stub, samples) == {"num_traces": 3, "sums": {"doubt": 2.0, "unrecovered_doubt": 1.0}}
    bad = Task("stub_bad", "stub", None, None, lambda p: 0, None, mechanism=lambda p, c: {"doubt": "yes"})
    with pytest.raises(ValueError, match="dict of finite numbers"):
        mechanism_sums(bad, samples)
    shifty = Task("stub_shifty", "stub", None, None, lambda p: 0, None,
                  mechanism=lambda p, c: {"doubt": 1.0} if "Wait" in c else {"other": 0.0})
    with pytest.raises(ValueError, match="same keys"):
        mechanism_sums(shifty, samples)


def test_evaluate_policy_sums_the_mechanism_of_the_trainers_task(tmp_path):
    import dataclasses

    from mrt_engine.config import TrainConfig
    from mrt_engine.experiments.compare.evaluate import evaluate_policy, mechanism_sums, sample_and_estimate
    from mrt_engine.tasks import TASKS, get_task, register
    from mrt_engine.trainer import Trainer

    def counts(problem, completion):  # a stand-in hook: any per-trace counts (a random model writes bytes)
        return {"chars": float(len(completion)), "waits": float(completion.count("Wait"))}

    register(dataclasses.replace(get_task("digit"), name="stub_regime", mechanism=counts))
    try:
        def trainer(task):
            return Trainer(TrainConfig.from_dict({
                "model": {"name": "demo-init"}, "data": {"task": task, "num_train": 4, "num_eval": 3, "seed": 1},
                "rollout": {"group_size": 2, "max_tokens": 40}, "algo": {"progress": {"max_answer_tokens": 2}},
                "output_dir": str(tmp_path / task), "tensorboard": False, "progress_bar": False, "num_threads": 1}))

        t = trainer("stub_regime")
        kw = dict(num_samples=2, seed=5, num_branches=2)
        out = evaluate_policy(t, t.eval_problems, budgets=[20, 40], forcing_budget=None, **kw)
        samples, _ = sample_and_estimate(t, t.eval_problems, **kw)  # the same draws: seeded alike
        assert out["mechanism"] == mechanism_sums(get_task("stub_regime"), samples)
        assert out["mechanism"]["num_traces"] == 6 and "forced_accuracy" not in out
        assert out["mechanism"]["sums"]["chars"] > 0
        d = trainer("digit")  # a task without the hook: the measurement is today's
        assert "mechanism" not in evaluate_policy(d, d.eval_problems, budgets=[20, 40], forcing_budget=None, **kw)
    finally:
        TASKS.pop("stub_regime", None)


# -- the preregistered verdict --------------------------------------------------------------------
NOISE = [0.01, -0.01, 0.02, -0.02, 0.0]  # a difference around 0: its interval holds 0


def _records(d_pass: dict, d_mech: dict, regime=DOUBT, seeds=5) -> list[dict]:
    """Per-seed records: the primary arm's pass@1 and mechanism rate, and each control's made so
    that primary - control is d_pass[control][seed] (d_mech likewise; a missing control: 0)."""
    rng = random.Random(0)
    recs = []
    for s in range(seeds):
        p, m = 0.4 + rng.uniform(-0.05, 0.05), 0.3 + rng.uniform(-0.05, 0.05)
        arms = {regime.primary: (p, m)}
        for c in regime.controls:
            if c in d_pass:
                arms[c] = (p - d_pass[c][s], m - d_mech.get(c, [0.0] * seeds)[s])
        for arm, (pass1, rate) in arms.items():
            final = {"pass@1": pass1, "mechanism": {"num_traces": 1000, "sums": {
                "unrecovered_doubt": rate * 1000, "doubt": 500.0, "redundant": rate * 1000, "episodes": 1000.0}}}
            recs.append({"arm": arm, "seed": 100 + s, "final": final})
    return recs


def _all(values):
    return {c: values for c in DOUBT.controls}


@pytest.mark.parametrize("regime", [DOUBT, BISECT])
def test_verdict_supported_by_pass_at_1_or_by_the_mechanism_within_the_margin(regime):
    up = [0.05, 0.06, 0.04, 0.05, 0.07]
    out = regime_verdict(_records(_all(up), _all(NOISE), regime), regime)
    assert out["verdict"] == "supported" and out["applies"] == ["supported"]
    assert all(r["pass_above_0"] and r["win"] for r in out["against"].values())
    better = [-0.10, -0.12, -0.09, -0.11, -0.10]  # lower is better for both regimes' metrics
    out = regime_verdict(_records(_all(NOISE), _all(better), regime), regime)
    assert out["verdict"] == "supported" and not any(r["pass_above_0"] for r in out["against"].values())
    assert all(r["mechanism_better"] and r["margin_holds"] for r in out["against"].values())
    # the same mechanism win, but one placebo's pass@1 mean is below the margin: no longer supported
    below = {**_all(NOISE), "placebo_within": [-0.10, 0.02, -0.08, 0.0, -0.04]}
    assert regime_verdict(_records(below, _all(better), regime), regime)["verdict"] == "mechanism only"
    # nor is a mechanism interval that holds 0
    assert regime_verdict(_records(_all(NOISE), _all(NOISE), regime), regime)["verdict"] != "supported"
    # a mechanism "win" on the wrong side (higher) is no win
    assert regime_verdict(_records(_all(NOISE), _all([-v for v in better]), regime), regime)["verdict"] != "supported"


def test_verdict_mechanism_only():
    wide = [-0.10, 0.02, -0.08, 0.0, -0.04]  # mean -0.04: the margin fails, the interval holds -0.02 and 0
    out = regime_verdict(_records(_all(wide), _all([-0.10, -0.12, -0.09, -0.11, -0.10])), DOUBT)
    assert out["verdict"] == "mechanism only" and out["applies"] == ["mechanism only"]
    # without the mechanism win against one control, mechanism only no longer holds
    mixed = {**_all([-0.10, -0.12, -0.09, -0.11, -0.10]), "placebo": NOISE}
    assert regime_verdict(_records(_all(wide), mixed), DOUBT)["verdict"] != "mechanism only"


def test_verdict_not_specific_to_progress():
    d_pass = {"grpo": [0.05, 0.06, 0.04, 0.05, 0.07], "placebo": NOISE, "placebo_within": [0.05, 0.06, 0.04, 0.05, 0.07]}
    out = regime_verdict(_records(d_pass, {}), DOUBT)
    assert out["verdict"] == "not specific to progress" and not out["against"]["placebo"]["win"]
    d_pass["placebo"] = d_pass["grpo"]  # it wins against every placebo too: supported, and only that
    assert regime_verdict(_records(d_pass, {}), DOUBT)["applies"] == ["supported"]


def test_verdict_null_and_harmful():
    out = regime_verdict(_records(_all(NOISE), _all(NOISE)), DOUBT)
    assert out["verdict"] == "null" and out["applies"] == ["null"]
    # an interval on the mechanism against grpo that excludes 0 (either side) is not null
    worse = {"grpo": [0.10, 0.12, 0.09, 0.11, 0.10]}
    assert regime_verdict(_records(_all(NOISE), worse), DOUBT)["verdict"] == "unclassified"
    harm = {**_all(NOISE), "grpo": [-0.10, -0.09, -0.11, -0.10, -0.12]}
    out = regime_verdict(_records(harm, {}), DOUBT)
    assert out["verdict"] == "harmful" and out["against"]["grpo"]["d_pass@1"]["high"] < -0.02
    # below 0 but not entirely below -0.02: not harmful, and not null either (the interval excludes 0)
    slight = {**_all(NOISE), "grpo": [-0.010, -0.012, -0.009, -0.011, -0.010]}
    out = regime_verdict(_records(slight, {}), DOUBT)
    assert out["verdict"] == "unclassified" and out["applies"] == []


def test_verdict_reports_every_verdict_that_applies_in_the_written_order():
    # a mechanism win against all three, pass@1 entirely below -0.02 against grpo: both apply
    harm = [-0.10, -0.09, -0.11, -0.10, -0.12]
    out = regime_verdict(_records(_all(harm), _all([-0.10, -0.12, -0.09, -0.11, -0.10])), DOUBT)
    assert out["applies"] == ["mechanism only", "harmful"] and out["verdict"] == "mechanism only"
    assert list(VERDICTS) == ["supported", "mechanism only", "not specific to progress", "null", "harmful"]


def test_verdict_is_not_tested_without_every_control_on_two_seeds():
    out = regime_verdict(_records({"grpo": NOISE, "placebo": NOISE}, {}), DOUBT)
    assert out["verdict"] == "not tested" and "placebo_within" in out["reason"]
    assert out["against"]["placebo_within"] == {"available": False}
    one_seed = regime_verdict(_records(_all([0.1]), {}, seeds=1), DOUBT)
    assert one_seed["verdict"] == "not tested"
    # digit, the negative control: the same rule on pass@1 alone (no mechanism metric)
    assert regime_verdict(_records(_all(NOISE), {}, DIGIT), DIGIT)["verdict"] == "null"
    assert regime_verdict(_records(_all([0.05, 0.06, 0.04, 0.05, 0.07]), {}, DIGIT), DIGIT)["verdict"] == "supported"


def test_verdict_uses_exact_t_intervals_paired_by_seed():
    from mrt_engine.metrics import student_t_quantile

    d = [0.03, 0.01, 0.05, 0.02, 0.04]
    res = regime_verdict(_records(_all(d), {}), DOUBT)["against"]["grpo"]["d_pass@1"]
    sd = math.sqrt(sum((v - 0.03) ** 2 for v in d) / 4)
    assert res["mean"] == pytest.approx(0.03) and res["values"] == pytest.approx(d)
    assert res["high"] - res["mean"] == pytest.approx(student_t_quantile(0.975, 4) * sd / math.sqrt(5))


def test_secondary_arms_get_paired_differences_against_grpo_and_the_primary_but_no_verdict():
    recs = _records(_all(NOISE), {}, seeds=3)  # primary and controls, seeds 100-102
    base = {r["seed"]: r["final"]["pass@1"] for r in recs if r["arm"] == "grpo"}
    prim = {r["seed"]: r["final"]["pass@1"] for r in recs if r["arm"] == DOUBT.primary}
    up = [0.05, 0.07, 0.06]
    for s, d in zip((100, 101, 102), up):  # mrt_dense: grpo + up on seeds 100-102; seed 103 has no pair
        final = {"pass@1": base[s] + d, "mechanism": {"num_traces": 1000, "sums": {"unrecovered_doubt": 100.0}}}
        recs.append({"arm": "mrt_dense", "seed": s, "final": final})
    recs.append({"arm": "mrt_dense", "seed": 103, "final": {"pass@1": 0.9, "mechanism": {"num_traces": 1, "sums": {"unrecovered_doubt": 0.0}}}})
    out = secondary_differences(recs, DOUBT)
    assert list(out) == ["mrt_dense"] and list(out["mrt_dense"]) == ["grpo", DOUBT.primary]
    vs_grpo = out["mrt_dense"]["grpo"]
    assert vs_grpo["num_seeds"] == 3 and vs_grpo["d_pass@1"]["values"] == pytest.approx(up)
    assert out["mrt_dense"][DOUBT.primary]["d_pass@1"]["values"] == pytest.approx(
        [base[s] + d - prim[s] for s, d in zip((100, 101, 102), up)])
    assert "verdict" not in vs_grpo and regime_verdict(recs, DOUBT)["verdict"] == "null"  # the rule ignores it
    lines = secondary_lines(out, {"name": "unrecovered doubt rate"})
    assert "no verdict" in lines[0] and any(line.startswith("- mrt_dense - grpo (3 seeds): pass@1 +0.060 [") for line in lines)
    # without grpo or the primary arm there is nothing to pair with, and nothing is printed
    alone = [r for r in recs if r["arm"] == "mrt_dense"]
    assert secondary_differences(alone, DOUBT) == {"mrt_dense": {}} and secondary_lines(secondary_differences(alone, DOUBT), None) == []


# -- the warm-start gates (pure) ------------------------------------------------------------------
def test_falls_and_rises_between_any_two_forced_cuts():
    assert largest_fall([0.0, 1.0, 0.5, 0.0]) == 1.0 and largest_rise([0.0, 1.0, 0.5, 0.0]) == 1.0
    assert largest_fall([0.1, 0.2, 0.9]) == 0.0 and largest_rise([0.9, 0.5, 0.1]) == 0.0
    assert largest_fall([0.75, 0.5, 0.25]) == 0.5  # two steps of 0.25 are one fall of 0.5
    assert largest_fall([]) == 0.0 and largest_rise([0.3]) == 0.0


def test_doubt_profile_counts_falls_in_successes_and_rises_in_failures():
    def traces(num_fall, num_rise):
        ok = [TraceJ([0.1, 1.0, 0.0], True)] * num_fall + [TraceJ([0.1, 1.0, 1.0], True)] * (10 - num_fall)
        bad = [TraceJ([0.1, 1.0], False)] * num_rise + [TraceJ([0.1, 0.2], False)] * (10 - num_rise)
        return ok + bad

    fall, rise = doubt_profile(traces(2, 1))
    assert fall.passed and rise.passed and fall.measured == 0.2 and rise.measured == 0.1
    fall, rise = doubt_profile(traces(1, 1))
    assert not fall.passed and rise.passed
    fall, rise = doubt_profile(traces(2, 0))
    assert fall.passed and not rise.passed
    edge = doubt_profile([TraceJ([0.25, 0.75, 0.25], True), TraceJ([0.5, 0.875, 0.5], True), TraceJ([0.25, 0.75], False)])
    assert [g.measured for g in edge] == [0.5, 1.0]  # a fall (rise) of exactly 0.5 counts, 0.375 does not
    fall, rise = doubt_profile([TraceJ([0.1, 0.9], False)])  # no successful trace: no share, no pass
    assert math.isnan(fall.measured) and not fall.passed


def _bisect_traces(curve, redundant, hard_groups_failing, num_hard=4):
    out = []
    for g in range(num_hard):  # groups of 4 samples of hard problems
        fail = g < hard_groups_failing
        out += [TraceJ(curve, success=not fail and i == 0, group=g, stratum="hard",
                       mechanism={"episodes": 4.0, "redundant": float(redundant)}) for i in range(4)]
    out += [TraceJ(curve, True, group=100, stratum="easy", mechanism={"episodes": 4.0, "redundant": float(redundant)})]
    return out


def test_bisect_profile_gates_each_part():
    rising = [1 / 8, 1 / 4, 1 / 2, 1.0]
    gates = bisect_profile(_bisect_traces(rising, 2, 3), BISECT)
    assert [g.passed for g in gates] == [True, True, True]
    assert gates[1].measured == 0.5 and gates[2].measured == 0.75
    flat = [1 / 8, 1 / 8, 1 / 8, 1 / 4]  # rises in episode 3 only
    assert [g.passed for g in bisect_profile(_bisect_traces(flat, 2, 3), BISECT)] == [False, True, True]
    assert [g.passed for g in bisect_profile(_bisect_traces(rising, 1, 3), BISECT)] == [True, False, True]
    assert [g.passed for g in bisect_profile(_bisect_traces(rising, 2, 1), BISECT)] == [True, True, False]
    assert median_rises([TraceJ([0.1, 0.5], True)]) == [True, False, False]  # no trace reaches cut 2


def test_j_by_cut_reads_each_episode_over_the_traces_that_reach_it():
    rows = j_by_cut([TraceJ([0.0, 0.5, 1.0], True), TraceJ([0.25, 0.25], False), TraceJ([0.0, 1.0], True),
                     TraceJ([0.0], False)], 3)
    assert [r["num_traces"] for r in rows] == [3, 1, 0]
    assert rows[0]["median_before"] == 0.0 and rows[0]["median_at"] == 0.5  # medians, not means
    assert rows[0]["mean_before"] == 0.25 / 3 and rows[0]["mean_at"] == 1.75 / 3
    assert rows[1]["median_before"] == 0.5 and rows[1]["median_at"] == 1.0
    assert rows[2]["median_at"] is None
    gate = bisect_profile([TraceJ([0.0, 0.5, 1.0], True, stratum="hard", mechanism={"episodes": 2.0, "redundant": 1.0})],
                          BISECT)[0]
    assert gate.note.endswith("(medians 0->0.5, 0.5->1, -)")


def test_the_other_gates_pass_and_fail_at_their_thresholds():
    assert pass_gate(0.2).passed and pass_gate(0.6).passed and not pass_gate(0.19).passed and not pass_gate(0.61).passed
    assert episodes_gate(3.75, 3.0).passed and not episodes_gate(3.8, 3.0).passed and not episodes_gate(2.2, 3.0).passed
    assert empty_prefix_gate(0.2, 0.3).passed and not empty_prefix_gate(0.25, 0.3).passed
    assert disjoint_gate(["a", "b"], ["c"], ["d"]).passed
    shared = disjoint_gate(["a", "b"], ["b"], ["d"])
    assert not shared.passed and shared.measured == 1.0
    assert reliability_gate(0.8).passed and not reliability_gate(0.79).passed and not reliability_gate(None).passed
    assert Gate("x", math.nan, "t", False).to_json()["measured"] is None  # JSON has no NaN


def test_forced_j_leaves_out_the_outcome_cut():
    from mrt_engine.progress import ProgressResult

    j = [0.1, 0.9, 0.0, 1.0]
    r = ProgressResult(episodes=["a"] * 3, cut_chars=[0, 1, 2, 3], cut_tokens=[0, 1, 2, 3], j=j, j_stderr=[0.0] * 4,
                       progress=[0.8, -0.9, 1.0], tokens_at_cut=[1, 2, 3, 4], outcome=1.0, natural_end_included=True,
                       mode="sample", natural_end="outcome")
    assert forced_j(r) == [0.1, 0.9, 0.0]
    import dataclasses

    assert forced_j(dataclasses.replace(r, natural_end="forced")) == j


def test_designed_episodes_are_counted_at_the_rollout_budget():
    from mrt_engine.episodes import segment
    from mrt_engine.experiments.gates import designed_episodes
    from mrt_engine.models import demo_tokenizer
    from mrt_engine.tasks import make_problems, solution_trace

    tok = demo_tokenizer()
    problems = make_problems("digit", 30, seed=3)
    uncut = designed_episodes(problems, tok, max_tokens=None)
    assert uncut == pytest.approx(sum(len(segment(solution_trace(p, seed=i), "r1")) for i, p in enumerate(problems)) / 30)
    assert 1 <= designed_episodes(problems, tok, max_tokens=60) < uncut  # a try is ~40 tokens: the budget binds


# -- end to end -----------------------------------------------------------------------------------
def _quick(regime, tmp_path, monkeypatch, extra=()):
    import mrt_engine.experiments.compare.run as run_mod
    from mrt_engine.cli import main

    monkeypatch.setattr(run_mod, "code_version", lambda: "test-version")
    monkeypatch.chdir(tmp_path)  # the default output folder, runs/compare_<regime>, lands here
    assert main(["compare", "--regime", regime, "--quick", "--jobs", "1", "--no-progress", *extra]) == 0
    out = tmp_path / "runs" / f"compare_{regime}"
    return out, json.loads((out / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["doubt", "bisect"])
def test_compare_quick_regime_end_to_end(name, tmp_path, monkeypatch):
    regime = REGIMES[name]
    out, report = _quick(name, tmp_path, monkeypatch)
    assert report["regime"] == name and set(report["summary"]) == set(regime.arms)
    assert {r["seed"] for r in report["runs"]} == {0, 1}  # --quick never runs the preregistered seeds
    for arm, m in report["summary"].items():
        value = m[regime.mechanism.key]
        assert m["pass@1"]["n"] == 2 and value["n"] == 2 and 0 <= value["mean"] <= 1, arm
    for run in report["runs"]:  # every final evaluation holds the mechanism sums of its completions
        final = json.loads((out / "arms" / run["arm"] / f"seed{run['seed']}" / "result.json").read_text())["final"]
        assert final["mechanism"]["num_traces"] == final["num_problems"] * final["num_samples"]
        assert set(final["mechanism"]["sums"]) >= {regime.mechanism.numerator} and "forced_accuracy" not in final
    decision = report["regime_verdict"]
    assert decision["verdict"] in (*VERDICTS, "unclassified") and set(decision["against"]) == set(regime.controls)
    md = (out / "report.md").read_text()
    assert f"# mrt-engine compare --regime {name} --quick" in md and "## The preregistered rule" in md
    assert decision["rule"] in md and f"**Verdict ({name}): {decision['verdict']}" in md
    assert f"| {regime.mechanism.name} |" in md.splitlines()[4]  # a column of the table's header
    # the published form of this report carries the mechanism columns and the verdict
    from mrt_engine.experiments.compare.publish import results_markdown

    text = results_markdown(report)
    assert regime.mechanism.name in text and f"**Verdict ({name}): {decision['verdict']}" in text


def test_compare_refuses_a_preset_of_another_task():
    from mrt_engine.experiments.compare import run_compare

    with pytest.raises(ValueError, match="data.task 'digit', not 'doubt'"):
        run_compare(regime="doubt", quick=True, overrides={"data.task": "digit"}, log=lambda *_: None)


@pytest.mark.parametrize("name", ["doubt", "bisect"])
def test_gates_command_end_to_end(name, tmp_path, capsys):
    from mrt_engine.cli import main

    rc = main(["gates", "--regime", name, "--num-eval", "4", "--samples", "2", "--branches", "2",
               "--out", str(tmp_path / "g")])
    report = json.loads((tmp_path / "g" / "report.json").read_text())
    assert rc == (0 if report["passed"] else 1) and report["model"] == name  # the shipped warm start
    names = [g["name"] for g in report["gates"]]
    assert len(names) == {"doubt": 7, "bisect": 8}[name] and names[0] == "1 pass@1"
    assert names[-1] == "6 progress Spearman-Brown" and sum(n.startswith("2 ") for n in names) == len(names) - 5
    assert report["num_problems"] == 4 and report["mechanism"]["num_traces"] == 8
    shown = capsys.readouterr().out
    assert "| gate | measured | threshold | result | note |" in shown and "5 held-out texts shared" in shown
    five = next(g for g in report["gates"] if g["name"].startswith("5"))
    assert five["passed"] and "SFT" in five["note"] and not five["note"].startswith("no SFT")  # checked against both
    from mrt_engine.experiments.compare.publish import results_markdown  # published like a comparison

    assert results_markdown(report) in shown and "| 1 pass@1 |" in results_markdown(report)
