"""Benchmark settings: the production stack plus one bare endpoint to measure against."""

from dispatch.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}  # noqa: F405
# As in production: with DEBUG on, Django keeps the last 9,000 queries of every database
# thread in memory, which a socket benchmark would count as the sockets' memory.
DEBUG = False
