"""Who is on the other end of a loopback TCP connection: the sandbox's local ports serve their owner only.

A tunnel's local port (the session plugin) and a lab instance's web app (an app host) listen on 127.0.0.1, where
every local user can connect. On a shared machine that would let learner B use learner A's shop (read and add
orders: the web app needs no password, it holds the database's) or knock on A's databases through A's tunnel. A
Unix socket tells the peer's uid (SO_PEERCRED); TCP does not, but on Linux the kernel's socket table does: the
peer's socket is the one whose local address is our remote one and whose remote address is our local one, and
the kernel records the uid that created it. `sock_diag` (netlink, what `ss` uses) looks that one socket up in
about 50 us; reading /proc/net/tcp instead walks every socket on the machine (milliseconds on a busy class
server) and is only the fallback. A connection whose peer is not a process of the same user is closed before a
byte is read.

Without either (macOS, a single-user laptop) the owner cannot be told and every local connection is served, as
before; `peer_uid` says None there.

Runs in the session plugin and the app hosts. Standard library only.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from pathlib import Path

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NO_COOKIE = 0xFFFFFFFF
UID_OFFSET = 16 + 64  # nlmsghdr, then inet_diag_msg: family..retrans (4), the socket id (48), expires, queues (12)
TABLES = {socket.AF_INET: Path("/proc/net/tcp"), socket.AF_INET6: Path("/proc/net/tcp6")}


def peer_uid(connection: socket.socket) -> int | None:
    """The uid owning the other end of an accepted loopback TCP connection; None when it cannot be told (not
    Linux, or the peer already closed its socket)."""
    try:
        ours, theirs = connection.getsockname()[:2], connection.getpeername()[:2]
    except OSError:
        return None
    try:
        return _sock_diag(connection.family, theirs, ours)
    except OSError:
        return _proc_table(connection.family, theirs, ours)


def owner_only(connection: socket.socket) -> bool:
    """True when the peer is a process of this process's user, or when no peer can be known on this system."""
    if not sys.platform.startswith("linux"):
        return True  # no socket table to ask: a single-user machine, served as before
    return peer_uid(connection) == os.geteuid()


def _sock_diag(family: int, theirs: tuple[str, int], ours: tuple[str, int]) -> int | None:
    """Ask the kernel for the one socket bound to `theirs` and connected to `ours` (inet_diag, no dump)."""

    def address(host: str) -> bytes:
        return socket.inet_pton(family, host.split("%")[0]).ljust(16, b"\0")

    socket_id = (
        struct.pack("!HH", theirs[1], ours[1])
        + address(theirs[0])
        + address(ours[0])
        + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
    )
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + socket_id
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as netlink:
        netlink.settimeout(1.0)
        netlink.sendto(header + request, (0, 0))
        reply = netlink.recv(8192)
    _, kind = struct.unpack_from("=IH", reply)
    if kind != SOCK_DIAG_BY_FAMILY or len(reply) < UID_OFFSET + 4:
        return None  # NLMSG_ERROR: no such socket (the peer is gone)
    return int(struct.unpack_from("=I", reply, UID_OFFSET)[0])


def _proc_table(family: int, theirs: tuple[str, int], ours: tuple[str, int]) -> int | None:
    """The same answer from /proc/net/tcp{,6}: addresses as native-endian 32-bit words in hex, then the port."""
    table = TABLES.get(family)
    if table is None:
        return None

    def encoded(host: str, port: int) -> str:
        packed = socket.inet_pton(family, host.split("%")[0])
        words = "".join(f"{int.from_bytes(packed[i : i + 4], sys.byteorder):08X}" for i in range(0, len(packed), 4))
        return f"{words}:{port:04X}"

    wanted = (encoded(*theirs), encoded(*ours))
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 7 and (fields[1], fields[2]) == wanted:
            return int(fields[7])
    return None
