"""Server-side fetching of user-supplied URLs ("upload a document by URL"), safe against SSRF.

Every hop (the first URL and each redirect target) is checked: scheme, host syntax, port and credentials; then the
host is resolved once and every resolved address must pass the policy. The connection goes to the address that was
checked: the request URL carries the IP literal, and the original host name travels in the Host header and, for
https, as the TLS server name (SNI and certificate hostname verification). DNS therefore cannot hand out a different
answer between the check and the connection.

`fetch_url` blocks; call it from a worker thread, not from an event loop.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import httpcore
import httpx

from mmrag.errors import FileTooLarge, InvalidParameter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 8192
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity", "User-Agent": "mmrag-fetch/1"}


class FetchRefused(InvalidParameter):
    """The URL is not allowed (scheme, host, address, port, credentials, redirect count...)."""


class FetchFailed(InvalidParameter):
    """The URL was allowed but the remote could not be fetched (timeout, connection error, HTTP error status...)."""


@dataclass
class Fetched:
    data: bytes
    content_type: str | None
    final_url: str


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Explicit lists because `is_global`/`is_private` differ between Python versions (e.g. 3.11.7 calls 2002::/16,
# 64:ff9b:1::/48 and 3fff::/20 global, and 224.0.0.0/4 global for IPv4).
_DENY_V4 = _networks(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",
    "100.64.0.0/10",  # CGNAT
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",  # documentation
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, includes 255.255.255.255
)
# Tunnelled forms (IPv4-compatible ::/96, SIIT, 6to4, Teredo, local-use NAT64) are denied whatever they embed:
# they are deprecated or not globally routable, and the embedded address cannot be relied on.
_DENY_V6 = _networks(
    "::/8",  # ::, ::1, IPv4-compatible ::a.b.c.d, SIIT ::ffff:0:a.b.c.d
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments, includes Teredo 2001::/32 and benchmarking 2001:2::/48
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "3fff::/20",  # documentation
    "5f00::/16",  # SRv6 SIDs
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local
    "ff00::/8",  # multicast
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for globally routable unicast addresses; IPv4-mapped and NAT64 forms are judged by their IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        deny = _DENY_V6
        site_local = ip.is_site_local
    elif isinstance(ip, ipaddress.IPv4Address):
        deny = _DENY_V4
        site_local = False
    else:
        return False
    if any(ip in network for network in deny):
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or site_local
    )


def _host_and_port(parts: urllib.parse.SplitResult) -> tuple[str, int]:
    """The host (ASCII; IPv6 literals without brackets) and port to connect to; raises FetchRefused."""
    if parts.scheme not in _DEFAULT_PORTS:
        raise FetchRefused("only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise FetchRefused("URLs with credentials are not allowed")
    host = parts.hostname
    if not host:
        raise FetchRefused("the URL has no host")
    if "%" in host or any(ch.isspace() for ch in parts.netloc):
        raise FetchRefused("invalid host in URL")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise FetchRefused("invalid host in URL") from exc
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise FetchRefused("invalid host in URL") from exc
        if len(host) > 253 or not _HOST_RE.fullmatch(host):
            raise FetchRefused("invalid host in URL")
    try:
        port = parts.port
    except ValueError as exc:
        raise FetchRefused("invalid port in URL") from exc
    if port is None:
        port = _DEFAULT_PORTS[parts.scheme]
    if not 1 <= port <= 65535:
        raise FetchRefused("invalid port in URL")
    return host, port


def check_url(url: str) -> urllib.parse.SplitResult:
    """Syntax and scheme checks for a URL to fetch; raises FetchRefused. Addresses are checked by `fetch_url`."""
    if len(url) > MAX_URL_LENGTH:
        raise FetchRefused("the URL is too long")
    # Also rejects \t \r \n, which urlsplit would silently delete.
    if not url.isprintable():
        raise FetchRefused("the URL contains control characters")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise FetchRefused("malformed URL") from exc
    _host_and_port(parts)
    return parts


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """All addresses `host` resolves to for TCP; numeric forms (127.1, 0x7f.1, 2130706433...) never touch DNS."""
    kind = {"type": socket.SOCK_STREAM, "proto": socket.IPPROTO_TCP}
    try:
        infos = socket.getaddrinfo(host, port, flags=socket.AI_NUMERICHOST, **kind)
    except socket.gaierror:
        try:
            infos = socket.getaddrinfo(host, port, **kind)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchFailed("could not resolve the host") from exc
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(sockaddr[0])
            if ip not in addresses:
                addresses.append(ip)
    return addresses


def _cap(timeout: float | None, deadline: float, timeout_error: type[Exception]) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise timeout_error("deadline exceeded")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """Caps every socket operation by the overall deadline, so servers trickling bytes cannot extend the fetch."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _cap(timeout, self._deadline, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _cap(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = _cap(timeout, self._deadline, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: float) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.NetworkStream:
        timeout = _cap(timeout, self._deadline, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: object) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _Transport(httpx.BaseTransport):
    """httpx's HTTPTransport has no way to plug in a network backend, so this wraps an httpcore pool directly.

    httpcore exceptions are not mapped to httpx ones; `fetch_url` handles both.
    """

    def __init__(self, deadline: float) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=1,
            max_keepalive_connections=0,  # a pooled TLS connection must never serve another host name
            retries=0,
            network_backend=_DeadlineBackend(deadline),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # certifi CAs, CERT_REQUIRED and check_hostname=True; the hostname checked is the server_hostname httpcore passes
    # to wrap_socket, i.e. the request's "sni_hostname" extension.
    return httpx.create_ssl_context(verify=True, trust_env=False)


def _resolve_within(
    resolver: Callable[[str, int], list[IPAddress]], host: str, port: int, deadline: float
) -> list[IPAddress]:
    # getaddrinfo cannot be interrupted, so it runs in a daemon thread that is abandoned at the deadline.
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchFailed("timed out fetching the URL")
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, resolver(host, port)))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="mmrag-fetch-resolve", daemon=True)
    worker.start()
    worker.join(remaining)
    if not outcome:
        raise FetchFailed("timed out resolving the host")
    ok, value = outcome[0]
    if not ok:
        raise value
    return [ipaddress.ip_address(address) for address in value]


def _request_url(url: str, ip: IPAddress, port: int) -> httpx.URL:
    try:
        return httpx.URL(url).copy_with(host=str(ip), port=port, fragment=None)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise FetchRefused("malformed URL") from exc


@contextmanager
def _open(
    client: httpx.Client,
    url: str,
    allow: Callable[[IPAddress], bool],
    resolver: Callable[[str, int], list[IPAddress]],
    deadline: float,
) -> Iterator[httpx.Response]:
    parts = check_url(url)
    host, port = _host_and_port(parts)
    addresses = _resolve_within(resolver, host, port, deadline)
    if not addresses:
        raise FetchFailed("could not resolve the host")
    # All answers must pass: a mix of public and internal addresses is how DNS rebinding sneaks past a check.
    if not all(allow(ip) for ip in addresses):
        raise FetchRefused("the URL points to an address that is not allowed")

    name = f"[{host}]" if ":" in host else host
    host_header = name if port == _DEFAULT_PORTS[parts.scheme] else f"{name}:{port}"
    for index, ip in enumerate(addresses):
        connect_ip = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        request = client.build_request(
            "GET",
            _request_url(url, connect_ip, port),
            headers={"Host": host_header},
            extensions={"sni_hostname": host},
        )
        try:
            response = client.send(request, stream=True)
        except httpcore.ConnectError:
            if index == len(addresses) - 1:
                raise
            continue
        try:
            yield response
        finally:
            response.close()
        return


def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for identity; decoding here would let a small compressed body expand without bound.
        raise FetchFailed("the remote sent an unsupported Content-Encoding")
    too_large = FileTooLarge(f"the remote document is larger than {max_bytes} bytes")
    length = response.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


_TRANSPORT_ERRORS = (
    httpx.HTTPError,
    httpx.StreamError,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float = 20.0,
    max_redirects: int = 5,
    allow: Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool] = is_public_address,
    resolver: Callable[[str, int], list[ipaddress.IPv4Address | ipaddress.IPv6Address]] = resolve,
) -> Fetched:
    """GET `url`, following up to `max_redirects` redirects, each hop checked against `allow`.

    Raises FetchRefused (URL or address not allowed, too many redirects), FetchFailed (resolution, connection,
    TLS, timeout over all hops, non-2xx status) or FileTooLarge (body over `max_bytes`).
    """
    deadline = time.monotonic() + timeout
    try:
        with httpx.Client(
            transport=_Transport(deadline),
            trust_env=False,
            follow_redirects=False,
            timeout=timeout,
            headers=_HEADERS,
        ) as client:
            current = url
            redirects = 0
            while True:
                with _open(client, current, allow, resolver, deadline) as response:
                    if response.is_redirect:
                        if redirects >= max_redirects:
                            raise FetchRefused(f"too many redirects (more than {max_redirects})")
                        redirects += 1
                        current = urllib.parse.urljoin(current, response.headers["location"])
                        continue
                    if not response.is_success:
                        raise FetchFailed(f"the remote answered HTTP {response.status_code}")
                    data = _read_body(response, max_bytes)
                    return Fetched(data=data, content_type=response.headers.get("content-type"), final_url=current)
    except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
        raise FetchFailed("timed out fetching the URL") from exc
    except httpcore.ConnectError as exc:
        raise FetchFailed("could not connect to the remote host", detail=str(exc) or None) from exc
    except _TRANSPORT_ERRORS as exc:
        raise FetchFailed("the remote could not be fetched") from exc
