"""permessage-deflate (RFC 7692): negotiation in both roles and per-message compression.

Negotiation
    :class:`ClientPerMessageDeflateFactory` makes one offer; give the client several
    factories to make several offers in one header. :class:`ServerPerMessageDeflateFactory`
    answers an offer according to its policy. Offers with an unknown, repeated or
    malformed parameter (a value on a flag, a window size outside 8-15 or with a leading
    zero) are declined by the server (the next offer is tried) and fail the client's
    handshake when they come back in a response.

Messages
    The first frame of a compressed message carries RSV1; continuation frames never do
    (RSV1 on one is a 1002 protocol error). An invalid deflate stream is a 1007. The
    message size limit applies to the inflated size and is enforced while inflating: a
    frame never inflates to more than one byte past the room the message has left, so a
    deflate bomb costs about ``max_message_size`` bytes of memory, not its inflated size.
    A message below ``compress_threshold`` bytes sent in one frame goes uncompressed, as
    does a message sent with ``compress=False``.

Window bits 8
    zlib (and zlib-ng, and ISA-L) refuse to produce a raw deflate stream with a 256-byte
    window (``deflateInit2`` rejects ``-8``; only zlib-wrapped streams are silently
    bumped to 9), and compressing with 9 could break a peer that honours 8. So when
    window bits 8 are negotiated for what we send, that direction sends every message
    uncompressed, which RFC 7692 always allows. Raw inflate does accept 8 (a true
    256-byte window, checked); we still inflate with at least 9 bits, because zlib-based
    peers compress with 9 when 8 is negotiated, and that costs 256 bytes.

Defaults and what a connection holds
    The server factory answers the browsers' offer (``permessage-deflate;
    client_max_window_bits``, also websockets' default) with ``permessage-deflate;
    server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12``;
    level 1, memLevel 5. Streams are created lazily, on the first compressed message in
    their direction, and between messages a connection holds:

    - no compressor without context takeover in its direction (the server's default):
      compressors come from a shared, bounded, thread-safe pool (each message ends
      with a full flush, which forgets the history, so the compressor can serve any
      connection next);
    - a compressor with context takeover (the client's default): 38 KiB with stdlib
      zlib at 12 bits and memLevel 5 (262 KiB at 15 and 8), 160 KiB with zlib-ng,
      229 KiB with ISA-L;
    - no inflater: with the peer's context takeover, only the peer's last window of
      output (up to 4 KiB at 12 bits, 32 KiB at 15), from which the next message's
      inflater starts as its dictionary (about 0.2 us); without it, nothing. A live
      inflater would hold its window plus about 7 KiB with zlib (44 KiB with zlib-ng,
      90 KiB with ISA-L). Inflaters are not pooled: a new one costs about 0.1 us, and
      Python's zlib cannot reset one, so a reused inflater would let a peer read
      other connections' messages through back-references.

    So an idle server connection with the default policy, after one 4 KiB message
    each way, holds 4.4 KiB of deflate state (tracemalloc; 4-7 KiB of RSS, whatever
    the backend); with context takeover both ways, 42 KiB with stdlib zlib (RSS 43),
    165 KiB with zlib-ng (RSS 162). websockets' defaults (the same windows, context
    takeover) hold 49 KiB (RSS 52); with ``server_no_context_takeover``, 11 KiB (RSS 12).
    The price of ``server_no_context_takeover`` is the ratio of what the server sends:
    each message is compressed on its own, which costs little from about 8 KiB up
    (JSON, stdlib zlib level 1: 7.3x instead of 7.9x at 16 KiB) and much on small
    messages (3.2x instead of 6.3x at 1 KiB). On JSON and HTML a 12-bit window
    compresses within 10-20% of a 15-bit one at level 1.

CPU and backends
    The default level is 1: on JSON and HTML, level 6 costs about twice the CPU for
    output 15-20% smaller. ``auto`` (the default backend) compresses with the fastest
    installed: ISA-L (``isal``; 16 KiB of JSON in 13 us), then zlib-ng (22 us, and a
    worse ratio at level 1: 5.5x against 7.8x), then stdlib zlib (30 us); it inflates
    with zlib-ng (16 KiB in 10 us), else zlib (13 us). All produce and accept the same
    wire format. ``BLAZEWS_DEFLATE_BACKEND`` (``zlib``, ``zlib-ng``, ``isal``,
    ``auto``) or the factories' ``backend`` argument names one backend for both
    directions; a compressor held per connection (context takeover) is 4-6 times
    larger with ISA-L or zlib-ng than with ``zlib``, the choice where such
    connections are many.

Compressing off the event loop
    :meth:`PerMessageDeflate.compress` compresses a whole message and returns a
    :class:`Compressed`, which :meth:`PerMessageDeflate.encode` then sends as is, with
    RSV1. Zlib releases the GIL while compressing, so a front end may run it in a
    thread for large messages; see :meth:`PerMessageDeflate.compress` for the ordering
    rules.
"""


from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ...exceptions import NegotiationError
from . import ClientExtensionFactory, Extension, ExtensionParams, ServerExtensionFactory
from ._deflate_codec import (
    DEFAULT_COMPRESS_THRESHOLD,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_MEMORY_LEVEL,
    NAME,
    Compressed,
    PerMessageDeflate,
    _check_window_bits,
    _tuning,
)
from ._deflate_streams import available_backends

__all__ = [
    "DEFAULT_COMPRESSION_LEVEL",
    "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_MEMORY_LEVEL",
    "DEFAULT_WINDOW_BITS",
    "ClientPerMessageDeflateFactory",
    "Compressed",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "available_backends",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
]

DEFAULT_WINDOW_BITS = 12
"""Window bits the server factory asks for in both directions (a 4 KiB window).

A stdlib zlib compressor costs 38 KiB at 12 bits (memLevel 5), 262 KiB at 15 (memLevel
8); between messages we keep at most one window of the peer's output (4 KiB at 12
bits, 32 KiB at 15) where it uses context takeover.
"""

_SNCT = "server_no_context_takeover"
_CNCT = "client_no_context_takeover"
_SMWB = "server_max_window_bits"
_CMWB = "client_max_window_bits"
_PARAMS = (_SNCT, _CNCT, _SMWB, _CMWB)
_WINDOW_BITS = re.compile(r"8|9|1[0-5]")  # RFC 7692 7.1.2: 8-15, no leading zero


# -- negotiation --------------------------------------------------------------------


def _parse_params(params: ExtensionParams, *, response: bool) -> dict[str, str | None]:
    """Check the parameters of an offer or a response; return them by name.

    Raises:
        NegotiationError: An unknown or repeated parameter, a value on a flag, or an
            invalid window size (in a response, ``client_max_window_bits`` needs one).
    """
    found: dict[str, str | None] = {}
    for name, value in params:
        if name not in _PARAMS:
            raise NegotiationError(f"unknown permessage-deflate parameter {name!r}")
        if name in found:
            raise NegotiationError(f"repeated permessage-deflate parameter {name}")
        if name in (_SNCT, _CNCT):
            if value is not None:
                raise NegotiationError(f"permessage-deflate parameter {name} takes no value")
        elif value is None:
            if name == _SMWB or response:
                raise NegotiationError(f"permessage-deflate parameter {name} needs a value")
        elif not _WINDOW_BITS.fullmatch(value):
            raise NegotiationError(
                f"invalid value {value!r} for permessage-deflate parameter {name} (8 to 15)"
            )
        found[name] = value
    return found


def _already(accepted: Sequence[Extension]) -> bool:
    return any(ext.name == NAME for ext in accepted)


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """Accepts a client's permessage-deflate offer according to a policy.

    The server always honours what the client asks of it (``server_no_context_takeover``,
    ``server_max_window_bits``) and echoes a ``client_no_context_takeover`` hint.

    The default policy answers the browsers' offer (``permessage-deflate;
    client_max_window_bits``) with ``permessage-deflate; server_no_context_takeover;
    server_max_window_bits=12; client_max_window_bits=12``: 4 KiB windows both ways,
    our compressor borrowed from a shared pool for each message, the client's context
    kept as its last 4 KiB of output. An idle connection then holds about 4.4 KiB of
    deflate state, against 42 KiB (stdlib zlib; 165 KiB with zlib-ng) with context
    takeover both ways. The price is the ratio of what we send: each message
    is compressed on its own, which costs little from about 8 KiB up (7.3x instead of
    7.9x on 16 KiB JSON) and much on small messages (3.2x instead of 6.3x on 1 KiB).
    Pass ``server_no_context_takeover=False`` where the bandwidth of small messages
    matters more than memory.

    Args:
        server_no_context_takeover: Never use context takeover when sending (the
            default): our compressor is pooled between messages.
        client_no_context_takeover: Ask the client not to use context takeover.
        server_max_window_bits: Announce and use at most this window (8-15) when
            sending; ``None`` announces nothing unless the client asks for a limit.
        client_max_window_bits: Ask the client for at most this window (8-15) when
            it supports the parameter; ``None`` asks nothing.
        require_client_max_window_bits: Decline offers that do not support
            ``client_max_window_bits`` (needs ``client_max_window_bits``).
        compression_level, memory_level, compress_threshold, skip_incompressible,
            backend: Passed to :class:`PerMessageDeflate`.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = True,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        client_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        require_client_max_window_bits: bool = False,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
        memory_level: int = DEFAULT_MEMORY_LEVEL,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        skip_incompressible: bool = True,
        backend: str | None = None,
    ) -> None:
        if server_max_window_bits is not None:
            _check_window_bits(server_max_window_bits, "server_max_window_bits")
        if client_max_window_bits is not None:
            _check_window_bits(client_max_window_bits, "client_max_window_bits")
        if require_client_max_window_bits and client_max_window_bits is None:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        self.options = _tuning(
            compression_level, memory_level, compress_threshold, skip_incompressible, backend
        )
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.require_client_max_window_bits = require_client_max_window_bits

    def process_request_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> tuple[ExtensionParams, PerMessageDeflate]:
        """Accept one offer: return the response parameters and the extension.

        Raises:
            NegotiationError: The offer is invalid, permessage-deflate was already
                accepted, or the policy requires what the offer lacks.
        """
        if _already(accepted):
            raise NegotiationError("permessage-deflate is already negotiated")
        offer = _parse_params(params, response=False)
        server_nct = self.server_no_context_takeover or _SNCT in offer
        client_nct = self.client_no_context_takeover or _CNCT in offer
        server_bits = self.server_max_window_bits
        offered = offer.get(_SMWB)
        if offered is not None:
            server_bits = int(offered) if server_bits is None else min(server_bits, int(offered))
        client_bits: int | None = None
        if _CMWB in offer:
            client_bits = self.client_max_window_bits
            hint = offer[_CMWB]
            if hint is not None:
                client_bits = int(hint) if client_bits is None else min(client_bits, int(hint))
        elif self.require_client_max_window_bits:
            raise NegotiationError("offer without client_max_window_bits declined")
        response: ExtensionParams = []
        if server_nct:
            response.append((_SNCT, None))
        if client_nct:
            response.append((_CNCT, None))
        if server_bits is not None:
            response.append((_SMWB, str(server_bits)))
        if client_bits is not None:
            response.append((_CMWB, str(client_bits)))
        extension = PerMessageDeflate(
            remote_no_context_takeover=client_nct,
            local_no_context_takeover=server_nct,
            remote_max_window_bits=15 if client_bits is None else client_bits,
            local_max_window_bits=15 if server_bits is None else server_bits,
            **self.options,
        )
        return response, extension


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """Makes one permessage-deflate offer and checks the server's answer to it.

    The default offer is the browsers': ``permessage-deflate; client_max_window_bits``.

    Args:
        server_no_context_takeover: Ask the server not to use context takeover; an
            answer without it then does not match this offer.
        client_no_context_takeover: Promise not to use context takeover.
        server_max_window_bits: Ask the server for at most this window (8-15); an
            answer without it or with more does not match this offer.
        client_max_window_bits: ``True`` offers the bare parameter (the server may then
            limit our window), an integer also promises at most that window, ``False``
            leaves it out (the server may then not limit our window).
        compression_level, memory_level, compress_threshold, skip_incompressible,
            backend: Passed to :class:`PerMessageDeflate`.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool = True,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
        memory_level: int = DEFAULT_MEMORY_LEVEL,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        skip_incompressible: bool = True,
        backend: str | None = None,
    ) -> None:
        if server_max_window_bits is not None:
            _check_window_bits(server_max_window_bits, "server_max_window_bits")
        if not isinstance(client_max_window_bits, bool):
            _check_window_bits(client_max_window_bits, "client_max_window_bits")
        self.options = _tuning(
            compression_level, memory_level, compress_threshold, skip_incompressible, backend
        )
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def __repr__(self) -> str:
        return f"ClientPerMessageDeflateFactory({self.get_request_params()!r})"

    def get_request_params(self) -> ExtensionParams:
        """Return the parameters of this offer."""
        params: ExtensionParams = []
        if self.server_no_context_takeover:
            params.append((_SNCT, None))
        if self.client_no_context_takeover:
            params.append((_CNCT, None))
        if self.server_max_window_bits is not None:
            params.append((_SMWB, str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append((_CMWB, None))
        elif self.client_max_window_bits is not False:
            params.append((_CMWB, str(self.client_max_window_bits)))
        return params

    def process_response_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> PerMessageDeflate:
        """Build the extension from the server's answer to this offer.

        Raises:
            NegotiationError: The answer is invalid or does not match this offer.
        """
        if _already(accepted):
            raise NegotiationError("server accepted permessage-deflate twice")
        answer = _parse_params(params, response=True)
        if self.server_no_context_takeover and _SNCT not in answer:
            raise NegotiationError("server did not accept server_no_context_takeover")
        value = answer.get(_SMWB)
        if value is not None:
            server_bits = int(value)
            if (
                self.server_max_window_bits is not None
                and server_bits > self.server_max_window_bits
            ):
                raise NegotiationError(
                    f"server_max_window_bits={server_bits} exceeds the "
                    f"{self.server_max_window_bits} offered"
                )
        elif self.server_max_window_bits is not None:
            raise NegotiationError(
                f"server did not accept server_max_window_bits={self.server_max_window_bits}"
            )
        else:
            server_bits = 15
        offered = self.client_max_window_bits
        client_bits = 15 if isinstance(offered, bool) else offered
        value = answer.get(_CMWB)
        if value is not None:
            if offered is False:
                raise NegotiationError("server sent client_max_window_bits, which was not offered")
            client_bits = min(client_bits, int(value))
        return PerMessageDeflate(
            remote_no_context_takeover=_SNCT in answer,
            local_no_context_takeover=self.client_no_context_takeover or _CNCT in answer,
            remote_max_window_bits=server_bits,
            local_max_window_bits=client_bits,
            **self.options,
        )


def enable_client_permessage_deflate(
    extensions: Sequence[ClientExtensionFactory] | None = None, **options: Any
) -> list[ClientExtensionFactory]:
    """Return ``extensions`` plus a :class:`ClientPerMessageDeflateFactory` built from
    ``options``, unless ``extensions`` already has a permessage-deflate factory."""
    result = list(extensions or ())
    if not any(factory.name == NAME for factory in result):
        result.append(ClientPerMessageDeflateFactory(**options))
    return result


def enable_server_permessage_deflate(
    extensions: Sequence[ServerExtensionFactory] | None = None, **options: Any
) -> list[ServerExtensionFactory]:
    """Return ``extensions`` plus a :class:`ServerPerMessageDeflateFactory` built from
    ``options``, unless ``extensions`` already has a permessage-deflate factory."""
    result = list(extensions or ())
    if not any(factory.name == NAME for factory in result):
        result.append(ServerPerMessageDeflateFactory(**options))
    return result
