"""A connection the sandbox dialed, handed to a database driver that cannot take a socket (libpq).

The sandbox's web app connects to its database through the sandbox's network (`InstanceNetwork.dial`), which
refuses what the security groups block, as AWS would drop it. MySQL's driver connects on the socket it is given;
libpq (PostgreSQL's client library) only connects by host and port, or to a Unix socket in a folder given as its
host. So the app host makes such a folder, private to it, with one socket in it whose first connection is piped
to the dialed one: the rules decide on the dial, the same way for both drivers, and no other local user can take
the pipe.

Runs in the app hosts (labkit.sandbox.procs.apphost passes `relay` to the app); never on an EC2 instance.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable


def relay(dialed: socket.socket, name: str, timeout: float) -> str:
    """A new 0700 folder holding the Unix socket `name`, whose first connection is piped to `dialed`. The folder
    goes as soon as the driver has connected (or after `timeout`, when it never does); the pipe ends when either
    side closes."""
    folder = tempfile.mkdtemp(prefix="labkit-relay-")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(folder, name))
    listener.listen(1)
    listener.settimeout(timeout)

    _pipe_first(listener, dialed, lambda: shutil.rmtree(folder, ignore_errors=True))
    return folder


def relay_tcp(dialed: socket.socket, timeout: float) -> tuple[str, int]:
    """A listener on a free 127.0.0.1 port whose first connection is piped to `dialed`: for libpq with TLS, which it
    never uses on a Unix socket (a server that requires TLS would refuse the relayed connection). Another local
    user who connected first would reach only what the dialed socket reaches, the database's own loopback port,
    which they can reach anyway; and they could not read the app's session, which is TLS verified end to end."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(timeout)
    address = listener.getsockname()

    _pipe_first(listener, dialed, lambda: None)
    return address[0], address[1]


def _pipe_first(listener: socket.socket, dialed: socket.socket, cleanup: Callable[[], None]) -> None:
    """In a thread: pipe the listener's first connection to `dialed`, then close the listener and clean up."""

    def serve() -> None:
        try:
            accepted, _ = listener.accept()
        except OSError:  # the driver never came (it failed before connecting)
            dialed.close()
            return
        finally:
            listener.close()
            cleanup()
        pipe(accepted, dialed)

    threading.Thread(target=serve, name="labkit-relay", daemon=True).start()


def pipe(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes (or fails), then close both."""
    peer = {one: other, other: one}
    with one, other, selectors.DefaultSelector() as selector:
        for end in peer:
            end.settimeout(None)
            selector.register(end, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                try:
                    data = key.fileobj.recv(65536)
                    if data:
                        peer[key.fileobj].sendall(data)
                except OSError:
                    data = b""
                if not data:
                    return
