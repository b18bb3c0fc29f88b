"""Robots shared across suites: each package declares one embodiment (model, controller, limits)."""
