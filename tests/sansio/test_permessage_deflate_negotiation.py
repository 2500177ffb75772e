"""permessage-deflate (RFC 7692) negotiation: the server's answer to each offer, the
client's offers and its checks of the answer, and both through the sans-I/O handshake.
"""

from __future__ import annotations

from typing import Any

import pytest

from blazews.exceptions import NegotiationError
from blazews.sansio.client import ClientProtocol
from blazews.sansio.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from blazews.sansio.uri import parse_uri
from tests.sansio.deflate_support import server_negotiate

SNCT, CNCT = "server_no_context_takeover", "client_no_context_takeover"
SMWB, CMWB = "server_max_window_bits", "client_max_window_bits"


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
    _server, response = server_negotiate('permessage-deflate; server_max_window_bits="10"')
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
