'use strict';
// One-shot: the real @clasp-to/core 3.3.2 client over the `ws` package, whose default
// offer is permessage-deflate (it compresses messages of 1024 bytes or more); subscribe,
// SET a long value, wait for its echo; print one JSON line: the negotiated extensions and
// the echoed value.
//
//   node deflate.js <url> <address> <value>
const [url, address, value] = process.argv.slice(2);
globalThis.WebSocket = require('ws');
const { Clasp } = require('@clasp-to/core');

(async () => {
  const clasp = new Clasp(url, { reconnect: false, name: 'interop deflate.js' });
  await clasp.connect(3000);
  let echo = null;
  clasp.subscribe(address, (v) => { echo = v; });
  clasp.set(address, value.repeat(2));      // twice the value: past ws' 1024-byte threshold
  const deadline = Date.now() + 3000;
  while (echo === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const result = { extensions: clasp.ws.extensions, echo: echo === null ? null : echo.slice(0, value.length),
                   echoLength: echo === null ? 0 : echo.length };
  clasp.close();
  console.log(JSON.stringify(result));
  setTimeout(() => process.exit(0), 20);
})().catch((e) => {
  console.log(JSON.stringify({ fatal: String(e && e.stack || e) }));
  process.exit(1);
});
