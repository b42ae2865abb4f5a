"""A missing prerequisite skips a test, except in CI (tests/support/prerequisites.py)."""

import pytest

from tests.support.prerequisites import in_ci, unavailable


@pytest.mark.parametrize(("value", "ci"), [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True),
    ("", False), ("false", False), ("0", False)])
def test_ci_is_recognised_from_the_variable(value: str, ci: bool) -> None:
    assert in_ci({"CI": value}) is ci
    assert in_ci({}) is False


def test_outside_ci_a_missing_prerequisite_skips() -> None:
    with pytest.raises(pytest.skip.Exception, match="needs network namespaces"):
        unavailable("needs network namespaces", {})


def test_in_ci_a_missing_prerequisite_fails_naming_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="needs network namespaces.*CI=true"):
        unavailable("needs network namespaces", {"CI": "true"})
