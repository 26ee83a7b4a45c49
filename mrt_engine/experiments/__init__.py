"""Experiments that run the library end to end: ``compare`` (MRT against GRPO and controls)."""
