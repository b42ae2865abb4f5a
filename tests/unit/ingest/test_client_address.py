"""The client's address: X-Forwarded-For believed only from trusted proxies, read from the right."""

from __future__ import annotations

import pytest

from worker.config import load_settings
from worker.ingest.client_address import TrustedProxies


def test_without_trusted_proxies_the_header_is_never_believed() -> None:
    assert TrustedProxies([]).client_of("203.0.113.9", ["1.2.3.4"]) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client_it_saw() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_of("10.1.2.3", ["198.51.100.7"]) == "198.51.100.7"


def test_what_a_client_wrote_at_the_left_is_not_believed() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    # The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended the address it saw.
    assert proxies.client_of("10.1.2.3", ["1.1.1.1, 198.51.100.7"]) == "198.51.100.7"


def test_chains_of_trusted_proxies_are_skipped() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.1"])
    assert proxies.client_of("10.1.2.3", ["198.51.100.7, 192.0.2.1", "10.9.9.9"]) == \
        "198.51.100.7"


def test_garbage_in_the_header_falls_back_to_the_peer() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_of("10.1.2.3", ["not-an-address"]) == "10.1.2.3"
    assert proxies.client_of("10.1.2.3", []) == "10.1.2.3"


def test_a_setting_that_is_not_a_network_names_itself() -> None:
    with pytest.raises(Exception, match="10.0.0.0/33"):
        load_settings(ingest_trusted_proxies="10.0.0.0/33")
