"""The engine's own RESP2 packing and reply reading agree with redis-py's."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.connection
from redis._parsers import _RESP2Parser
from redis.exceptions import (
    ConnectionError,
    InvalidResponse,
    NoScriptError,
    ResponseError,
    TimeoutError,
)

from django_prologue_sessions.backends import _resp
from django_prologue_sessions.backends._resp import ReadReplies, pack

parse_error = _RESP2Parser.parse_error

# Every reader the engine can use here: hiredis's too where it is installed
# (CI runs the suite once without it and once with it, in tox).
READERS: list[ReadReplies] = [_resp.python_read_replies]
if _resp._hiredis is not None:
    READERS.append(_resp.hiredis_read_replies)


@pytest.fixture(params=READERS, ids=lambda reader: reader.__name__)
def read_replies(request: pytest.FixtureRequest) -> ReadReplies:
    reader: ReadReplies = request.param
    return reader


# Replies of every RESP2 type, of the shapes the engine meets and some more:
# empty and missing hashes, values holding CRLF and "$", a hash too big for
# one recv(), nested arrays with integers and nils, error replies.
BIG = b"x" * 200_000
COMMANDS: list[tuple[Any, ...]] = [
    ("HSET", "h", b"\x00c", 1700000000, b"\x01k\r\n$5", b"v\r\n*2\r\n", "p", b""),
    ("HGETALL", "h"),
    ("HGETALL", "missing"),
    ("GET", "missing"),
    ("SET", "big", BIG),
    ("GET", "big"),
    ("HSET", "bighash", *[f"f{i}" for i in range(3000) for _ in (0, 1)]),
    ("HGETALL", "bighash"),
    ("EVAL", "return {1, 'two', {false, -3}, {}}", 0),
    ("EVAL", "return redis.error_reply('NOSCRIPT gone')", 0),
    ("EVAL", "return redis.status_reply('FINE')", 0),
    ("INCRBY", "n", -7),
    ("HGET", "h", "nope"),
    ("LPUSH", "h", "x"),  # WRONGTYPE
]


@pytest.fixture
def connection(
    redis_url: str, redis_client: redis.Redis
) -> Iterator[redis.connection.Connection]:
    """A RESP2 connection to the (flushed) test server, handshake done."""
    pool = redis.Redis.from_url(redis_url, protocol=2).connection_pool
    connection: redis.connection.Connection = pool.make_connection()
    connection.connect()
    try:
        yield connection
    finally:
        connection.disconnect()


def comparable(reply: Any) -> Any:
    if isinstance(reply, Exception):
        return (type(reply), str(reply))
    if isinstance(reply, list):
        return [comparable(item) for item in reply]
    return reply


@pytest.mark.parametrize(
    "packer", [_resp._pack] if pack is _resp._pack else [_resp._pack, pack]
)
def test_commands_are_packed_as_redis_py_packs_them(packer: Any) -> None:
    connection = redis.connection.Connection()
    for args in [
        ("HGETALL", "session:{abc}"),
        ("EVALSHA", "f" * 40, 1, "k", 1_209_600, b"\x00c", -5, b"", "é🔑"),
        ("UNLINK", b"\x01\r\n$3\r\n"),
    ]:
        assert packer(args) == b"".join(connection.pack_command(*args))


def test_replies_are_read_as_redis_py_reads_them(
    connection: redis.connection.Connection,
    redis_client: redis.Redis,
    read_replies: ReadReplies,
) -> None:
    connection.send_packed_command([pack(args) for args in COMMANDS])
    ours = read_replies(connection._sock, len(COMMANDS), parse_error)  # type: ignore[arg-type]
    redis_client.flushdb()
    connection.send_packed_command([pack(args) for args in COMMANDS])
    theirs = []
    for _ in COMMANDS:
        try:
            theirs.append(connection.read_response())
        except ResponseError as exc:
            theirs.append(exc)

    assert comparable(ours) == comparable(theirs)
    # What the comparison rests on, spelled out.
    assert ours[1] == [
        b"\x00c",
        b"1700000000",
        b"\x01k\r\n$5",
        b"v\r\n*2\r\n",
        b"p",
        b"",
    ]
    assert ours[2] == []
    assert ours[3] is None
    assert ours[5] == BIG
    assert len(ours[7]) == 6000
    assert ours[8] == [1, b"two", [None, -3], []]
    assert isinstance(ours[9], NoScriptError)
    assert ours[10] == b"FINE"
    assert ours[11] == -7
    assert type(ours[13]) is ResponseError
    assert str(ours[13]).startswith("WRONGTYPE")


class Trickle:
    """A socket that hands over what it holds one byte per ``recv()``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, size: int) -> bytes:
        chunk, self.data = self.data[:1], self.data[1:]
        return chunk


def test_replies_split_anywhere_are_read_whole(read_replies: ReadReplies) -> None:
    data = (
        b"*4\r\n$2\r\nab\r\n$-1\r\n:12\r\n*2\r\n$0\r\n\r\n+OK\r\n"
        b"$5\r\nx\r\ny!\r\n"
        b"-ERR no\r\n"
    )
    replies = read_replies(Trickle(data), 3, parse_error)  # type: ignore[arg-type]
    assert replies[:2] == [[b"ab", None, 12, [b"", b"OK"]], b"x\r\ny!"]
    assert type(replies[2]) is ResponseError
    assert str(replies[2]) == "no"  # as redis-py words it


def test_values_that_look_like_replies_are_read_whole(
    read_replies: ReadReplies,
) -> None:
    # Received at once: the one-split reading of an array must not take a
    # CRLF inside a value, or a length line inside one, for the real thing.
    values = [b"ab\r\n$2\r\ncd", b"$2", b"\r\n", b"", b"x" * 600, b"$-1"]
    data = b"*%d\r\n" % len(values) + b"".join(
        b"$%d\r\n%b\r\n" % (len(value), value) for value in values
    )
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data + b"*2\r\n$1\r\na\r\n$1\r\nb\r\n")
        assert read_replies(ours, 2, parse_error) == [values, [b"a", b"b"]]


def test_a_closed_connection_is_a_connection_error(read_replies: ReadReplies) -> None:
    ours, theirs = socket.socketpair()
    with ours:
        theirs.sendall(b"*2\r\n$1\r\na\r\n")  # one of two items, then gone
        theirs.close()
        with pytest.raises(ConnectionError, match="closed"):
            read_replies(ours, 1, parse_error)


def test_a_silent_server_is_a_timeout(read_replies: ReadReplies) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(0.05)
        with pytest.raises(TimeoutError):
            read_replies(ours, 1, parse_error)


def test_a_reply_of_no_known_type_is_refused(read_replies: ReadReplies) -> None:
    with pytest.raises(InvalidResponse):
        read_replies(Trickle(b"@nonsense\r\n"), 1, parse_error)  # type: ignore[arg-type]
