'use strict';
// One-shot: connect the real @clasp-to/core 3.3.2 client, subscribe, set, wait for the
// echo and the ACK, close; print one JSON line describing what happened.
//
//   node connect.js <url> <address>                              (the `ws` package)
//   node --experimental-websocket connect.js <url> <address> undici   (Node's built-in)
const [url, address, impl = 'ws'] = process.argv.slice(2);
if (impl === 'ws') globalThis.WebSocket = require('ws');
else if (typeof globalThis.WebSocket !== 'function') {
  console.log(JSON.stringify({ fatal: 'no built-in WebSocket' }));
  process.exit(3);
}
const { Clasp } = require('@clasp-to/core');

const acks = [];
const warns = [];
const errors = [];
console.debug = (...a) => { if (a[0] === 'CLASP ACK received:') acks.push({ address: a[1], revision: a[3] }); };
console.warn = (...a) => warns.push(a.map(String).join(' '));
console.error = (...a) => errors.push(a.map(String).join(' '));

(async () => {
  const clasp = new Clasp(url, { reconnect: false, name: 'interop connect.js' });
  const seen = [];
  const original = clasp.handleMessage.bind(clasp);
  clasp.handleMessage = (m) => { seen.push(m); return original(m); };
  const t0 = Date.now();
  await clasp.connect(3000);
  const welcome = seen.find((m) => m.type === 'WELCOME');
  const result = {
    impl,
    wsClass: globalThis.WebSocket === require('ws') ? 'ws' : 'builtin',
    connected: clasp.connected,
    session: clasp.session,
    protocol: clasp.ws.protocol,
    welcome: { version: welcome.version, name: welcome.name, session: welcome.session,
               timeSkewMs: welcome.time / 1000 - t0 },
  };
  const echoes = [];
  clasp.subscribe(address, (value, addr) => echoes.push({ address: addr, value }));
  clasp.set(address, 7);
  const deadline = Date.now() + 3000;
  while ((echoes.length < 1 || acks.length < 1) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 50));
  clasp.close();
  Object.assign(result, {
    firstTypes: seen.slice(0, 2).map((m) => m.type),
    echoes, acks, warns, errors,
    connectedAfterClose: clasp.connected,
  });
  console.log(JSON.stringify(result));
  setTimeout(() => process.exit(0), 20);
})().catch((e) => {
  console.log(JSON.stringify({ fatal: String(e && e.stack || e), warns, errors }));
  process.exit(1);
});
