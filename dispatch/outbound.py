"""Calls from the service to addresses that staff or settings give it: notifiers (Slack,
webhook, PagerDuty), a shop's Admin API, the push gateway.

Every such call goes through `outbound_post`, and every such address is checked when it is
saved (`outbound_url_check`). Nothing outside may make the server reach loopback, private,
link-local (cloud metadata), multicast, reserved or unspecified addresses, unless they fall
in DISPATCH_OUTBOUND_ALLOWED_NETWORKS. The check happens again at call time on the
addresses the name resolves to, and the connection goes to the address that was checked
(no second lookup, so no DNS-rebinding window), keeping the name for the Host header and
TLS. Redirects are not followed, proxies from the environment are not used, time and the
size of the answer are bounded (the whole call, name lookup to last byte, ends by its
timeout: a server that answers a byte at a time cannot hold a worker). A failure is reported as a coarse category ("timeout",
"HTTP 500"...), never as the exception's text or the answer's body, so a failed call
cannot be used to probe the network or to read what an internal address answered.
"""

import ipaddress
import json as jsonlib
import socket
import ssl
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from dispatch.errors import InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024

# IPv6 ranges that carry an IPv4 address inside: the IPv4 address is what gets reached.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundAddressRefused(InvalidInput):
    """A URL staff entered points where the service must not call."""

    code = "address_not_allowed"


class OutboundFailed(Exception):
    """A call out did not succeed; its text is only the category of the failure."""

    def __init__(self, category: str) -> None:
        super().__init__(category)
        self.category = category


class _AddressNotAllowed(Exception):
    pass


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return list(settings.DISPATCH_OUTBOUND_ALLOWED_NETWORKS)


def address_is_allowed(address: Address) -> bool:
    """Public unicast addresses, or those in DISPATCH_OUTBOUND_ALLOWED_NETWORKS."""
    if any(address.version == network.version and address in network for network in _allowed_networks()):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_is_allowed(embedded)
    forbidden = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )
    return not forbidden


def _literal_address(host: str) -> Address | None:
    """The address a host written as a number means, in every spelling the resolver accepts
    (2130706433, 0177.0.0.1, 0x7f.1 are all 127.0.0.1)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _resolve(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


# getaddrinfo takes no timeout: a call resolves in one of these threads and stops waiting for
# it at the call's deadline (a resolver that hangs keeps a thread, never the caller).
_resolver_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="outbound-dns")


def _resolve_before(host: str, port: int, deadline: float) -> list[Address]:
    try:
        return _resolver_threads.submit(_resolve, host, port).result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout as exc:
        raise OutboundFailed("timeout") from exc


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most until the call's deadline.

    httpx's timeout bounds each network operation, not the call: a server that sends its
    answer a byte every few seconds would otherwise hold a worker for hours."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def _remaining(self, timeout: float | None) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the call's time is up")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout=self._remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout=self._remaining(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname=server_hostname, timeout=self._remaining(timeout)), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def outbound_url_check(url: str, *, field: str = "url") -> None:
    """At save time: refuse a URL the service must not call (not http(s), credentials in it,
    or a host that is or resolves to a forbidden address). A name that does not resolve
    now is accepted; it is checked again at every call."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise OutboundAddressRefused(f"{field}: not a valid URL", field=field) from exc
    if parts.scheme not in ("http", "https"):
        raise OutboundAddressRefused(f"{field}: only http and https URLs can be called", field=field)
    if parts.username is not None or parts.password is not None:
        raise OutboundAddressRefused(f"{field}: put credentials in their own field, not in the URL", field=field)
    host = parts.hostname or ""
    if not host:
        raise OutboundAddressRefused(f"{field}: the URL has no host", field=field)
    literal = _literal_address(host)
    try:
        addresses = [literal] if literal is not None else _resolve(host, port)
    except (OSError, UnicodeError):
        addresses = []
    if any(not address_is_allowed(address) for address in addresses):
        raise OutboundAddressRefused(
            f"{field}: {host} is a loopback, private, link-local or otherwise internal address; the service does not call those",
            field=field,
        )


class _CheckedNetworkBackend(httpcore.NetworkBackend):
    """Resolves the host once, refuses if any of its addresses is forbidden, and connects to
    the very address it checked."""

    def __init__(self, deadline: float) -> None:
        self._sockets = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        literal = _literal_address(host)
        try:
            addresses = [literal] if literal is not None else _resolve_before(host, port, self._deadline)
        except (OSError, UnicodeError) as exc:
            raise OutboundFailed("name not resolved") from exc
        if not addresses or any(not address_is_allowed(address) for address in addresses):
            raise _AddressNotAllowed()
        # Connect to the checked address itself; httpcore still sends the URL's host name as
        # the Host header and as the TLS server name, and verifies the certificate for it.
        last_error: Exception | None = None
        for address in addresses:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise httpcore.ConnectTimeout("the call's time is up")
            wait = remaining if timeout is None else min(timeout, remaining)
            try:
                stream = self._sockets.connect_tcp(str(address), port, timeout=wait, local_address=local_address, socket_options=socket_options)
                return _DeadlineStream(stream, self._deadline)
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.NetworkStream:
        raise _AddressNotAllowed()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, deadline: float) -> None:
        super().__init__(trust_env=False)
        # httpx builds its connection pool without a way to pass a network backend; the pool
        # is rebuilt here with the one that checks addresses (httpcore's documented option).
        backend = _CheckedNetworkBackend(deadline)
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend)


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


def _category(exc: BaseException) -> str:
    """The coarse kind of a failed call: the only thing recorded about it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OutboundFailed):
            return current.category
        if isinstance(current, _AddressNotAllowed):
            return "address not allowed"
        if isinstance(current, (httpx.TimeoutException, httpcore.TimeoutException, socket.timeout, TimeoutError)):
            return "timeout"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ssl.SSLError):
            return "TLS error"
        current = current.__cause__ or current.__context__
    if isinstance(exc, (httpx.ConnectError, OSError)):
        return "connection failed"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "address not allowed"
    if isinstance(exc, httpx.InvalidURL):
        return "invalid URL"
    return "bad response"


def outbound_post(
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout_s: float,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> OutboundResponse:
    """POST to a URL staff or settings gave, within every bound above; any status is returned.

    Raises OutboundFailed(category) when no answer came back whole: the address is not
    allowed, the call timed out or was refused, or the answer was too large.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        raise OutboundFailed("invalid URL") from exc
    if parts.scheme not in ("http", "https") or parts.username is not None:
        raise OutboundFailed("address not allowed")
    # Spellings of an address that httpx refuses to parse (0177.0.0.1) are still addresses.
    literal = _literal_address(host)
    if literal is not None and not address_is_allowed(literal):
        raise OutboundFailed("address not allowed")
    deadline = time.monotonic() + timeout_s
    try:
        # identity encoding: the size cap counts what is held in memory, so no compressed bombs
        with (
            httpx.Client(transport=_CheckedTransport(deadline), follow_redirects=False, trust_env=False, timeout=timeout_s) as client,
            client.stream("POST", url, content=content, headers={**headers, "Accept-Encoding": "identity"}) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > max_response_bytes:
                    raise OutboundFailed("response too large")
                if time.monotonic() > deadline:
                    raise OutboundFailed("timeout")
            return OutboundResponse(status_code=response.status_code, content=bytes(body))
    except OutboundFailed:
        raise
    except Exception as exc:  # every failure becomes its category, never its text
        raise OutboundFailed(_category(exc)) from exc


def outbound_post_expecting_success(url: str, *, content: bytes, headers: dict[str, str], timeout_s: float) -> OutboundResponse:
    """outbound_post, and a non-2xx answer (a redirect too: it is not followed) is a failure."""
    response = outbound_post(url, content=content, headers=headers, timeout_s=timeout_s)
    if not response.is_success:
        raise OutboundFailed(f"HTTP {response.status_code}")
    return response
