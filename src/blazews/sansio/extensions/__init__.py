"""The extension negotiation framework (RFC 6455 §9).

An extension is negotiated by a factory during the opening handshake and then
transforms data frames in both directions. permessage-deflate (RFC 7692) is built on
this framework in its own module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ClientExtensionFactory",
    "Extension",
    "ExtensionParams",
    "ServerExtensionFactory",
    "with_compression",
]

ExtensionParams = list[tuple[str, "str | None"]]


class Extension:
    """A negotiated extension, active on one connection.

    Attributes:
        name: The extension's registered name, e.g. ``"permessage-deflate"``.
        rsv_bits: The reserved bits of the first header byte the extension claims
            (``0x40`` for RSV1). Frames with other reserved bits fail with 1002.
    """

    __slots__ = ()

    name: str = ""
    rsv_bits: int = 0

    def decode(
        self, opcode: int, fin: bool, rsv: int, payload: bytes, max_size: int | None
    ) -> bytes:
        """Transform a received data frame's payload.

        Args:
            opcode: The frame's opcode (``0`` for a continuation).
            fin: Whether it is the message's last frame.
            rsv: The frame's reserved bits (``first_byte & 0x70``).
            payload: The unmasked payload.
            max_size: How many bytes the message may still grow by, or ``None``.

        Raises:
            ProtocolError: The frame breaks the extension's rules (with its close code).
        """
        return payload

    def encode(
        self, opcode: int, fin: bool, payload: bytes, compress: bool = True
    ) -> tuple[int, bytes]:
        """Transform a data frame about to be sent; return ``(rsv_bits, payload)``.

        ``compress`` is ``False`` when the application asked for this message to go
        uncompressed (``send(data, compress=False)``).
        """
        return 0, payload


class ClientExtensionFactory:
    """Offers an extension in the client's request and accepts the server's answer."""

    name: str = ""

    def get_request_params(self) -> ExtensionParams:
        """Return the parameters of the offer to send."""
        raise NotImplementedError

    def process_response_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> Extension:
        """Build the extension from the server's answer.

        Raises:
            NegotiationError: The answer does not match the offer.
        """
        raise NotImplementedError


class ServerExtensionFactory:
    """Answers a client's offer of an extension."""

    name: str = ""

    def process_request_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> tuple[ExtensionParams, Extension]:
        """Accept one offer: return the response parameters and the extension.

        Raises:
            NegotiationError: This offer is declined (the server then tries the next
                offer, or goes on without the extension).
        """
        raise NotImplementedError


def with_compression(
    compression: str | None, extensions: Sequence[Any], *, client: bool
) -> list[Any]:
    """Resolve the front ends' ``compression`` option into extension factories.

    Args:
        compression: ``"deflate"`` adds permessage-deflate with its default policy,
            unless ``extensions`` already has a permessage-deflate factory; ``None``
            adds nothing.
        extensions: The factories the application passed.
        client: Whether the factories are for a client (else for a server).

    Raises:
        ValueError: ``compression`` is neither ``"deflate"`` nor ``None``.
    """
    if compression is None:
        return list(extensions)
    if compression != "deflate":
        raise ValueError(f"unsupported compression: {compression!r}")
    from . import permessage_deflate

    if client:
        return list(permessage_deflate.enable_client_permessage_deflate(extensions))
    return list(permessage_deflate.enable_server_permessage_deflate(extensions))
