"""TRL: MRTProgressReward and MRTGRPOTrainer inside a real GRPOTrainer run on CPU (tiny model).

The checks recompute every logged reward (and, for the dense trainer, every per-token
advantage) with a fresh ProgressEstimator on a fresh copy of the weights the trainer scored
with, captured at the start of each step.

The random tiny model puts J near 1e-10, so progress values are near 1e-12; alpha = 1e10
lifts them to O(0.01..1) so a dropped or misplaced dense term could not hide in a tolerance.
"""
import copy
import math

import pytest
import torch

from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer  # a dev dependency: this test must run, not skip

from mrt_engine.integrations._common import token_char_ends
from mrt_engine.integrations.trl import MRTGRPOTrainer, MRTProgressReward
from mrt_engine.progress import ProgressEstimator

ALPHA = 1e10
ESTIMATOR = {"scheme": "tokens", "segment_options": {"window": 3}}  # several episodes per completion
NUM_GENERATIONS = 2
BATCH = 2  # completions per step (per_device_train_batch_size)


def _dataset():
    rows = [("What is 2+3?", "5"), ("What is 7-4?", "3"), ("What is 2*6?", "12"), ("What is 9/3?", "3")]
    return Dataset.from_list([{"prompt": [{"role": "user", "content": q}], "answer": a} for q, a in rows])


def _args(tmp_path, max_steps):
    return GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=BATCH, num_generations=NUM_GENERATIONS,
                      max_completion_length=10, max_steps=max_steps, logging_steps=1, report_to=[], use_cpu=True,
                      save_strategy="no", learning_rate=1e-2, seed=0, bf16=False, log_completions=False)


class _Recorder(TrainerCallback):
    """Weights at the start of each step (what the reward scored with) and what TRL logged."""

    def __init__(self):
        self.trainer = None
        self.steps = []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.steps.append({"state": {k: v.detach().clone() for k, v in model.state_dict().items()}})

    def on_step_end(self, args, state, control, **kwargs):
        logs = self.trainer._logs
        step = self.steps[-1]
        step["prompts"] = list(logs["prompt"])
        step["completions"] = list(logs["completion"])
        step["rewards"] = {name: list(vals) for name, vals in logs["rewards"].items()}


@pytest.fixture()
def policy(tiny):
    model, tok = tiny
    return copy.deepcopy(model).train(), copy.deepcopy(tok)  # never train the shared fixture


def _recompute(tiny, step, answers_by_problem):
    """Fresh estimator on a fresh model holding the weights of that step."""
    model = copy.deepcopy(tiny[0])
    model.load_state_dict(step["state"])
    est = ProgressEstimator(model.eval(), tiny[1], **ESTIMATOR)
    problems = [p[-1]["content"] for p in step["prompts"]]
    texts = [c[-1]["content"] for c in step["completions"]]
    return est.estimate(problems, texts, [answers_by_problem[p] for p in problems])


def _answers():
    return {r["prompt"][-1]["content"]: r["answer"] for r in _dataset()}


def test_progress_reward_in_grpo_trainer_logs_estimator_values(tiny, policy, tmp_path):
    model, tok = policy
    reward = MRTProgressReward(model, tok, alpha=ALPHA, **ESTIMATOR)
    rec = _Recorder()
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=_args(tmp_path, 2), train_dataset=_dataset(),
                          processing_class=tok, callbacks=[rec])
    rec.trainer = trainer
    trainer.train()

    assert len(rec.steps) == 2
    key = "rewards/mrt_progress/mean"
    logged_means = [h[key] for h in trainer.state.log_history if key in h]
    assert len(logged_means) == 2
    for step, logged_mean in zip(rec.steps, logged_means):
        expected = [ALPHA * sum(r.progress) for r in _recompute(tiny, step, _answers())]
        logged = step["rewards"]["mrt_progress"]
        assert len(logged) == len(expected) == BATCH  # one prompt x NUM_GENERATIONS per step
        assert logged == pytest.approx(expected, rel=1e-4, abs=1e-6)
        assert logged_mean == pytest.approx(sum(expected) / len(expected), rel=1e-4, abs=1e-6)
    assert any(abs(x) > 1e-3 for s in rec.steps for x in s["rewards"]["mrt_progress"]), "rewards all ~0"
    # The two steps scored different weights: the reward follows the live model.
    assert rec.steps[0]["state"]["lm_head.weight"].ne(rec.steps[1]["state"]["lm_head.weight"]).any()


class _DenseRecorder(MRTGRPOTrainer):
    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.recorded = getattr(self, "recorded", [])
        self.recorded.append({k: out[k].detach().clone() for k in ("advantages", "completion_ids", "completion_mask")})
        return out


def test_dense_trainer_supplies_per_token_progress_advantages(tiny, policy, tmp_path):
    model, tok = policy
    reward = MRTProgressReward(form="dense", alpha=ALPHA, **ESTIMATOR)  # bound by the trainer
    rec = _Recorder()
    trainer = _DenseRecorder(model=model, reward_funcs=[reward], args=_args(tmp_path, 2), train_dataset=_dataset(),
                             processing_class=tok, callbacks=[rec])
    rec.trainer = trainer
    assert reward.scorer.model is model
    trainer.train()

    assert len(trainer.recorded) == len(rec.steps) == 2
    num_multi = 0
    for step, out in zip(rec.steps, trainer.recorded):
        results = _recompute(tiny, step, _answers())
        outcomes = torch.tensor([r.outcome for r in results], dtype=torch.float32)
        assert step["rewards"]["mrt_dense"] == pytest.approx(outcomes.tolist())  # logged reward = outcome
        grouped = outcomes.view(-1, NUM_GENERATIONS)
        seq_adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
        adv, ids, mask = out["advantages"], out["completion_ids"], out["completion_mask"]
        assert adv.shape == ids.shape and adv.dim() == 2  # (B, T)
        for b, res in enumerate(results):
            n = int(mask[b].sum())
            ends = token_char_ends(tok, ids[b, :n].tolist())
            cuts = res.cut_chars
            num_multi += len(res.progress) > 1
            for t in range(ids.shape[1]):
                expected = 0.0
                if t < n:
                    # the episode that holds the token's last character
                    ks = [k for k in range(len(res.progress)) if cuts[k] < ends[t] <= cuts[k + 1]]
                    expected = seq_adv[b].item() + (ALPHA * res.progress[ks[0]] if ks else 0.0)
                assert adv[b, t].item() == pytest.approx(expected, rel=1e-4, abs=1e-6), (b, t)
    assert num_multi > 0, "no completion had more than one episode; the dense check would be vacuous"


def test_termination_baseline_trainer_uses_reward_minus_j0(tiny, policy, tmp_path):
    model, tok = policy
    reward = MRTProgressReward(model, tok, form="termination_baseline", **ESTIMATOR)
    rec = _Recorder()
    trainer = _DenseRecorder(model=model, reward_funcs=[reward], args=_args(tmp_path, 1), train_dataset=_dataset(),
                             processing_class=tok, callbacks=[rec], advantage="termination_baseline")
    rec.trainer = trainer
    trainer.train()
    results = _recompute(tiny, rec.steps[0], _answers())
    expected = [r.outcome - r.j[0] for r in results]
    assert trainer.recorded[0]["advantages"].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-12)
    assert rec.steps[0]["rewards"]["mrt_termination_baseline"] == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_reward_without_answer_column_names_it(tiny):
    reward = MRTProgressReward(*tiny)
    with pytest.raises(KeyError, match="'answer'.*solution"):
        reward(prompts=["What is 1+1?"], completions=["2"], completion_ids=[[17]], solution=["2"],
               trainer_state=None)
    with pytest.raises(ValueError, match="no reference answer for examples \\[1\\]"):
        reward(prompts=["a", "b"], completions=["x", "y"], answer=["2", ""])


def test_reward_takes_plain_prompts_numbers_and_answer_forms(tiny):
    model, tok = tiny
    reward = MRTProgressReward(model, tok, alpha=2.0)
    out = reward(prompts=["What is 2+2?", "What is 1/2?"], completions=["4, so \\boxed{4}", "\\boxed{0.5}"],
                 answer=[4, ["1/2", "0.5"]])
    est = ProgressEstimator(model, tok)
    ref = est.estimate(["What is 2+2?", "What is 1/2?"], ["4, so \\boxed{4}", "\\boxed{0.5}"], ["4", ["1/2", "0.5"]])
    assert out == pytest.approx([2.0 * sum(r.progress) for r in ref], rel=1e-6, abs=1e-30)
    assert all(math.isfinite(x) for x in out)


def test_dense_trainer_needs_matching_reward(tiny, tmp_path):
    model, tok = tiny
    with pytest.raises(ValueError, match="MRTProgressReward\\(form='dense'\\)"):
        MRTGRPOTrainer(model=copy.deepcopy(model), reward_funcs=[MRTProgressReward(form="progress")],
                       args=_args(tmp_path, 1), train_dataset=_dataset(), processing_class=tok)


def test_termination_baseline_trainer_refuses_other_rewards(tiny, tmp_path):
    model, tok = tiny
    def other(completions, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match="only reward function"):
        MRTGRPOTrainer(model=copy.deepcopy(model), args=_args(tmp_path, 1), train_dataset=_dataset(),
                       processing_class=tok, advantage="termination_baseline",
                       reward_funcs=[MRTProgressReward(form="termination_baseline"), other])


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="form="):
        MRTProgressReward(form="sparse")
    with pytest.raises(ValueError, match="alpha"):
        MRTProgressReward(alpha=-1)
    with pytest.raises(RuntimeError, match="bind"):
        MRTProgressReward()(prompts=["q"], completions=["c"], answer=["1"])
