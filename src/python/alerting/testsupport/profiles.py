"""Hypothesis profiles: how many examples the property tests try, and whether they are
random. `HYPOTHESIS_PROFILE` chooses: `ci` (the default when CI is set) is derandomized,
so a run on a given commit tries the same inputs every time; `dev` (the default otherwise)
is random and remembers failures in `.hypothesis/`; `thorough` tries many more, for a
local run before a change to a decoder or the worker loop lands."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Tests on the real stack run a worker and its Kafka round trips per example: this share
# of a profile's examples.
STACK_SHARE = 20

settings.register_profile("ci", max_examples=200, derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)


def load() -> None:
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def on_the_stack() -> settings:
    """Settings for a property test whose examples each run against Kafka, Postgres or
    Redis: a twentieth of the profile's examples, and the function-scoped stack fixture
    shared by them (each example keeps to its own records)."""
    return settings(max_examples=max(5, settings().max_examples // STACK_SHARE),
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
