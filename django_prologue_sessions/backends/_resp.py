"""RESP2, the protocol Redis speaks, for the engine's own connections.

``pack()`` writes a command; ``read_replies()`` reads the replies to a batch
of commands straight from the connection's socket. redis-py's pure-Python
reader reads each bulk string through a buffered ``readline()``; this one
takes an array that has been received in one ``split()``, checked against
its length lines. An ``HGETALL`` of a typical session, round trip included:
78 µs with redis-py's reader, 57 µs with this one, a ``PING`` being 45.
With hiredis installed, both are hiredis's, in C: ``hiredis.pack_command``
and ``hiredis.Reader``, fed from the socket here as redis-py's own hiredis
parser feeds it.

Only the reply types of RESP2 exist here: the engine's connections speak
RESP2 (``_redis_connection``); a connection that speaks RESP3 is read by
redis-py's own parser.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable
from typing import Any

from redis import exceptions


def _import_hiredis() -> Any:
    """hiredis if it is installed: it packs and reads in C (optional)."""
    try:
        return importlib.import_module("hiredis")
    except ImportError:
        return None


_hiredis = _import_hiredis()

#: The most one ``recv()`` asks for: a session's reply mostly fits in one.
READ_SIZE = 65536


# The length line of each short string, made once (bare: without its CRLF).
_SHORT = 512
_LENGTH_LINES_BARE = [b"$%d" % length for length in range(_SHORT)]
_LENGTH_LINES = [line + b"\r\n" for line in _LENGTH_LINES_BARE]


def _pack(args: tuple[Any, ...]) -> bytes:
    """A command in RESP, for the bytes, str and int arguments the engine sends.

    A fifth of the cost of redis-py's general ``pack_command``.
    """
    parts = [b"*%d\r\n" % len(args)]
    length_lines = _LENGTH_LINES
    for arg in args:
        if type(arg) is not bytes:
            arg = arg.encode() if isinstance(arg, str) else b"%d" % arg
        length = len(arg)
        parts += (
            length_lines[length] if length < _SHORT else b"$%d\r\n" % length,
            arg,
            b"\r\n",
        )
    return b"".join(parts)


#: hiredis's ``pack_command`` if installed: the same bytes, made in C.
pack: Callable[[tuple[Any, ...]], bytes] = (
    _pack if _hiredis is None else _hiredis.pack_command
)


class ReplyReader:
    """Reads RESP2 replies from a socket, ``recv()``-ing only when it must.

    An error reply is returned as the exception redis-py would raise for it
    (``parse_error``), so that the caller decides what it ends; a socket
    error or timeout is raised as redis-py's ``ConnectionError`` or
    ``TimeoutError``, with the connection left to the caller to drop.
    """

    __slots__ = ("_buffer", "_parse_error", "_position", "_socket")

    def __init__(self, sock: socket.socket, parse_error: Callable[[str], Any]) -> None:
        self._socket = sock
        self._parse_error = parse_error
        self._buffer = b""
        self._position = 0

    def read(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            length = int(rest)
            return None if length < 0 else self._take(length)
        if kind == b"*":
            length = int(rest)
            if length < 0:
                return None
            return self._array(length)
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"-":
            return self._parse_error(rest.decode(errors="replace"))
        raise exceptions.InvalidResponse(f"Protocol error: {line[:40]!r} is no reply")

    def _array(self, length: int) -> list[Any]:
        items = self._received_bulk_strings(length)
        if items is None:
            items = [self.read() for _ in range(length)]
        return items

    def _received_bulk_strings(self, length: int) -> list[bytes] | None:
        """An array of ``length`` bulk strings, if all of it is in the buffer.

        The common case, a session's HGETALL, in one split: each length line
        is checked against the size of the piece after it, so a value holding
        CRLF, a nil or a reply not yet received sends the caller to
        ``read()``, which reads item by item.
        """
        position = self._position
        parts = self._buffer[position:].split(b"\r\n", 2 * length)
        if len(parts) <= 2 * length:
            return None
        length_lines = _LENGTH_LINES_BARE
        values = parts[1 : 2 * length : 2]
        for line, value in zip(parts[0 : 2 * length : 2], values, strict=True):
            size = len(value)
            if size >= _SHORT or length_lines[size] != line:
                return None
        self._buffer, self._position = parts[-1], 0
        return values

    def _line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n", self._position)
            if end >= 0:
                line = self._buffer[self._position : end]
                self._position = end + 2
                return line
            self._receive()

    def _take(self, length: int) -> bytes:
        while len(self._buffer) - self._position < length + 2:
            self._receive()
        start = self._position
        self._position = start + length + 2
        return self._buffer[start : start + length]

    def _receive(self) -> None:
        chunk = receive(self._socket)
        self._buffer = self._buffer[self._position :] + chunk
        self._position = 0


def receive(sock: socket.socket) -> bytes:
    """What ``sock`` has; redis-py's exceptions for a timeout or a lost socket."""
    try:
        chunk = sock.recv(READ_SIZE)
    except TimeoutError:  # socket.timeout
        raise exceptions.TimeoutError("Timeout reading from socket") from None
    except OSError as exc:
        raise exceptions.ConnectionError(
            f"Error while reading from socket: {exc}"
        ) from exc
    if not chunk:
        raise exceptions.ConnectionError("Connection closed by server.")
    return chunk


def python_read_replies(
    sock: socket.socket, count: int, parse_error: Callable[[str], Any]
) -> list[Any]:
    """The next ``count`` replies on ``sock``, read by ``ReplyReader``."""
    reader = ReplyReader(sock, parse_error)
    return [reader.read() for _ in range(count)]


class _ErrorReply(Exception):
    """What hiredis makes of an error reply, before ``parse_error`` names it."""


def hiredis_read_replies(
    sock: socket.socket, count: int, parse_error: Callable[[str], Any]
) -> list[Any]:
    """The next ``count`` replies on ``sock``, read by ``hiredis.Reader``."""
    reader = _hiredis.Reader(
        protocolError=exceptions.InvalidResponse, replyError=_ErrorReply
    )
    replies: list[Any] = []
    while len(replies) < count:
        reply = reader.gets()
        if reply is False:  # RESP2 has no false: more is to be received
            reader.feed(receive(sock))
        elif isinstance(reply, _ErrorReply):
            replies.append(parse_error(str(reply)))
        else:
            replies.append(reply)
    return replies


ReadReplies = Callable[[socket.socket, int, Callable[[str], Any]], list[Any]]

#: The next ``count`` replies on a socket: ``read_replies(sock, count,
#: parse_error)``, by hiredis if it is installed.
read_replies: ReadReplies = (
    python_read_replies if _hiredis is None else hiredis_read_replies
)
