import os
import socket

import pytest

from worker.config import load_settings
from worker.ops.startup_checks import StartupError, bind_web_port, missing_codecs, port_holder


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
