"""A FastAPI app whose WebSockets run on blazews (uvicorn's ``--ws`` option).

Run it as ``python examples/fastapi_app.py``, or with the uvicorn command:
``uvicorn examples.fastapi_app:app --ws blazews.uvicorn:WebSocketProtocol``.
Needs ``pip install fastapi uvicorn[standard]``; the app itself does not change.
"""

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
room: set[WebSocket] = set()


@app.get("/")
async def index() -> dict[str, str]:
    return {"echo": "/echo", "room": "/room"}


@app.websocket("/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(f"echo: {text}")


@app.websocket("/room")
async def chat_room(ws: WebSocket) -> None:
    await ws.accept()
    room.add(ws)
    try:
        async for text in ws.iter_text():
            for member in list(room):
                await member.send_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        room.discard(ws)


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=8765,
        ws="blazews.uvicorn:WebSocketProtocol",
        log_level="warning",
    )
