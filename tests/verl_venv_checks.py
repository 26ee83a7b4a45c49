"""verl checks, run inside the verl virtualenv by tests/test_integration_verl.py.

(Not collected by the main suite: the file name does not start with ``test_``; verl pins
transformers<5.11, so it lives in its own venv built by scripts/setup_verl_venv.sh.)

Everything here goes through verl's own objects: ``DataProto`` batches laid out as verl's
agent loop lays them out, its registries, its ``load_reward_manager`` and the trainer's
``compute_advantage``.
"""
import asyncio
import copy
import os

import numpy as np
import pytest
import torch

verl = pytest.importorskip("verl")
from omegaconf import OmegaConf  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl import DataProto  # noqa: E402

from mrt_engine.integrations._common import EstimatorConfig, ProgressScorer, token_char_ends  # noqa: E402
from mrt_engine.progress import ProgressEstimator  # noqa: E402

ALPHA = 1e10  # the random tiny model puts J near 1e-10 (see tests/test_integration_trl.py)
ESTIMATOR = {"scheme": "tokens", "segment_options": {"window": 3}}
PROBLEMS = ["What is 2+3?", "What is 2+3?", "What is 7-4?", "What is 7-4?"]
ANSWERS = ["5", "5", "3", "3"]
RESPONSES = ["I add them: 2 plus 3 gives \\boxed{5}", "Maybe \\boxed{6}", "7 minus 4 is 3", "Hmm, 7-4 so \\boxed{3}"]


def test_module_was_imported_through_verl_external_modules():
    assert "mrt_engine.integrations.verl" in os.environ.get("VERL_USE_EXTERNAL_MODULES", "")
    import sys

    assert "mrt_engine.integrations.verl" in sys.modules  # verl's __init__ imported it


def test_verl_registries_resolve_ours():
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.workers.reward_manager import get_reward_manager_cls as get_classic_cls

    from mrt_engine.integrations import verl as ours

    assert get_adv_estimator_fn("mrt_dense") is ours.compute_mrt_dense_advantage
    assert get_reward_manager_cls("mrt") is ours.MRTRewardLoopManager
    assert get_classic_cls("mrt") is ours.MRTRewardManager
    # What verl's RewardManagerConfig.__post_init__ asserts for source="register" (constructing the
    # config itself fails in verl 0.9.1: its BaseConfig has no __post_init__ to chain to).
    from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER

    assert "mrt" in REWARD_MANAGER


def _batch(tok, *, prompt_len=24, response_len=20):
    """A verl rollout batch: left-padded prompts, right-padded responses, masks, uid groups."""
    rows_p, rows_r = [], []
    for q, r in zip(PROBLEMS, RESPONSES):
        p_ids = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=True, add_generation_prompt=True)
        p_ids = list(p_ids["input_ids"] if isinstance(p_ids, dict) or hasattr(p_ids, "keys") else p_ids)[-prompt_len:]
        r_ids = tok(r, add_special_tokens=False)["input_ids"][:response_len]
        rows_p.append(p_ids)
        rows_r.append(r_ids)
    pad = tok.pad_token_id
    prompts = torch.full((len(rows_p), prompt_len), pad, dtype=torch.long)  # [B, P]
    responses = torch.full((len(rows_r), response_len), pad, dtype=torch.long)  # [B, R]
    attention = torch.zeros(len(rows_p), prompt_len + response_len, dtype=torch.long)  # [B, P+R]
    for i, (p, r) in enumerate(zip(rows_p, rows_r)):
        prompts[i, prompt_len - len(p):] = torch.tensor(p)
        responses[i, : len(r)] = torch.tensor(r)
        attention[i, prompt_len - len(p): prompt_len + len(r)] = 1
    batch = TensorDict({"prompts": prompts, "responses": responses, "attention_mask": attention,
                        "input_ids": torch.cat([prompts, responses], 1),
                        "response_mask": attention[:, prompt_len:].clone()}, batch_size=len(rows_p))
    raw = np.empty(len(PROBLEMS), dtype=object)
    for i, q in enumerate(PROBLEMS):
        raw[i] = [{"role": "user", "content": q}]
    non_tensor = {
        "reward_model": np.array([{"ground_truth": a, "style": "rule"} for a in ANSWERS], dtype=object),
        "data_source": np.array(["synthetic"] * len(PROBLEMS), dtype=object),
        "uid": np.array(["g0", "g0", "g1", "g1"], dtype=object),
        "raw_prompt": raw,
    }
    return DataProto(batch=batch, non_tensor_batch=non_tensor), rows_r


def _expected(tiny, responses_ids):
    model, tok = tiny
    est = ProgressEstimator(model, tok, **ESTIMATOR)
    texts = [tok.decode(ids, skip_special_tokens=True) for ids in responses_ids]
    return est.estimate(PROBLEMS, texts, ANSWERS)


def _scorer(tiny):
    return ProgressScorer(*tiny, EstimatorConfig(**ESTIMATOR))


def test_classic_manager_places_progress_on_episode_ends_and_outcome_last(tiny):
    from verl.workers.reward_manager import get_reward_manager_cls

    model, tok = tiny
    data, rows_r = _batch(tok)
    manager = get_reward_manager_cls("mrt")(tok, 0, None, "data_source", form="dense", alpha=ALPHA,
                                            scorer=_scorer(tiny))
    out = manager(data, return_dict=True)
    scores = out["reward_tensor"]
    assert scores.shape == data.batch["responses"].shape and scores.dtype == torch.float32
    results = _expected(tiny, rows_r)
    num_multi = 0
    for b, (ids, res) in enumerate(zip(rows_r, results)):
        n = len(ids)
        assert torch.all(scores[b, n:] == 0), "reward on padding"
        ends = token_char_ends(tok, ids)
        expected = torch.zeros(n, dtype=torch.float64)
        for k, p in enumerate(res.progress):
            inside = [t for t in range(n) if res.cut_chars[k] < ends[t] <= res.cut_chars[k + 1]]
            at = inside[-1] if inside else min(next((t for t in range(n) if ends[t] > res.cut_chars[k]), n - 1), n - 1)
            expected[at] += ALPHA * p
        expected[n - 1] += res.outcome
        num_multi += len(res.progress) > 1
        assert scores[b, :n].double().tolist() == pytest.approx(expected.tolist(), rel=1e-4, abs=1e-6)
        assert scores[b].sum().item() == pytest.approx(res.outcome + ALPHA * sum(res.progress), rel=1e-4, abs=1e-5)
    assert num_multi >= 2
    assert out["reward_extra_info"]["mrt_outcome"] == [r.outcome for r in results]
    assert sum(r.outcome for r in results) >= 1  # the batch has a correct response (graded by our grader)


def test_verl_compute_advantage_runs_mrt_dense(tiny):
    """The trainer's own compute_advantage resolves "mrt_dense" and gets return-to-go advantages."""
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from verl.trainer.config import AlgoConfig
    from verl.workers.reward_manager import get_reward_manager_cls

    model, tok = tiny
    data, rows_r = _batch(tok)
    manager = get_reward_manager_cls("mrt")(tok, 0, None, form="dense", alpha=ALPHA, scorer=_scorer(tiny))
    data.batch["token_level_scores"] = manager(data)
    data.batch["token_level_rewards"] = data.batch["token_level_scores"]
    data = compute_advantage(data, adv_estimator="mrt_dense", config=AlgoConfig(adv_estimator="mrt_dense"))
    adv, mask = data.batch["advantages"], data.batch["response_mask"].float()
    rewards = data.batch["token_level_rewards"]
    assert adv.shape == rewards.shape
    totals = rewards.sum(1)
    for b in range(len(data)):
        group = [i for i in range(len(data)) if data.non_tensor_batch["uid"][i] == data.non_tensor_batch["uid"][b]]
        mean, std = totals[group].mean(), totals[group].std()
        for t in range(adv.shape[1]):
            to_go = rewards[b, t:].sum() if mask[b, t] else torch.tensor(0.0)
            want = ((to_go - mean) / (std + 1e-6)) * mask[b, t]
            assert adv[b, t].item() == pytest.approx(want.item(), rel=1e-4, abs=1e-5), (b, t)
    # Unlike verl's GRPO (one number per row), the advantage changes inside a response.
    first = [int(mask[b].sum()) for b in range(len(data))]
    assert any(adv[b, 0] != adv[b, first[b] - 1] for b in range(len(data)))
    grpo = compute_advantage(copy.deepcopy(data), adv_estimator="grpo")
    assert all(torch.unique(grpo.batch["advantages"][b, : first[b]]).numel() == 1 for b in range(len(data)))


def test_dense_estimator_std_switch_and_singletons():
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    fn = get_adv_estimator_fn("mrt_dense")
    rewards = torch.tensor([[0.5, 0.0, 1.0, 0.0], [0.0, -0.2, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    adv, ret = fn(token_level_rewards=rewards, response_mask=mask, index=np.array(["a", "a", "b"], dtype=object),
                  config=OmegaConf.create({"norm_adv_by_std_in_grpo": False}))
    assert ret[0].tolist() == pytest.approx([1.5, 1.0, 1.0, 0.0])
    mean_a = (1.5 + -0.2) / 2
    assert adv[0].tolist() == pytest.approx([1.5 - mean_a, 1.0 - mean_a, 1.0 - mean_a, 0.0])
    assert adv[2].tolist() == pytest.approx([0.3, 0.0, 0.0, 0.0])  # a group of one: mean 0, std 1


def test_reward_loop_manager_through_load_reward_manager(tiny):
    """verl 0.9's loader builds our reward-loop manager from config; run_single scores one row."""
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
    from verl.trainer.ppo.reward import load_reward_manager

    model, tok = tiny
    config = OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": "tiny"}},
        "reward": {"reward_manager": {"source": "register", "name": "mrt"},
                   "custom_reward_function": {"path": None},
                   "reward_kwargs": {"mrt_form": "progress", "mrt_alpha": ALPHA, "mrt_mode": "score"}},
    })
    manager = load_reward_manager(config, tok)
    assert type(manager).__name__ == "MRTRewardLoopManager" and isinstance(manager, RewardManagerBase)
    for key, value in ESTIMATOR.items():  # the test's segmentation; the model came from config
        setattr(manager.scorer.config, key, value)
    data, rows_r = _batch(tok)
    results = _expected(tiny, rows_r)
    outs = [asyncio.new_event_loop().run_until_complete(manager.run_single(data[i:i + 1])) for i in range(len(data))]
    want = [r.outcome + ALPHA * sum(r.progress) for r in results]
    # The loaded model is load_model("tiny") (same seed as the fixture), a separate object.
    assert manager.scorer.model is not model
    assert [o["reward_score"] for o in outs] == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert set(outs[0]["reward_extra_info"]) == {"mrt_outcome", "mrt_progress", "mrt_j0"}
    rm_scores = type(manager).assemble_rm_scores(data, [o["reward_score"] for o in outs])  # verl's placement
    valid = data.batch["response_mask"].sum(1)
    for b in range(len(data)):
        assert rm_scores[b, int(valid[b]) - 1].item() == pytest.approx(want[b], rel=1e-5)
        assert rm_scores[b].count_nonzero() <= 1


def test_reward_loop_manager_on_the_agent_loop_layout(tiny):
    """The single-row DataProto verl's AgentLoopWorker._compute_score sends to run_single:
    unpadded prompt and response, an all-ones mask, and every data set field replicated
    with ``np.array([v] * n)`` (so raw_prompt becomes a 2-D object array of messages)."""
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    model, tok = tiny
    config = OmegaConf.create({"reward": {"reward_kwargs": {"mrt_form": "termination_baseline"}}})
    manager = get_reward_manager_cls("mrt")(config, tok, None, scorer=_scorer(tiny))
    q, a, r = PROBLEMS[0], ANSWERS[0], RESPONSES[0]
    p_ids = tok(tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True),
                add_special_tokens=False)["input_ids"]
    r_ids = tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    prompts, responses = torch.tensor([p_ids]), torch.tensor([r_ids])
    input_ids = torch.cat([prompts, responses], 1)
    kwargs = {"raw_prompt": [{"role": "user", "content": q}], "data_source": "synthetic",
              "reward_model": {"style": "rule", "ground_truth": a}, "extra_info": {"index": 0}}
    data = DataProto(
        batch=TensorDict({"prompts": prompts, "responses": responses, "attention_mask": torch.ones_like(input_ids),
                          "input_ids": input_ids, "position_ids": torch.arange(input_ids.shape[1])[None]},
                         batch_size=1),
        non_tensor_batch={**{k: np.array([v] * 1) for k, v in kwargs.items()},
                          "__num_turns__": np.array([1]), "prompt_len": np.array([len(p_ids)]),
                          "response_len": np.array([len(r_ids)])})
    assert data.non_tensor_batch["raw_prompt"].shape == (1, 1)  # what np.array([messages]) makes
    out = asyncio.new_event_loop().run_until_complete(manager.run_single(data))
    text = tok.decode(r_ids, skip_special_tokens=True)
    ref = ProgressEstimator(model, tok, **ESTIMATOR).estimate([q], [text], [a])[0]
    assert out["reward_score"] == pytest.approx(ref.outcome - ref.j[0], rel=1e-6, abs=1e-12)
    assert out["reward_extra_info"]["mrt_outcome"] == ref.outcome == 1.0


def test_reward_loop_manager_refuses_dense(tiny):
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    config = OmegaConf.create({"reward": {"reward_kwargs": {"mrt_form": "dense"}}})
    with pytest.raises(ValueError, match="classic reward_fn"):
        get_reward_manager_cls("mrt")(config, tiny[1], None, scorer=_scorer(tiny))


def test_missing_ground_truth_is_a_clear_error(tiny):
    from verl.workers.reward_manager import get_reward_manager_cls

    data, _ = _batch(tiny[1])
    data.non_tensor_batch["reward_model"] = np.array([{"style": "rule"}] * len(data), dtype=object)
    manager = get_reward_manager_cls("mrt")(tiny[1], 0, None, scorer=_scorer(tiny))
    with pytest.raises(KeyError, match="ground_truth"):
        manager(data)
