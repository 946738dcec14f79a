"""SSRF-safe URL fetching. All traffic stays on loopback: an autouse guard fails any other connect."""

from __future__ import annotations

import contextlib
import errno
import http.server
import ipaddress
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.errors import FileTooLarge, InvalidParameter
from mmrag.security import fetch as fetch_module
from mmrag.security.fetch import FetchFailed, FetchRefused, check_url, fetch_url, is_public_address

ip = ipaddress.ip_address
BODY = b"hello document"


def only_127_0_0_1(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address == ip("127.0.0.1")


def to_127_0_0_1(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ip("127.0.0.1")]


# ---------------------------------------------------------------------------------------------------------------------
# Network guard: every TCP/UDP connect made during a test must target loopback.


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    violations: list[str] = []
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0]).split("%")[0]  # type: ignore[index]
            target = ip(host)
            mapped = getattr(target, "ipv4_mapped", None)
            if not (target.is_loopback or (mapped is not None and mapped.is_loopback)):
                violations.append(host)
                raise AssertionError(f"test tried to connect to non-loopback {host}")
            seen.append(host)
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield seen
    assert violations == []


# ---------------------------------------------------------------------------------------------------------------------
# (1) Address policy, as pure functions.

# fmt: off
DENIED = [
    # IPv4: this network, private, CGNAT, loopback, link-local, IETF, documentation, 6to4 relay, benchmarking,
    # multicast, reserved, broadcast
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.0.1",
    "192.168.255.254", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.255.255.254", "169.254.0.1",
    "169.254.169.254", "192.0.0.1", "192.0.0.9", "192.0.2.1", "198.51.100.7", "203.0.113.9", "192.88.99.1",
    "198.18.0.1", "198.19.255.254", "224.0.0.1", "239.255.255.250", "233.252.0.1", "240.0.0.1", "250.1.2.3",
    "255.255.255.255",
    # IPv6: unspecified, loopback, link-local, unique-local, site-local, multicast, documentation, discard,
    # SRv6, benchmarking, Teredo prefix
    "::", "::1", "fe80::1", "febf:ffff::1", "fc00::1", "fd12:3456:789a::1", "fec0::1", "feff::1", "ff02::1",
    "ff0e::fb", "2001:db8::1", "3fff::1", "100::1", "5f00::1", "2001:2::1", "2001::1",
    # IPv4-mapped
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0", "::ffff:100.64.0.1",
    "::ffff:224.0.0.1", "::ffff:255.255.255.255", "::ffff:192.168.1.1",
    # IPv4-compatible and SIIT
    "::127.0.0.1", "::10.0.0.1", "::8.8.8.8", "::ffff:0:127.0.0.1",
    # 6to4 (denied whatever it embeds)
    "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:a00:1::", "2002:c0a8:101::1", "2002:808:808::1",
    # NAT64 well-known prefix embedding non-public IPv4, and the local-use prefix
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.1", "64:ff9b::192.168.0.1", "64:ff9b::0.0.0.0",
    "64:ff9b:1::a9fe:a9fe", "64:ff9b:1::808:808",
    # Teredo: server 65.54.227.120, client 127.0.0.1 / 8.8.8.8 (obfuscated)
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
]

ALLOWED = [
    "8.8.8.8", "1.1.1.1", "93.184.215.14", "11.0.0.1", "100.63.255.255", "100.128.0.1", "172.15.255.255",
    "172.32.0.1", "192.167.255.255", "192.169.0.1", "198.17.255.255", "198.20.0.1", "223.255.255.254",
    "2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "64:ff9b::5db8:d70e",
]
# fmt: on


@pytest.mark.parametrize("address", DENIED)
def test_non_public_addresses_are_denied(address: str) -> None:
    assert is_public_address(ip(address)) is False


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ip(address)) is True


def test_scoped_link_local_is_denied() -> None:
    assert is_public_address(ip("fe80::1%eth0")) is False


# ---------------------------------------------------------------------------------------------------------------------
# (2) URL syntax.


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_x",
        "ftp://example.com/file.pdf",
        "dict://example.com:11211/",
        "javascript:alert(1)",
        "//example.com/doc.pdf",
        "example.com/doc.pdf",
        "http://user@example.com/",
        "http://user:secret@example.com/",
        "http://:secret@example.com/",
        "http://evil.example@127.0.0.1/",
        "http:///doc.pdf",
        "http://:80/",
        "http://",
        "http://example.com:0/",
        "http://example.com:65536/",
        "http://example.com:http/",
        "http://exa mple.com/",
        "http://example.com\x00.evil/",
        "http://127.0.0.1\n.evil.example/",
        "http://example.com\t/",
        "http://[fe80::1%25eth0]/",
        "http://[::1/",
        "http://[not-an-ip]/",
        "http://a..b/",
        "http://exa$mple.com/",
        "http://" + "a" * 9000 + ".com/",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(FetchRefused) as info:
        check_url(url)
    assert isinstance(info.value, InvalidParameter) and info.value.status == 400


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/doc.pdf",
        "HTTPS://Example.COM:8443/a b/doc.pdf?x=1#frag",
        "https://[2606:4700:4700::1111]/",
        "http://example.com:1/",
        "http://example.com:65535/",
        "http://bücher.example/doc",
        "http://0x7f.1/",  # syntactically fine; refused after resolution
    ],
)
def test_check_url_accepts(url: str) -> None:
    parts = check_url(url)
    assert parts.scheme in ("http", "https")


# ---------------------------------------------------------------------------------------------------------------------
# Helpers: counting listeners and local HTTP(S) servers.


def _pending(listener: socket.socket) -> bool:
    # A completed TCP handshake sits in the accept queue, so this is deterministic without an accept thread.
    return bool(select.select([listener], [], [], 0)[0])


@contextlib.contextmanager
def _listener(host: str, port: int = 0) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(16)
        yield sock
    finally:
        sock.close()


@pytest.fixture
def loopback_pair() -> Iterator[tuple[int, socket.socket, socket.socket | None]]:
    """Listeners on 127.0.0.1 and ::1 with the same port (the ::1 one is None without IPv6)."""
    with contextlib.ExitStack() as stack:
        for _ in range(20):
            v4 = stack.enter_context(_listener("127.0.0.1"))
            port = v4.getsockname()[1]
            try:
                v6 = stack.enter_context(_listener("::1", port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                v6 = None
            yield port, v4, v6
            return
        pytest.fail("could not bind the same port on 127.0.0.1 and ::1")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # the client gave up (oversize, deadline, rejected certificate), as it should
            self.close_connection = True

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, Location=location)

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        port = self.server.server_address[1]
        path = self.path
        if path == "/doc":
            self._send(200, BODY, Content_Type="text/plain; charset=utf-8")
        elif path == "/to-other-host":
            self._redirect(f"http://127.0.0.2:{self.server.other_port}/doc")
        elif path == "/to-name":
            self._redirect(f"http://docs.example.test:{port}/doc")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left:
                self._redirect(f"/chain/{left - 1}")
            else:
                self._send(200, BODY)
        elif path == "/missing":
            self._send(404, b"SECRET-BODY", Content_Type="text/plain")
        elif path == "/gzip":
            self._send(200, b"\x1f\x8b" + b"\0" * 20, Content_Encoding="gzip")
        elif path == "/big-length":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            for _ in range(1000):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        elif path == "/big-until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x" * 65536)
        elif path == "/trickle-body":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        elif path == "/trickle-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(100):
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.2)
        else:
            self._send(404)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, str]]
    other_port: int
    server_names: list[str]


@contextlib.contextmanager
def _serve(ssl_context: ssl.SSLContext | None = None) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests, server.other_port, server.server_names = [], 0, []
    if ssl_context is not None:
        ssl_context.sni_callback = lambda sock, name, ctx: server.server_names.append(name or "")
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    with _serve() as running:
        yield running


@pytest.fixture
def base(server: _Server) -> str:
    server.requests.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


# ---------------------------------------------------------------------------------------------------------------------
# (3) Numeric host forms that mean loopback are refused by the default policy before any connection.


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "017700000001",
        "0177.0.0.1",
        "127.1",
        "127.0.0.1",
        "0.0.0.0",
        "0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::1]",
    ],
)
def test_numeric_loopback_forms_refused_without_connecting(
    host: str, loopback_pair: tuple[int, socket.socket, socket.socket | None], connections: list[str]
) -> None:
    port, v4, v6 = loopback_pair
    with pytest.raises(FetchRefused):
        fetch_url(f"http://{host}:{port}/doc", max_bytes=1000, timeout=2)
    assert connections == []
    assert not _pending(v4)
    assert v6 is None or not _pending(v6)
    # Positive control: the listener does notice a real connection.
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        assert _pending(v4)


# ---------------------------------------------------------------------------------------------------------------------
# (4) Against a local server, with a policy that allows 127.0.0.1 only.


def test_fetch_returns_body_and_content_type(base: str, server: _Server) -> None:
    fetched = fetch_url(f"{base}/doc#fragment", max_bytes=1000, allow=only_127_0_0_1)
    assert fetched.data == BODY
    assert fetched.content_type == "text/plain; charset=utf-8"
    assert fetched.final_url == f"{base}/doc#fragment"
    assert server.requests == [("/doc", base.removeprefix("http://"))]


def test_connects_to_the_checked_address_with_the_original_host_header(server: _Server, connections: list[str]) -> None:
    port = server.server_address[1]
    server.requests.clear()
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        calls.append((host, port))
        return [ip("127.0.0.1")]

    fetched = fetch_url(
        f"http://DOCS.example.test:{port}/to-name", max_bytes=1000, allow=only_127_0_0_1, resolver=resolver
    )
    assert fetched.data == BODY
    assert fetched.final_url == f"http://docs.example.test:{port}/doc"
    assert calls == [("docs.example.test", port)] * 2  # resolved once per hop, never again
    assert server.requests == [("/to-name", f"docs.example.test:{port}"), ("/doc", f"docs.example.test:{port}")]
    assert connections == ["127.0.0.1", "127.0.0.1"]


def test_redirect_to_disallowed_address_refused_without_connecting(
    base: str, server: _Server, connections: list[str]
) -> None:
    with _listener("127.0.0.2") as other:
        server.other_port = other.getsockname()[1]
        with pytest.raises(FetchRefused):
            fetch_url(f"{base}/to-other-host", max_bytes=1000, allow=only_127_0_0_1)
        assert not _pending(other)
    assert "127.0.0.2" not in connections


def test_redirect_to_other_scheme_refused(base: str) -> None:
    with pytest.raises(FetchRefused):
        fetch_url(f"{base}/to-file", max_bytes=1000, allow=only_127_0_0_1)


def test_redirect_chain_within_limit_is_followed(base: str) -> None:
    fetched = fetch_url(f"{base}/chain/2", max_bytes=1000, max_redirects=2, allow=only_127_0_0_1)
    assert fetched.data == BODY
    assert fetched.final_url == f"{base}/chain/0"


@pytest.mark.parametrize(("chain", "limit"), [(3, 2), (1, 0), (6, 5)])
def test_redirect_chain_over_limit_refused(base: str, server: _Server, chain: int, limit: int) -> None:
    with pytest.raises(FetchRefused, match="redirect"):
        fetch_url(f"{base}/chain/{chain}", max_bytes=1000, max_redirects=limit, allow=only_127_0_0_1)
    assert len(server.requests) == limit + 1


def test_exact_size_is_accepted_and_one_byte_less_refused(base: str) -> None:
    assert fetch_url(f"{base}/doc", max_bytes=len(BODY), allow=only_127_0_0_1).data == BODY
    with pytest.raises(FileTooLarge):
        fetch_url(f"{base}/doc", max_bytes=len(BODY) - 1, allow=only_127_0_0_1)


@pytest.mark.parametrize("path", ["/big-length", "/big-chunked", "/big-until-close"])
def test_oversize_body_aborted_quickly(base: str, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(FileTooLarge) as info:
        fetch_url(f"{base}{path}", max_bytes=100_000, allow=only_127_0_0_1)
    assert info.value.status == 413
    assert time.monotonic() - started < 1


def test_trickling_body_cut_off_at_deadline(base: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="timed out"):
        fetch_url(f"{base}/trickle-body", max_bytes=1000, timeout=1, allow=only_127_0_0_1)
    assert 0.9 < time.monotonic() - started < 1.8


def test_trickling_headers_cut_off_at_deadline(base: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="timed out"):
        fetch_url(f"{base}/trickle-headers", max_bytes=1000, timeout=0.5, allow=only_127_0_0_1)
    assert 0.4 < time.monotonic() - started < 1.3


def test_http_error_status_is_fetch_failed_without_body(base: str) -> None:
    with pytest.raises(FetchFailed, match="404") as info:
        fetch_url(f"{base}/missing", max_bytes=1000, allow=only_127_0_0_1)
    assert "SECRET" not in str(info.value) and "SECRET" not in info.value.detail


def test_compressed_body_refused(base: str) -> None:
    with pytest.raises(FetchFailed, match="Content-Encoding"):
        fetch_url(f"{base}/gzip", max_bytes=1000, allow=only_127_0_0_1)


def test_connection_refused_is_fetch_failed() -> None:
    with _listener("127.0.0.1") as closed:
        port = closed.getsockname()[1]
    with pytest.raises(FetchFailed):
        fetch_url(f"http://127.0.0.1:{port}/", max_bytes=1000, timeout=2, allow=only_127_0_0_1)


@pytest.mark.parametrize(
    ("answers", "allow"),
    [
        (["93.184.215.14", "127.0.0.1"], is_public_address),
        (["127.0.0.1", "93.184.215.14"], is_public_address),
        (["2606:4700:4700::1111", "::1"], is_public_address),
        (["93.184.215.14", "10.0.0.1"], is_public_address),
        (["127.0.0.1", "127.0.0.2"], only_127_0_0_1),
    ],
)
def test_mixed_dns_answers_refused(
    answers: list[str], allow: object, base: str, server: _Server, connections: list[str]
) -> None:
    def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ip(answer) for answer in answers]

    port = server.server_address[1]
    with pytest.raises(FetchRefused):
        fetch_url(f"http://rebind.example.test:{port}/doc", max_bytes=1000, allow=allow, resolver=resolver)
    assert connections == []
    assert server.requests == []


def test_resolver_that_hangs_is_cut_off_at_deadline() -> None:
    release = threading.Event()

    def slow_resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        release.wait(5)
        return [ip("127.0.0.1")]

    started = time.monotonic()
    try:
        with pytest.raises(FetchFailed, match="timed out"):
            fetch_url("http://slow.example.test/", max_bytes=10, timeout=0.3, resolver=slow_resolver)
    finally:
        release.set()
    assert time.monotonic() - started < 1


def test_environment_proxy_is_ignored(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with _listener("127.0.0.1") as proxy:
        proxy_url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        assert fetch_url(f"{base}/doc", max_bytes=1000, allow=only_127_0_0_1).data == BODY
        assert not _pending(proxy)


# ---------------------------------------------------------------------------------------------------------------------
# https: the TLS server name (SNI and certificate check) is the original host name, not the IP connected to.


def _openssl(args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args.split()], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    d = tmp_path_factory.mktemp("tls")
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    ca_ext = "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    _openssl(f"req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=mmrag-test-ca {ca_ext}", d)
    _openssl(f"req -new {ec} -keyout leaf.key -out leaf.csr -subj /CN=good.test", d)
    (d / "leaf.ext").write_text(
        "subjectAltName=DNS:good.test\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    sign = "-CA ca.pem -CAkey ca.key -CAcreateserial"
    _openssl(f"x509 -req -in leaf.csr {sign} -days 2 -extfile leaf.ext -out leaf.pem", d)
    return d


@pytest.fixture(scope="module")
def tls_server(tls_files: Path) -> Iterator[_Server]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "leaf.pem", tls_files / "leaf.key")
    with _serve(context) as running:
        yield running


@pytest.fixture
def trust_test_ca(tls_files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
    monkeypatch.setattr(fetch_module, "_ssl_context", lambda: context)


@pytest.mark.usefixtures("trust_test_ca")
def test_https_uses_original_hostname_for_sni_and_certificate(tls_server: _Server) -> None:
    port = tls_server.server_address[1]
    tls_server.server_names.clear()
    tls_server.requests.clear()
    fetched = fetch_url(f"https://good.test:{port}/doc", max_bytes=1000, allow=only_127_0_0_1, resolver=to_127_0_0_1)
    assert fetched.data == BODY
    # The certificate names good.test only (no IP SAN), so verification succeeded against the host name.
    assert tls_server.server_names == ["good.test"]
    assert tls_server.requests == [("/doc", f"good.test:{port}")]


@pytest.mark.usefixtures("trust_test_ca")
def test_https_certificate_for_another_name_is_rejected(tls_server: _Server) -> None:
    port = tls_server.server_address[1]
    tls_server.requests.clear()
    with pytest.raises(FetchFailed) as info:
        fetch_url(f"https://evil.test:{port}/doc", max_bytes=1000, allow=only_127_0_0_1, resolver=to_127_0_0_1)
    assert "evil.test" in info.value.detail  # hostname mismatch reported for the name, not for 127.0.0.1
    assert tls_server.requests == []


def test_https_untrusted_certificate_is_rejected_by_default(tls_server: _Server) -> None:
    port = tls_server.server_address[1]
    with pytest.raises(FetchFailed, match="could not connect") as info:
        fetch_url(f"https://good.test:{port}/doc", max_bytes=1000, allow=only_127_0_0_1, resolver=to_127_0_0_1)
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.detail
