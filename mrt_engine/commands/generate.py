"""``mrt-engine generate``: sample from a model with the in-process engine.

    mrt-engine generate --prompt "What is 2+2?" -n 2 --max-tokens 64
    mrt-engine generate --prompts-file questions.txt --temperature 0 --json
"""
from __future__ import annotations

import argparse
import json

from mrt_engine.errors import MRTUserError, user_input
from mrt_engine.engine import Generator, SamplingParams
from mrt_engine.models import load_model


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("generate", help="sample completions with the in-process engine",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="'tiny', 'smollm2-135m' or a local checkpoint dir")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--prompts-file", help="a text file, one prompt per line")
    p.add_argument("--raw", action="store_true", help="do not wrap prompts in the chat template")
    p.add_argument("-n", type=int, default=1, help="samples per prompt")
    p.add_argument("--temperature", type=float, default=0.7, help="0 is greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", action="append", default=[], help="a stop string (repeatable)")
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--json", action="store_true", help="print one JSON object per sample")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    prompts = list(args.prompt)
    if args.prompts_file:
        with user_input("--prompts-file"), open(args.prompts_file) as f:
            prompts += [line.rstrip("\n") for line in f if line.strip()]
    if not prompts:
        raise MRTUserError("generate: give --prompt TEXT or --prompts-file FILE")
    with user_input("sampling options"):
        params = SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                max_tokens=args.max_tokens, seed=args.seed, stop=tuple(args.stop))
    with user_input(f"--model {args.model}"):
        model, tok = load_model(args.model, dtype=args.dtype)
    if not args.raw and getattr(tok, "chat_template", None):
        inputs = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                  for p in prompts]
    else:
        inputs = prompts
    gen = Generator(model, tok, block_size=args.block_size)
    for prompt, outs in zip(prompts, gen.generate(inputs, params)):
        for k, out in enumerate(outs):
            if args.json:
                print(json.dumps(dict(prompt=prompt, sample=k, text=out.text, num_tokens=len(out.token_ids),
                                      finish_reason=out.finish_reason)))
            else:
                print(f"=== {prompt!r} [{k}] ({len(out.token_ids)} tokens, {out.finish_reason})\n{out.text}\n")
    return 0
