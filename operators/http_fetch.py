"""Fetch ``http(s)://`` media without becoming a way into the network the worker runs in.

Every hostname is resolved first and every address it resolves to is checked: loopback,
private, link-local (cloud metadata at 169.254.169.254 included), carrier-grade NAT,
unique-local, multicast, reserved and IPv4-mapped forms of those are refused, however the
URL spells them (decimal, hex, octal, IPv6). The connection then goes to the checked address
(no second lookup a rebinding DNS could answer differently), with the original host in the
``Host`` header and in TLS SNI. Redirects are followed a few times, each one checked again;
the body is capped in bytes and the whole fetch in time.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from urllib.parse import urljoin, urlsplit

from streamer.core.errors import FetchError

__all__ = ["HttpFetcher", "address_refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BLOCKED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "this-network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b::/96", "NAT64"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
)

Resolver = Callable[[str, int], Sequence[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: str, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be fetched from, or None when it may."""
    ip: IPAddress = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed):
        return None
    for net, why in _BLOCKED:
        if ip.version == net.version and ip in net:
            return why
    if ip.is_private or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_multicast:
        return "not a public address"
    return None


class HttpFetcher:
    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float = 10.0,
        max_redirects: int = 3,
        allow_hosts: Sequence[str] = (),
        deny_hosts: Sequence[str] = (),
        allow_networks: Sequence[str] = (),
        resolver: Resolver = _resolve,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self.allow_hosts = tuple(h.lower() for h in allow_hosts)
        self.deny_hosts = tuple(h.lower() for h in deny_hosts)
        self.allow_networks = tuple(ipaddress.ip_network(n, strict=False) for n in allow_networks)
        self.resolver = resolver
        self.tls = ssl.create_default_context()

    @staticmethod
    def _matches(host: str, patterns: Sequence[str]) -> bool:
        return any(host == p or (p.startswith(".") and host.endswith(p)) for p in patterns)

    def check(self, uri: str) -> tuple[str, int, str]:
        """(host, port, address to connect to) for ``uri``, or :class:`FetchError`."""
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(f"scheme {scheme!r} is not allowed here: {uri!r}")
        if parts.username or parts.password:
            raise FetchError("URLs with credentials are refused")
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchError(f"URL has no host: {uri!r}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError(f"bad port in {uri!r}") from exc
        if self._matches(host, self.deny_hosts):
            raise FetchError(f"host {host!r} is on the deny list")
        if self.allow_hosts and not self._matches(host, self.allow_hosts):
            raise FetchError(f"host {host!r} is not on the allow list")
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"cannot resolve {host!r}: {exc}") from exc
        if not addresses:
            raise FetchError(f"{host!r} resolves to no address")
        for address in addresses:
            why = address_refusal(address, self.allow_networks)
            if why is not None:
                raise FetchError(f"{host!r} resolves to {address} ({why}): refused")
        return host, port, addresses[0]

    def fetch(self, uri: str) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        for _ in range(self.max_redirects + 1):
            host, port, address = self.check(uri)
            status, location, body = self._get(uri, host, port, address, deadline)
            if status in (301, 302, 303, 307, 308) and location:
                uri = urljoin(uri, location)
                continue
            if status != 200:
                raise FetchError(f"HTTP {status} from {uri!r}")
            return body
        raise FetchError(f"more than {self.max_redirects} redirects from {uri!r}")

    def _get(
        self, uri: str, host: str, port: int, address: str, deadline: float
    ) -> tuple[int, str | None, bytes]:
        parts = urlsplit(uri)
        remaining = max(0.1, deadline - time.monotonic())
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((address, port), timeout=remaining)
            if parts.scheme.lower() == "https":
                sock = self.tls.wrap_socket(sock, server_hostname=host)
            connection = http.client.HTTPConnection(host, port, timeout=remaining)
            connection.sock = sock  # already connected, to the checked address
            path = parts.path or "/"
            if parts.query:
                path = f"{path}?{parts.query}"
            connection.request("GET", path, headers={"User-Agent": "streamer/0.3", "Accept": "*/*"})
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                return response.status, response.getheader("Location"), b""
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise FetchError(f"{uri!r} is {declared} bytes, over {self.max_bytes}")
            chunks, size = [], 0
            while chunk := response.read(65536):
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(f"{uri!r} is over {self.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{uri!r} took over {self.timeout_s}s")
                chunks.append(chunk)
            return response.status, None, b"".join(chunks)
        except FetchError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"cannot fetch {uri!r}: {exc}") from exc
        finally:
            if sock is not None:
                sock.close()
