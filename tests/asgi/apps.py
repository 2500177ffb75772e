"""A real Starlette app and a real FastAPI app, served by uvicorn with blazews' class
in ``test_apps.py`` (and by the ASGI benchmark's echo endpoint)."""

from __future__ import annotations

from fastapi import Depends, FastAPI, WebSocket, WebSocketException
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket
from starlette.websockets import WebSocketDisconnect

from blazews.sansio.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from blazews.uvicorn import WebSocketProtocol


async def echo(ws: StarletteWebSocket) -> None:
    """Echo every message with its type, until the client closes."""
    await ws.accept()
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await ws.send_text(message["text"])
            else:
                await ws.send_bytes(message["bytes"])
    except WebSocketDisconnect:  # the client left while we answered
        return


async def greet(ws: StarletteWebSocket) -> None:
    """Path, query and header in, subprotocol chosen from the offer, then a close with
    the code and reason the client asks for."""
    offered = ws.scope["subprotocols"]
    await ws.accept(subprotocol="chat.v2" if "chat.v2" in offered else None)
    name = ws.path_params["name"]
    await ws.send_json(
        {
            "name": name,
            "lang": ws.query_params.get("lang"),
            "agent": ws.headers.get("x-agent"),
            "path": ws.url.path,
            "offered": offered,
        }
    )
    code, _, reason = (await ws.receive_text()).partition(" ")
    await ws.close(int(code), reason)


async def denied(ws: StarletteWebSocket) -> None:
    """Refuse the handshake with an HTTP response of our own."""
    await ws.send_denial_response(PlainTextResponse("no entry", status_code=403))


starlette_app = Starlette(
    routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/greet/{name}", greet),
        WebSocketRoute("/denied", denied),
    ]
)


fastapi_app = FastAPI()


async def user(token: str = "") -> str:
    """A dependency: the user a token stands for; a bad token closes with 1008."""
    if token != "secret":
        raise WebSocketException(code=1008, reason="bad token")
    return "alice"


@fastapi_app.websocket("/items/{item_id}")
async def items(ws: WebSocket, item_id: int, who: str = Depends(user)) -> None:
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_json({"item": item_id, "user": who, "got": text})


autobahn_app = Starlette(routes=[WebSocketRoute("/", echo)])
"""The echo endpoint the Autobahn TestSuite drives (every path kosoku uses is ``/``)."""


class CompressEverything(WebSocketProtocol):
    """blazews' class with the Autobahn echo servers' compression policy: every message
    compressed, small and incompressible ones too. kosoku 0.1.0 takes an uncompressed
    message on a compressed connection for an error, although RFC 7692 allows it."""

    extensions = (ServerPerMessageDeflateFactory(compress_threshold=0, skip_incompressible=False),)
