"""Keeps the AWS tests offline: dummy credentials, no metadata service, no endpoint overrides, loopback only."""

from __future__ import annotations

import os
import socket

import pytest

REGION = "us-east-1"
ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def offline_aws_env(mp: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        mp.setenv(name, value)
    for name in [n for n in os.environ if n == "AWS_PROFILE" or n.startswith("AWS_ENDPOINT_URL")]:
        mp.delenv(name, raising=False)


def loopback_only(mp: pytest.MonkeyPatch) -> None:
    """Any connection off 127.0.0.1 fails the test."""
    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"network access to {address!r}")
        return real_connect(sock, address)

    mp.setattr(socket.socket, "connect", connect)
