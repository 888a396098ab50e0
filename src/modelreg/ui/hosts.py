"""Which `Host` and `Origin` headers the web view answers (DNS rebinding, issue 15).

A page on `http://evil.example:8765/` whose name the attacker re-points at 127.0.0.1 is,
for the browser, same-origin with itself: it can read whatever a server on 127.0.0.1:8765
answers. What gives it away is the `Host` header, which still says `evil.example`. So the
server answers only a Host that names the address it is bound to:

- bound to a loopback address (127.0.0.1, ::1, `localhost`): `127.0.0.1`, `localhost` and
  `[::1]`;
- bound to another address: that address (or the name given to `--host`);
- bound to a wildcard (0.0.0.0, ::): no address to compare with, so the names given
  (`--allowed-host`), the machine's hostname, the loopback names, and the IP address the
  connection arrived on (an IP-literal Host cannot come from a rebound name).

Each with no port or the bound port. A request without a Host (HTTP/1.0) is refused too. A
request that carries `Origin` (cross-origin fetches; every POST) must come from
`http://` + an accepted Host. `--allow-any-host` turns both checks off.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from modelreg.errors import InvalidInput

__all__ = ["LOOPBACK_NAMES", "HostPolicy", "Refusal", "split_host"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
"""What a browser on this machine writes in Host for a loopback server."""
WILDCARDS = ("0.0.0.0", "::", "")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?$")


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` or `[v6][:port]` → (lowercased name or `[v6]`, port); None if malformed."""
    value = value.strip().lower()
    port: str | None = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
        if _ip(name) is None:
            return None
    else:
        name, sep, port_text = value.partition(":")
        port = port_text if sep else None
        if not name or not (_NAME.match(name) or _ip(name) is not None):
            return None
    if port is None:
        return name, None
    if not port.isascii() or not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536:
        return None
    return name, int(port)


def _ip(name: str) -> IP | None:
    """The address a Host name is, if it is an IP literal (`[v6]` bracketed)."""
    text = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if "%" in text:  # a zone id: never what a browser sends
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and not name.startswith("["):
        return None  # a bare v6 literal in Host is malformed (its colons read as a port)
    return addr


def _plain(addr: IP) -> IP:
    """An IPv4-mapped IPv6 address (a v4 client of a dual-stack socket) as IPv4."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _show(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: its status and one line of reason."""

    status: int
    reason: str


@dataclass(frozen=True)
class HostPolicy:
    """The Host names (and with them the Origins) one server answers.

    `port`: the bound port (a Host with another port is refused). `names`: accepted names,
    lowercased, v6 in brackets, each with the port it must carry (None: none or `port`).
    `addresses`: accepted IP literals. `wildcard`: bound to 0.0.0.0 or ::, so the IP the
    connection arrived on is accepted too. `any_host`: no check at all.
    """

    port: int
    names: frozenset[tuple[str, int | None]]
    addresses: frozenset[IP]
    wildcard: bool = False
    any_host: bool = False

    @classmethod
    def for_socket(
        cls,
        sock: socket.socket,
        allowed_hosts: Iterable[str] = (),
        allow_any_host: bool = False,
        bound_name: str | None = None,
    ) -> HostPolicy:
        """The policy for a server on the bound `sock` (see the module's docstring).

        `allowed_hosts`: more names (`--allowed-host`), each `NAME` or `NAME:PORT`.
        `bound_name`: the name the socket was bound by (`--host myhost.lan`), accepted too.
        """
        host, port = sock.getsockname()[:2]
        return cls.for_address(
            host, port, allowed_hosts, allow_any_host=allow_any_host, bound_name=bound_name
        )

    @classmethod
    def for_address(
        cls,
        host: str,
        port: int,
        allowed_hosts: Iterable[str] = (),
        *,
        allow_any_host: bool = False,
        bound_name: str | None = None,
    ) -> HostPolicy:
        """The policy for a server bound to `host:port` (an IP address or a wildcard)."""
        names: set[tuple[str, int | None]] = set()
        addresses: set[IP] = set()
        for given in allowed_hosts:
            parsed = split_host(given)
            if parsed is None or "/" in given:
                raise InvalidInput(
                    f"--allowed-host {given!r} is not a host name or address "
                    "(NAME, NAME:PORT, an IPv4 address or [IPv6]; no scheme, no path)"
                )
            names.add(parsed)
        wildcard = host in WILDCARDS
        bound = None if wildcard else _ip(_show(host))
        loopback = wildcard or (bound is not None and _plain(bound).is_loopback)
        if loopback:
            names.update((n, None) for n in LOOPBACK_NAMES)
        if wildcard:
            hostname = socket.gethostname().lower().rstrip(".")
            if hostname and split_host(hostname) is not None:
                names.add((hostname, None))
        if bound is not None:
            addresses.add(_plain(bound))
        if bound_name:
            parsed = split_host(bound_name)
            if parsed is not None:
                names.add((parsed[0], None))
        for name, name_port in list(names):
            addr = _ip(name)
            if addr is not None and name_port is None:
                names.discard((name, name_port))
                addresses.add(_plain(addr))
        return cls(port, frozenset(names), frozenset(addresses), wildcard, allow_any_host)

    def accepts(self, host: str, local: str | None = None) -> bool:
        """Whether a Host value names this server; `local`: the address it arrived on."""
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if (name, port) in self.names:
            return True  # a name given with its port
        if port is not None and port != self.port:
            return False
        if (name, None) in self.names:
            return True
        addr = _ip(name)
        if addr is None:
            return False
        addr = _plain(addr)
        if addr in self.addresses:
            return True
        if self.wildcard and local is not None:
            arrived = _ip(_show(local))
            return arrived is not None and _plain(arrived) == addr
        return False

    def check(
        self, headers: Iterable[tuple[bytes, bytes]], local: str | None = None
    ) -> Refusal | None:
        """None if a request with these (raw ASGI) headers may be answered, else why not."""
        if self.any_host:
            return None
        hosts = [v for k, v in headers if k.lower() == b"host"]
        origins = [v for k, v in headers if k.lower() == b"origin"]
        if not hosts:
            return Refusal(421, "the request has no Host header")
        if len(hosts) > 1:
            return Refusal(421, "the request has more than one Host header")
        host = hosts[0].decode("latin-1")
        if not self.accepts(host, local):
            return Refusal(421, f"Host {_quote(host)} {self._not_ours()}")
        if len(origins) > 1:
            return Refusal(403, "the request has more than one Origin header")
        if origins:
            origin = origins[0].decode("latin-1")
            scheme, sep, rest = origin.partition("://")
            if scheme.lower() != "http" or not sep or not self.accepts(rest, local):
                return Refusal(403, f"Origin {_quote(origin)} is not this server: cross-site "
                                    "requests are refused")  # fmt: skip
        return None

    def _not_ours(self) -> str:
        return (
            f"is not an address this server answers ({self.describe()}); "
            "mreg ui --allowed-host NAME accepts another name"
        )

    def describe(self) -> str:
        """The accepted Hosts, for the startup line and the refusal."""
        if self.any_host:
            return "any Host and Origin (--allow-any-host)"
        shown = sorted({_show(str(a)) for a in self.addresses} | {
            n if p is None else f"{n}:{p}" for n, p in self.names
        })  # fmt: skip
        what = ", ".join(shown)
        if self.wildcard:
            what += ", or the IP address a request arrived on"
        return f"Host {what}, with no port or :{self.port}"


def _quote(value: str, limit: int = 100) -> str:
    """A header value for a one-line message: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
