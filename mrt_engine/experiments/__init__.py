"""Experiments that run the library end to end: ``compare`` (MRT against GRPO and controls on the
trainer) and ``exact_j_toy`` (the RL credit alone, on a policy whose J is known in closed form)."""
