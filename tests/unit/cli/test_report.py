import builtins
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli.main import cli


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["report", *args], terminal_width=200)
    return result.exit_code, " ".join(result.output.split())


def test_an_unreadable_time_is_one_line_naming_the_option(tmp_path: Path) -> None:
    code, output = _run("--since", "yesterday", "--output", str(tmp_path / "r.html"))
    assert code == 2
    assert "error: --since 'yesterday' is not a time" in output and "Traceback" not in output


def test_the_old_option_names_are_accepted_too(tmp_path: Path) -> None:
    code, output = _run("--from-time", "2026-11-02", "--to-time", "2026-11-01")
    assert code == 2 and "must come before --until" in output


def test_without_the_report_extra_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def without_duckdb(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if name == "duckdb":
            raise ImportError("No module named 'duckdb'", name="duckdb")
        return real_import(name, *args, **kwargs)

    for module in [name for name in sys.modules if name.startswith("worker.report")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", without_duckdb)
    code, output = _run("--since", "1d")
    assert code == 2
    assert "needs the report extra (duckdb is missing): pip install 'sluice[report]'" in output
