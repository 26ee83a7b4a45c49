"""The in-process generator: ``Generator(model, tokenizer, **engine_config)``.

It runs on the model's own parameter tensors (through ``DecoderForward``), so the trainer's
optimizer step is seen by the next ``generate`` call with no copy and no weight sync.

- ``generate(prompts, params)``: n samples per prompt; the prompt is prefilled once and
  forked into n sequences that share its full KV blocks.
- ``branch(prefix_ids, cuts, suffix_ids, params)``: per cut, n continuations of
  ``prefix_ids[:cut] + suffix``; the cuts share the prefix's blocks through the prefix cache
  (the longest cut is admitted first, the others hit its blocks in the same step).
- ``branch_many([(prefix_ids, cuts, suffix_ids), ...], params)``: the same for several
  traces in one batch (what the progress estimator calls).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from .block_manager import BlockManager
from .config import EngineConfig, SamplingParams
from .forward import DecoderForward
from .runner import ModelRunner
from .sampler import SamplingBatch, prompt_seed, sample, sample_seed
from .scheduler import Scheduler
from .sequence import GenerationOutput, Sequence
from mrt_engine.threads import thread_count

Prompt = str | list[int]


@dataclass
class _Request:
    prompt_ids: list[int]
    params: SamplingParams
    seed: int
    outputs: list[GenerationOutput | None]


class Generator:
    def __init__(self, model, tokenizer, **engine_config):
        known = {f.name for f in fields(EngineConfig)}
        unknown = set(engine_config) - known
        if unknown:
            raise TypeError(f"unknown engine options {sorted(unknown)}; known: {sorted(known)}")
        self.config = EngineConfig(**engine_config)
        self.tokenizer = tokenizer
        self.forward = DecoderForward(model)
        shape = self.forward.shape
        self.max_model_len = self.config.max_model_len or shape.max_positions
        num_blocks = self.config.resolve_num_blocks(shape.num_layers, shape.num_kv_heads, shape.head_dim,
                                                    self.forward.dtype)
        self.block_manager = BlockManager(num_blocks, self.config.block_size,
                                          enable_prefix_caching=self.config.enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, max_num_seqs=self.config.max_num_seqs,
                                   max_num_batched_tokens=self.config.max_num_batched_tokens)
        self.runner = ModelRunner(self.forward, self.config, num_blocks)
        self.eos_token_id = getattr(tokenizer, "eos_token_id", None)
        self.num_steps = 0

    # -- public API ------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: SamplingParams | None = None) -> list[list[GenerationOutput]]:
        """``prompts``: text (tokenised with the tokenizer's defaults) or token ids.
        Returns, per prompt, ``params.n`` outputs."""
        params = params or SamplingParams()
        if isinstance(prompts, (str, tuple)) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):
            raise TypeError("prompts must be a list of prompts (each a str or a list of token ids); "
                            "wrap a single prompt in a list")
        prompt_ids = [self._encode(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
        for i, ids in enumerate(prompt_ids):
            self._check_fits(ids, params, f"prompts[{i}]")
        if params.seed is None:
            return self._run([(ids, params) for ids in prompt_ids])
        return self._run([(ids, replace(params, seed=prompt_seed(params.seed, ids))) for ids in prompt_ids])

    def reset_prefix_cache(self) -> None:
        """Drop the prefix cache. Call after the model's weights change (e.g. an optimizer
        step): the engine runs the model's own tensors, but cached KV was computed with the old
        values and would otherwise be reused for a matching prefix."""
        self.block_manager.reset_prefix_cache()

    def branch(self, prefix_ids: list[int], cuts: list[int], suffix_ids: list[list[int]],
               params: SamplingParams | None = None) -> list[list[GenerationOutput]]:
        """Per cut ``c``, ``params.n`` continuations of ``prefix_ids[:c] + suffix_ids[k]``."""
        return self.branch_many([(prefix_ids, cuts, suffix_ids)], params)[0]

    def branch_many(self, traces: list[tuple[list[int], list[int], list[list[int]]]],
                    params: SamplingParams | list[SamplingParams] | None = None) -> list[list[list[GenerationOutput]]]:
        """``traces[t] = (prefix_ids, cuts, suffix_ids)``; returns ``[t][cut][sample]``.

        ``params``: one ``SamplingParams`` for every trace, or a list of one per trace (each
        trace's own seed: its draws then do not depend on which traces share the call).
        """
        if isinstance(params, (list, tuple)):
            if len(params) != len(traces):
                raise ValueError(f"params has {len(params)} entries for {len(traces)} traces; give one per trace "
                                 "or a single SamplingParams")
            per_trace = [p or SamplingParams() for p in params]
        else:
            per_trace = [params or SamplingParams()] * len(traces)
        jobs = []  # (trace, cut index, prompt ids)
        for t, item in enumerate(traces):
            if len(item) != 3:
                raise ValueError(f"traces[{t}] must be (prefix_ids, cuts, suffix_ids)")
            prefix, cuts, suffixes = item
            params = per_trace[t]
            prefix = self._encode(list(prefix), f"traces[{t}].prefix_ids") if prefix else []
            if len(suffixes) != len(cuts):
                raise ValueError(f"traces[{t}]: {len(cuts)} cuts but {len(suffixes)} suffixes; give one suffix per cut")
            for k, (cut, suffix) in enumerate(zip(cuts, suffixes)):
                if not isinstance(cut, int) or not 0 <= cut <= len(prefix):
                    raise ValueError(f"traces[{t}].cuts[{k}]={cut!r}: need an int in [0, {len(prefix)}] (the prefix length)")
                ids = prefix[:cut] + self._encode(list(suffix), f"traces[{t}].suffix_ids[{k}]", allow_empty=True)
                if not ids:
                    raise ValueError(f"traces[{t}] cut {k}: cut=0 with an empty suffix leaves nothing to continue")
                self._check_fits(ids, params, f"traces[{t}] cut {k}")
                jobs.append((t, k, ids))
        # Longest cut first: its blocks enter the prefix cache and the shorter cuts hit them.
        order = sorted(range(len(jobs)), key=lambda j: -len(jobs[j][2]))
        results = self._run([(jobs[j][2], per_trace[jobs[j][0]]) for j in order])
        out: list[list[list[GenerationOutput]]] = [[None] * len(item[1]) for item in traces]
        for j, res in zip(order, results):
            t, k, _ = jobs[j]
            out[t][k] = res
        return out

    # -- input checks ------------------------------------------------------------------------
    def _encode(self, prompt: Prompt, name: str, allow_empty: bool = False) -> list[int]:
        if isinstance(prompt, str):
            ids = list(self.tokenizer.encode(prompt)) if prompt else []
        elif isinstance(prompt, (list, tuple)) or torch.is_tensor(prompt):
            ids = [int(t) for t in prompt]
        else:
            raise TypeError(f"{name} is a {type(prompt).__name__}; give a str or a list of token ids")
        if not ids and not allow_empty:
            raise ValueError(f"{name} is empty; every prompt needs at least one token")
        vocab = self.forward.shape.vocab_size
        bad = [t for t in ids if not 0 <= t < vocab]
        if bad:
            raise ValueError(f"{name} has token ids outside the vocabulary [0, {vocab}): {bad[:5]}")
        return ids

    def _check_fits(self, ids: list[int], params: SamplingParams, name: str) -> None:
        if len(ids) >= self.max_model_len:
            raise ValueError(f"{name} has {len(ids)} tokens, more than the context allows "
                             f"(max_model_len={self.max_model_len}, one position is needed to generate)")
        total = min(len(ids) + params.max_tokens, self.max_model_len)
        bs = self.config.block_size
        if (total + bs - 1) // bs > self.block_manager.num_blocks:
            raise ValueError(f"{name}: {total} tokens need {(total + bs - 1) // bs} KV blocks but the cache holds "
                             f"{self.block_manager.num_blocks}; raise num_blocks/kv_cache_bytes or lower max_tokens")

    # -- the loop ----------------------------------------------------------------------------
    def _run(self, work: list[tuple[list[int], SamplingParams]]) -> list[list[GenerationOutput]]:
        if self.scheduler.has_work():
            raise RuntimeError("the generator is already running (calls are not re-entrant)")
        requests = []
        for r, (ids, params) in enumerate(work):
            seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, ()).item())
            requests.append(_Request(ids, params, seed, [None] * params.n))
            self.scheduler.add(Sequence(ids, params, request_id=r, sample_index=0, seed=sample_seed(seed, 0),
                                        num_samples=params.n))
        self._requests = requests
        threads = self.config.num_threads if self.forward.device.type == "cpu" else None
        try:
            with thread_count(threads):
                while self.scheduler.has_work():
                    self.step()
        except BaseException:
            self._abort()
            raise
        return [req.outputs for req in requests]

    def _abort(self) -> None:
        self.scheduler.abort_all()
        self.block_manager.take_copies()
        self.runner.cache.zero_blocks(self.block_manager.take_fresh())

    def step(self) -> None:
        batch = self.scheduler.schedule()
        self.runner.cache.zero_blocks(self.block_manager.take_fresh())
        self.runner.cache.copy_blocks(self.block_manager.take_copies())
        seqs, samplers, logits = self.runner.execute(batch)
        self.num_steps += 1
        for seq, n in zip(batch.seqs, batch.num_new_tokens):
            seq.num_computed_tokens += n
            if seq.num_computed_tokens == len(seq):
                seq.prefilled = True
        if logits is None:
            return
        # Rows: one per sampling sequence, n for a parent about to fork.
        row_index, row_seq = [], []
        for i, seq in enumerate(samplers):
            row_index += [i] * seq.num_samples
            row_seq.append(seq)
        req = self._requests
        seeds, positions, temps, top_ps, top_ks = [], [], [], [], []
        want_logprobs = False
        for seq in samplers:
            p = seq.params
            want_logprobs |= p.logprobs
            for k in range(seq.num_samples):
                seeds.append(seq.seed if k == 0 else sample_seed(req[seq.request_id].seed, k))
                positions.append(seq.num_output_tokens)
                temps.append(p.temperature)
                top_ps.append(p.top_p)
                top_ks.append(p.top_k)
        if len(row_index) != len(samplers):
            logits = logits[torch.tensor(row_index, device=logits.device)]
        tokens, logprobs = sample(logits, SamplingBatch(temps, top_ps, top_ks, seeds, positions, want_logprobs))
        tokens = tokens.tolist()
        logprobs = logprobs.tolist() if logprobs is not None else None
        r = 0
        for seq in samplers:
            n = seq.num_samples
            family = [seq] if n == 1 else [seq] + self._fork(seq, seeds[r + 1:r + n])
            for k, s in enumerate(family):
                self._append(s, tokens[r + k], logprobs[r + k] if logprobs is not None else None)
            r += n

    def _fork(self, parent: Sequence, seeds: list[int]) -> list[Sequence]:
        """Children 1..n-1 of a parent that just finished its prompt: full blocks shared,
        the partial last block copied. Children that find no free block for that copy are
        queued to be recomputed instead (never dropped)."""
        bm = self.block_manager
        bs = bm.block_size
        children = [Sequence(parent.token_ids, parent.params, request_id=parent.request_id, sample_index=k + 1,
                             seed=s) for k, s in enumerate(seeds)]
        parent.num_samples = 1
        partial = parent.num_computed_tokens % bs != 0
        num_now = len(children) if not partial else min(len(children), bm.num_free_blocks)
        forked, queued = children[:num_now], children[num_now:]
        bm.fork(parent, forked)
        parent.group_id = parent.seq_id
        for child in forked:
            child.status = parent.status
            child.prefilled = True
            child.group_id = parent.group_id
            self.scheduler.add_running(child)
        for child in queued:
            self.scheduler.add(child)
        return children

    def _append(self, seq: Sequence, token: int, logprob: float | None) -> None:
        """Add a sampled token to ``seq`` (a queued fork child recomputes it with its prompt)."""
        seq.token_ids.append(token)
        if seq.params.logprobs:
            seq.logprobs.append(logprob)
        reason = self._finish_reason(seq, token)
        if reason is not None:
            seq.finish_reason = reason
            self.scheduler.finish(seq)
            self._emit(seq)

    def _finish_reason(self, seq: Sequence, token: int) -> str | None:
        p = seq.params
        if (token == self.eos_token_id and not p.ignore_eos) or token in p.stop_token_ids:
            return "stop"
        if p.stop:
            width = max(len(s) for s in p.stop) + 4
            tail = self.tokenizer.decode(seq.output_ids[-width:], skip_special_tokens=True)
            if any(s in tail for s in p.stop):
                return "stop"
        if seq.num_output_tokens >= p.max_tokens or len(seq) >= self.max_model_len:
            return "length"
        return None

    def _emit(self, seq: Sequence) -> None:
        out_ids = seq.output_ids
        text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
        if seq.params.stop:
            found = [i for i in (text.find(s) for s in seq.params.stop) if i >= 0]
            if found:
                text = text[:min(found)]
        req = self._requests[seq.request_id]
        req.outputs[seq.sample_index] = GenerationOutput(
            prompt_ids=list(req.prompt_ids), token_ids=list(out_ids), text=text,
            logprobs=list(seq.logprobs) if seq.params.logprobs else None, finish_reason=seq.finish_reason)
