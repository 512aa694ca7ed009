"""An MCP server over WebSocket built on the official Python SDK
(`mcp.server.websocket`, served by uvicorn): the peer for Switchyard's
WebSocket upstream tests.

    python py_ws_server.py --port-file F [--certfile C --keyfile K] [--token T]

Binds 127.0.0.1 on a free port and writes the port to F once listening.
Serves `/ws` (subprotocol `mcp`). With --token, an upgrade without
`Authorization: Bearer T` is refused (403). Tools:
  echo(text)        -> "ws-echo: TEXT"
  count(n)          -> n progress notifications, then "counted N"
  ask(question)     -> asks the client for a sampling completion, returns its text
"""

import argparse
import asyncio
import socket
import warnings

import uvicorn
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.websocket import websocket_server
from mcp.types import SamplingMessage, TextContent
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

warnings.filterwarnings("ignore", category=DeprecationWarning)

server = FastMCP("py-ws-server")


@server.tool()
def echo(text: str) -> str:
    """Echoes the text back."""
    return f"ws-echo: {text}"


@server.tool()
async def count(n: int, ctx: Context) -> str:
    """Reports n steps of progress, then says so."""
    for i in range(n):
        await ctx.report_progress(i + 1, n)
    return f"counted {n}"


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Asks the client's model (sampling) and returns its answer."""
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=question))],
        max_tokens=50,
    )
    return f"the model said: {result.content.text}"


def app(token):
    async def endpoint(ws: WebSocket):
        if token is not None and ws.headers.get("authorization") != f"Bearer {token}":
            await ws.close(code=1008)
            return
        async with websocket_server(ws.scope, ws.receive, ws.send) as (read, write):
            low = server._mcp_server
            await low.run(read, write, low.create_initialization_options())

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--certfile")
    p.add_argument("--keyfile")
    p.add_argument("--token")
    args = p.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app(args.token),
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        ws="websockets-sansio",
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    while not srv.started:
        await asyncio.sleep(0.02)
    with open(args.port_file, "w") as f:
        f.write(str(port))
    await task


if __name__ == "__main__":
    asyncio.run(main())
