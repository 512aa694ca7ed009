#!/usr/bin/env python3
"""py_client.py: an independent MCP client (official Python SDK) that Switchyard's tests point at a
running gateway. Prints one summary line ("OK ..." on stdout or "FAIL ..." on stderr) and exits 0 on
success, 1 on any failure (2 on bad usage). Never hangs: every request has --timeout, the whole run
has --deadline, and a watchdog kills the process shortly after the deadline.

Usage: python3 py_client.py URL [flags]     (any python3: it re-executes itself in the right venv)
  --transport streamable|sse|websocket   streamable HTTP (default), the deprecated HTTP+SSE transport
                               (URL is the SSE endpoint itself, e.g. http://127.0.0.1:PORT/sse), or
                               WebSocket (the SDK's websocket_client on the `websockets` library;
                               URL is ws://…/mcp/ws; legacy era only)
  --cafile PEM                 trust this CA for https:// URLs (streamable HTTP)
  --era legacy|modern|auto     legacy (default): initialize handshake, Python SDK `mcp` 1.x (venv/);
                               modern: 2026-07-28 with `mcp` 2.x (venv-modern/): probes server/discover and
                               fails unless the connection is modern; auto: same client, legacy fallback allowed
  --expect-protocol VER        assert the negotiated protocol version
  --expect-tool NAME           assert tools/list contains NAME (repeatable)
  --tool NAME --args JSON      tools/call NAME with the JSON object (default {})
  --expect-text SUBSTRING      assert the tool result's text contains SUBSTRING
  --expect-error [SUBSTRING]   the tool call must fail (JSON-RPC error or isError), optionally with SUBSTRING
  --resource URI               resources/list, then resources/read URI (must have contents)
  --prompt NAME [--prompt-args JSON]   prompts/get NAME (must have messages)
  --no-ping                    skip ping (legacy era only; the modern era has no ping)
  --progress                   assert >=1 progress notification arrived before the tool result
  --sampling [--sampling-text T]   answer every sampling/createMessage with T (default
                               "switchyard-sampled-text"); assert the handler ran and the result contains T
  --elicitation [--elicit-content JSON]   accept every elicitation/create with JSON content (default {})
  --list-changed               assert notifications/tools/list_changed arrives within --wait MS (default 5000)
                               after the tool call is sent (modern era: via subscriptions/listen); without
                               --tool, any list_changed since connect counts (legacy era only)
  --header 'Name: value'       extra HTTP header on every request (repeatable)
  --timeout MS                 per-request timeout (default 15000)
  --deadline MS                whole-run limit (default 60000)
  -q                           only the summary line
Needs `bash tests/peers/setup.sh` first (venvs under ${SWITCHYARD_PEERS:-~/.cache/switchyard-peers}).
"""
import argparse
import json
import os
import sys
import threading
import time

PEERS = os.environ.get("SWITCHYARD_PEERS") or os.path.join(os.path.expanduser("~"), ".cache", "switchyard-peers")
SAMPLING_MODEL = "switchyard-test-model"


class Fail(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--transport", choices=["streamable", "sse", "websocket"], default="streamable")
    p.add_argument("--cafile")
    p.add_argument("--era", choices=["legacy", "modern", "auto"], default="legacy")
    p.add_argument("--expect-protocol")
    p.add_argument("--expect-tool", action="append", default=[])
    p.add_argument("--tool")
    p.add_argument("--args", type=json.loads, default=None)
    p.add_argument("--expect-text")
    p.add_argument("--expect-error", nargs="?", const="", default=None)
    p.add_argument("--resource")
    p.add_argument("--prompt")
    p.add_argument("--prompt-args", type=json.loads, default=None)
    p.add_argument("--no-ping", dest="ping", action="store_false")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--sampling", action="store_true")
    p.add_argument("--sampling-text", default="switchyard-sampled-text")
    p.add_argument("--elicitation", action="store_true")
    p.add_argument("--elicit-content", type=json.loads, default={})
    p.add_argument("--list-changed", action="store_true")
    p.add_argument("--wait", type=float, default=5000)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--timeout", type=float, default=15000)
    p.add_argument("--deadline", type=float, default=60000)
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.args is not None and not isinstance(a.args, dict):
        p.error("--args must be a JSON object")
    if (a.progress or a.sampling) and not a.tool:
        p.error("--progress and --sampling need --tool")
    if a.era != "legacy" and a.transport in ("sse", "websocket"):
        p.error(f"the {a.transport} transport is legacy-era only")
    if a.era != "legacy" and a.list_changed and not a.tool:
        p.error("--list-changed without --tool is legacy-era only")
    a.headers = {}
    for h in a.header:
        k, sep, v = h.partition(":")
        if not sep or not k.strip():
            p.error(f'--header wants "Name: value", got {h!r}')
        a.headers[k.strip()] = v.strip()
    for n in ("timeout", "deadline", "wait"):
        if not getattr(a, n) > 0:
            p.error(f"--{n} must be a positive number of ms")
    return a


def ensure_venv(era):
    """Re-exec in the venv that holds the SDK for this era (mcp 1.x for legacy, 2.x for modern/auto)."""
    venv = os.path.join(PEERS, "venv" if era == "legacy" else "venv-modern")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print(f"FAIL: no {py}: run tests/peers/setup.sh first", file=sys.stderr, flush=True)
        sys.exit(1)
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


def first(obj, *names, default=None):
    for n in names:
        if hasattr(obj, n):
            return getattr(obj, n)
    return default


def text_of(content):
    out = []
    for c in content or []:
        t = getattr(c, "text", None)
        if t is not None:
            out.append(t)
        elif getattr(c, "resource", None) is not None:
            out.append(getattr(c.resource, "text", None) or f"<resource {getattr(c.resource, 'uri', '')}>")
        else:
            out.append(f"<{getattr(c, 'type', '?')}>")
    return " | ".join(out)


def short(s, n=160):
    return s if len(s) <= n else s[:n] + "…"


class State:
    def __init__(self, a):
        self.a = a
        self.steps = []
        self.step = "start"
        self.label = f"{a.transport}/{a.era}"
        self.progress = 0
        self.sampling_calls = 0
        self.elicit_calls = 0
        self.list_changed_at = []
        self.get_stream_open = None  # anyio.Event, set when a GET (standalone SSE stream) gets a response

    def log(self, *x):
        if not self.a.quiet:
            print(*x, flush=True)


def make_callbacks(st, types):
    a = st.a

    async def sampling_cb(context, params):
        st.sampling_calls += 1
        kw = {"role": "assistant", "content": types.TextContent(type="text", text=a.sampling_text), "model": SAMPLING_MODEL}
        try:
            return types.CreateMessageResult(**kw, stop_reason="endTurn")
        except Exception:  # noqa: BLE001 - 1.x field name
            return types.CreateMessageResult(**kw, stopReason="endTurn")

    async def elicit_cb(context, params):
        st.elicit_calls += 1
        return types.ElicitResult(action="accept", content=a.elicit_content)

    async def message_handler(message):
        root = getattr(message, "root", message)  # 1.x wraps notifications in ServerNotification
        if isinstance(root, types.ToolListChangedNotification):
            st.list_changed_at.append(time.monotonic())

    async def progress_cb(progress, total, message):
        st.progress += 1

    return (sampling_cb if a.sampling else None), (elicit_cb if a.elicitation else None), message_handler, progress_cb


async def wait_list_changed(st, since, anyio):
    a = st.a
    t0 = time.monotonic()
    while time.monotonic() - t0 < a.wait / 1000:
        hit = next((t for t in st.list_changed_at if t >= since), None)
        if hit is not None:
            return hit
        await anyio.sleep(0.02)
    return None


async def exercise(st, client, era, call_tool, read_resource, get_prompt, ping, listen=None):
    """The common script: tools/list, tools/call (+progress/sampling/elicitation/list_changed), resources, prompts, ping."""
    import anyio

    a = st.a
    st.step = "tools/list"
    tools = (await client.list_tools()).tools
    names = [t.name for t in tools]
    st.log(f"tools/list ok: {len(names)} tools: {short(', '.join(names), 300)}")
    for n in a.expect_tool:
        if n not in names:
            raise Fail(f"tool {n!r} not in tools/list ({short(', '.join(names), 300)})")
    st.steps.append(f"tools/list({len(names)})")

    if a.list_changed and era == "legacy" and a.transport == "streamable" and st.get_stream_open is not None:
        st.step = "list-changed setup"
        with anyio.move_on_after(2):
            await st.get_stream_open.wait()
        st.log(f"standalone GET stream: {'open' if st.get_stream_open.is_set() else 'not opened in 2 s'}")

    if a.tool:
        st.step = f"tools/call {a.tool}"
        sent = time.monotonic()
        progress_at_result = -1
        res = err = None
        try:
            res = await call_tool(a.tool, a.args or {})
            progress_at_result = st.progress
        except Exception as e:  # noqa: BLE001
            err = e
        if a.expect_error is not None:
            msg = (f"{getattr(getattr(err, 'error', None), 'code', '')} {err}" if err is not None
                   else text_of(res.content) if first(res, "is_error", "isError") else None)
            if msg is None:
                raise Fail(f"tools/call {a.tool}: expected an error, got {short(text_of(res.content))!r}")
            if a.expect_error and a.expect_error not in msg:
                raise Fail(f"tools/call {a.tool}: error {msg!r} lacks {a.expect_error!r}")
            st.log(f"tools/call ok (error as expected): {a.tool} -> {short(msg)}")
            st.steps.append(f"tools/call:{a.tool}(error)")
        else:
            if err is not None:
                raise err
            txt = text_of(res.content)
            if first(res, "is_error", "isError"):
                raise Fail(f"tools/call {a.tool} returned isError: {short(txt, 300)}")
            if a.expect_text is not None and a.expect_text not in txt:
                raise Fail(f"tools/call {a.tool}: {a.expect_text!r} not in {short(txt, 300)!r}")
            st.log(f"tools/call ok: {a.tool} -> {short(txt)!r}")
            st.steps.append(f"tools/call:{a.tool}")
            if a.progress:
                if progress_at_result < 1:
                    raise Fail(f"--progress: no progress notification before the result of {a.tool} ({st.progress} after it)")
                st.steps.append(f"progress({progress_at_result})")
            if a.sampling:
                if st.sampling_calls < 1:
                    raise Fail(f"--sampling: the sampling handler was never called during {a.tool}")
                if a.sampling_text not in txt:
                    raise Fail(f"--sampling: {a.sampling_text!r} not in the result {short(txt, 300)!r}")
                st.steps.append(f"sampling({st.sampling_calls})")
        if a.elicitation:
            if st.elicit_calls < 1:
                raise Fail(f"--elicitation: the elicitation handler was never called during {a.tool}")
            st.steps.append(f"elicitation({st.elicit_calls})")
        if a.list_changed:
            st.step = "list-changed wait"
            hit = await (listen(sent) if listen else wait_list_changed(st, sent, anyio))
            if hit is None:
                raise Fail(f"--list-changed: no notifications/tools/list_changed within {a.wait:.0f} ms of calling {a.tool}")
            st.steps.append(f"list_changed(+{(hit - sent) * 1000:.0f}ms)")
    elif a.list_changed:
        st.step = "list-changed wait"
        if await wait_list_changed(st, 0, anyio) is None:
            raise Fail(f"--list-changed: no notifications/tools/list_changed within {a.wait:.0f} ms")
        st.steps.append("list_changed")

    if a.resource:
        st.step = "resources/list"
        rl = (await client.list_resources()).resources
        st.steps.append(f"resources/list({len(rl)})")
        st.step = f"resources/read {a.resource}"
        rr = await read_resource(a.resource)
        if not rr.contents:
            raise Fail(f"resources/read {a.resource}: empty contents")
        c0 = rr.contents[0]
        size = len(getattr(c0, "text", None) or getattr(c0, "blob", "") or "")
        st.log(f"resources/read ok: {a.resource} ({len(rr.contents)} item(s), {size} chars, {first(c0, 'mime_type', 'mimeType')})")
        st.steps.append("resources/read")

    if a.prompt:
        st.step = f"prompts/get {a.prompt}"
        pr = await get_prompt(a.prompt, a.prompt_args or {})
        if not pr.messages:
            raise Fail(f"prompts/get {a.prompt}: no messages")
        st.log(f"prompts/get ok: {a.prompt} -> {len(pr.messages)} message(s)")
        st.steps.append("prompts/get")

    if a.ping and era != "modern":
        st.step = "ping"
        await ping()
        st.steps.append("ping")
    st.step = "close"


async def run_legacy(st):
    """mcp 1.x ClientSession: initialize handshake over streamable HTTP or HTTP+SSE."""
    from contextlib import asynccontextmanager
    from datetime import timedelta

    import anyio
    import httpx
    from mcp import ClientSession, types
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    a = st.a
    st.label += f"/py-mcp@{_version('mcp')}"
    on_response = watch_get_stream(st, anyio)
    tmo = a.timeout / 1000

    @asynccontextmanager
    async def open_streams():
        if a.transport == "sse":
            async with sse_client(a.url, headers=a.headers, timeout=tmo, sse_read_timeout=a.deadline / 1000) as (r, w):
                yield r, w
        elif a.transport == "websocket":
            from mcp.client.websocket import websocket_client
            async with websocket_client(a.url) as (r, w):
                yield r, w
        else:
            timeout = httpx.Timeout(tmo, read=a.deadline / 1000)
            if a.cafile:
                import ssl
                verify = ssl.create_default_context(cafile=a.cafile)
                http = httpx.AsyncClient(headers=a.headers, timeout=timeout, verify=verify, follow_redirects=True)
            else:
                http = create_mcp_http_client(headers=a.headers, timeout=timeout)
            http.event_hooks = {"response": [on_response]}
            async with http, streamable_http_client(a.url, http_client=http) as (r, w, _sid):
                yield r, w

    sampling_cb, elicit_cb, message_handler, progress_cb = make_callbacks(st, types)
    st.step = "connect"
    async with open_streams() as (r, w):
        async with ClientSession(r, w, read_timeout_seconds=timedelta(seconds=tmo), sampling_callback=sampling_cb,
                                 elicitation_callback=elicit_cb, message_handler=message_handler,
                                 client_info=types.Implementation(name="switchyard-py-client", version="1.0.0")) as s:
            init = await s.initialize()
            st.label += f" legacy {init.protocolVersion}"
            st.log(f"initialize ok: server={init.serverInfo.name} {init.serverInfo.version} protocol={init.protocolVersion}")
            st.steps.append("initialize")
            if a.expect_protocol and init.protocolVersion != a.expect_protocol:
                raise Fail(f"negotiated protocol {init.protocolVersion}, expected {a.expect_protocol}")
            await exercise(
                st, s, "legacy",
                call_tool=lambda n, args: s.call_tool(n, args, progress_callback=progress_cb if a.progress else None),
                read_resource=lambda u: s.read_resource(u),
                get_prompt=lambda n, args: s.get_prompt(n, args),
                ping=s.send_ping,
            )


def watch_get_stream(st, anyio):
    """An httpx response hook that sets st.get_stream_open once the standalone GET stream answers."""
    st.get_stream_open = anyio.Event()

    async def on_response(response):
        if response.request.method == "GET":
            st.get_stream_open.set()

    return on_response


async def run_modern(st):
    """mcp 2.x Client: mode 'auto' probes server/discover (2026-07-28) and falls back to initialize."""
    import warnings

    import anyio
    import httpx2
    from mcp import types
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.shared.subscriptions import ToolsListChanged

    warnings.simplefilter("ignore")  # deprecation warnings for ping/sampling are expected here
    a = st.a
    st.label += f"/py-mcp@{_version('mcp')}"
    on_response = watch_get_stream(st, anyio)
    tmo = a.timeout / 1000

    http = create_mcp_http_client(headers=a.headers, timeout=httpx2.Timeout(tmo, read=a.deadline / 1000))
    http.event_hooks = {"response": [on_response]}
    sampling_cb, elicit_cb, message_handler, progress_cb = make_callbacks(st, types)
    st.step = "connect"
    async with http:
        client = Client(streamable_http_client(a.url, http_client=http), mode="auto", read_timeout_seconds=tmo,
                        sampling_callback=sampling_cb, elicitation_callback=elicit_cb, message_handler=message_handler,
                        client_info=types.Implementation(name="switchyard-py-client", version="1.0.0"))
        async with client:
            pv = client.protocol_version
            era = "modern" if pv >= "2026-07-28" else "legacy"
            si = client.server_info
            st.label += f" {era} {pv}"
            st.log(f"{'server/discover' if era == 'modern' else 'initialize'} ok: server={getattr(si, 'name', '?')} "
                   f"{getattr(si, 'version', '')} protocol={pv}")
            st.steps.append("discover" if era == "modern" else "initialize")
            if a.era == "modern" and era != "modern":
                raise Fail(f"--era modern but the server negotiated {pv}")
            if a.expect_protocol and pv != a.expect_protocol:
                raise Fail(f"negotiated protocol {pv}, expected {a.expect_protocol}")

            listen = None
            sub_cm = None
            if a.list_changed and era == "modern":
                st.step = "list-changed setup"
                sub_cm = client.listen(tools_list_changed=True)
                sub = await sub_cm.__aenter__()
                if not getattr(sub.honored, "tools_list_changed", False):
                    raise Fail("subscriptions/listen: server did not honor tools_list_changed")
                st.log("subscriptions/listen ok: tools_list_changed honored")

                async def listen(sent):
                    with anyio.move_on_after(a.wait / 1000):
                        async for ev in sub:
                            if isinstance(ev, ToolsListChanged):
                                return time.monotonic()
                    return None

            try:
                await exercise(
                    st, client, era,
                    call_tool=lambda n, args: client.call_tool(n, args, progress_callback=progress_cb if a.progress else None),
                    read_resource=lambda u: client.read_resource(u),
                    get_prompt=lambda n, args: client.get_prompt(n, args),
                    ping=client.send_ping,
                    listen=listen,
                )
            finally:
                if sub_cm is not None:
                    with anyio.move_on_after(2):
                        await sub_cm.__aexit__(None, None, None)


def _version(dist):
    from importlib.metadata import version

    return version(dist)


def main():
    try:
        a = parse_args(sys.argv[1:])
    except SystemExit as e:
        sys.exit(2 if e.code not in (0, None) else 0)
    ensure_venv(a.era)
    st = State(a)
    t0 = time.perf_counter()

    def fail(msg):
        done = f" [done: {' '.join(st.steps)}]" if st.steps else ""
        msg = " ".join(str(msg).split())  # one line
        print(f"FAIL {a.url} ({st.label}) at {st.step}: {msg}{done}", file=sys.stderr, flush=True)
        os._exit(1)

    # hard watchdog: even a shutdown that hangs cannot outlive the deadline by more than 3 s
    threading.Timer(a.deadline / 1000 + 3, lambda: fail(f"deadline of {a.deadline:.0f} ms exceeded (watchdog)")).start()

    import anyio

    async def top():
        with anyio.fail_after(a.deadline / 1000):
            await (run_legacy(st) if a.era == "legacy" else run_modern(st))

    try:
        anyio.run(top)
    except BaseException as e:  # noqa: BLE001 - any failure must give a non-zero exit
        if isinstance(e, KeyboardInterrupt):
            raise
        while isinstance(e, BaseExceptionGroup) and e.exceptions:  # unwrap anyio task-group wrappers
            e = e.exceptions[0]
        if isinstance(e, TimeoutError):
            fail(f"TimeoutError: no answer within --timeout {a.timeout:.0f} ms or --deadline {a.deadline:.0f} ms {e}".rstrip())
        if isinstance(e, Fail):
            fail(str(e))
        code = getattr(getattr(e, "error", None), "code", None)
        fail(f"{type(e).__name__}{f' (code {code})' if code is not None else ''}: {e}")
    print(f"OK {a.url} ({st.label}): {' '.join(st.steps)} in {(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
