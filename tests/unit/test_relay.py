"""The sandbox's web app hands libpq (which takes no socket) the connection the sandbox's network dialed: a
private Unix socket piped to it (labkit.sandbox.vpc.relay). Real sockets, both directions, and the cleanup."""

from __future__ import annotations

import os
import socket
import stat
import time

from labkit.sandbox.vpc.relay import relay


def _wait_gone(path: str, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_bytes_flow_both_ways_and_the_folder_is_private_and_goes():
    dialed, server_end = socket.socketpair()  # what the sandbox dialed, and the database's end of it
    folder = relay(dialed, ".s.PGSQL.5432", timeout=5)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700  # no other local user can reach the socket
    client = socket.socket(socket.AF_UNIX)
    client.connect(os.path.join(folder, ".s.PGSQL.5432"))
    client.sendall(b"startup")
    assert server_end.recv(100) == b"startup"
    server_end.sendall(b"R" * 70_000)  # more than one read's worth
    received = b""
    while len(received) < 70_000:
        received += client.recv(65536)
    assert received == b"R" * 70_000
    assert _wait_gone(folder), "the folder stays only until the driver has connected"
    client.close()
    assert server_end.recv(10) == b"", "closing the driver's end closes the dialed connection"
    server_end.close()


def test_a_driver_that_never_connects_closes_the_dialed_connection():
    dialed, server_end = socket.socketpair()
    folder = relay(dialed, "db.sock", timeout=0.2)
    server_end.settimeout(5)
    assert server_end.recv(10) == b""  # closed after the timeout
    assert _wait_gone(folder)
    server_end.close()


def test_the_database_closing_closes_the_drivers_end():
    dialed, server_end = socket.socketpair()
    folder = relay(dialed, "db.sock", timeout=5)
    client = socket.socket(socket.AF_UNIX)
    client.connect(os.path.join(folder, "db.sock"))
    client.settimeout(5)
    server_end.close()  # the server went away (a failover fenced it)
    assert client.recv(10) == b""
    client.close()
