"""The `bisect` regime's task (mrt_engine/tasks/bisect.py): generator, traces, forced answers,
the mechanism metric and the design fractions the preregistration relies on."""
import importlib.util
import re
from pathlib import Path

import pytest

from mrt_engine.episodes import segment
from mrt_engine.grading import CORRECT, grade
from mrt_engine.tasks import (
    ALLOWED_CHARS,
    Problem,
    get_task,
    make_problems,
    solution_trace,
)
from mrt_engine.tasks import bisect as B

TASK = get_task("bisect")


@pytest.fixture(scope="module")
def problems():
    return make_problems("bisect", 200, seed=3)


def _problem(stratum: str, x: int | None = None, lo: int = 2000, n: int | None = None) -> Problem:
    """A problem of ``stratum`` over [lo, lo + n - 1] (n: the stratum's size unless given) with
    answer x, built like the generator."""
    n = B.STRATA[stratum] if n is None else n
    x = lo + n // 3 if x is None else x
    clues = " ".join(f"Clue {i}: {c}" for i, c in enumerate(B._clues(lo, lo + n - 1, x), 1))
    text = f"Find x among the {n} numbers from {lo} to {lo + n - 1}. {clues}"
    return Problem(f"t-{stratum}-{x}", text, str(x), "bisect", {"stratum": stratum, "lo": lo, "hi": lo + n - 1})


def _cuts(trace: str) -> list[int]:
    return [0] + [e.char_end for e in segment(trace, "r1")[:-1]]


# ---------------------------------------------------------------- generator and traces
def test_generator_is_deterministic_and_in_allowed_chars(problems):
    again = make_problems("bisect", 200, seed=3)
    assert [p.to_dict() for p in problems] == [p.to_dict() for p in again]
    assert [p.problem for p in make_problems("bisect", 20, seed=4)] != [p.problem for p in problems[:20]]
    for i, p in enumerate(problems[:50]):
        trace = solution_trace(p, seed=i)
        assert trace == solution_trace(p, seed=i)
        assert set(p.problem) <= ALLOWED_CHARS and set(trace) <= ALLOWED_CHARS


def test_clues_halve_the_range_down_to_the_answer(problems):
    for p in problems:
        lo, hi, x = p.meta["lo"], p.meta["hi"], int(p.answer)
        assert lo <= x <= hi and B.LOWEST <= lo and hi <= B.HIGHEST
        left = list(range(lo, hi + 1))
        for clue in re.findall(r"Clue \d+: (x [<>]= \d+\.)", p.problem):
            value = int(clue[5:-1])
            kept = [v for v in left if (v >= value if ">=" in clue else v <= value)]
            assert len(kept) == len(left) // 2 and x in kept
            left = kept
        assert left == [x]


def test_strata_are_recorded_in_their_designed_shares(problems):
    sizes = {p.meta["stratum"]: p.meta["hi"] - p.meta["lo"] + 1 for p in problems}
    assert sizes == B.STRATA
    hard = sum(p.meta["stratum"] == "hard" for p in problems) / len(problems)
    assert abs(hard - B.HARD_SHARE) < 0.1
    for p in problems:
        assert f"the {B.STRATA[p.meta['stratum']]} numbers" in p.problem


def test_traces_end_in_the_reference_answer(problems):
    for i, p in enumerate(problems):
        trace = solution_trace(p, seed=i)
        assert trace.endswith("The final answer is \\boxed{" + p.answer + "}.")
        assert grade(trace, p.answer, verifier=TASK.verifier).reason == CORRECT


def test_every_episode_is_cut_by_the_r1_segmenter():
    p = _problem("easy", x=2005, n=8)
    trace = B.trace_text(2000, 2007, 2005, [0, 2, 1])
    episodes = segment(trace, "r1")
    # 3 clues + 3 repeats, one episode each; the opener belongs to the first
    assert len(episodes) == 6
    assert episodes[0].text.startswith("x is from 2000 to 2007.\n\n8 left.\n\nClue 1: x >= 2004.")
    heads = [e.text.split("\n\n")[0] for e in episodes[1:]]
    assert heads == ["Wait, clue 2: x <= 2005.", "Wait, clue 2: x <= 2005.", "Wait, clue 2: x <= 2005.",
                     "Wait, clue 3: x >= 2005.", "Wait, clue 3: x >= 2005."]
    assert solution_trace(p, seed=0).count("Wait, clue") == len(segment(solution_trace(p, seed=0), "r1")) - 1


def test_redundant_episodes_leave_the_range_unchanged():
    trace = B.trace_text(2000, 2007, 2005, [1, 0, 0])
    episodes = [e.text for e in segment(trace, "r1")]
    assert episodes[1].replace("Wait, clue 1", "Clue 1") in episodes[0]  # the same clue, the same range
    assert "x is from 2004 to 2007." in episodes[1]
    with pytest.raises(ValueError, match="repeats has 2 entries"):
        B.trace_text(2000, 2007, 2005, [0, 0])


# ---------------------------------------------------------------- forced answers
def test_forced_answer_of_the_empty_prefix_is_a_guess_among_all_candidates():
    for stratum, n in B.STRATA.items():
        p = _problem(stratum)
        lo, hi = p.meta["lo"], p.meta["hi"]
        assert (lo, hi) == B.candidates_left(p, "") and hi - lo + 1 == n
        assert TASK.forced_answer(p, "") == str(lo)  # the lowest candidate: all n are still in
        assert TASK.forced_answer(p, "Let me think.") == str(lo)


def test_forced_answer_narrows_as_clues_apply_and_ends_on_the_answer():
    n = B.STRATA["hard"]
    lo, x = 2000, 2000 + n // 2 + 1
    p = _problem("hard", x=x, lo=lo)
    num_clues = n.bit_length() - 1
    trace = B.trace_text(lo, lo + n - 1, x, [0, 1] + [0] * (num_clues - 2))
    cuts = _cuts(trace)
    sizes, answers = [], []
    for c in cuts:
        a, b = B.candidates_left(p, trace[:c])
        assert a <= x <= b
        sizes.append(b - a + 1)
        answers.append(TASK.forced_answer(p, trace[:c]))
    # halving at every clue; the redundant episode (clue 2 again) rules nothing out
    assert sizes == [n, n // 2, n // 4, n // 4] + [n >> k for k in range(3, num_clues)]
    for c, size, answer in zip(cuts, sizes, answers):
        a, b = B.candidates_left(p, trace[:c])
        assert answer == str(a) if size > 2 else answer in (str(a), str(b))
    assert TASK.forced_answer(p, trace) == str(x)
    assert TASK.answer_found(p, trace) and not TASK.answer_found(p, trace[:cuts[-1]])
    assert B.exact_j(p, trace) == [1.0 if s == 1 else 0.5 if s == 2 else float(B.candidates_left(p, trace[:c])[0] == x)
                                   for c, s in zip(cuts, sizes)]


def test_forced_answer_with_two_left_is_a_seeded_coin():
    p = _problem("easy", x=2002, lo=2000)
    prefix = "x is from 2002 to 2003.\n\n2 left.\n\n"
    guesses = [TASK.forced_answer(p, prefix + " " * k) for k in range(40)]
    assert set(guesses) == {"2002", "2003"}
    assert guesses == [TASK.forced_answer(p, prefix + " " * k) for k in range(40)]  # deterministic


def test_forced_answer_reads_the_answer_only_through_the_prefix():
    for stratum, n in B.STRATA.items():
        p = _problem(stratum)
        other = Problem(p.id, p.problem, str(p.meta["lo"]), "bisect", dict(p.meta))  # same text, another reference
        assert other.answer != p.answer
        trace = B.trace_text(p.meta["lo"], p.meta["hi"], int(p.answer), [1] * (n.bit_length() - 1))
        for c in _cuts(trace) + [len(trace)]:
            assert TASK.forced_answer(p, trace[:c]) == TASK.forced_answer(other, trace[:c])
        assert not TASK.answer_found(other, trace)


def test_forced_answer_ignores_ranges_outside_the_problem():
    p = _problem("easy", x=2002, lo=2000)
    assert B.candidates_left(p, "x is from 1 to 9999.\n\nx is from 2003 to 2001.") == (2000, 2003)
    assert B.candidates_left(p, "x is from 2002 to 2003.\n\nx is from 1 to 9.") == (2002, 2003)
    with pytest.raises(ValueError, match="no 'from A to B.' range"):
        B.candidates_left(Problem("q", "Find x.", "3", "bisect"), "")


def test_sft_examples_teach_a_forced_answer_at_cuts_before_the_answer_is_found():
    from mrt_engine.config import SFTConfig, from_dict
    from mrt_engine.config.presets import shipped_config
    from mrt_engine.models import load_tokenizer
    from mrt_engine.prompts import get_template
    from mrt_engine.trainer.sft import build_examples

    cfg = from_dict(SFTConfig, shipped_config("sft_bisect"), "sft_bisect")
    template = get_template(cfg.template)
    tok = load_tokenizer("demo-init")
    problems = make_problems("bisect", 40, seed=11)
    examples = build_examples(problems, tok, seed=0, template=template, termination_fraction=cfg.termination_fraction)
    forced = [e for e in examples if e.graded_text.startswith(template.text)]
    assert forced
    assert any(not TASK.answer_found(e.problem, tok.decode(e.context_ids)) for e in forced)


# ---------------------------------------------------------------- the mechanism metric
def test_mechanism_counts_episodes_and_repeated_clues():
    p = _problem("easy", x=2005, n=8)
    assert TASK.mechanism(p, B.trace_text(2000, 2007, 2005, [0, 0, 0])) == {"episodes": 3.0, "redundant": 0.0}
    assert TASK.mechanism(p, B.trace_text(2000, 2007, 2005, [2, 0, 1])) == {"episodes": 6.0, "redundant": 3.0}


def test_mechanism_on_a_truncated_trace():
    p = _problem("hard", x=2037, n=64)
    trace = B.trace_text(2000, 2063, 2037, [0, 2, 0, 0, 0, 0])
    cut = trace.index("Wait, clue 3") + len("Wait, cl")  # stops inside the first application of clue 3
    # the cut-off "Wait, cl" still opens an episode (it starts with "Wait"), one applying no clue
    assert TASK.mechanism(p, trace[:cut]) == {"episodes": 5.0, "redundant": 2.0}
    assert TASK.mechanism(p, trace[:trace.index("Wait, clue 2")]) == {"episodes": 1.0, "redundant": 0.0}


def test_mechanism_counts_a_clue_re_applied_later_not_only_right_after():
    p = _problem("easy", x=2005, n=8)
    text = "\n\n".join(["Clue 1: x >= 2004.", "x is from 2004 to 2007.", "4 left.",
                        "Wait, clue 2: x <= 2005.", "x is from 2004 to 2005.", "2 left.",
                        "Wait, clue 1: x >= 2004.", "x is from 2004 to 2005.", "2 left."])
    assert TASK.mechanism(p, text) == {"episodes": 3.0, "redundant": 1.0}


def test_mechanism_on_garbage_and_empty_text():
    p = _problem("easy")
    assert TASK.mechanism(p, "") == {"episodes": 0.0, "redundant": 0.0}
    assert TASK.mechanism(p, "qq 12 x is from\n\nWait, what") == {"episodes": 1.0, "redundant": 0.0}
    garbage = "\n\n".join(["a", "b", "c", "Wait, no clue here.", "d", "e", "Wait, clue 9: x >= 1."])
    assert TASK.mechanism(p, garbage) == {"episodes": 3.0, "redundant": 0.0}


# ---------------------------------------------------------------- the design fractions
def test_design_fractions_meet_the_preregistered_profile():
    d = B.design_fractions(400, seed=0, max_tokens=B.ROLLOUT_MAX_TOKENS)
    assert d["all"]["redundant_fraction"] >= 0.30
    assert d["easy"]["episodes"] < d["hard"]["episodes"]
    # the budget binds: the median hard trace overruns it, most easy traces fit
    assert d["hard"]["median_tokens"] > B.ROLLOUT_MAX_TOKENS >= d["easy"]["median_tokens"]
    assert d["easy"]["within_budget"] > 0.6 and d["hard"]["within_budget"] < 0.2
    assert d["hard_all_fail"] >= 0.5
    # exact J: the median rises in episode 1 and never falls (it sits on the 1/2 plateau after it)
    steps = d["all"]["median_j"]
    assert steps[0][1] > steps[0][0] and all(after >= before for before, after in steps)


def _simulation():
    path = Path(__file__).resolve().parents[1] / "scripts" / "simulate_bisect_gates.py"
    spec = importlib.util.spec_from_file_location("simulate_bisect_gates", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulated_gates_pass_with_the_designed_forced_answer_and_not_with_a_uniform_guess():
    """The measurement behind the prereg Deviations entry: sampled J (8 answers per cut, common
    random numbers) on designed traces at the budget."""
    sim = _simulation()
    design = sim.simulate("design", 150, B.ROLLOUT_MAX_TOKENS)
    uniform = sim.simulate("uniform", 150, B.ROLLOUT_MAX_TOKENS)
    assert design["spearman_brown"] >= 0.8 > uniform["spearman_brown"]
    assert sum(design["median_rises"]) >= 2
    assert design["j_empty"] <= design["pass@1"] - 0.1
    assert 0.2 <= design["pass@1"] <= 0.6 and design["hard_all_fail"] >= 0.5 and design["redundant_fraction"] >= 0.3


def test_design_table_in_the_docstring_is_the_generators():
    d = B.design_fractions(4000, seed=0, max_tokens=B.ROLLOUT_MAX_TOKENS)
    assert " ".join(B.design_table(d).split()) in " ".join(B.__doc__.split())


def test_the_sft_stages_train_on_the_same_problems_each_from_the_last():
    """Held-out sets exclude the SFT problems of sft_bisect (WARM_START_PRESETS); a later stage
    must not train on others, and each starts from the stage before it."""
    from mrt_engine.config.presets import shipped_config
    from mrt_engine.trainer.setup import WARM_START_PRESETS

    stages = [shipped_config(n) for n in ("sft_bisect", "sft_bisect_stage2", "sft_bisect_stage3", "sft_bisect_stage4")]
    assert WARM_START_PRESETS["bisect"] == "sft_bisect" and stages[0]["data"]["task"] == "bisect"
    for before, after in zip(stages, stages[1:]):
        assert after["data"] == stages[0]["data"]
        assert after["model"]["init_checkpoint"].startswith(before["output_dir"] + "/checkpoints/step_")
        assert after["seed"] != before.get("seed", 0)  # other traces and cuts drawn (SFTConfig.seed: 0)
