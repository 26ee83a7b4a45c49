"""The optional C++ extension, chosen once at import.

``native`` is the ``mrt_engine._C`` module, or ``None`` when it was not built (or when
``MRT_ENGINE_NO_NATIVE=1``, which tests use to exercise the Python fallbacks). Callers check
``native is not None`` and ``hasattr(native, name)`` once, at their own import.
"""
import os

native = None
if os.environ.get("MRT_ENGINE_NO_NATIVE") != "1":
    try:
        from mrt_engine import _C as native  # noqa: F401
    except ImportError:
        native = None
