"""Who sent a request: the client's address, believing `X-Forwarded-For` only from trusted proxies.

A proxy in front of `sluice ingest` (a load balancer, an Ingress controller) connects on the
client's behalf and appends the address it saw to `X-Forwarded-For`. Anyone can send that header,
so it is read only when the connection comes from a proxy listed in SLUICE_INGEST_TRUSTED_PROXIES,
and then from the right: each trusted hop is skipped, and the first address that is not a trusted
proxy is the client (what a client wrote at the left of the header is never believed). Rate
limits per client address and Segment's `context.ip` both use this address.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property

from aiohttp import web

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxies whose `X-Forwarded-For` is believed (SLUICE_INGEST_TRUSTED_PROXIES)."""

    def __init__(self, entries: list[str]) -> None:
        self.entries = entries

    @cached_property
    def networks(self) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in self.entries)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_of(self, peer: str | None, forwarded_for: list[str]) -> str | None:
        """The client's address, from the connection's peer and the `X-Forwarded-For` values."""
        if peer is None or not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed([hop for hop in hops if hop]):
            if not self.trusts(hop):
                return hop if _is_address(hop) else peer
        return peer


def client_address(request: web.Request, proxies: TrustedProxies) -> str | None:
    """The address of the client that sent `request` (None where the transport has none)."""
    return proxies.client_of(request.remote, request.headers.getall("X-Forwarded-For", []))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
