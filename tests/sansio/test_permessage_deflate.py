"""permessage-deflate (RFC 7692): negotiation, messages, limits, streams, interop.

Compressed payloads are built here with the standard library's zlib directly (raw
deflate, sync flush, the 4-byte tail removed) rather than with the code under test,
so that a bug in the encoder cannot hide one in the decoder.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import websockets.asyncio.client
import websockets.asyncio.server
from websockets.extensions import permessage_deflate as wspmd

import blazews
from blazews.exceptions import MessageTooBig, NegotiationError, ProtocolError
from blazews.sansio.client import ClientProtocol
from blazews.sansio.extensions import _deflate_streams as streams
from blazews.sansio.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    Compressed,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    available_backends,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from blazews.sansio.http11 import Request
from blazews.sansio.server import ServerProtocol
from blazews.sansio.uri import parse_uri
from tests.helpers import BINARY, CONT, PING, TEXT, assert_failed, describe, frame, parse_frames
from tests.helpers import client as client_proto
from tests.helpers import server as server_proto

TAIL = b"\x00\x00\xff\xff"
SNCT, CNCT = "server_no_context_takeover", "client_no_context_takeover"
SMWB, CMWB = "server_max_window_bits", "client_max_window_bits"
JSON = b'{"type":"message","channel":"general","user":"someone","text":"hello there"}' * 4


def deflate(data: bytes, wbits: int = 15, level: int = 6) -> bytes:
    """One message compressed the RFC 7692 way with stdlib zlib, on a fresh stream."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(data: bytes, wbits: int = 15) -> bytes:
    return zlib.decompressobj(-wbits).decompress(data + TAIL)


def ext(**kwargs: Any) -> PerMessageDeflate:
    kwargs.setdefault("backend", "zlib")
    return PerMessageDeflate(**kwargs)


def fragments(opcode: int, payload: bytes, size: int) -> bytes:
    """A compressed message cut into masked frames of ``size`` payload bytes."""
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    last = len(chunks) - 1
    return b"".join(
        frame(opcode if i == 0 else CONT, c, fin=i == last, rsv=0 if i else 0x40, mask=True)
        for i, c in enumerate(chunks)
    )


# -- server negotiation -------------------------------------------------------------


def answer(
    offer: list[tuple[str, str | None]], **policy: Any
) -> tuple[list[Any], PerMessageDeflate]:
    policy.setdefault("backend", "zlib")
    return ServerPerMessageDeflateFactory(**policy).process_request_params(offer, [])


BROWSER_OFFER = [(CMWB, None)]  # Chrome, Firefox, Safari; and websockets' default client


def test_server_default_policy_answers_the_browsers_offer() -> None:
    response, extension = answer(BROWSER_OFFER)
    assert response == [(SNCT, None), (SMWB, "12"), (CMWB, "12")]
    assert extension.local_max_window_bits == 12 and extension.remote_max_window_bits == 12
    assert extension.local_no_context_takeover and not extension.remote_no_context_takeover


@pytest.mark.parametrize(
    ("offer", "policy", "expected"),
    [
        ([], {}, [(SNCT, None), (SMWB, "12")]),  # no client_max_window_bits: no limit
        (
            [(CMWB, None)],
            {"server_max_window_bits": None, "client_max_window_bits": None},
            [(SNCT, None)],
        ),
        ([(SMWB, "10")], {}, [(SNCT, None), (SMWB, "10")]),  # the client's limit is lower
        ([(SMWB, "15")], {}, [(SNCT, None), (SMWB, "12")]),  # "the same or smaller value"
        ([(SMWB, "9")], {"server_max_window_bits": None}, [(SNCT, None), (SMWB, "9")]),
        ([(CMWB, "10")], {}, [(SNCT, None), (SMWB, "12"), (CMWB, "10")]),  # the client's hint
        (
            [(CMWB, "14")],
            {"client_max_window_bits": None},
            [(SNCT, None), (SMWB, "12"), (CMWB, "14")],
        ),
        ([(SNCT, None)], {"server_no_context_takeover": False}, [(SNCT, None), (SMWB, "12")]),
        ([(CNCT, None)], {}, [(SNCT, None), (CNCT, None), (SMWB, "12")]),  # echoed
        ([], {"server_no_context_takeover": False}, [(SMWB, "12")]),  # context takeover
        (
            [(CMWB, None)],
            {"server_no_context_takeover": False},
            [(SMWB, "12"), (CMWB, "12")],
        ),
        ([], {"client_no_context_takeover": True}, [(SNCT, None), (CNCT, None), (SMWB, "12")]),
        (
            [(SNCT, None), (CNCT, None), (SMWB, "8"), (CMWB, None)],
            {"client_max_window_bits": 9},
            [(SNCT, None), (CNCT, None), (SMWB, "8"), (CMWB, "9")],
        ),
    ],
)
def test_server_policy(offer: list[Any], policy: dict[str, Any], expected: list[Any]) -> None:
    response, extension = answer(offer, **policy)
    assert response == expected
    values = dict(response)
    assert extension.local_no_context_takeover == (SNCT in values)
    assert extension.remote_no_context_takeover == (CNCT in values)
    assert extension.local_max_window_bits == int(values.get(SMWB) or 15)
    assert extension.remote_max_window_bits == int(values.get(CMWB) or 15)


BAD_PARAMS = [
    [("x_param", None)],
    [(SNCT, None), (SNCT, None)],
    [(SMWB, "10"), (SMWB, "10")],
    [(SNCT, "true")],
    [(CNCT, "1")],
    [(SMWB, None)],
    *([(SMWB, value)] for value in ("7", "16", "0", "08", "+9", "9.0", "abc", "1e1")),
    *([(CMWB, value)] for value in ("7", "16", "015", "-9")),
]


@pytest.mark.parametrize("offer", BAD_PARAMS)
def test_server_declines_invalid_offers(offer: list[Any]) -> None:
    with pytest.raises(NegotiationError):
        answer(offer)


def test_server_declines_when_already_negotiated_and_when_policy_requires() -> None:
    factory = ServerPerMessageDeflateFactory(backend="zlib")
    _, first = factory.process_request_params([], [])
    with pytest.raises(NegotiationError, match="already"):
        factory.process_request_params([], [first])
    with pytest.raises(NegotiationError, match="twice"):  # and on the client side
        ClientPerMessageDeflateFactory().process_response_params([], [first])
    with pytest.raises(NegotiationError, match="client_max_window_bits"):
        answer([], require_client_max_window_bits=True, client_max_window_bits=10)
    response, _ = answer([(CMWB, None)], require_client_max_window_bits=True)
    assert (CMWB, "12") in response


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"server_max_window_bits": True},
        {"require_client_max_window_bits": True, "client_max_window_bits": None},
        {"compression_level": 10},
        {"memory_level": 0},
        {"compress_threshold": -1},
        {"backend": "brotli"},
    ],
)
def test_factory_arguments_are_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServerPerMessageDeflateFactory(**kwargs)


# -- negotiation through the sans-I/O handshake ---------------------------------------

URI = parse_uri("ws://example.com/")


def server_negotiate(header: str | None, **policy: Any) -> tuple[ServerProtocol, bytes]:
    policy.setdefault("backend", "zlib")
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory(**policy)])
    request = (
        "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )
    if header is not None:
        request += f"Sec-WebSocket-Extensions: {header}\r\n"
    server.receive_data((request + "\r\n").encode())
    (request,) = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    return server, b"".join(server.data_to_send())


def test_server_tries_the_next_offer_when_one_is_declined() -> None:
    server, response = server_negotiate(
        "permessage-deflate; server_max_window_bits=16, permessage-deflate; foo, "
        "permessage-deflate; client_no_context_takeover; client_max_window_bits"
    )
    assert (
        b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover; " in response
    )
    (extension,) = server.extensions
    assert isinstance(extension, PerMessageDeflate) and extension.remote_no_context_takeover


def test_server_accepts_the_connection_without_compression_when_every_offer_is_invalid() -> None:
    server, response = server_negotiate("permessage-deflate; server_max_window_bits")
    assert response.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Extensions" not in response
    assert server.extensions == []


def test_server_accepts_a_quoted_window_size() -> None:
    server, response = server_negotiate('permessage-deflate; server_max_window_bits="10"')
    assert b"permessage-deflate; server_no_context_takeover; server_max_window_bits=10\r\n" in (
        response
    )


# -- client negotiation -------------------------------------------------------------


def offer(**kwargs: Any) -> ClientPerMessageDeflateFactory:
    kwargs.setdefault("backend", "zlib")
    return ClientPerMessageDeflateFactory(**kwargs)


def test_client_offers() -> None:
    assert offer().get_request_params() == [(CMWB, None)]
    assert offer(client_max_window_bits=False).get_request_params() == []
    assert offer(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=11,
    ).get_request_params() == [(SNCT, None), (CNCT, None), (SMWB, "10"), (CMWB, "11")]
    with pytest.raises(ValueError):
        offer(client_max_window_bits=16)


@pytest.mark.parametrize(
    ("kwargs", "response", "expected"),
    [
        ({}, [], (False, False, 15, 15)),
        ({}, [(SNCT, None)], (True, False, 15, 15)),  # the server may add it
        ({}, [(CNCT, None), (SMWB, "9"), (CMWB, "10")], (False, True, 9, 10)),
        ({"client_no_context_takeover": True}, [], (False, True, 15, 15)),  # our promise
        ({"client_max_window_bits": 11}, [], (False, False, 15, 11)),  # our promise
        ({"client_max_window_bits": 11}, [(CMWB, "13")], (False, False, 15, 11)),
        ({"server_max_window_bits": 10}, [(SMWB, "8")], (False, False, 8, 15)),
        ({"server_no_context_takeover": True}, [(SNCT, None)], (True, False, 15, 15)),
    ],
)
def test_client_accepts(
    kwargs: dict[str, Any], response: list[Any], expected: tuple[Any, ...]
) -> None:
    extension = offer(**kwargs).process_response_params(response, [])
    assert (
        extension.remote_no_context_takeover,
        extension.local_no_context_takeover,
        extension.remote_max_window_bits,
        extension.local_max_window_bits,
    ) == expected


@pytest.mark.parametrize(
    ("kwargs", "response", "message"),
    [
        ({}, [(CMWB, None)], "needs a value"),
        ({"client_max_window_bits": False}, [(CMWB, "10")], "not offered"),
        ({"server_max_window_bits": 10}, [(SMWB, "11")], "exceeds"),
        ({"server_max_window_bits": 10}, [], "did not accept server_max_window_bits"),
        ({"server_no_context_takeover": True}, [], "did not accept server_no_context_takeover"),
        ({}, [("mystery", None)], "unknown"),
        ({}, [(CNCT, None), (CNCT, None)], "repeated"),
        ({}, [(SNCT, "x")], "takes no value"),
        ({}, [(SMWB, "16")], "invalid value"),
    ],
)
def test_client_refuses(kwargs: dict[str, Any], response: list[Any], message: str) -> None:
    with pytest.raises(NegotiationError, match=message):
        offer(**kwargs).process_response_params(response, [])


def client_negotiate(factories: list[Any], header: str) -> ClientProtocol:
    from blazews.sansio.handshake import accept_key

    client = ClientProtocol(URI, extensions=factories)
    request = client.connect()
    client.send_request(request)
    sent = b"".join(client.data_to_send())
    assert b"\r\nSec-WebSocket-Extensions: " in sent
    client.receive_data(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(client.key)}\r\n"
            f"Sec-WebSocket-Extensions: {header}\r\n\r\n"
        ).encode()
    )
    client.events_received()
    return client


def test_client_several_offers_and_the_answer_matched_to_its_offer() -> None:
    factories = [offer(server_max_window_bits=10), offer(client_no_context_takeover=True)]
    client = ClientProtocol(URI, extensions=factories)
    assert client.connect().headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits, "
        "permessage-deflate; client_no_context_takeover; client_max_window_bits"
    )
    # Without server_max_window_bits the answer is not to the first offer.
    client = client_negotiate(factories, "permessage-deflate; client_no_context_takeover")
    assert client.handshake_exc is None
    (extension,) = client.extensions
    assert isinstance(extension, PerMessageDeflate) and extension.local_no_context_takeover


@pytest.mark.parametrize(
    "header",
    [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate, permessage-deflate",
    ],
)
def test_client_fails_the_handshake_on_an_invalid_answer(header: str) -> None:
    client = client_negotiate([offer()], header)
    assert isinstance(client.handshake_exc, NegotiationError)
    assert client.extensions == []


def test_enable_helpers_add_one_default_factory() -> None:
    added = enable_client_permessage_deflate(None)
    assert [type(f) for f in added] == [ClientPerMessageDeflateFactory]
    mine = offer(client_no_context_takeover=True)
    assert enable_client_permessage_deflate([mine]) == [mine]
    server_added = enable_server_permessage_deflate([])
    assert [type(f) for f in server_added] == [ServerPerMessageDeflateFactory]


# -- messages -----------------------------------------------------------------------


def pair(**kwargs: Any) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """A sender and a receiver agreeing on the same parameters."""
    nct, wbits = kwargs.get("no_context_takeover", False), kwargs.get("wbits", 15)
    backends = kwargs.get("backends", ("zlib", "zlib"))
    sender = ext(
        local_no_context_takeover=nct,
        local_max_window_bits=wbits,
        compress_threshold=kwargs.get("threshold", 0),
        backend=backends[0],
    )
    receiver = ext(
        remote_no_context_takeover=nct, remote_max_window_bits=wbits, backend=backends[1]
    )
    return sender, receiver


def test_round_trip_and_rsv1_on_the_first_frame_only() -> None:
    sender, receiver = pair()
    rsv, data = sender.encode(TEXT, True, JSON)
    assert rsv == 0x40 and len(data) < len(JSON) // 2
    assert inflate(data) == JSON  # what stdlib zlib inflates
    assert receiver.decode(TEXT, True, rsv, data, None) == JSON
    out = b""
    parts = [(BINARY, False, JSON[:99]), (CONT, False, JSON[99:]), (CONT, True, b"")]
    for opcode, fin, part in parts:
        rsv, data = sender.encode(opcode, fin, part)
        assert rsv == (0x40 if opcode else 0)
        out += receiver.decode(opcode, fin, rsv, data, None)
    assert out == JSON


def test_context_takeover_across_messages() -> None:
    sender, receiver = pair()
    sizes = []
    for _ in range(3):
        rsv, data = sender.encode(TEXT, True, JSON)
        sizes.append(len(data))
        assert receiver.decode(TEXT, True, rsv, data, None) == JSON
    assert sizes[1] < sizes[0] // 3  # the second message refers to the first
    # Between messages the receiver keeps the peer's last window, not an inflater.
    assert sender.holds_compressor and not receiver.holds_decompressor
    assert receiver.idle_bytes == 3 * len(JSON)  # all three, within the 32 KiB window
    # A stdlib stream with context takeover is understood too.
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    receiver2 = ext()
    for text in (b"abcdefgh" * 10, b"abcdefgh" * 12):
        data = (c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert receiver2.decode(BINARY, True, 0x40, data, None) == text


def test_no_context_takeover_resets_and_holds_nothing_between_messages() -> None:
    sender, receiver = pair(no_context_takeover=True)
    for _ in range(3):
        rsv, data = sender.encode(TEXT, True, JSON)
        assert inflate(data) == JSON  # a fresh inflater suffices: no history used
        assert receiver.decode(TEXT, True, rsv, data, None) == JSON
        assert not sender.holds_compressor and not receiver.holds_decompressor


# Fixed-Huffman distance codes (RFC 1951 3.2.5): distance -> (code, extra bits, extra value).
DISTANCES = {512: (17, 7, 127), 4096: (23, 10, 1023), 4097: (24, 11, 0), 32768: (29, 13, 8191)}


def match_at(distance: int) -> bytes:
    """A message whose only content is a 3-byte match ``distance`` bytes back.

    One fixed-Huffman block (length code 257, the distance code, end of block), then
    the header of the empty stored block that a sync flush ends with, padded: the
    receiver appends the 4-byte tail that completes it.
    """
    bits: list[int] = [0, 1, 0]  # BFINAL 0, BTYPE 01 (LSB first)
    code, extra_bits, extra = DISTANCES[distance]
    bits += [0, 0, 0, 0, 0, 0, 1]  # symbol 257 (length 3), 7-bit code 0000001, MSB first
    bits += [(code >> i) & 1 for i in range(4, -1, -1)]  # 5-bit distance code, MSB first
    bits += [(extra >> i) & 1 for i in range(extra_bits)]  # extra bits, LSB first
    bits += [0] * 7  # symbol 256, end of block
    bits += [0, 0, 0]  # the empty stored block's header: BFINAL 0, BTYPE 00
    bits += [0] * (-len(bits) % 8)
    return bytes(
        sum(bit << i for i, bit in enumerate(bits[n : n + 8])) for n in range(0, len(bits), 8)
    )


@pytest.mark.parametrize("wbits", [9, 12, 15])
@pytest.mark.parametrize("backend", available_backends())
def test_parked_inflater_reaches_exactly_one_window_back(wbits: int, backend: str) -> None:
    window = 1 << wbits
    first = os.urandom(window)
    stored = zlib.compressobj(0, zlib.DEFLATED, -wbits)
    data = (stored.compress(first) + stored.flush(zlib.Z_SYNC_FLUSH))[:-4]
    receiver = ext(remote_max_window_bits=wbits, backend=backend)
    assert receiver.decode(BINARY, True, 0x40, data, None) == first
    assert not receiver.holds_decompressor and receiver.idle_bytes == window
    assert receiver.decode(BINARY, True, 0x40, match_at(window), None) == first[:3]
    if wbits == 12 and backend == "zlib":
        # One byte further is outside the window the peer may use: invalid data.
        receiver = ext(remote_max_window_bits=12, backend=backend)
        receiver.decode(BINARY, True, 0x40, data, None)
        with pytest.raises(ProtocolError) as info:
            receiver.decode(BINARY, True, 0x40, match_at(4097), None)
        assert info.value.close_code == 1007


@pytest.mark.parametrize("backend", available_backends())
def test_parked_window_spans_fragments_and_messages(backend: str) -> None:
    # The peer (stdlib zlib, one stream with context takeover) sends a message in
    # small fragments, then messages that repeat what lies up to a window back.
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    receiver = ext(remote_max_window_bits=12, backend=backend)
    pieces = [os.urandom(700) for _ in range(8)]
    for i, piece in enumerate(pieces):
        data = c.compress(piece) + c.flush(zlib.Z_SYNC_FLUSH)
        fin = i == len(pieces) - 1
        out = receiver.decode(
            BINARY if i == 0 else CONT, fin, 0 if i else 0x40, data[:-4] if fin else data, None
        )
        assert out == piece
        assert receiver.holds_decompressor == (not fin)
    assert receiver.idle_bytes == 4096  # the last 4 KiB of a 5,600-byte message
    tail = b"".join(pieces)[-3800:]  # in the fragmented message's last window
    mixed = tail[:1000] + b"x" * 10 + tail[-1000:]
    for message in (tail, mixed, b"y" * 3, mixed):
        data = (c.compress(message) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert receiver.decode(BINARY, True, 0x40, data, None) == message
        assert not receiver.holds_decompressor and receiver.idle_bytes == 4096
        assert len(data) < 100  # found in the window the receiver kept


def test_history_is_kept_only_with_the_peers_context_takeover() -> None:
    sender, receiver = pair(wbits=12, no_context_takeover=True)
    for _ in range(3):
        receiver.decode(BINARY, True, *sender.encode(BINARY, True, JSON * 30), None)
        assert receiver.idle_bytes == 0 and not receiver.holds_decompressor
    sender, receiver = pair(wbits=12)
    for _ in range(3):
        receiver.decode(BINARY, True, *sender.encode(BINARY, True, JSON * 30), None)
        assert receiver.idle_bytes == 4096 and not receiver.holds_decompressor


@pytest.mark.parametrize("remote_no_context_takeover", [False, True])
def test_a_peer_cannot_reach_another_connections_history(remote_no_context_takeover: bool) -> None:
    # Inflaters are never shared: a back-reference on a fresh connection finds nothing.
    secret = os.urandom(4096)
    stored = zlib.compressobj(0, zlib.DEFLATED, -12)
    other = ext(remote_max_window_bits=12, remote_no_context_takeover=remote_no_context_takeover)
    data = (stored.compress(secret) + stored.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert other.decode(BINARY, True, 0x40, data, None) == secret
    attacker = ext(remote_max_window_bits=12, remote_no_context_takeover=remote_no_context_takeover)
    with pytest.raises(ProtocolError) as info:
        attacker.decode(BINARY, True, 0x40, match_at(4096), None)
    assert info.value.close_code == 1007
    if remote_no_context_takeover:  # nor its own previous message
        with pytest.raises(ProtocolError):
            other.decode(BINARY, True, 0x40, match_at(4096), None)


def test_keep_tail() -> None:
    keep = streams.keep_tail
    assert keep(b"", b"", 4) == b""
    assert keep(b"ab", b"cd", 4) == b"abcd"
    assert keep(b"abc", b"de", 4) == b"bcde"
    assert keep(b"abc", b"defgh", 4) == b"efgh"
    assert keep(b"", b"abcd", 4) == b"abcd"


def test_streams_are_created_lazily() -> None:
    sender, receiver = pair(threshold=128)
    assert not sender.holds_compressor and not receiver.holds_decompressor
    assert sender.encode(TEXT, True, b"tiny") == (0, b"tiny")  # below the threshold
    assert receiver.decode(TEXT, True, 0, b"tiny", None) == b"tiny"
    assert not sender.holds_compressor and not receiver.holds_decompressor
    rsv, data = sender.encode(TEXT, True, JSON)
    assert sender.holds_compressor and not receiver.holds_decompressor
    receiver.decode(TEXT, True, rsv, data, None)
    assert not receiver.holds_decompressor and receiver.idle_bytes == len(JSON)


def test_compress_false_threshold_and_fragmented_messages() -> None:
    sender, _ = pair(threshold=128)
    assert sender.encode(TEXT, True, JSON, compress=False) == (0, JSON)
    assert sender.encode(TEXT, True, JSON[:127])[0] == 0
    assert sender.encode(TEXT, True, JSON[:128])[0] == 0x40
    # fragmented: compressed whatever the first frame's size; continuations follow it
    assert sender.encode(TEXT, False, b"a")[0] == 0x40
    assert sender.encode(CONT, True, b"b", compress=False)[0] == 0
    assert sender.encode(TEXT, False, b"a", compress=False) == (0, b"a")
    assert sender.encode(CONT, True, b"b") == (0, b"b")


def test_incompressible_messages_go_as_they_are() -> None:
    noise = os.urandom(1 << 19)
    # with context takeover, from max(64 KiB, twice the compressor's size) up: here
    # window 15 and memLevel 5, 288 KiB (a copy of the compressor is restored)
    sender, receiver = pair()
    assert sender.encode(BINARY, True, noise) == (0, noise)
    assert receiver.decode(BINARY, True, 0, noise, None) == noise
    for _ in range(2):  # the streams are still in step
        rsv, data = sender.encode(TEXT, True, JSON)
        assert rsv == 0x40 and receiver.decode(TEXT, True, rsv, data, None) == JSON
    # without context takeover, whatever the size
    sender, _ = pair(no_context_takeover=True)
    assert sender.encode(BINARY, True, noise[:200]) == (0, noise[:200])
    # unless asked to compress everything
    sender = ext(compress_threshold=0, skip_incompressible=False)
    assert sender.encode(BINARY, True, noise)[0] == 0x40


def test_window_bits_8() -> None:
    # zlib cannot deflate with a 256-byte window: that direction goes uncompressed.
    with pytest.raises(ValueError):
        zlib.compressobj(6, zlib.DEFLATED, -8)
    sender = ext(local_max_window_bits=8, compress_threshold=0)
    assert sender.encode(TEXT, True, JSON) == (0, JSON)
    assert sender.compress(JSON) == JSON
    # Inflating tolerates zlib peers that use 9 when 8 was agreed.
    receiver = ext(remote_max_window_bits=8)
    message = os.urandom(400) * 3  # back-references 400 bytes away
    assert receiver.decode(BINARY, True, 0x40, deflate(message, wbits=9), None) == message


@pytest.mark.parametrize("wbits", range(9, 16))
def test_window_sizes_are_honoured(wbits: int) -> None:
    sender, receiver = pair(wbits=wbits)
    message = os.urandom(1 << wbits) * 2 + JSON
    rsv, data = sender.encode(BINARY, True, message)
    assert receiver.decode(BINARY, True, rsv, data, None) == message
    d = zlib.decompressobj(-wbits)  # an inflater with exactly that window, fed slowly
    out, pending = b"", data + TAIL
    while pending:
        out += d.decompress(pending, 7)
        pending = d.unconsumed_tail
    assert out == message


def test_rsv1_on_a_continuation_frame_is_a_protocol_error() -> None:
    _, receiver = pair()
    receiver.decode(TEXT, False, 0x40, deflate(b"abc"), None)
    with pytest.raises(ProtocolError) as info:
        receiver.decode(CONT, True, 0x40, b"", None)
    assert info.value.close_code == 1002
    _, receiver = pair()
    receiver.decode(TEXT, False, 0, b"abc", None)  # uncompressed message
    with pytest.raises(ProtocolError):
        receiver.decode(CONT, True, 0x40, b"", None)


@pytest.mark.parametrize(
    "garbage", [b"\xff\xff\xff\xff", b"\x07" * 10, deflate(b"x") + b"\xff" * 4]
)
def test_invalid_deflate_data_is_1007(garbage: bytes) -> None:
    _, receiver = pair()
    with pytest.raises(ProtocolError) as info:
        receiver.decode(BINARY, True, 0x40, garbage, None)
    assert info.value.close_code == 1007
    assert not isinstance(info.value, MessageTooBig)


def test_final_block_ends_the_stream() -> None:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = c.compress(b"hello") + c.flush(zlib.Z_FINISH)  # BFINAL set, no tail
    _, receiver = pair()
    assert receiver.decode(TEXT, True, 0x40, final, None) == b"hello"
    assert not receiver.holds_decompressor  # the next message starts a new stream
    assert receiver.decode(TEXT, True, 0x40, deflate(b"again"), None) == b"again"
    with pytest.raises(ProtocolError) as info:
        receiver.decode(TEXT, True, 0x40, final + b"junk", None)
    assert info.value.close_code == 1007


def test_empty_messages() -> None:
    sender, receiver = pair()
    rsv, data = sender.encode(BINARY, True, b"")
    assert rsv == 0x40 and data == b"\x00"
    assert receiver.decode(BINARY, True, rsv, data, None) == b""
    assert receiver.decode(BINARY, True, 0x40, b"", None) == b""  # empty payload: empty message
    assert receiver.decode(BINARY, True, rsv, deflate(b"next"), None) == b"next"


# -- deflate bombs and the size limit -------------------------------------------------

MIB = 1 << 20
BOMB = deflate(b"\x00" * (16 * MIB), level=9)  # 16 MiB of zeros in about 16 KiB


def traced(function: Any, *args: Any) -> tuple[int, int]:
    """Run ``function(*args)``; return the memory (current, peak) it allocated."""
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()


def test_single_frame_bomb_is_refused_with_bounded_memory() -> None:
    assert len(BOMB) < 20000
    _, receiver = pair()
    refused = traced(pytest.raises, MessageTooBig, receiver.decode, BINARY, True, 0x40, BOMB, MIB)
    assert refused[1] < 3 * MIB  # the peak
    with pytest.raises(MessageTooBig) as info:
        pair()[1].decode(BINARY, True, 0x40, BOMB, MIB)
    assert info.value.close_code == 1009
    assert str(info.value) == "message larger than max_message_size once decompressed"


def test_fragmented_bomb_over_the_protocol() -> None:
    proto = server_proto(max_message_size=MIB, extensions=[ext()])
    data = fragments(BINARY, BOMB, 1024)
    _, peak = traced(proto.receive_data, data)
    assert_failed(proto, 1009)
    assert proto.events_received() == []
    assert peak < 3 * MIB + len(data)


@pytest.mark.parametrize("fragments_count", [1, 7])
def test_exact_limit_accepted_one_more_byte_refused(fragments_count: int) -> None:
    limit = 100_000
    for size, ok in ((limit, True), (limit + 1, False)):
        message = (JSON * (size // len(JSON) + 1))[:size]
        payload = deflate(message)
        proto = server_proto(max_message_size=limit, extensions=[ext()])
        proto.receive_data(fragments(TEXT, payload, len(payload) // fragments_count + 1))
        if ok:
            assert describe(proto.events_received()) == [("message", TEXT, message)]
        else:
            assert_failed(proto, 1009)


def test_bytes_inflated_from_the_tail_count() -> None:
    # A sync flush ends with an empty stored block whose LEN and NLEN the sender strips:
    # sending LEN=4 and NLEN instead makes the 0x00 0x00 0xff 0xff tail the receiver
    # appends the 4 bytes of that stored block, inflated only once the tail is fed.
    body = JSON[:200]
    payload = deflate(body) + b"\x04\x00\xfb\xff"
    expected = body + TAIL
    _, receiver = pair()
    assert receiver.decode(BINARY, True, 0x40, payload, len(expected)) == expected
    _, receiver = pair()
    with pytest.raises(MessageTooBig):
        receiver.decode(BINARY, True, 0x40, payload, len(expected) - 1)
    _, receiver = pair()
    with pytest.raises(MessageTooBig):
        receiver.decode(BINARY, True, 0x40, payload, len(body))  # only the tail overflows


# -- the shared pool and threads ------------------------------------------------------


def test_pool_serves_connections_and_stays_bounded() -> None:
    streams.clear_pool()
    a, b = ext(local_no_context_takeover=True), ext(local_no_context_takeover=True)
    a.encode(TEXT, True, JSON)
    assert streams.pooled_compressors() == 1 and not a.holds_compressor
    (pooled,) = next(iter(streams._POOLS.values()))
    b.encode(TEXT, False, JSON[:150])  # a fragmented message holds it until the end
    assert b.holds_compressor and b._compressor is pooled
    assert streams.pooled_compressors() == 0
    rsv, data = b.encode(CONT, True, JSON[150:])
    assert streams.pooled_compressors() == 1
    others = [ext(local_no_context_takeover=True) for _ in range(streams.POOL_SIZE + 5)]
    for other in others:
        other.encode(TEXT, False, JSON)
    for other in others:
        other.encode(CONT, True, JSON)
    assert streams.pooled_compressors() == streams.POOL_SIZE
    streams.clear_pool()


def test_compress_in_threads() -> None:
    # Without context takeover, messages compress independently, in any thread.
    shared = ext(local_no_context_takeover=True)
    messages = [JSON + str(i).encode() * 50 for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(shared.compress, messages))
    for result, message in zip(results, messages, strict=True):
        assert isinstance(result, Compressed) and inflate(result) == message
    # With context takeover, in order, and sent through encode as they are.
    sender, receiver = pair()
    for message in messages[:3]:
        compressed = sender.compress(message)
        rsv, data = sender.encode(TEXT, True, compressed)
        assert rsv == 0x40 and data is compressed
        assert receiver.decode(TEXT, True, rsv, data, None) == message
    with pytest.raises(ValueError):
        sender.encode(TEXT, False, sender.compress(JSON))


# -- backends -----------------------------------------------------------------------


def test_backend_choice() -> None:
    assert available_backends()[-1] == "zlib"
    assert ext().backend == "zlib"
    auto = PerMessageDeflate(backend="auto")
    assert auto.backend == available_backends()[0]
    assert auto.inflate_backend == ("zlib-ng" if "zlib-ng" in available_backends() else "zlib")
    assert ext().inflate_backend == "zlib"
    if "isal" in available_backends():  # named: both ways
        assert PerMessageDeflate(backend="isal").inflate_backend == "isal"
    with pytest.raises(ValueError):
        PerMessageDeflate(backend="lz4")


@pytest.mark.parametrize("compressing", available_backends())
@pytest.mark.parametrize("inflating", available_backends())
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_backends_interoperate(compressing: str, inflating: str, no_context_takeover: bool) -> None:
    for wbits in (9, 12, 15):
        backends = (compressing, inflating)
        sender, receiver = pair(
            wbits=wbits, no_context_takeover=no_context_takeover, backends=backends
        )
        for message in (JSON, JSON * 50, os.urandom(3000) * 3, b"x"):
            rsv, data = sender.encode(BINARY, True, message)
            assert receiver.decode(BINARY, True, rsv, data, len(message)) == message
        rsv, data = sender.encode(BINARY, False, JSON)
        assert receiver.decode(BINARY, False, rsv, data, None) == JSON
        rsv, data = sender.encode(CONT, True, JSON)
        assert receiver.decode(CONT, True, rsv, data, None) == JSON


def idle_deflate_bytes(count: int, **policy: Any) -> float:
    """Bytes of deflate state per idle server connection.

    ``count`` server connections answer the browsers' offer with ``policy``, receive
    and send one compressed 4 KiB message, and are dropped but for their negotiated
    extension: what those extensions hold, per connection. Pooled compressors are
    shared (at most ``POOL_SIZE`` per configuration) and filled beforehand.
    """
    message = JSON * 14  # about 4 KiB
    c = zlib.compressobj(1, zlib.DEFLATED, -12)
    wire = frame(
        BINARY, (c.compress(message) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv=0x40, mask=True
    )

    def connect() -> PerMessageDeflate:
        server, _ = server_negotiate("permessage-deflate; client_max_window_bits", **policy)
        server.receive_data(wire)
        assert describe(server.events_received()) == [("message", BINARY, message)]
        server.send_binary(message)
        (sent,) = parse_frames(b"".join(server.data_to_send()))
        assert sent.rsv == 0x40
        (extension,) = server.extensions
        assert isinstance(extension, PerMessageDeflate)
        return extension

    connect()  # warm-up: the pool's compressor, caches
    held: list[PerMessageDeflate] = []
    size, _ = traced(lambda: (held.extend(connect() for _ in range(count)), gc.collect()))
    return size / count


def test_what_an_idle_compressed_connection_holds() -> None:
    # The default policy: our compressor is pooled, the client's last 4 KiB are kept.
    per_connection = idle_deflate_bytes(40)
    assert 4096 <= per_connection < 5 * 1024
    # Context takeover both ways: a stdlib zlib compressor (12 bits, memLevel 5) too.
    per_connection = idle_deflate_bytes(40, server_no_context_takeover=False)
    assert 38 * 1024 <= per_connection < 44 * 1024
    # The client without context takeover: nothing but the extension object.
    per_connection = idle_deflate_bytes(40, client_no_context_takeover=True)
    assert per_connection < 512


# -- through the protocol core ------------------------------------------------------


def test_protocol_round_trip_and_control_frames_uncompressed() -> None:
    a = client_proto(extensions=[ext(compress_threshold=0)])
    b = server_proto(extensions=[ext()])
    a.send_text(JSON)
    a.send_ping(b"ping")
    a.send_binary(b"\x01" * 1000, fin=False)
    a.send_continuation(b"\x02" * 1000, fin=True)
    a.send_text(JSON)
    wire = b"".join(a.data_to_send())
    frames = parse_frames(wire)
    expected = [(TEXT, 0x40), (PING, 0), (BINARY, 0x40), (CONT, 0), (TEXT, 0x40)]
    assert [(f.opcode, f.rsv) for f in frames] == expected
    assert len(frames[4].payload) < len(frames[0].payload) // 3  # context takeover
    b.receive_data(wire)
    assert describe(b.events_received()) == [
        ("message", TEXT, JSON),
        ("ping", None, b"ping"),
        ("message", BINARY, b"\x01" * 1000 + b"\x02" * 1000),
        ("message", TEXT, JSON),
    ]


def test_protocol_fails_with_the_right_codes() -> None:
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(TEXT, b"\xff\xff\xff", rsv=0x40, mask=True))
    assert_failed(proto, 1007)
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(TEXT, deflate(b"ab"), fin=False, rsv=0x40, mask=True))
    proto.receive_data(frame(CONT, b"", rsv=0x40, mask=True))
    assert_failed(proto, 1002)
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(TEXT, deflate(b"\xff\xfe"), rsv=0x40, mask=True))
    assert_failed(proto, 1007)  # invalid UTF-8 once inflated
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(TEXT, deflate(b"ok"), rsv=0x20, mask=True))
    assert_failed(proto, 1002)  # RSV2 is not ours


def test_rsv1_on_a_control_frame_is_1002() -> None:
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(PING, b"x", rsv=0x40, mask=True))
    assert_failed(proto, 1002)


def test_protocol_send_with_compress_false() -> None:
    proto = client_proto(extensions=[ext(compress_threshold=0)])
    proto.send_data(JSON, compress=False)
    (sent,) = parse_frames(proto.data_to_send())
    assert sent.rsv == 0 and sent.payload == JSON


def test_incompressible_message_of_exactly_the_limit_is_accepted() -> None:
    message = os.urandom(100_000)
    proto = server_proto(max_message_size=len(message), extensions=[ext()])
    proto.receive_data(frame(BINARY, deflate(message, level=1), rsv=0x40, mask=True))
    assert describe(proto.events_received()) == [("message", BINARY, message)]


# -- the asyncio front end and websockets ---------------------------------------------


async def echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


MESSAGES: list[str | bytes] = ["hello", "", JSON.decode() * 30, os.urandom(70000), b"z" * 300000]


def negotiated(conn: Any) -> PerMessageDeflate | None:
    found = [e for e in conn.protocol.extensions if isinstance(e, PerMessageDeflate)]
    return found[0] if found else None


async def test_asyncio_compression_option() -> None:
    async with blazews.serve(echo, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with blazews.connect(url) as conn:
            assert conn.response_headers["Sec-WebSocket-Extensions"] == (
                "permessage-deflate; server_no_context_takeover; "
                "server_max_window_bits=12; client_max_window_bits=12"
            )
            for message in MESSAGES:
                await conn.send(message)
                assert await conn.recv() == message
        async with blazews.connect(url, compression=None) as conn:
            assert "Sec-WebSocket-Extensions" not in conn.response_headers
            assert "Sec-WebSocket-Extensions" not in conn.request_headers
    async with blazews.serve(echo, "127.0.0.1", 0, compression=None) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as conn:
            assert negotiated(conn) is None
            await conn.send("plain")
            assert await conn.recv() == "plain"
    with pytest.raises(ValueError):
        blazews.connect("ws://127.0.0.1:1/", compression="gzip")


WS_CLIENT_OFFERS = [  # None: websockets' default offer
    None,
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 9, "client_max_window_bits": 10},
    {"client_max_window_bits": None, "compress_settings": {"memLevel": 9}},
]


@pytest.mark.parametrize("offers", WS_CLIENT_OFFERS)
async def test_websockets_client_against_blazews_server(offers: Any) -> None:
    kwargs: dict[str, Any] = {}
    if offers is not None:
        kwargs = {
            "extensions": [wspmd.ClientPerMessageDeflateFactory(**offers)],
            "compression": None,
        }
    async with blazews.serve(echo, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with websockets.asyncio.client.connect(url, max_size=None, **kwargs) as client:
            header = client.response.headers["Sec-WebSocket-Extensions"]
            assert "permessage-deflate" in header
            if offers is None:  # websockets' default offer is the browsers'
                assert header == (
                    "permessage-deflate; server_no_context_takeover; "
                    "server_max_window_bits=12; client_max_window_bits=12"
                )
                (theirs,) = client.protocol.extensions
                assert isinstance(theirs, wspmd.PerMessageDeflate)
                assert theirs.remote_no_context_takeover
                assert not theirs.local_no_context_takeover
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message
            await client.send(["frag", "mented ", JSON.decode()])
            assert await client.recv() == "fragmented " + JSON.decode()
            (conn,) = server.connections
            ours = negotiated(conn)
            assert ours is not None
            if offers is None:
                # Idle: no compressor (pooled), the client's last 4 KiB, no inflater.
                assert not ours.holds_compressor and not ours.holds_decompressor
                assert ours.idle_bytes == 4096


WS_SERVER_POLICIES = [  # None: websockets' default policy
    None,
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 9, "client_max_window_bits": 9},
    {"client_max_window_bits": 11, "require_client_max_window_bits": True},
]


@pytest.mark.parametrize("policy", WS_SERVER_POLICIES)
async def test_blazews_client_against_websockets_server(policy: Any) -> None:
    kwargs: dict[str, Any] = {}
    if policy is not None:
        kwargs = {
            "extensions": [wspmd.ServerPerMessageDeflateFactory(**policy)],
            "compression": None,
        }
    async with websockets.asyncio.server.serve(
        echo, "127.0.0.1", 0, max_size=None, **kwargs
    ) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        async with blazews.connect(f"ws://127.0.0.1:{port}/", max_message_size=None) as conn:
            extension = negotiated(conn)
            assert extension is not None
            for message in MESSAGES:
                await conn.send(message)
                assert await conn.recv() == message
