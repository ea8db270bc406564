"""Shared pytest settings: a fixed hypothesis profile so every run draws the same examples."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "xenmca",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("xenmca")
