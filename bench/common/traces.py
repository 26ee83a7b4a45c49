"""The one synthetic workload builder: problems, chat prompts and R1-style traces."""
from __future__ import annotations

PROBLEMS = [("What is 17 * 23?", "391"), ("What is 144 / 12 + 5?", "17"), ("What is 2^10 - 24?", "1000"),
            ("What is 35 + 48 * 2?", "131"), ("What is 999 - 123?", "876"), ("What is 13 * 13?", "169"),
            ("What is 81 / 9 * 7?", "63"), ("What is 256 + 512?", "768")]
_FILLER = ("Let me write the numbers out carefully and keep track of each partial result as I go. ",
           "I will double-check the carry in each column before moving on to the next step. ",
           "Splitting the product into tens and units makes the arithmetic easier to verify. ")


def chat_prompt_ids(tokenizer, problem: str) -> list[int]:
    """The problem under the model's chat template, assistant turn open (no doubled BOS)."""
    messages = [{"role": "user", "content": problem + " Put the final answer in \\boxed{}."}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = messages[0]["content"] + "\n"
    return list(tokenizer.encode(text, add_special_tokens=False))


def make_trace(tokenizer, *, num_tokens: int, num_episodes: int, answer: str) -> str:
    """A synthetic R1-style trace of about ``num_tokens`` tokens and ``num_episodes`` episodes.

    Each episode is three paragraphs (the R1 rule skips a "Wait" paragraph within two
    paragraphs of the previous boundary), episodes after the first open with "Wait,", and
    filler sentences pad every paragraph to the token budget. The last one boxes the answer.
    """
    per_paragraph = max(1, num_tokens // (3 * num_episodes))
    paragraphs = []
    for e in range(num_episodes):
        heads = ["Wait, let me recompute this another way." if e else "Let me work this out step by step.",
                 f"Step {e + 1}: the partial results so far are consistent.",
                 f"So the answer is \\boxed{{{answer}}}." if e == num_episodes - 1 else "That settles this part."]
        for k, head in enumerate(heads):
            sentences = [head]
            while len(tokenizer.encode(" ".join(sentences), add_special_tokens=False)) < per_paragraph:
                filler = _FILLER[(e + k + len(sentences)) % len(_FILLER)].strip()
                # keep the opening word first (the R1 rule reads it) and the boxed answer last
                sentences.insert(0 if k == 2 else len(sentences), filler)
            paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def progress_inputs(tokenizer, *, num_traces: int, trace_tokens: int, num_episodes: int):
    """(problems, traces, answers) for ``num_traces`` traces, one problem each."""
    problems, traces, answers = [], [], []
    for i in range(num_traces):
        problem, answer = PROBLEMS[i % len(PROBLEMS)]
        problems.append(problem + " Put the final answer in \\boxed{}.")
        traces.append(make_trace(tokenizer, num_tokens=trace_tokens, num_episodes=num_episodes, answer=answer))
        answers.append(answer)
    return problems, traces, answers
