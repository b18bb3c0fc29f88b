"""Simulated environments behind one gymnasium-style interface (see `vla.envs.base`)."""

from vla.envs.base import Env, Expert, Suite, get_suite, list_suites, register_suite

__all__ = ["Env", "Expert", "Suite", "get_suite", "list_suites", "register_suite"]
