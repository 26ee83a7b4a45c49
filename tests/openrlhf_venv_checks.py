"""OpenRLHF checks, run inside the OpenRLHF virtualenv by tests/test_integration_openrlhf_real.py.

(Not collected by the main suite: the file name does not start with ``test_``; OpenRLHF pins
transformers==5.15.0 and GPU packages, so it lives in its own venv built, without its
dependencies, by scripts/setup_openrlhf_venv.sh.)

OpenRLHF 0.11.2 loads a ``--reward.remote_url /path/file.py`` (the old ``--remote_rm_url``) in
``openrlhf.utils.agent.SingleTurnAgentExecutor.__init__``: ``spec_from_file_location("reward_func",
path)``, ``exec_module``, then takes ``reward_func``. Its rollout actor
(``openrlhf.trainer.ray.vllm_engine.LLMRayActor.generate_responses``) awaits
``executor.execute(prompt=, label=, sampling_params=, max_length=, hf_tokenizer=, llm_engine=self)``
once per sample. ``execute`` tokenizes the prompt, awaits ``llm_engine.generate(prompt_token_ids,
sampling_params, multi_modal_data=None)`` (the vLLM ``RequestOutput``), decodes prompt + response
with ``skip_special_tokens=False`` and calls ``reward_func([query], [prompt], [label])`` in a
thread; it reads ``rewards``, ``scores`` and ``extra_logs`` back, and on any exception it only
logs and leaves ``reward=None``. Everything below goes through that real code; only the vLLM
engine is a stand-in (vLLM is not in this venv) that answers with a scripted response.
"""
import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

openrlhf_agent = pytest.importorskip("openrlhf.utils.agent")
from openrlhf.utils import get_tokenizer  # noqa: E402

from mrt_engine.models import load_model  # noqa: E402
from mrt_engine.progress import ProgressEstimator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REWARD_FILE = ROOT / "mrt_engine" / "integrations" / "openrlhf.py"
ALPHA = 1e10  # the random tiny model puts J near 1e-10 (see tests/test_integration_openrlhf.py)
CASES = [("What is 2+3?", "2 plus 3 is \\boxed{5}", "5"), ("What is 7-4?", "Wait, it is 4? No: \\boxed{3}", "3"),
         ("What is 2*6?", "I think \\boxed{11}", "12")]


class ScriptedEngine:
    """Stands in for OpenRLHF's ``LLMRayActor``: ``generate`` returns a vLLM-shaped ``RequestOutput``."""

    def __init__(self, tok, response: str):
        self.ids = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        self.calls = []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.calls.append((list(prompt_token_ids), sampling_params.max_tokens))
        out = SimpleNamespace(token_ids=list(self.ids), finish_reason="stop", logprobs=None, text="")
        return SimpleNamespace(outputs=[out], prompt_token_ids=list(prompt_token_ids))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    os.environ.update(MRT_PROGRESS_MODEL="tiny", MRT_ALPHA=str(ALPHA), MRT_DEVICE="cpu")
    model, tok = load_model("tiny")
    path = tmp_path_factory.mktemp("tiny")
    tok.save_pretrained(path)
    model.config.save_pretrained(path)
    hf_tok = get_tokenizer(str(path), None)  # how OpenRLHF builds the tokenizer it hands the executor
    executor = openrlhf_agent.SingleTurnAgentExecutor(remote_rm_url=[str(REWARD_FILE)])
    return model, tok, hf_tok, executor


def test_openrlhf_loader_takes_our_reward_func(setup):
    executor = setup[3]
    assert callable(executor.reward_func) and executor.reward_func.__name__ == "reward_func"
    assert executor.reward_func.__module__ == "reward_func"  # the name OpenRLHF's loader gives the file
    assert executor.reward_func.__code__.co_filename == str(REWARD_FILE)


@pytest.mark.parametrize("problem, response, label", CASES)
def test_execute_rewards_equal_the_estimator(setup, problem, response, label):
    model, tok, hf_tok, executor = setup
    prompt = hf_tok.apply_chat_template([{"role": "user", "content": problem}], tokenize=False,
                                        add_generation_prompt=True)  # --apply_chat_template
    engine = ScriptedEngine(hf_tok, response)
    params = SimpleNamespace(max_tokens=64, logprobs=None)  # the fields execute reads of vLLM's SamplingParams
    out = asyncio.run(executor.execute(prompt=prompt, label=label, sampling_params=params, max_length=1024,
                                       hf_tokenizer=hf_tok, llm_engine=engine))
    assert engine.calls == [(hf_tok(prompt, add_special_tokens=False)["input_ids"], 64)]
    assert out["reward"] is not None, "OpenRLHF swallowed an exception from reward_func (reward is None)"
    ref = ProgressEstimator(model, tok).estimate([problem], [response], [label])[0]
    assert isinstance(out["reward"], torch.Tensor) and out["reward"].shape == (1,)
    assert out["reward"].tolist() == pytest.approx([ref.outcome + ALPHA * sum(ref.progress)], rel=1e-4, abs=1e-6)
    assert out["scores"].tolist() == [float(ref.outcome)] == [1.0 if label != "12" else 0.0]
    assert set(out["extra_logs"]) == {"mrt_progress", "mrt_outcome", "mrt_j0"}
    # what OpenRLHF's samples generator does with them (torch.tensor([value]), .flatten()[0].item())
    assert torch.tensor([out["reward"]]).shape == (1,)
    assert all(v.flatten()[0].item() == pytest.approx(w) for v, w in
               zip(out["extra_logs"].values(), (sum(ref.progress), ref.outcome, ref.j[0])))
