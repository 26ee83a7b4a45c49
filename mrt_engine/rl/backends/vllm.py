"""``rollout.backend: vllm``: vLLM's ``LLM`` in the trainer's own process (colocated).

vLLM keeps its own copy of the weights, so after every optimizer step
:meth:`VLLMBackend.weights_updated` pushes the policy's parameters into it, in memory, then
calls ``llm.reset_prefix_cache()`` (the cached KV was computed with the old weights). The push
is ``llm.collective_rpc("reload_weights", kwargs={"weights_iterator": [(name, tensor), ...],
"is_checkpoint_format": True})``: vLLM 0.32's worker method that restores the model's
load-time parameters, runs the model's ``load_weights`` on the transformers names (it fuses
q/k/v and gate/up itself) and redoes the post-load processing (the CPU build repacks its
linear weights, so a bare ``load_weights`` after start-up fails there). With V1
multiprocessing disabled (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set here before the engine
starts) the worker lives in this process and ``collective_rpc`` is a plain call: the tensors
are handed over as they are, no checkpoint on disk, no pickling. On a vLLM without
``reload_weights`` the push falls back to ``llm.apply_model(lambda m: m.load_weights(...))``,
the path TRL's colocate mode takes (``llm.llm_engine.model_executor.driver_worker
.model_runner.model.load_weights``).

The engine starts from the policy's config and tokenizer written to a temporary directory,
with ``load_format="dummy"`` (random weights: nothing is read from disk), and the first push
happens at once. ``gpu_memory_utilization`` bounds vLLM's share of the GPU (of CPU memory on
vLLM's CPU build, which reads the same flag so). On CUDA ``enable_sleep_mode`` frees vLLM's
weights and KV cache between rollouts (``llm.sleep``; woken before the next push or
rollout); the CPU build has no sleep mode, so it is not passed there.

vLLM cannot branch a trace at its episode cuts, so progress estimation (sample mode) runs on
the in-process engine over the live weights (``generator``), unless ``progress_engine`` is off.

Create the backend under ``if __name__ == "__main__":`` in scripts: vLLM may spawn processes.
"""
from __future__ import annotations

import contextlib
import os
import random
import tempfile
from dataclasses import replace

import torch

from mrt_engine.config import VLLM_OPTIONS
from mrt_engine.engine import GenerationOutput, Generator, SamplingParams
from mrt_engine.engine.sampler import prompt_seed

INSTALL_HINT = ("vLLM is not installed in this environment; build its venv with `make vllm-venv` "
                "(scripts/setup_vllm_venv.sh) and run there, or pick rollout.backend: engine")


def import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise ModuleNotFoundError(f"rollout.backend='vllm': {INSTALL_HINT}") from exc
    return vllm


@contextlib.contextmanager
def _kept_rng_state():
    """Restore Python's, numpy's and torch's global RNG states on exit."""
    import numpy as np

    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _retie_lm_head(vllm_model) -> None:
    """Point a tied ``lm_head`` at the reloaded embedding again.

    vLLM 0.32's layerwise reload loads the shared tensor through ``embed_tokens`` and puts the
    ``lm_head``'s start-up tensor back (its reload notes: tied parameters follow only one of
    their layers), so without this the head would keep the dummy weights. The head's post-load
    step runs again: the CPU build keeps a packed copy of the head for its GEMM.
    """
    head, embed = getattr(vllm_model, "lm_head", None), getattr(getattr(vllm_model, "model", None), "embed_tokens", None)
    if head is None or embed is None:
        raise RuntimeError(f"cannot re-tie the output head of {type(vllm_model).__name__}: no lm_head/model.embed_tokens")
    head.weight = embed.weight
    quant = getattr(head, "quant_method", None)
    if quant is not None:
        quant.process_weights_after_loading(head)


class VLLMBackend:
    """vLLM generation on a copy of the policy's weights, refreshed after every update."""

    def __init__(self, model, tokenizer, *, options: dict | None = None):
        unknown = sorted(set(options or {}) - set(VLLM_OPTIONS))
        if unknown:
            raise ValueError(f"rollout.vllm: unknown key(s) {unknown}; known keys: {sorted(VLLM_OPTIONS)}")
        self.options = {**VLLM_OPTIONS, **(options or {})}
        vllm = import_vllm()
        # The worker must live in this process, so collective_rpc hands it the live tensors as they are.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self.model, self.tokenizer = model, tokenizer
        self._vllm = vllm
        self._dir = tempfile.TemporaryDirectory(prefix="mrt_vllm_")
        model.config.save_pretrained(self._dir.name)
        tokenizer.save_pretrained(self._dir.name)
        self.device = model.get_input_embeddings().weight.device
        with _kept_rng_state():  # vLLM seeds the global RNGs of the process that starts it
            self.llm = vllm.LLM(**self._llm_kwargs())
        self.sleeping = False
        self.generator = Generator(model, tokenizer) if self.options["progress_engine"] else None
        self.num_pushes = 0
        self.push_weights()

    def _llm_kwargs(self) -> dict:
        o = self.options
        dtype = o["dtype"]
        if dtype == "auto":
            dtype = str(self.model.get_input_embeddings().weight.dtype).removeprefix("torch.")
        kwargs = dict(model=self._dir.name, tokenizer=self._dir.name, load_format="dummy", dtype=dtype, seed=0,
                      enable_prefix_caching=o["enable_prefix_caching"], enforce_eager=o["enforce_eager"],
                      max_num_seqs=o["max_num_seqs"])
        if o["max_model_len"] is not None:
            kwargs["max_model_len"] = o["max_model_len"]
        # vLLM's CPU build reads gpu_memory_utilization as the share of CPU memory it reserves.
        kwargs["gpu_memory_utilization"] = o["gpu_memory_utilization"]
        if self.device.type == "cuda":
            kwargs["enable_sleep_mode"] = o["enable_sleep_mode"]
        kwargs.update(o["llm_kwargs"])
        return kwargs

    def shares_weights_with(self, model) -> bool:
        return False  # vLLM holds a copy; weights_updated() refreshes it

    # -- weights ---------------------------------------------------------------------------
    def push_weights(self) -> None:
        """Copy every policy parameter into vLLM's model, in memory (see the module docstring)."""
        self._wake()
        weights = [(name, p.detach()) for name, p in self.model.named_parameters()]
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights,
                                                              "is_checkpoint_format": True})
        except AttributeError as exc:  # a vLLM before reload_weights: its model loads in place
            if "reload_weights" not in str(exc):
                raise
            self.llm.apply_model(lambda vllm_model: vllm_model.load_weights(weights))
        if getattr(self.model.config, "tie_word_embeddings", False):
            self.llm.apply_model(_retie_lm_head)
        self.num_pushes += 1

    def weights_updated(self) -> None:
        """After an optimizer step: push the new weights, drop every KV computed with the old."""
        self.push_weights()
        self.llm.reset_prefix_cache()
        if self.generator is not None:
            self.generator.reset_prefix_cache()

    def _wake(self) -> None:
        if self.sleeping:
            self.llm.wake_up()
            self.sleeping = False

    def _sleep(self) -> None:
        if self.options["enable_sleep_mode"] and self.device.type == "cuda":
            self.llm.sleep(level=self.options["sleep_level"])
            self.sleeping = True

    # -- generation ------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[list[GenerationOutput]]:
        self._wake()
        requests = [{"prompt_token_ids": [int(t) for t in p]} for p in prompts]
        if params.seed is None:
            per_prompt = self.vllm_params(params)
        else:  # one seed for the call: each prompt its own, as the engine does
            seeds = [prompt_seed(params.seed, r["prompt_token_ids"]) % (2 ** 31 - 1) for r in requests]
            per_prompt = [self.vllm_params(replace(params, seed=s)) for s in seeds]
        outs = self.llm.generate(requests, per_prompt, use_tqdm=False)
        self._sleep()
        return [[self._output(p, c, params) for c in sorted(o.outputs, key=lambda c: c.index)]
                for p, o in zip(prompts, outs)]

    def vllm_params(self, s: SamplingParams):
        """Our :class:`SamplingParams` as vLLM's (the field names are vLLM's already)."""
        seed = s.seed
        if seed is None:  # as the engine does: torch.manual_seed makes the run reproducible
            seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        eos = self.tokenizer.eos_token_id
        stop_ids = [int(t) for t in s.stop_token_ids]
        if eos is not None and not s.ignore_eos and eos not in stop_ids:
            stop_ids.append(int(eos))  # vLLM's own EOS is the saved config's; ours is the tokenizer's
        return self._vllm.SamplingParams(
            n=s.n, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,  # 0 disables top-k in both
            max_tokens=s.max_tokens, seed=seed, stop_token_ids=stop_ids, stop=list(s.stop) or None,
            ignore_eos=s.ignore_eos, logprobs=0 if s.logprobs else None, detokenize=bool(s.stop))

    def _output(self, prompt, completion, s: SamplingParams) -> GenerationOutput:
        ids = list(completion.token_ids)
        # Decoded like the engine decodes (skip special tokens, cut before a stop string).
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        found = [i for i in (text.find(x) for x in s.stop) if i >= 0]
        if found:
            text = text[:min(found)]
        logprobs = None
        if s.logprobs:
            logprobs = [float(step[t].logprob) for step, t in zip(completion.logprobs, ids)]
        finish = "length" if completion.finish_reason == "length" else "stop"
        return GenerationOutput(list(prompt), ids, text, logprobs, finish)
