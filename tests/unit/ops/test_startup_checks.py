import os
import socket
from pathlib import Path

import pytest

from worker.config import load_settings
from worker.ops.startup_checks import (
    StartupError,
    StartupSettingError,
    bind_web_port,
    check_state_dir,
    missing_codecs,
    port_holder,
)


def test_every_kafka_codec_can_be_decoded() -> None:
    # Without cramjam (aiokafka[lz4,snappy,zstd]) a snappy, lz4 or zstd batch stops the worker.
    assert missing_codecs() == []


def test_web_port_in_use_names_the_settings() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as error:
            bind_web_port(load_settings(web_host="127.0.0.1", web_port=port))
    message = str(error.value)
    assert f"port {port} on 127.0.0.1" in message and "already in use" in message
    assert "SLUICE_WEB_PORT" in message and "SLUICE_WEB_HOST" in message
    assert f"already in use by pid {os.getpid()} (" in message  # which process holds it


def test_the_holder_of_a_port_is_named_by_pid_and_command() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        holder = port_holder(taken.getsockname()[1])
    assert holder is not None and holder.startswith(f"pid {os.getpid()} (")
    assert "python" in holder or "pytest" in holder


def test_web_port_zero_binds_nothing() -> None:
    assert bind_web_port(load_settings(web_port=0)) is None


def test_a_state_dir_under_a_file_is_refused_naming_the_setting_and_the_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StartupSettingError) as error:
        check_state_dir(load_settings(state_dir=tmp_path / "a-file" / "state"))
    assert str(error.value).startswith(
        f"SLUICE_STATE_DIR='{tmp_path}/a-file/state' cannot be created: {tmp_path}/a-file is a "
        "file, not a directory: set SLUICE_STATE_DIR to")


@pytest.mark.parametrize("directory", ["/sys/sluice-state", "/proc"])
def test_a_state_dir_that_cannot_be_made_or_written_is_refused(directory: str) -> None:
    # /sys refuses new directories and /proc new files, to root too.
    with pytest.raises(StartupSettingError) as error:
        check_state_dir(load_settings(state_dir=directory))
    assert str(error.value).startswith(f"SLUICE_STATE_DIR='{directory}' cannot ")


def test_a_usable_state_dir_is_made_and_left_empty(tmp_path: Path) -> None:
    check_state_dir(load_settings(state_dir=tmp_path / "new" / "state"))
    assert list((tmp_path / "new" / "state").iterdir()) == []
