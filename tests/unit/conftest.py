import pytest


@pytest.fixture(autouse=True)
def _no_network(socket_disabled):
    """Unit tests never touch a network, not even moto's."""
