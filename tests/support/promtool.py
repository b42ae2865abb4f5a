"""promtool (Debian's prometheus package, installed by `make promtool`, which `make test` runs)."""

from __future__ import annotations

import os
import shutil

import pytest


def promtool() -> str:
    """promtool's path; missing, the test fails in CI and is skipped elsewhere."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is missing: `make promtool` installs Debian's prometheus package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
