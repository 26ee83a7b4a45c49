"""In-process generator: paged KV cache, prefix sharing, branching, batched sampling.

``from mrt_engine.engine import Generator, SamplingParams``
"""
from .config import EngineConfig, SamplingParams
from .generator import Generator
from .sequence import GenerationOutput

__all__ = ["EngineConfig", "Generator", "GenerationOutput", "SamplingParams"]
