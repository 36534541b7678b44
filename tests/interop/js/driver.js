'use strict';
// Interactive driver for the real, unmodified @clasp-to/core 3.3.2 client.
//
//   node driver.js <url>                              (CLASP_WS_IMPL=ws: the `ws` package)
//   node --experimental-websocket driver.js <url>     (CLASP_WS_IMPL=undici: Node's built-in)
//
// Reads one JSON command per line on stdin ({"id", "op", ...}) and answers each with
// {"reply": id, "ok": true|false, ...}.  Everything else it prints is an event line:
//   {"event":"ready","impl"}                  driver started
//   {"event":"msg","msg":{...}}               every message the client decoded (an observer
//                                             wrapped around handleMessage; the original runs)
//   {"event":"sub","sub":label,"address","value","jstype"}   a subscription callback fired
//   {"event":"ack","address","revision"}      the client's own console.debug ACK log line
//   {"event":"warn","text"}                   console.warn (e.g. the client's "Decode error")
//   {"event":"close","code","reason"}         the WebSocket closed
// Values cross JSON as: Uint8Array -> {"$bytes": hex}, undefined -> {"$undefined": true}.

const impl = process.env.CLASP_WS_IMPL || 'ws';
if (impl === 'ws') {
  globalThis.WebSocket = require('ws');
} else if (impl === 'undici') {
  if (typeof globalThis.WebSocket !== 'function') {
    process.stdout.write(JSON.stringify({ event: 'fatal', text: 'no built-in WebSocket (run node with --experimental-websocket)' }) + '\n');
    process.exit(3);
  }
} else {
  throw new Error('unknown CLASP_WS_IMPL ' + impl);
}

const { Clasp, encodeMessage } = require('@clasp-to/core');
const readline = require('readline');

function toJson(v) {
  if (v === undefined) return { $undefined: true };
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = toJson(x);
    return o;
  }
  return v;
}

function fromJson(v) {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$bytes') return new Uint8Array(Buffer.from(v.$bytes, 'hex'));
    if (keys.length === 1 && keys[0] === '$undefined') return undefined;
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = fromJson(x);
    return o;
  }
  return v;
}

function jsType(v) {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return 'Uint8Array';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// The client logs every ACK with console.debug("CLASP ACK received:", address, "revision:", rev).
console.debug = (...args) => {
  if (args[0] === 'CLASP ACK received:') out({ event: 'ack', address: toJson(args[1]), revision: toJson(args[3]) });
  else out({ event: 'debug', text: args.map(String).join(' ') });
};
console.warn = (...args) => out({ event: 'warn', text: args.map(String).join(' ') });
// console.error is where the client prints "CLASP error <code>: <msg>"; keep it on stderr.

const url = process.argv[2];
let clasp = null;
const pongWaiters = [];

function makeClient(name) {
  const c = new Clasp(url, { reconnect: false, name });
  const original = c.handleMessage.bind(c);
  c.handleMessage = (message) => {
    out({ event: 'msg', msg: toJson(message) });
    if (message.type === 'PONG' && pongWaiters.length) pongWaiters.shift()();
    return original(message);
  };
  c.onDisconnect((reason) => out({ event: 'close', reason: String(reason || '') }));
  return c;
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(what + ' timed out')), ms); }),
  ]).finally(() => clearTimeout(t));
}

const ops = {
  async connect(cmd) {
    clasp = makeClient(cmd.name || 'CLASP JS Client');
    await clasp.connect(cmd.timeout || 5000);
    return { session: clasp.session, protocol: clasp.ws.protocol, connected: clasp.connected };
  },
  subscribe(cmd) {
    clasp.subscribe(cmd.pattern, (value, address) => {
      out({ event: 'sub', sub: cmd.label, address, value: toJson(value), jstype: jsType(value) });
    });
    return {};
  },
  set(cmd) { clasp.set(cmd.address, fromJson(cmd.value)); return {}; },
  // many SETs of consecutive integers in one go (from..to inclusive), in order
  setSeq(cmd) {
    for (let i = cmd.from; i <= cmd.to; i++) clasp.set(cmd.address, i);
    return {};
  },
  async get(cmd) {
    const value = await clasp.get(cmd.address);
    return { value: toJson(value), jstype: jsType(value) };
  },
  cached(cmd) {
    const has = clasp.params.has(cmd.address);
    return { has, value: toJson(clasp.cached(cmd.address)) };
  },
  emit(cmd) { clasp.emit(cmd.address, fromJson(cmd.payload)); return {}; },
  stream(cmd) { clasp.stream(cmd.address, fromJson(cmd.value)); return {}; },
  gesture(cmd) { clasp.gesture(cmd.address, cmd.gid, cmd.phase, fromJson(cmd.payload)); return {}; },
  bundle(cmd) {
    clasp.bundle(fromJson(cmd.items), cmd.at === undefined ? undefined : { at: cmd.at });
    return {};
  },
  // A message the public API cannot send (SET with revision/lock/unlock): encoded by the
  // package's own exported encodeMessage, sent through the client's own socket.
  raw(cmd) {
    const frame = encodeMessage(fromJson(cmd.message));
    clasp.ws.send(frame);
    return { hex: Buffer.from(frame).toString('hex') };
  },
  async ping() {
    const p = new Promise((resolve) => pongWaiters.push(resolve));
    clasp.send({ type: 'PING' });
    await withTimeout(p, 4000, 'PONG');
    return {};
  },
  lastError() { return { error: toJson(clasp.getLastError()) }; },
  clearError() { clasp.clearError(); return {}; },
  state() { return { connected: clasp.connected, session: clasp.session }; },
  close() { clasp.close(); return {}; },
};

out({ event: 'ready', impl });

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.op === 'exit') {
    if (clasp) clasp.close();
    setTimeout(() => process.exit(0), 50);
    return;
  }
  try {
    const fn = ops[cmd.op];
    if (!fn) throw new Error('unknown op ' + cmd.op);
    const res = await fn(cmd);
    out({ reply: cmd.id, ok: true, ...res });
  } catch (e) {
    out({ reply: cmd.id, ok: false, error: String(e && e.stack || e) });
  }
});
rl.on('close', () => {
  if (clasp) clasp.close();
  setTimeout(() => process.exit(0), 50);
});
