#!/usr/bin/env node
// ts-client.mjs: an independent MCP client (official TypeScript SDK) that Switchyard's tests point at
// a running gateway. Prints one summary line ("OK ..." on stdout or "FAIL ..." on stderr) and exits
// 0 on success, 1 on any failure (2 on bad usage). Never hangs: every request has --timeout and the
// whole run has --deadline.
//
// Usage: node ts-client.mjs URL [flags]
//   --transport streamable|sse|stdio  streamable HTTP (default), the deprecated HTTP+SSE transport (URL is
//                               the SSE endpoint itself, e.g. http://127.0.0.1:PORT/sse), or stdio: URL is a
//                               command the SDK's StdioClientTransport launches (legacy era, SDK v1)
//   --cmd-arg ARG               an argument of the stdio command (repeatable)
//   --era legacy|modern|auto    legacy (default): initialize handshake with @modelcontextprotocol/sdk 1.x;
//                               modern: 2026-07-28 (server/discover, per-request _meta, no session) with
//                               @modelcontextprotocol/client 2.x, pinned, no fallback;
//                               auto: client 2.x probes server/discover, falls back to initialize
//   --sdk v1|v2                 which TS SDK drives a legacy-era run (default v1; modern/auto need v2)
//   --expect-protocol VER       assert the negotiated protocol version
//   --expect-tool NAME          assert tools/list contains NAME (repeatable)
//   --tool NAME --args JSON     tools/call NAME with the JSON object (default {})
//   --expect-text SUBSTRING     assert the tool result's text contains SUBSTRING
//   --expect-error [SUBSTRING]  the tool call must fail (JSON-RPC error or isError), optionally with SUBSTRING
//   --resource URI              resources/list, then resources/read URI (must have contents)
//   --prompt NAME [--prompt-args JSON]   prompts/get NAME (must have messages)
//   --no-ping                   skip ping (legacy era only; the modern era has no ping)
//   --progress                  call --tool with a progress callback; assert >=1 progress notification
//                               arrived before the result (e.g. --tool slow --args '{"ms":300,"steps":3}')
//   --sampling [--sampling-text T]   advertise sampling; answer every sampling/createMessage with T
//                               (default "switchyard-sampled-text"); assert the handler ran and the tool
//                               result contains T (e.g. --tool test_sampling)
//   --elicitation [--elicit-content JSON]   advertise elicitation; accept every elicitation/create with
//                               the JSON content (default {}); assert the handler ran
//   --list-changed              register a tools list_changed handler (modern era: via subscriptions/listen);
//                               call --tool (e.g. set_tools --args '{"extra":["x1"]}') and assert the
//                               notification arrived within --wait MS (default 5000) after the call was
//                               sent; without --tool, any list_changed since connect counts
//   --header 'Name: value'      extra HTTP header on every request (repeatable; e.g. Authorization)
//   --timeout MS                per-request timeout (default 15000)
//   --deadline MS               whole-run limit (default 60000)
//   -q                          only the summary line
// Needs `bash tests/peers/setup.sh` first: the SDKs are loaded from ${SWITCHYARD_PEERS:-~/.cache/switchyard-peers}/node.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const USAGE = 'usage: node ts-client.mjs URL [--transport streamable|sse] [--era legacy|modern|auto] [--sdk v1|v2] ' +
  '[--expect-protocol V] [--expect-tool NAME]... [--tool NAME [--args JSON] [--expect-text S] [--expect-error [S]]] ' +
  '[--resource URI] [--prompt NAME [--prompt-args JSON]] [--no-ping] [--progress] [--sampling [--sampling-text T]] ' +
  '[--elicitation [--elicit-content JSON]] [--list-changed [--wait MS]] [--header "K: V"]... [--timeout MS] [--deadline MS] [-q]';

class Usage extends Error {}

function parseArgs(argv) {
  const a = {
    transport: 'streamable', era: 'legacy', sdk: undefined, expectTools: [], headers: {}, timeout: 15000, cmdArgs: [],
    deadline: 60000, wait: 5000, ping: true, quiet: false, samplingText: 'switchyard-sampled-text', elicitContent: {},
  };
  const rest = [];
  const json = (k, v) => {
    try { return JSON.parse(v); } catch (e) { throw new Usage(`${k}: invalid JSON: ${e.message}`); }
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Usage(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case '--transport': a.transport = next(); break;
      case '--cmd-arg': a.cmdArgs.push(next()); break;
      case '--era': a.era = next(); break;
      case '--sdk': a.sdk = next(); break;
      case '--expect-protocol': a.expectProtocol = next(); break;
      case '--expect-tool': a.expectTools.push(next()); break;
      case '--tool': a.tool = next(); break;
      case '--args': a.args = json(k, next()); break;
      case '--expect-text': a.expectText = next(); break;
      case '--expect-error':
        a.expectError = (i + 1 < argv.length && !argv[i + 1].startsWith('--')) ? argv[++i] : '';
        break;
      case '--resource': a.resource = next(); break;
      case '--prompt': a.prompt = next(); break;
      case '--prompt-args': a.promptArgs = json(k, next()); break;
      case '--no-ping': a.ping = false; break;
      case '--progress': a.progress = true; break;
      case '--sampling': a.sampling = true; break;
      case '--sampling-text': a.samplingText = next(); break;
      case '--elicitation': a.elicitation = true; break;
      case '--elicit-content': a.elicitContent = json(k, next()); break;
      case '--list-changed': a.listChanged = true; break;
      case '--wait': a.wait = Number(next()); break;
      case '--header': {
        const h = next(); const c = h.indexOf(':');
        if (c <= 0) throw new Usage(`--header wants "Name: value", got ${JSON.stringify(h)}`);
        a.headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
        break;
      }
      case '--timeout': a.timeout = Number(next()); break;
      case '--deadline': a.deadline = Number(next()); break;
      case '-q': case '--quiet': a.quiet = true; break;
      case '-h': case '--help': console.log(USAGE); process.exit(0);
      default:
        if (k.startsWith('-')) throw new Usage(`unknown flag ${k}`);
        rest.push(k);
    }
  }
  if (rest.length !== 1) throw new Usage('exactly one URL expected');
  a.url = rest[0];
  if (!['streamable', 'sse', 'stdio'].includes(a.transport)) throw new Usage('--transport must be streamable, sse or stdio');
  if (a.transport === 'stdio' && (a.era !== 'legacy' || (a.sdk ?? 'v1') !== 'v1')) throw new Usage('--transport stdio is legacy-era with --sdk v1');
  if (!['legacy', 'modern', 'auto'].includes(a.era)) throw new Usage('--era must be legacy, modern or auto');
  a.sdk ??= a.era === 'legacy' ? 'v1' : 'v2';
  if (!['v1', 'v2'].includes(a.sdk)) throw new Usage('--sdk must be v1 or v2');
  if (a.era !== 'legacy' && a.sdk !== 'v2') throw new Usage('--era modern/auto needs --sdk v2');
  if (a.era !== 'legacy' && a.transport === 'sse') throw new Usage('the HTTP+SSE transport is legacy-era only');
  if ((a.progress || a.sampling) && !a.tool) throw new Usage('--progress and --sampling need --tool');
  if (a.listChanged && !a.tool && a.era !== 'legacy') throw new Usage('--list-changed without --tool is legacy-era only');
  if (a.args !== undefined && (typeof a.args !== 'object' || a.args === null || Array.isArray(a.args))) throw new Usage('--args must be a JSON object');
  for (const n of ['timeout', 'deadline', 'wait']) if (!(a[n] > 0)) throw new Usage(`--${n} must be a positive number of ms`);
  return a;
}

// The SDKs live in the peers cache (setup.sh), not next to this file: load them from there (CommonJS builds).
function loadSdk(which) {
  const dir = join(process.env.SWITCHYARD_PEERS || join(homedir(), '.cache', 'switchyard-peers'), 'node');
  if (!existsSync(join(dir, 'node_modules'))) throw new Error(`no SDK in ${dir}/node_modules: run tests/peers/setup.sh first`);
  const require = createRequire(join(dir, 'package.json'));
  if (which === 'v1') {
    const types = require('@modelcontextprotocol/sdk/types.js');
    return {
      version: require(join(dir, 'node_modules/@modelcontextprotocol/sdk/package.json')).version,
      Client: require('@modelcontextprotocol/sdk/client/index.js').Client,
      StreamableHTTPClientTransport: require('@modelcontextprotocol/sdk/client/streamableHttp.js').StreamableHTTPClientTransport,
      SSEClientTransport: require('@modelcontextprotocol/sdk/client/sse.js').SSEClientTransport,
      StdioClientTransport: require('@modelcontextprotocol/sdk/client/stdio.js').StdioClientTransport,
      onRequest: (c, method, h) => c.setRequestHandler(
        { 'sampling/createMessage': types.CreateMessageRequestSchema, 'elicitation/create': types.ElicitRequestSchema }[method], h),
      onNotification: (c, method, h) => c.setNotificationHandler(
        { 'notifications/tools/list_changed': types.ToolListChangedNotificationSchema }[method], h),
      callTool: (c, params, opts) => c.callTool(params, types.CallToolResultSchema, opts),
    };
  }
  const m = require('@modelcontextprotocol/client');
  return {
    version: require(join(dir, 'node_modules/@modelcontextprotocol/client/package.json')).version,
    Client: m.Client,
    StreamableHTTPClientTransport: m.StreamableHTTPClientTransport,
    SSEClientTransport: m.SSEClientTransport,
    onRequest: (c, method, h) => c.setRequestHandler(method, h),
    onNotification: (c, method, h) => c.setNotificationHandler(method, h),
    callTool: (c, params, opts) => c.callTool(params, opts),
  };
}

const textOf = (content = []) => content.map((c) => c.type === 'text' ? c.text
  : c.type === 'resource' ? (c.resource?.text ?? `<resource ${c.resource?.uri}>`) : `<${c.type}>`).join(' | ');
const short = (s, n = 160) => (s.length > n ? s.slice(0, n) + '…' : s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(a, st) {
  const log = (...x) => { if (!a.quiet) console.log(...x); };
  const sdk = loadSdk(a.sdk);
  st.label = `${a.transport}/${a.era}/ts-${a.sdk}@${sdk.version}`;
  const url = a.transport === 'stdio' ? undefined : new URL(a.url);

  // Watch the HTTP exchanges: lets --list-changed wait until the legacy standalone GET stream is open.
  let getStreamOpen; const getStreamReady = new Promise((r) => { getStreamOpen = r; });
  const fetchSpy = async (input, init) => {
    const res = await fetch(input, init);
    if ((init?.method ?? 'GET') === 'GET' && a.transport === 'streamable') getStreamOpen(res.status);
    return res;
  };
  const topts = { requestInit: { headers: a.headers }, fetch: fetchSpy };
  const transport = a.transport === 'stdio'
    ? new sdk.StdioClientTransport({ command: a.url, args: a.cmdArgs, stderr: 'inherit' })
    : a.transport === 'sse' ? new sdk.SSEClientTransport(url, topts) : new sdk.StreamableHTTPClientTransport(url, topts);
  // record the version the initialize handshake settled on (the SSE transport keeps no copy of it)
  let negotiated;
  const origSet = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (v) => { negotiated = v; origSet?.(v); };

  const capabilities = {};
  if (a.sampling) capabilities.sampling = {};
  if (a.elicitation) capabilities.elicitation = {};
  const copts = { capabilities };
  if (a.era === 'modern') copts.versionNegotiation = { mode: { pin: '2026-07-28' } };
  if (a.era === 'auto') copts.versionNegotiation = { mode: 'auto' };
  const client = new sdk.Client({ name: 'switchyard-ts-client', version: '1.0.0' }, copts);
  st.client = client;
  client.onerror = (e) => { if (!a.quiet) console.error(`(transport error: ${e?.message ?? e})`); };

  let samplingCalls = 0, elicitCalls = 0;
  if (a.sampling) {
    sdk.onRequest(client, 'sampling/createMessage', async () => {
      samplingCalls++;
      return { role: 'assistant', content: { type: 'text', text: a.samplingText }, model: 'switchyard-test-model', stopReason: 'endTurn' };
    });
  }
  if (a.elicitation) {
    sdk.onRequest(client, 'elicitation/create', async () => { elicitCalls++; return { action: 'accept', content: a.elicitContent }; });
  }
  const listChangedAt = [];
  if (a.listChanged) sdk.onNotification(client, 'notifications/tools/list_changed', () => { listChangedAt.push(performance.now()); });

  const ro = { timeout: a.timeout };
  st.step = 'connect';
  await client.connect(transport, ro);
  const sv = client.getServerVersion();
  const proto = (a.sdk === 'v2' ? client.getNegotiatedProtocolVersion() : undefined) ?? negotiated ?? transport.protocolVersion ?? '?';
  const era = a.sdk === 'v2' ? client.getProtocolEra() : 'legacy';
  st.label += ` ${era} ${proto}`;
  log(`${era === 'modern' ? 'server/discover' : 'initialize'} ok: server=${sv?.name} ${sv?.version} protocol=${proto}`);
  st.steps.push(era === 'modern' ? 'discover' : 'initialize');
  if (a.expectProtocol && proto !== a.expectProtocol) throw new Error(`negotiated protocol ${proto}, expected ${a.expectProtocol}`);
  if (a.era === 'modern' && era !== 'modern') throw new Error(`--era modern but the connection is ${era}`);

  st.step = 'tools/list';
  const { tools } = await client.listTools(undefined, ro);
  const names = tools.map((t) => t.name);
  log(`tools/list ok: ${names.length} tools: ${short(names.join(', '), 300)}`);
  for (const n of a.expectTools) if (!names.includes(n)) throw new Error(`tool ${JSON.stringify(n)} not in tools/list (${short(names.join(', '), 300)})`);
  st.steps.push(`tools/list(${names.length})`);

  let subscription;
  if (a.listChanged) {
    st.step = 'list-changed setup';
    if (era === 'modern') {
      subscription = await client.listen({ toolsListChanged: true }, ro);
      if (!subscription.honoredFilter?.toolsListChanged) throw new Error('subscriptions/listen: server did not honor toolsListChanged');
      log('subscriptions/listen ok: toolsListChanged honored');
    } else if (a.transport === 'streamable') {
      // legacy: notifications outside a request travel on the standalone GET stream; give it up to 2 s to open
      const s = await Promise.race([getStreamReady, sleep(2000).then(() => 'not opened in 2 s')]);
      log(`standalone GET stream: ${s}`);
    }
  }

  if (a.tool) {
    st.step = `tools/call ${a.tool}`;
    let progress = 0, progressAtResult = -1;
    const opts = { ...ro };
    if (a.progress) { opts.onprogress = () => { progress++; }; opts.resetTimeoutOnProgress = true; }
    const sentAt = performance.now();
    let res, err;
    try {
      res = await sdk.callTool(client, { name: a.tool, arguments: a.args ?? {} }, opts);
      progressAtResult = progress;
    } catch (e) { err = e; }
    if (a.expectError !== undefined) {
      const msg = err ? `${err.code ?? ''} ${err.message}` : res?.isError ? textOf(res.content) : undefined;
      if (msg === undefined) throw new Error(`tools/call ${a.tool}: expected an error, got ${JSON.stringify(short(textOf(res.content)))}`);
      if (a.expectError && !msg.includes(a.expectError)) throw new Error(`tools/call ${a.tool}: error ${JSON.stringify(msg)} lacks ${JSON.stringify(a.expectError)}`);
      log(`tools/call ok (error as expected): ${a.tool} -> ${short(msg)}`);
      st.steps.push(`tools/call:${a.tool}(error)`);
    } else {
      if (err) throw err;
      const txt = textOf(res.content);
      if (res.isError) throw new Error(`tools/call ${a.tool} returned isError: ${short(txt, 300)}`);
      if (a.expectText !== undefined && !txt.includes(a.expectText)) throw new Error(`tools/call ${a.tool}: ${JSON.stringify(a.expectText)} not in ${JSON.stringify(short(txt, 300))}`);
      log(`tools/call ok: ${a.tool} -> ${JSON.stringify(short(txt))}`);
      st.steps.push(`tools/call:${a.tool}`);
      if (a.progress) {
        if (progressAtResult < 1) throw new Error(`--progress: no progress notification before the result of ${a.tool} (${progress} after it)`);
        st.steps.push(`progress(${progressAtResult})`);
      }
      if (a.sampling) {
        if (samplingCalls < 1) throw new Error(`--sampling: the sampling handler was never called during ${a.tool}`);
        if (!txt.includes(a.samplingText)) throw new Error(`--sampling: ${JSON.stringify(a.samplingText)} not in the result ${JSON.stringify(short(txt, 300))}`);
        st.steps.push(`sampling(${samplingCalls})`);
      }
    }
    if (a.elicitation) {
      if (elicitCalls < 1) throw new Error(`--elicitation: the elicitation handler was never called during ${a.tool}`);
      st.steps.push(`elicitation(${elicitCalls})`);
    }
    if (a.listChanged) {
      st.step = 'list-changed wait';
      const t0 = performance.now();
      while (!listChangedAt.some((t) => t >= sentAt) && performance.now() - t0 < a.wait) await sleep(20);
      const hit = listChangedAt.find((t) => t >= sentAt);
      if (hit === undefined) throw new Error(`--list-changed: no notifications/tools/list_changed within ${a.wait} ms of calling ${a.tool}`);
      st.steps.push(`list_changed(+${(hit - sentAt).toFixed(0)}ms)`);
    }
  } else if (a.listChanged) {
    st.step = 'list-changed wait';
    const t0 = performance.now();
    while (!listChangedAt.length && performance.now() - t0 < a.wait) await sleep(20);
    if (!listChangedAt.length) throw new Error(`--list-changed: no notifications/tools/list_changed within ${a.wait} ms`);
    st.steps.push('list_changed');
  }
  if (subscription) await subscription.close().catch(() => {});

  if (a.resource) {
    st.step = 'resources/list';
    const { resources } = await client.listResources(undefined, ro);
    st.steps.push(`resources/list(${resources.length})`);
    st.step = `resources/read ${a.resource}`;
    const rr = await client.readResource({ uri: a.resource }, ro);
    if (!rr.contents?.length) throw new Error(`resources/read ${a.resource}: empty contents`);
    const c0 = rr.contents[0];
    log(`resources/read ok: ${a.resource} (${rr.contents.length} item(s), ${(c0.text ?? c0.blob ?? '').length} chars, ${c0.mimeType})`);
    st.steps.push('resources/read');
  }

  if (a.prompt) {
    st.step = `prompts/get ${a.prompt}`;
    const pr = await client.getPrompt({ name: a.prompt, arguments: a.promptArgs ?? {} }, ro);
    if (!pr.messages?.length) throw new Error(`prompts/get ${a.prompt}: no messages`);
    log(`prompts/get ok: ${a.prompt} -> ${pr.messages.length} message(s)`);
    st.steps.push('prompts/get');
  }

  if (a.ping && era !== 'modern') {
    st.step = 'ping';
    await client.ping(ro);
    st.steps.push('ping');
  }

  st.step = 'close';
  if (a.transport === 'streamable' && era !== 'modern') await transport.terminateSession?.().catch(() => {});
  await client.close();
}

async function main() {
  let a;
  try { a = parseArgs(process.argv.slice(2)); } catch (e) {
    console.error(`${e instanceof Usage ? 'usage error' : 'error'}: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  const st = { steps: [], step: 'start', label: a.transport };
  const t0 = performance.now();
  const fail = (msg) => {
    msg = String(msg).replace(/\s*\n\s*/g, ' '); // one line
    console.error(`FAIL ${a.url} (${st.label}) at ${st.step}: ${msg}${st.steps.length ? ` [done: ${st.steps.join(' ')}]` : ''}`);
    process.exit(1);
  };
  setTimeout(() => fail(`deadline of ${a.deadline} ms exceeded`), a.deadline); // not unref'd: an idle loop must not exit 0
  try {
    await run(a, st);
  } catch (e) {
    const code = e?.code !== undefined ? ` (code ${e.code})` : '';
    const cause = e?.cause?.message ? ` (cause: ${e.cause.message})` : '';
    fail(`${e?.name ?? 'Error'}${code}: ${e?.message ?? e}${cause}`);
  }
  console.log(`OK ${a.url} (${st.label}): ${st.steps.join(' ')} in ${(performance.now() - t0).toFixed(0)} ms`);
  process.exit(0);
}

main();
