"""Rollout backends that need a package of their own (imported lazily by ``make_backend``)."""
