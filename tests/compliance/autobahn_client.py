"""Client drivers for the Autobahn fuzzing server: run every case, then update the reports.

``python -m tests.compliance.autobahn_client asyncio|sync ws://host:port AGENT`` runs one.
"""

from __future__ import annotations

import asyncio
import sys

import blazews
from blazews import ConnectionClosed
from blazews.sansio.extensions.permessage_deflate import ClientPerMessageDeflateFactory

MAX_SIZE = 16 * 1024 * 1024


def offers() -> list[ClientPerMessageDeflateFactory]:
    """Two permessage-deflate offers in one header: the default one, and one with
    client_no_context_takeover, which the 13.* cases that ask for it need.

    Every message goes out compressed: kosoku 0.1.0 takes an uncompressed message on
    a permessage-deflate connection for an error (RFC 7692 §6 allows it).
    """
    options = {"compress_threshold": 0, "skip_incompressible": False}
    return [
        ClientPerMessageDeflateFactory(**options),
        ClientPerMessageDeflateFactory(client_no_context_takeover=True, **options),
    ]


async def run_asyncio(base: str, agent: str) -> None:
    async with blazews.connect(f"{base}/getCaseCount") as conn:
        count = int(await conn.recv())
    for case in range(1, count + 1):
        try:
            async with blazews.connect(
                f"{base}/runCase?case={case}&agent={agent}",
                max_message_size=MAX_SIZE,
                ping_interval=None,
                max_queue=64,
                extensions=offers(),
                compression=None,
            ) as conn:
                async for message in conn:
                    await conn.send(message)
        except ConnectionClosed:
            pass
        except OSError:
            pass
    async with blazews.connect(f"{base}/updateReports?agent={agent}") as conn:
        try:
            await conn.recv()
        except ConnectionClosed:
            pass


def run_sync(base: str, agent: str) -> None:
    from blazews import sync

    with sync.connect(f"{base}/getCaseCount") as conn:
        count = int(conn.recv())
    for case in range(1, count + 1):
        try:
            with sync.connect(
                f"{base}/runCase?case={case}&agent={agent}",
                max_message_size=MAX_SIZE,
                ping_interval=None,
                max_queue=64,
                extensions=offers(),
                compression=None,
            ) as conn:
                for message in conn:
                    conn.send(message)
        except ConnectionClosed:
            pass
        except OSError:
            pass
    with sync.connect(f"{base}/updateReports?agent={agent}") as conn:
        try:
            conn.recv()
        except ConnectionClosed:
            pass


if __name__ == "__main__":
    mode, base, agent = sys.argv[1:4]
    if mode == "asyncio":
        asyncio.run(run_asyncio(base, agent))
    else:
        run_sync(base, agent)
