"""Whether this process could listen on an address, checked before a server says it is up."""

from __future__ import annotations

import socket

from pymk.errors import ConfigError


def check_can_listen(host: str, port: int) -> None:
    """ConfigError naming the address when nothing could listen there (taken, or not this machine's):
    gunicorn would otherwise retry in every worker, and waitress end in a traceback."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            # as the servers bind: a port left in TIME_WAIT by a server just stopped is free, a listener is not
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                          "choose another --port or --host") from None
