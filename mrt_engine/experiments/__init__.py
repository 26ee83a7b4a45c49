"""Experiments that run the library end to end: ``compare`` (MRT against GRPO and controls on the
trainer), ``regimes`` (the tasks ``compare`` runs on and the preregistered rule of each), ``gates``
(a regime's warm-start gates, checked before any RL) and ``exact_j_toy`` (the RL credit alone, on a
policy whose J is known in closed form)."""
