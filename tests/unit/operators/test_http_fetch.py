"""The http(s) fetcher refuses every internal address, however spelled, before connecting."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from operators.fetch import Fetcher, FileFetcher
from operators.http_fetch import HttpFetcher, address_refusal
from streamer.core.errors import FetchError

FAKE_DNS = {
    "metadata.google.internal": ["169.254.169.254"],
    "rebind.test": ["127.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.1.2.3"],
    "cgnat.test": ["100.64.0.7"],
}


def resolver(host: str, port: int) -> Sequence[str]:
    if host in FAKE_DNS:
        return FAKE_DNS[host]
    return [str(i[4][0]) for i in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback socket that must never see a connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def hostile(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/a.jpg",
        f"http://localhost:{port}/a.jpg",
        f"http://2130706433:{port}/a.jpg",  # decimal 127.0.0.1
        f"http://0x7f000001:{port}/a.jpg",  # hex
        f"http://0177.0.0.1:{port}/a.jpg",  # octal
        f"http://127.1:{port}/a.jpg",  # short form
        f"http://[::1]:{port}/a.jpg",
        f"http://[::ffff:127.0.0.1]:{port}/a.jpg",  # IPv4-mapped IPv6
        f"http://0.0.0.0:{port}/a.jpg",
        f"https://rebind.test:{port}/a.jpg",  # a name that resolves to loopback
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.5/a.jpg",
        "http://172.16.3.4/a.jpg",
        "http://192.168.1.1/a.jpg",
        "http://cgnat.test/a.jpg",
        "http://100.64.0.1/a.jpg",
        "http://[fd00::1]/a.jpg",
        "http://[fe80::1]/a.jpg",
        "http://mixed.test/a.jpg",  # one public and one private answer
        "http://user:secret@example.com/a.jpg",
    ]


def test_hostile_corpus_is_refused_before_any_connection(
    listener: socket.socket, tmp_path: Path
) -> None:
    port = listener.getsockname()[1]
    root = tmp_path / "media"
    root.mkdir()
    fetcher = Fetcher(
        FileFetcher([root], max_bytes=1000), HttpFetcher(max_bytes=1000, resolver=resolver)
    )
    corpus = [
        *hostile(port),
        f"file://{root}/../../etc/passwd",
        f"file://{root}/%2e%2e/%2e%2e/etc/passwd",
        "file:///etc/shadow",
        f"ftp://127.0.0.1:{port}/a.jpg",
        f"gopher://127.0.0.1:{port}/_a",
        f"dict://127.0.0.1:{port}/info",
    ]
    assert len(corpus) >= 15
    for uri in corpus:
        with pytest.raises(FetchError) as info:
            fetcher.fetch(uri)
        assert info.value.stage == "fetch"
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody ever connected


@pytest.mark.parametrize(
    "uri",
    ["ftp://example.com/a.jpg", "gopher://example.com/a.jpg", "data:image/png;base64,AAAA",
     "s3://bucket/a.jpg", "file:///etc/passwd"],
)  # fmt: skip
def test_other_schemes_are_refused(uri: str, tmp_path: Path) -> None:
    fetcher = Fetcher(FileFetcher([tmp_path], max_bytes=10), HttpFetcher(max_bytes=10))
    with pytest.raises(FetchError):
        fetcher.fetch(uri)


def test_refusals_say_why() -> None:
    assert address_refusal("127.0.0.1") == "loopback"
    assert address_refusal("169.254.169.254") == "link-local (cloud metadata)"
    assert address_refusal("::ffff:10.0.0.1") == "private"
    assert address_refusal("100.100.1.1") == "carrier-grade NAT"
    assert address_refusal("93.184.216.34") is None
    assert address_refusal("127.0.0.1", [ipaddress.ip_network("127.0.0.0/8")]) is None


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        routes = {
            "/ok.jpg": (200, {}, b"JPEGDATA"),
            "/big.jpg": (200, {}, b"x" * 5000),
            "/to-metadata": (302, {"Location": "http://169.254.169.254/"}, b""),
            "/to-ok": (301, {"Location": f"http://127.0.0.1:{port}/ok.jpg"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
        }
        status, headers, body = routes.get(self.path, (404, {}, b"no"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_explicitly_allowed_network_is_fetched(server: str) -> None:
    fetcher = HttpFetcher(max_bytes=1000, allow_networks=["127.0.0.1/32"])
    assert fetcher.fetch(f"{server}/ok.jpg") == b"JPEGDATA"
    assert fetcher.fetch(f"{server}/to-ok") == b"JPEGDATA"  # a redirect, checked again


def test_each_redirect_is_checked_again(server: str) -> None:
    fetcher = HttpFetcher(max_bytes=1000, allow_networks=["127.0.0.1/32"])
    with pytest.raises(FetchError, match="link-local"):
        fetcher.fetch(f"{server}/to-metadata")
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetcher.fetch(f"{server}/loop")


def test_caps_and_statuses(server: str) -> None:
    fetcher = HttpFetcher(max_bytes=1000, allow_networks=["127.0.0.1/32"])
    with pytest.raises(FetchError, match="over 1000"):
        fetcher.fetch(f"{server}/big.jpg")
    with pytest.raises(FetchError, match="HTTP 404"):
        fetcher.fetch(f"{server}/missing.jpg")


def test_host_lists(server: str) -> None:
    with pytest.raises(FetchError, match="deny list"):
        HttpFetcher(max_bytes=10, deny_hosts=[".evil.test"]).fetch("http://cdn.evil.test/a.jpg")
    with pytest.raises(FetchError, match="not on the allow list"):
        HttpFetcher(max_bytes=10, allow_hosts=["media.example.com"]).fetch("http://x.test/a.jpg")
