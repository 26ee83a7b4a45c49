"""mrt_engine: Meta Reinforcement Fine-Tuning (MRT) for LLM reasoners.

Submodules are imported lazily by their users; importing the package itself is cheap.
See README.md for the tour and ``../shared/docs/mrt.md`` for the method.
"""
__version__ = "0.1.0"
