'use strict';
// One-shot: the real @clasp-to/core 3.3.2 client (over `ws`) sends <n> SETs of the integers
// 1..n to <address> with its public set(), waits for the ACK of each (the client logs them
// with console.debug), then prints one JSON line.
//   node set_burst.js <url> <address> <n>
globalThis.WebSocket = require('ws');
const { Clasp } = require('@clasp-to/core');
const [url, address, nStr] = process.argv.slice(2);
const n = Number(nStr);

const acks = [];
const warns = [];
const errors = [];
console.debug = (...a) => { if (a[0] === 'CLASP ACK received:') acks.push([a[1], a[3]]); };
console.warn = (...a) => warns.push(a.map(String).join(' '));
console.error = (...a) => errors.push(a.map(String).join(' '));

(async () => {
  const clasp = new Clasp(url, { reconnect: false, name: 'interop set_burst.js' });
  await clasp.connect(3000);
  for (let i = 1; i <= n; i++) clasp.set(address, i);
  const deadline = Date.now() + 8000;
  while (acks.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  clasp.close();
  console.log(JSON.stringify({ session: clasp.session, acks, warns, errors }));
  setTimeout(() => process.exit(0), 20);
})().catch((e) => {
  console.log(JSON.stringify({ fatal: String(e && e.stack || e) }));
  process.exit(1);
});
