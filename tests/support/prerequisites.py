"""What a test does when this machine lacks something it needs: skip it here, fail it in CI.

A skipped test passes silently: `make test` stays green while, say, no SASL or TLS test ran. On a
developer's machine without network namespaces that is the right call, but CI (the environment
variable CI=true, as CI services set it and `.ci/run` does) is where the suite must prove every
promise, so there the same shortfall fails the test, naming what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the suite runs in CI: CI set to true (or 1, yes)."""
    return environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(reason: str, environ: Mapping[str, str] = os.environ) -> NoReturn:
    """Skip the test for `reason`; in CI fail it instead (a skip there would hide it)."""
    if in_ci(environ):
        pytest.fail(f"{reason}; CI=true, where this test may not be skipped: make it possible "
                    "on the CI machine", pytrace=False)
    pytest.skip(reason)
