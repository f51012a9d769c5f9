"""Benchmark settings: the production stack plus one bare endpoint to measure against."""

from dispatch.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}  # noqa: F405
