"""Unit tests run in the machine's own namespace: the loopback guard watches every socket they open."""

from tests.loopback_guard import install

install()
