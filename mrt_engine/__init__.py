"""mrt_engine: Meta Reinforcement Fine-Tuning (MRT) for LLM reasoners.

Submodules are imported lazily by their users; importing the package itself is cheap.
See README.md for the tour, docs/method.md for the method and docs/architecture.md for the layers.
"""
__version__ = "0.1.0"
