"""`bench_stack`: `python -m bench` and `python -m bench.gil_profile` each start the local stack
when it is not up (`make bench` runs the profile after the table stopped its own stack)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import bench.__main__ as bench_main


class _Stack:
    calls: list[str]
    up_already: bool

    def __init__(self, settings: object) -> None:
        self.data_dir = Path("/nonexistent/bench-stack-data")

    def status(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(down_services=[] if self.up_already else ["kafka"])]

    def up(self) -> None:
        self.calls.append("up")

    def down(self) -> None:
        self.calls.append("down")


@pytest.mark.parametrize(("up_already", "expected"), [(False, ["up", "run", "down"]),
                                                      (True, ["run"])])
def test_a_stack_that_is_down_is_started_and_stopped_around_the_run(
    monkeypatch: pytest.MonkeyPatch, up_already: bool, expected: list[str],
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(_Stack, "calls", calls, raising=False)
    monkeypatch.setattr(_Stack, "up_already", up_already, raising=False)
    monkeypatch.setattr(bench_main, "LocalStack", _Stack)
    with bench_main.bench_stack():
        calls.append("run")
    assert calls == expected


def test_the_profile_runs_inside_the_bench_stack() -> None:
    import inspect

    from bench import gil_profile

    assert "with bench_stack():" in inspect.getsource(gil_profile.main)
