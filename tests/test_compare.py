"""`mrt-engine compare`: the arms, the token budget, the decision rule, and --quick end to end."""
import json
import math
import random

import pytest

from mrt_engine.experiments.compare import ARMS, DEFAULT_ARMS, arm_config, verdict
from mrt_engine.experiments.compare.evaluate import j_within, majority_curve
from mrt_engine.experiments.compare.report import mean_ci, tokens_to_reach
from mrt_engine.progress import ProgressResult
from mrt_engine.rl.algorithms import shuffle_progress

pytestmark = pytest.mark.usefixtures("one_thread")


def _result(j, tokens):
    return ProgressResult(episodes=["x"] * (len(j) - 1), cut_chars=list(range(len(j))), cut_tokens=list(range(len(j))),
                          j=j, j_stderr=[0.0] * len(j), progress=[b - a for a, b in zip(j, j[1:])],
                          tokens_at_cut=tokens, outcome=j[-1], natural_end_included=True)


def test_digit_task_traces_find_the_answer_and_waste_some_episodes():
    from mrt_engine.episodes import segment
    from mrt_engine.tasks import make_problems, solution_trace

    problems = make_problems("digit", 200, seed=0)
    counts, rechecks = [], 0
    for i, p in enumerate(problems):
        a, c = p.meta["a"], p.meta["c"]
        assert a * int(p.answer) % 10 == c and sum(a * d % 10 == c for d in range(10)) == 1  # one answer
        trace = solution_trace(p, seed=i)
        episodes = segment(trace, "r1")
        counts.append(len(episodes))
        rechecks += "double-check" in trace
        assert trace.endswith("\\boxed{" + p.answer + "}.")
    # answers after 0-9 wrong tries, uniformly: a spread of episode counts, and some waste
    assert min(counts) == 1 and max(counts) >= 10 and 0.3 < rechecks / 200 < 0.7


def test_sft_examples_for_digit_answer_only_after_the_find():
    from mrt_engine.models import demo_tokenizer
    from mrt_engine.prompts import get_template
    from mrt_engine.config.presets import shipped_config
    from mrt_engine.trainer.sft import build_examples
    from mrt_engine.tasks import make_problems

    tok = demo_tokenizer()
    template = get_template(shipped_config("compare")["algo"]["progress"]["template"])
    problems = make_problems("digit", 60, seed=5)
    ex = build_examples(problems, tok, seed=0, template=template, termination_fraction=0.3)
    meta = ex[60:]
    assert meta
    for e in meta:
        prefix = tok.decode(e.context_ids, skip_special_tokens=True)
        assert f"Yes, x = {e.problem.answer}." in prefix  # never a guess before the right try


def test_held_out_problems_share_no_text_with_the_warm_start_or_training(tmp_path):
    from collections import Counter

    from mrt_engine.config import TrainConfig
    from mrt_engine.config.presets import shipped_config
    from mrt_engine.models import _DEMO_WEIGHTS
    from mrt_engine.trainer import Trainer
    from mrt_engine.trainer.setup import WARM_START_PRESETS, build_problems, warm_start_problems

    assert set(WARM_START_PRESETS) == set(_DEMO_WEIGHTS)  # every shipped warm start has its SFT problems
    d = shipped_config("compare")
    d["output_dir"] = str(tmp_path)
    trainer = Trainer(TrainConfig.from_dict(d))
    sft = {p.problem for p in warm_start_problems("digit")}
    train = {p.problem for p in trainer.train_problems}
    held = [p.problem for p in trainer.eval_problems]
    assert len(sft) > 2_500 and len(held) == d["data"]["num_eval"] == len(set(held))
    assert not set(held) & sft and not set(held) & train
    # without the exclusion most held-out texts were SFT problems (97 of 101 before issue 25)
    cfg = TrainConfig.from_dict({**d, "data": {**d["data"], "exclude_warm_start": False}})
    assert sum(p.problem in sft for p in build_problems(cfg.data)[1]) > 100
    # new texts, not new answer classes: (last digit of a, x) of the held-out problems were all seen
    classes = Counter((p.meta["a"] % 10, p.answer) for p in trainer.eval_problems)
    assert set(classes) <= {(p.meta["a"] % 10, p.answer) for p in warm_start_problems("digit")}
    with pytest.raises(ValueError, match="data.num_eval=400: only"):
        build_problems(TrainConfig.from_dict({**d, "data": {**d["data"], "num_eval": 400}}).data,
                       exclude=warm_start_problems("digit"))


def test_arms_are_the_shared_config_plus_their_keys():
    base = {"algo": {"name": "grpo", "progress": {"mode": "sample"}}, "seed": 0}
    cfg = arm_config(base, "mrt_dense_score", 3, "out/x")
    assert cfg["algo"] == {"name": "mrt_dense", "progress": {"mode": "score"}} and cfg["seed"] == 3
    assert base["algo"]["progress"]["mode"] == "sample"  # the shared config is not changed
    assert arm_config(base, "placebo", 0, "o")["algo"]["name"] == "mrt_dense_placebo"
    with pytest.raises(ValueError, match="unknown arm"):
        arm_config(base, "ppo", 0, "o")
    assert {"grpo", "mrt_scalar", "mrt_dense", "mrt_dense_score", "length_penalty", "placebo"} == set(DEFAULT_ARMS)
    assert arm_config(base, "placebo_score", 0, "o")["algo"] == {"name": "mrt_dense_placebo",
                                                                 "progress": {"mode": "score"}}
    assert set(DEFAULT_ARMS) < set(ARMS)
    from mrt_engine.experiments.compare.arms import CREDIT_ARMS  # every credit form and both placebos

    assert set(CREDIT_ARMS) <= set(ARMS) and {"placebo", "placebo_within", "mrt_dense_centred"} <= set(CREDIT_ARMS)
    assert arm_config(base, "placebo_within", 0, "o")["algo"]["name"] == "mrt_dense_placebo_within"


def test_placebo_keeps_magnitudes_and_counts_but_moves_credit():
    results = [_result([0.0, 0.0, 1.0], [1, 2, 3]), _result([0.0, 0.5, 0.5, 1.0], [1, 2, 3, 4])]
    out = shuffle_progress(results, random.Random(0))
    assert [len(r.progress) for r in out] == [2, 3]
    assert sorted(p for r in out for p in r.progress) == sorted(p for r in results for p in r.progress)
    assert results[0].progress == [0.0, 1.0]  # the originals are untouched
    moved = any(shuffle_progress(results, random.Random(s))[0].progress != results[0].progress for s in range(10))
    assert moved


def test_mean_ci_and_tokens_to_reach():
    m = mean_ci([1.0, 2.0, 3.0])
    assert m["mean"] == 2.0 and m["ci95"] == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    assert math.isnan(mean_ci([1.0])["ci95"])
    curve = [{"train_tokens": 0, "pass@1": 0.2}, {"train_tokens": 100, "pass@1": 0.4}, {"train_tokens": 200, "pass@1": 0.6}]
    assert tokens_to_reach(curve, 0.5) == pytest.approx(150)
    assert tokens_to_reach(curve, 0.2) == 0
    assert tokens_to_reach(curve, 0.7) is None


def test_t_quantiles_are_exact_for_any_number_of_seeds():
    from mrt_engine.experiments.compare.report import t95
    from mrt_engine.metrics import student_t_cdf, student_t_quantile

    # published two-sided 95% values (df = seeds - 1), including past the old 9-df table
    table = {2: 12.7062, 3: 4.3027, 4: 3.1824, 10: 2.2622, 11: 2.2281, 16: 2.1314, 31: 2.0423, 121: 1.9799}
    for seeds, value in table.items():
        assert t95(seeds) == pytest.approx(value, abs=1e-4)
    assert math.isnan(t95(1)) and student_t_quantile(0.5, 3) == 0.0
    assert student_t_quantile(0.025, 7) == pytest.approx(-student_t_quantile(0.975, 7))
    for df in (1, 2.5, 9, 40):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert student_t_cdf(student_t_quantile(p, df), df) == pytest.approx(p, abs=1e-12)
    stats = pytest.importorskip("scipy.stats")  # a dev extra: the oracle where it is installed
    for df in (1, 2, 5, 12, 30, 200):
        assert student_t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)


def test_j_within_and_majority():
    r = _result([0.1, 0.5, 1.0], [10, 20, 30])
    assert j_within(r, 5) == 0.0 and j_within(r, 25) == 0.5 and j_within(r, 30) == 1.0

    class S:
        def __init__(self, group, extracted, reward, n):
            self.group, self.extracted, self.reward, self.num_completion_tokens = group, extracted, reward, n

    samples = [S(0, "3", 0.0, 10), S(0, "5", 1.0, 10), S(0, "5", 1.0, 10), S(0, None, 0.0, 10)]
    maj = majority_curve(samples, 4)
    assert maj["1"] == {"accuracy": 0.0, "tokens": 10.0}
    assert maj["2"]["accuracy"] == 0.0  # a tie goes to the answer seen first
    assert maj["4"] == {"accuracy": 1.0, "tokens": 40.0}


def _records(d_regret, d_tokens, d_pass=0.0, arms=(("grpo", 0.0), ("placebo", 0.0), ("mrt_dense", 1.0))):
    recs = []
    for seed, (dr, dt) in enumerate(zip(d_regret, d_tokens)):
        for arm, shift in arms:
            final = {"pass@1": 0.5 + shift * d_pass, "tokens": 100.0 + shift * dt, "truncated": 0.0, "episodes": 2.0,
                     "progress": 0.1, "j_empty": 0.1, "forced_accuracy": 0.5, "forced_tokens": 200.0,
                     "regret": {"256": 0.5 + shift * dr}, "accuracy_at_budget": {"256": 0.5},
                     "maj": {"1": {"accuracy": 0.5, "tokens": 100.0}},
                     "reliability": {"split_half_r": 0.5, "spearman_brown": 0.67}}
            recs.append({"arm": arm, "seed": seed, "final": final})
    return recs


def test_verdict_applies_the_rule():
    win = verdict(_records([-0.05, -0.04, -0.06], [0, 1, -1]), regret_budget=256)
    assert win["supported"] and win["against"]["grpo"]["regret_win"] and not win["against"]["grpo"]["tokens_win"]
    # one seed the other way: not consistent across seeds
    assert not verdict(_records([-0.05, 0.01, -0.06], [0, 0, 0]), regret_budget=256)["supported"]
    # fewer tokens but worse pass@1: no win
    assert not verdict(_records([0, 0, 0], [-20, -25, -22], d_pass=-0.1), regret_budget=256)["supported"]
    assert verdict(_records([0, 0, 0], [-20, -25, -22]), regret_budget=256)["against"]["placebo"]["tokens_win"]
    # the follow-up's arm and controls, judged by the same rule; a missing control is no win
    arms = (("grpo", 0.0), ("placebo_score", 0.0), ("mrt_dense_score", 1.0))
    follow = verdict(_records([-0.05, -0.04, -0.06], [0, 1, -1], arms=arms), regret_budget=256,
                     arm="mrt_dense_score", controls=("grpo", "placebo_score"))
    assert follow["supported"] and follow["arm"] == "mrt_dense_score"
    lone = verdict(_records([-0.05, -0.04, -0.06], [0, 1, -1], arms=arms[::2]), regret_budget=256,
                   arm="mrt_dense_score", controls=("grpo", "placebo_score"))
    assert not lone["supported"] and lone["against"]["placebo_score"] == {"available": False}


def test_max_train_tokens_stops_training(tmp_path):
    from mrt_engine.trainer import TrainConfig, train

    cfg = TrainConfig.from_dict({"model": {"name": "tiny"}, "data": {"task": "chain", "num_train": 8, "num_eval": 0},
                                 "rollout": {"group_size": 2, "max_tokens": 8}, "steps": 50, "prompts_per_step": 2,
                                 "max_train_tokens": 40, "output_dir": str(tmp_path), "tensorboard": False,
                                 "progress_bar": False})
    result = train(cfg)
    tokens = [h["train_tokens_total"] for h in result.history]
    assert result.steps < 50 and tokens[-1] >= 40 and tokens[-2] < 40
    assert result.checkpoint is not None
    # the rate follows the token budget, not the 50-step cap: each step at the midpoint of its share
    from mrt_engine.trainer.optim import cosine_at_fraction

    before = [0] + tokens[:-1]
    for h, t0, t1 in zip(result.history, before, tokens):
        mid = (t0 + min(t1, 40)) / 2 / 40
        want = cfg.optim.lr * cosine_at_fraction(mid, warmup_ratio=cfg.optim.warmup_ratio, min_ratio=cfg.optim.min_lr_ratio)
        assert h["lr"] == pytest.approx(want, rel=1e-9), (h["step"], t0, t1)
    assert result.history[-1]["lr"] > 0  # the step that crosses the budget still learns


def test_token_schedule_gives_equal_rates_at_equal_tokens():
    import torch

    from mrt_engine.config import OptimConfig
    from mrt_engine.trainer.optim import TokenBudgetSchedule, build_scheduler

    cfg = OptimConfig(lr=1.0, warmup_ratio=0.1)

    def rates(step_tokens, budget=1200):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
        sched = build_scheduler(opt, cfg, 48, total_tokens=budget)
        assert isinstance(sched, TokenBudgetSchedule)
        out, spent = {}, 0
        while spent < budget:
            sched.begin_step(spent, step_tokens)
            out[spent + step_tokens / 2] = opt.param_groups[0]["lr"]  # the rate at the step's midpoint
            sched.step()
            spent += step_tokens
        return out

    short, long = rates(100), rates(300)  # an arm with short traces takes 3x the steps
    assert len(short) == 12 and len(long) == 4
    for mid, lr in long.items():  # the same token position gets the same rate, whatever the step count
        assert short[mid] == pytest.approx(lr)
    assert max(short.values()) <= 1.0 and min(short.values()) > 0
    # without a token budget the schedule is over steps, as before
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert not isinstance(build_scheduler(opt, cfg, 10), TokenBudgetSchedule)


def _steps(run_dir):
    from mrt_engine.trainer.logger import read_metrics

    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "reward" in r]


def test_compare_quick_end_to_end(tmp_path, monkeypatch):
    import mrt_engine.experiments.compare.run as run_mod
    from mrt_engine.cli import main
    from mrt_engine.experiments.compare.run import QUICK

    # the code version is read once per invocation; pinned here so that files other people edit
    # while this test runs do not make its rerun's reuse fail
    monkeypatch.setattr(run_mod, "code_version", lambda: "test-version")

    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--seeds", "2", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["summary"]) == set(DEFAULT_ARMS)
    for arm, m in report["summary"].items():
        assert m["pass@1"]["n"] == 2 and 0 <= m["pass@1"]["mean"] <= 1 and not math.isnan(m["pass@1"]["ci95"])
        assert {"split_half_r", "spearman_brown"} <= set(m)  # reliability under its two names
    assert set(report["verdict"]["against"]) == {"grpo", "placebo"}
    assert (out / "compare.png").stat().st_size > 10_000 and "Decision rule" in (out / "report.md").read_text()
    assert "| split-half r | Spearman-Brown |" in (out / "report.md").read_text()

    # equal budgets: every run stopped at the first step that reached the budget, so any two
    # arms' training tokens differ by less than one step's tokens
    budget, totals, step_tokens = QUICK["max_train_tokens"], [], []
    for run in report["runs"]:
        steps = _steps(out / "arms" / run["arm"] / f"seed{run['seed']}")
        last = steps[-1]
        assert last["train_tokens_total"] == run["train_tokens"] >= budget > last["train_tokens_total"] - last["train_tokens"]
        totals.append(run["train_tokens"])
        step_tokens += [s["train_tokens"] for s in steps]
    assert max(totals) - min(totals) < max(step_tokens)

    # arms differ where their credit differs: at step 1 grpo, mrt_dense and placebo train on the
    # same rollout (same warm start, seed and prompts), and the advantages differ with the credit
    moved = 0
    for seed in (0, 1):
        first = {arm: _steps(out / "arms" / arm / f"seed{seed}")[0] for arm in ("grpo", "mrt_dense", "placebo")}
        assert len({(s["reward"], s["train_tokens"]) for s in first.values()}) == 1  # one rollout
        if first["mrt_dense"]["credit_abs_mean"] > 0:  # progress to place: mrt_dense's advantages are not GRPO's
            moved += 1
            assert first["mrt_dense"]["adv_abs_mean"] != pytest.approx(first["grpo"]["adv_abs_mean"])
        assert first["mrt_dense"]["credit_moved"] == 0 and "credit_abs_mean" not in first["grpo"]
        if first["placebo"]["credit_moved"] > 0:  # the placebo moved credit: not mrt_dense's advantages
            assert first["placebo"]["adv_abs_mean"] != pytest.approx(first["mrt_dense"]["adv_abs_mean"])
    assert moved, "no progress to credit in any seed's first step: the quick settings give the credit nothing to do"
    assert any(s["credit_moved"] > 0 for seed in (0, 1) for s in _steps(out / "arms" / "placebo" / f"seed{seed}"))

    # a table published from this report.json is generated from it, and a changed table is caught
    from mrt_engine.experiments.compare.publish import results_markdown, update_files

    doc = tmp_path / "doc.md"
    doc.write_text(f"# x\n\n<!-- results: cmp/report.json -->\nold table\n<!-- /results -->\ntail\n")
    assert update_files([doc], root=tmp_path, check=True) == [f"{doc}: cmp/report.json"]
    assert "old table" in doc.read_text()  # --check changes nothing
    assert main(["results", str(doc), "--root", str(tmp_path)]) == 0
    assert results_markdown(report) in doc.read_text() and doc.read_text().endswith("<!-- /results -->\ntail\n")
    assert main(["results", str(doc), "--root", str(tmp_path), "--check"]) == 0
    doc.write_text(doc.read_text().replace("| grpo | 2 |", "| grpo | 3 |"))
    assert main(["results", str(doc), "--root", str(tmp_path), "--check"]) == 1

    # a rerun reuses every finished arm and seed
    lines = []
    from mrt_engine.experiments.compare import run_compare

    run_compare(out_dir=out, seeds=2, quick=True, log=lines.append)
    assert sum("reused" in line for line in lines) == 2 * len(DEFAULT_ARMS)
    first_seconds = sum(r["seconds"] for r in report["runs"]) / 60  # the report names the runs' own time
    assert f"{2 * len(DEFAULT_ARMS)} reused from an earlier invocation ({first_seconds:.1f} run-minutes" in \
        (out / "report.md").read_text()
    assert report["verdict"]["regret_budget"] == QUICK["rollout.max_tokens"]  # the largest budget: the rollout's
    # ... but not a result another code version (or warm start) made
    path = out / "arms" / "grpo" / "seed1" / "result.json"
    rec = json.loads(path.read_text())
    assert set(rec["provenance"]) == {"code", "warm_start"} and rec["provenance"]["warm_start"]
    assert rec["provenance"]["code"] == "test-version"
    rec["provenance"]["code"] = "another-version"
    path.write_text(json.dumps(rec))
    lines.clear()
    run_compare(out_dir=out, arms=["grpo"], seeds=2, quick=True, jobs=1, log=lines.append)
    assert [("reused" in line) for line in lines if line.startswith("  grpo")] == [True, False]


def test_published_tables_match_their_reports():
    from pathlib import Path

    from mrt_engine.experiments.compare.publish import update_files

    root = Path(__file__).resolve().parents[1]
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    assert update_files(docs, root=root, check=True) == [], "run `mrt-engine results` and commit the tables"
    assert list((root / "docs" / "results").glob("*/report.json")), "no published report.json"


def test_reuse_needs_the_same_config_code_and_warm_start():
    from mrt_engine.experiments.compare.run import provenance, reusable, warm_start_checksum

    cfg = {"model": {"name": "digit"}, "seed": 0}
    made_by = provenance(cfg)
    rec = {"config": cfg, "eval_spec": {"n": 1}, "provenance": made_by}
    assert reusable(rec, cfg, {"n": 1}, made_by)
    assert not reusable(rec, {**cfg, "seed": 1}, {"n": 1}, made_by)
    assert not reusable(rec, cfg, {"n": 2}, made_by)
    assert not reusable({**rec, "provenance": {**made_by, "code": "x"}}, cfg, {"n": 1}, made_by)
    assert not reusable({**rec, "provenance": {**made_by, "warm_start": "x"}}, cfg, {"n": 1}, made_by)
    assert not reusable({k: v for k, v in rec.items() if k != "provenance"}, cfg, {"n": 1}, made_by)
    assert not reusable(rec, cfg, {"n": 1}, made_by, measure_start=True)  # no measurement of the start kept
    assert warm_start_checksum({"name": "digit"}) != warm_start_checksum({"name": "demo"})
    assert warm_start_checksum({"name": "tiny"}) is None  # seeded weights: the config names them


def test_compare_first_seed_runs_only_fresh_seeds(tmp_path):
    from mrt_engine.experiments.compare import run_compare

    report = run_compare(out_dir=tmp_path / "f", arms=["grpo", "mrt_dense_score", "placebo_score"], seeds=1,
                         first_seed=5, quick=True, jobs=1, log=lambda *_: None)
    assert {r["seed"] for r in report["runs"]} == {5}
    assert set(report["secondary_verdict"]["against"]) == {"grpo", "placebo_score"}
    assert "## Follow-up: mrt_dense_score" in (tmp_path / "f" / "report.md").read_text()
    with pytest.raises(ValueError, match="first_seed"):
        run_compare(out_dir=tmp_path / "g", first_seed=-1, quick=True)


def test_outcome_says_untested_when_the_arm_was_not_run():
    from mrt_engine.experiments.compare.run import _outcome

    untested = {"arm": "mrt_dense", "controls": ["grpo", "placebo"], "supported": False,
                "against": {"grpo": {"available": False}, "placebo": {"available": False}}}
    assert _outcome(untested).startswith("the rule was not tested")
    tested = dict(untested, against={"grpo": {"available": True, "win": False}, "placebo": {"available": False}})
    assert _outcome(tested) == "MRT is not supported by this run."
