"""The vLLM baseline's worker: run by the vLLM virtualenv's python as a subprocess.

vLLM pins its own torch and transformers, so it usually lives in its own virtualenv; this
file needs only the standard library and vllm (it imports nothing of ours). It reads one
JSON request per line on stdin and answers one JSON line per request on stdout, marked with
``MARK`` so that vLLM's own log lines can be told apart. Driven by ``vllm.VLLMWorker``.
"""
import json
import sys
import time

MARK = "@@mrt-bench@@ "


def reply(obj: dict) -> None:
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


def generate(llm, req: dict) -> dict:
    from vllm import SamplingParams

    prompts = [{"prompt_token_ids": ids} for ids in req["prompts"]]
    seeds = req.get("seeds") or [None] * len(prompts)
    params = [SamplingParams(seed=sd, **req["params"]) for sd in seeds]
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    dt = time.perf_counter() - t0
    texts = [[c.text for c in o.outputs] for o in outs]
    num_tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
    return {"ok": True, "elapsed_s": dt, "texts": texts, "num_tokens": num_tokens}


def main() -> None:
    from vllm import LLM

    llm = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "init":
                t0 = time.perf_counter()
                llm = LLM(**req["llm"])
                reply({"ok": True, "init_s": time.perf_counter() - t0})
            elif req["cmd"] == "generate":
                reply(generate(llm, req))
            elif req["cmd"] == "reset_prefix_cache":
                llm.reset_prefix_cache()
                reply({"ok": True})
            elif req["cmd"] == "quit":
                reply({"ok": True})
                return
        except Exception as exc:  # noqa: BLE001 - answer with the error; the client raises it
            reply({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)})


if __name__ == "__main__":
    main()
