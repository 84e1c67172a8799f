"""A process-wide network guard: allow loopback, refuse everything else, loudly.

Introduced in chapter 0. The ``cpu`` profile promises that a notebook never touches the network (the
tiny base model and the data ship with the course). Environment variables such as
``HF_HUB_OFFLINE=1`` ask libraries to stay offline; this module *enforces* it, so that a forgotten
download or a telemetry ping fails at once with a clear message instead of hanging or silently
succeeding on a machine that happens to be online.

`forbid_network` patches the Python socket layer in the current process:

* `socket.socket.connect`, `socket.socket.connect_ex` and `socket.socket.sendto`;
* `socket.create_connection`;
* the name lookups `socket.getaddrinfo`, `socket.gethostbyname` and `socket.gethostbyname_ex`.

Loopback addresses (``127.0.0.0/8``, ``::1``, ``localhost``), the unspecified addresses used for
binding (``0.0.0.0``, ``::``), the machine's own host name (lookups only) and Unix-domain sockets
stay allowed, so Jupyter kernels, ``torch.distributed`` with gloo on one machine and local servers
keep working. Everything else raises `NetworkForbiddenError`, a `RuntimeError`, which libraries do
not swallow the way they swallow connection errors (`OSError`).

Native code that opens sockets without Python (ZeroMQ, C extensions) is not covered; the
``HF_*_OFFLINE`` variables set by `profiles.go_offline` remain the first line of defence.

Example:

```python
>>> from posttrain_utils.runtime import netguard
>>> netguard.forbid_network()
>>> import urllib.request
>>> urllib.request.urlopen("https://huggingface.co")
Traceback (most recent call last):
...
posttrain_utils.runtime.netguard.NetworkForbiddenError: network access is forbidden in the cpu profile: tried to reach huggingface.co
>>> netguard.allow_network()
```
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

_originals: dict[str, object] = {}


class NetworkForbiddenError(RuntimeError):
    """Raised when code tries to reach a non-loopback host while the guard is active."""

    def __init__(self, host: object):
        self.host = host
        super().__init__(f"network access is forbidden in the cpu profile: tried to reach {host}")


def is_local_host(host: object, lookup: bool = False) -> bool:
    """Whether `host` names this machine (loopback or unspecified address, or a local name).

    Args:
        host: a host name, an IP address (str or bytes), or ``None`` (what `getaddrinfo` receives when
            binding to all interfaces).
        lookup: also accept the machine's own host name (``socket.gethostname()``). Resolving it is
            a local operation, connecting to what it resolves to is checked separately.

    Returns:
        `True` if reaching `host` does not leave the machine.
    """
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", errors="replace")
    if not isinstance(host, str):
        return False
    name = host.strip().strip("[]").split("%", 1)[0].rstrip(".").lower()  # IPv6 zone ids, FQDN dot
    if name == "<broadcast>":
        return False
    if name == "" or name in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return lookup and name == socket.gethostname().lower()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _check_address(sock: socket.socket, address: object) -> None:
    """Raise unless connecting `sock` to `address` stays on this machine."""
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_local_host(host):
        raise NetworkForbiddenError(host)


def _guarded_connect(self, address, *args, **kwargs):
    try:
        _check_address(self, address)
    except NetworkForbiddenError:
        self.close()  # the caller's `except OSError` cleanup will not run, so do not leak the fd
        raise
    return _originals["connect"](self, address, *args, **kwargs)


def _guarded_connect_ex(self, address, *args, **kwargs):
    _check_address(self, address)
    return _originals["connect_ex"](self, address, *args, **kwargs)


def _guarded_sendto(self, data, *args, **kwargs):
    if args:  # sendto(data, address) or sendto(data, flags, address)
        _check_address(self, args[-1])
    return _originals["sendto"](self, data, *args, **kwargs)


def _guarded_create_connection(address, *args, **kwargs):
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_local_host(host):
        raise NetworkForbiddenError(host)
    return _originals["create_connection"](address, *args, **kwargs)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not is_local_host(host, lookup=True):
        raise NetworkForbiddenError(host)
    return _originals["getaddrinfo"](host, *args, **kwargs)


def _guarded_gethostbyname(host, *args, **kwargs):
    if not is_local_host(host, lookup=True):
        raise NetworkForbiddenError(host)
    return _originals["gethostbyname"](host, *args, **kwargs)


def _guarded_gethostbyname_ex(host, *args, **kwargs):
    if not is_local_host(host, lookup=True):
        raise NetworkForbiddenError(host)
    return _originals["gethostbyname_ex"](host, *args, **kwargs)


_SOCKET_METHODS = {"connect": _guarded_connect, "connect_ex": _guarded_connect_ex, "sendto": _guarded_sendto}
_MODULE_FUNCTIONS = {"create_connection": _guarded_create_connection, "getaddrinfo": _guarded_getaddrinfo,
                     "gethostbyname": _guarded_gethostbyname, "gethostbyname_ex": _guarded_gethostbyname_ex}


def network_forbidden() -> bool:
    """Whether `forbid_network` is in force in this process."""
    return bool(_originals)


def forbid_network() -> None:
    """Refuse every non-loopback connection and name lookup made through Python's `socket` module.

    Idempotent: calling it twice changes nothing. Undo it with `allow_network`. Affects the whole
    process (all threads), so call it once, early (`profiles.activate` does when
    ``POSTTRAIN_NO_NETWORK=1``).
    """
    if _originals:
        return
    for name, guarded in _SOCKET_METHODS.items():
        _originals[name] = getattr(socket.socket, name)
        setattr(socket.socket, name, guarded)
    for name, guarded in _MODULE_FUNCTIONS.items():
        _originals[name] = getattr(socket, name)
        setattr(socket, name, guarded)


def allow_network() -> None:
    """Undo `forbid_network`, restoring the functions that were in place when it was called."""
    for name in _SOCKET_METHODS:
        if name in _originals:
            setattr(socket.socket, name, _originals.pop(name))
    for name in _MODULE_FUNCTIONS:
        if name in _originals:
            setattr(socket, name, _originals.pop(name))


@contextlib.contextmanager
def no_network() -> Iterator[None]:
    """Context manager: forbid the network inside the ``with`` block, restore it afterwards.

    If the guard was already active on entry, it stays active on exit.
    """
    already = network_forbidden()
    forbid_network()
    try:
        yield
    finally:
        if not already:
            allow_network()
