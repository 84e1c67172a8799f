"""`posttrain_utils.runtime.netguard` blocks the Internet and keeps loopback working."""

import socket
import threading
import urllib.request

import pytest

from posttrain_utils.runtime import netguard
from posttrain_utils.runtime.netguard import NetworkForbiddenError


@pytest.fixture
def guarded():
    with netguard.no_network():
        yield


@pytest.mark.parametrize("host", ["huggingface.co", "cdn-lfs.huggingface.co", "1.1.1.1", "8.8.8.8",
                                  "10.0.0.1", "192.168.1.1", "2606:4700:4700::1111", "<broadcast>"])
def test_remote_hosts_are_not_local(host):
    assert not netguard.is_local_host(host)
    assert not netguard.is_local_host(host, lookup=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST.",
                                  "0.0.0.0", "::", "", None, b"127.0.0.1", "::ffff:127.0.0.1"])
def test_loopback_hosts_are_local(host):
    assert netguard.is_local_host(host)


def test_create_connection_to_huggingface_is_blocked(guarded):
    with pytest.raises(NetworkForbiddenError, match="network access is forbidden in the cpu profile: "
                                                    "tried to reach huggingface.co"):
        socket.create_connection(("huggingface.co", 443), timeout=1)


def test_raw_connect_is_blocked_and_closes_the_socket(guarded):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(RuntimeError, match="tried to reach 1.1.1.1"):
        sock.connect(("1.1.1.1", 443))
    assert sock.fileno() == -1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkForbiddenError):
        sock.connect_ex(("1.1.1.1", 443))


def test_udp_sendto_is_blocked(guarded):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(NetworkForbiddenError):
        sock.sendto(b"x", ("8.8.8.8", 53))


def test_name_lookups_are_blocked(guarded):
    for lookup in (lambda: socket.getaddrinfo("huggingface.co", 443), lambda: socket.gethostbyname("huggingface.co"),
                   lambda: socket.gethostbyname_ex("huggingface.co")):
        with pytest.raises(NetworkForbiddenError, match="huggingface.co"):
            lookup()


def test_urllib_is_blocked_loudly(guarded):
    # RuntimeError, not the URLError/OSError that libraries catch and retry or ignore.
    with pytest.raises(NetworkForbiddenError):
        urllib.request.urlopen("https://huggingface.co/api/models", timeout=1)


def test_loopback_still_works(guarded):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(16).upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.create_connection(("localhost", port), timeout=5) as client:
        client.sendall(b"ping")
        assert client.recv(16) == b"PING"
    thread.join(timeout=5)
    server.close()
    assert socket.getaddrinfo("127.0.0.1", port)
    assert socket.gethostbyname("localhost").startswith("127.")
    socket.getaddrinfo(socket.gethostname(), None)  # own host name: a local lookup, allowed


def test_unix_sockets_still_work(guarded):
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"ok")
        assert right.recv(2) == b"ok"


def test_forbid_is_idempotent_and_reversible():
    before = (socket.socket.connect, socket.getaddrinfo, socket.create_connection)
    assert not netguard.network_forbidden()
    netguard.forbid_network()
    netguard.forbid_network()
    try:
        assert netguard.network_forbidden()
        assert socket.getaddrinfo is not before[1]
    finally:
        netguard.allow_network()
    assert not netguard.network_forbidden()
    assert (socket.socket.connect, socket.getaddrinfo, socket.create_connection) == before


def test_nested_no_network_keeps_outer_guard():
    with netguard.no_network():
        with netguard.no_network():
            pass
        assert netguard.network_forbidden()
    assert not netguard.network_forbidden()


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_unit_tests_run_under_pytest_socket():
    """tests/conftest.py turns pytest-socket on: connections leave loopback only, even without netguard."""
    import pytest_socket

    # Checked first, so that a missing guard fails here without sending anything.
    assert socket.socket.connect is not pytest_socket._true_connect
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, \
            pytest.raises(pytest_socket.SocketConnectBlockedError):
        sock.connect(("huggingface.co", 443))
