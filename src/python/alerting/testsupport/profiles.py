"""Hypothesis profiles: how many examples the property tests try, and whether they are
random. `HYPOTHESIS_PROFILE` chooses: `ci` (the default when CI is set) is derandomized,
so a run on a given commit tries the same inputs every time; `dev` (the default otherwise)
is random and remembers failures in `.hypothesis/`; `thorough` tries many more, for a
local run before a change to a decoder or the worker loop lands."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=200, derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)


def load() -> None:
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def on_the_stack(share: int = 20) -> settings:
    """Settings for a property test whose examples each run against Kafka, Postgres or
    Redis: 1/`share` of the profile's examples (a worker and its Kafka round trips take a
    second an example, a few Redis calls milliseconds), and the function-scoped stack
    fixture shared by them (each example keeps to its own topics or keys)."""
    return settings(max_examples=max(5, settings().max_examples // share),
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
