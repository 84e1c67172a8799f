"""Shared pytest configuration for the unit tests: no test may reach the network.

pytest-socket guards `socket.socket.connect` in the test process. Only loopback and Unix-domain
sockets are allowed, so tests that start a Jupyter kernel, a local server or a 2-process gloo group
still work, while a forgotten Hub download fails with `SocketConnectBlockedError`. Pass
``--force-enable-socket`` (or mark a test ``@pytest.mark.enable_socket``) to lift it.

Subprocesses are not covered by pytest-socket; for them ``POSTTRAIN_NO_NETWORK=1`` is set, which
makes `profiles.activate` install `posttrain_utils.runtime.netguard`, and the Hugging Face offline
variables are set so that libraries do not even try.
"""

import os

import pytest

LOOPBACK_HOSTS = "127.0.0.0/8,::1,localhost"
OFFLINE_ENV = {"POSTTRAIN_NO_NETWORK": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}

for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Default to ``--allow-hosts=<loopback> --allow-unix-socket`` unless the command line says otherwise."""
    if config.getoption("--force-enable-socket", default=False):
        return
    if not config.getoption("--allow-hosts", default=None):
        config.option.allow_hosts = LOOPBACK_HOSTS
        config.option.allow_unix_socket = True


@pytest.fixture(autouse=True)
def _restore_process_state():
    """Leave no network guard and no active profile behind for the next test in this worker.

    Tests that need the guard install it themselves (and module-scoped fixtures must not rely on it),
    so that no result depends on the order in which tests run.
    """
    from posttrain_utils.runtime import netguard, profiles

    active = profiles._ACTIVE
    yield
    if netguard.network_forbidden():
        netguard.allow_network()
    profiles._ACTIVE = active
