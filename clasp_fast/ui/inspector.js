// The inspector: the real @clasp-to/core client, connected back to the router that served
// this page; the param tree live (value, revision, writer, age), a SET form, and the
// router's rates from /status.  window.inspector is what the browser test drives.
import { Clasp } from "@clasp-to/core";

const $ = (id) => document.getElementById(id);
const params = new Map();          // address -> {value, revision, writer, at (ms), fresh}
const needWriter = new Set();      // addresses changed by a SET: ask for their writer (GET)
let client = null;

function show(value) {
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  try { return JSON.stringify(value); } catch { return String(value); }
}
function age(ms) {
  const s = (Date.now() - ms) / 1000;
  return s < 60 ? s.toFixed(1) + " s" : s < 3600 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h";
}
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

function note(address, fields) {
  const p = params.get(address) || { value: null, revision: null, writer: null, at: Date.now() };
  Object.assign(p, fields);
  params.set(address, p);
}

function render() {
  const rows = [...params.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([addr, p]) =>
    `<tr class="${Date.now() - p.at < 1000 ? "fresh" : ""}"><td class="addr">${esc(addr)}</td>` +
    `<td class="val">${esc(show(p.value))}</td><td>${p.revision ?? ""}</td>` +
    `<td>${esc(p.writer ? p.writer.slice(0, 8) : "")}</td><td>${age(p.at)}</td></tr>`);
  $("params").tBodies[0].innerHTML = rows.join("");
  $("count").textContent = `(${params.size})`;
}

async function connect(event) {
  if (event) event.preventDefault();
  if (client) { client.close(); client = null; }
  params.clear();
  const token = $("token").value.trim();
  client = new Clasp($("url").value, { name: "clasp-fast inspector", reconnect: true,
                                        ...(token ? { token } : {}) });
  // SETs carry the new revision, which the client does not pass to subscribers
  const handle = client.handleMessage.bind(client);
  client.handleMessage = (m) => {
    if (m.type === "SET" && m.revision !== undefined) {
      note(m.address, { revision: m.revision, at: Date.now() });
      needWriter.add(m.address);
    }
    handle(m);
  };
  client.onDisconnect?.(() => setState(false));
  try {
    await client.connect(5000);
  } catch (err) {
    setState(false, String(err.message || err));
    return;
  }
  setState(true);
  client.subscribe($("pattern").value || "/**", (value, address, meta) => {
    const fields = { value };
    if (meta) {            // a SNAPSHOT entry: revision, writer and write time
      fields.revision = meta.revision;
      if (meta.writer) fields.writer = meta.writer;
      if (meta.timestamp) fields.at = meta.timestamp / 1000 - client.serverTimeOffset / 1000;
    }
    note(address, fields);
    render();
  });
}

function setState(on, why) {
  $("state").className = on ? "on" : "off";
  $("state").textContent = on ? "connected" : (why || "disconnected");
  window.inspector.connected = on;
}

function parseValue(text) {
  try { return JSON.parse(text); } catch { return text; }
}

function set(address, value) {
  client.set(address, value);
  return true;
}

async function pollStatus() {
  try {
    const now = performance.now();
    const s = await (await fetch("/status", { cache: "no-store" })).json();
    const prev = pollStatus.last;
    const dt = prev ? (now - prev.t) / 1000 : 0;
    const rate = (k) => prev && dt > 0 ? ((s.totals[k] - prev.s.totals[k]) / dt).toFixed(1) : "–";
    $("router-name").textContent = s.name;
    $("rates").innerHTML = [
      ["version", s.version], ["uptime", age(Date.now() - s.uptime * 1000)],
      ["workers", `${s.workers_up} / ${s.workers}`], ["connections", s.totals.connections],
      ["sessions", s.totals.sessions], ["params", s.totals.params],
      ["frames in /s", rate("frames_received")], ["deliveries /s", rate("deliveries")],
      ["dropped", s.totals.dropped], ["errors sent", s.totals.errors_sent],
    ].map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join("");
    $("workers").tBodies[0].innerHTML = s.per_worker.map((w) => {
      const pw = prev && prev.s.per_worker.find((x) => x.worker === w.worker);
      const d = pw && dt > 0 ? ((w.deliveries - pw.deliveries) / dt).toFixed(1) : "–";
      return `<tr><td>${w.worker}${w.owner ? "*" : ""}</td><td>${w.connections}</td><td>${w.sessions}</td>` +
             `<td>${w.subscriptions}</td><td>${d}</td></tr>`;
    }).join("");
    $("top").innerHTML = s.top_addresses.map((a) =>
      `<li>${esc(a.address)} <small>${a.writes_per_second}/s</small></li>`).join("");
    pollStatus.last = { t: now, s };
    window.inspector.status = s;
  } catch (err) {
    // the status API may be off on this router; the param view still works
  }
}

window.inspector = { connected: false, params, set, connect, status: null };
$("url").value = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
$("connect").addEventListener("submit", connect);
$("set").addEventListener("submit", (event) => {
  event.preventDefault();
  if (client) set($("set-address").value, parseValue($("set-value").value));
});
setInterval(() => {
  // writers of params changed since the last look: a GET answers with a SNAPSHOT entry
  if (client && window.inspector.connected) {
    for (const address of [...needWriter].slice(0, 50)) {
      needWriter.delete(address);
      client.send({ type: "GET", address });
    }
  }
  render();
}, 1000);
setInterval(pollStatus, 2000);
pollStatus();
window.inspectorReady = true;
connect();
