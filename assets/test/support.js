// What the test files share: the reference hash, the mock websocket, a jsdom page running
// live.js (makeDom; every window is closed after its file's tests), a joined view (joined),
// and builders of rendered models with their len/h as the server computes them.
'use strict';
const fs = require('fs');
const path = require('path');
const assert = require('node:assert/strict');
const { after } = require('node:test');
const { JSDOM, VirtualConsole } = require('jsdom');

// live.js's source, run as the browser would (a classic script) inside each jsdom window.
const SRC = fs.readFileSync(path.join(__dirname, '..', 'live.js'), 'utf8');

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
// Waits until a window's socket has sent a join (jsdom fires DOMContentLoaded asynchronously).
async function opened(w) {
  for (let i = 0; i < 400; i++) {
    const ws = w.__sockets[w.__sockets.length - 1];
    if (ws && ws.find('join').length) return ws;
    await tick(5);
  }
  throw new Error('no join frame');
}

// Independent FNV-1a over the UTF-16LE bytes (low byte first, then high): same definition.
function refHash(str) {
  let h = 0x811c9dc5n;
  for (const b of Buffer.from(str, 'utf16le')) {
    h ^= BigInt(b);
    h = (h * 0x01000193n) & 0xffffffffn;
  }
  return Number(h);
}

class MockWS {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    MockWS.all.push(this);
    setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      if (this.onopen) this.onopen({});
    }, 0);
  }
  // An event's number (`n`, per view) is kept apart, as `frame.n`, so assertions on a payload
  // name only what the user sent; the resume tests read the numbers.
  send(d) {
    const f = JSON.parse(d);
    if (f[3] === 'event' && f[4] && typeof f[4] === 'object' && 'n' in f[4]) {
      Object.defineProperty(f, 'n', { value: f[4].n });
      delete f[4].n;
    }
    this.sent.push(f);
  }
  close() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose && this.onclose({}), 0);
  }
  // server side helpers
  recv(frame) { this.onmessage({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) }); }
  serverClose() { this.readyState = 3; if (this.onclose) this.onclose({}); }
  find(event, topic) { return this.sent.filter((f) => f[3] === event && (!topic || f[2] === topic)); }
  last(event, topic) { const l = this.find(event, topic); return l[l.length - 1]; }
}
MockWS.all = [];
const envs = [];
// The client's timers (heartbeat, rejoins) live in the windows: close them so the file can end.
after(() => { for (const w of envs.splice(0)) w.close(); });
const eq = (a, b, m) => assert.deepEqual(JSON.parse(JSON.stringify(a)), b, m);

// A page holding `body` with live.js run in it. Live.navigation.reload only counts (w.__reloads).
function makeDom(body, { errors } = {}) {
  const vc = new VirtualConsole();
  const logs = { error: [], warn: [] };
  vc.on('error', (...a) => logs.error.push(a.map(String).join(' ')));
  vc.on('warn', (...a) => logs.warn.push(a.map(String).join(' ')));
  vc.on('jsdomError', (e) => logs.error.push('jsdomError ' + e.message));
  const dom = new JSDOM(`<!doctype html><html><head><title>t</title></head><body>${body}
    <script data-live-socket="/live/websocket"></script></body></html>`, {
    url: 'http://example.test/lists/1',
    runScripts: 'outside-only',
    pretendToBeVisual: true,
    virtualConsole: vc,
  });
  const w = dom.window;
  const sockets = [];
  w.WebSocket = class extends MockWS { constructor(u) { super(u); sockets.push(this); } };
  w.__sockets = sockets;
  envs.push(w);
  w.eval(SRC);
  w.Live.navigation.reload = () => { w.__reloads = (w.__reloads || 0) + 1; };
  return { dom, w, d: w.document, logs };
}

// Builds a rendered model + helpers computing len/h for diffs as the server would.
function lenOf(m) {
  return m.s.join('').length + m.l.flat().reduce((n, r) => n + (typeof r[1] === 'string' ? r[1].length : lenOf(r[1])), 0);
}
const hOf = (m) => refHash(m.s.join(''));

async function joined(body, rendered, opts = {}) {
  const env = makeDom(body, opts);
  const ws = await opened(env.w);
  env.ws = ws;
  for (const j of ws.find('join')) {
    ws.recv([j[0], j[1], j[2], 'reply', { status: 'ok', response: { rendered: rendered[j[2]] || rendered, v: 1, title: opts.title ?? null } }]);
  }
  return env;
}

// A board: a keyed list of columns, each holding a keyed list of cards.
const card = (id, t) => [String(id), `<li data-live-key="${id}">${t}</li>`];
const column = (id, name, cards) => [String(id), {
  s: [`<section data-live-key="${id}"><h2>${name}</h2><ul>`, '</ul></section>'], l: [cards],
}];
const BOARD = (cols) => ({ s: ['<main>', '</main>'], l: [cols] });

module.exports = { SRC, tick, opened, refHash, MockWS, eq, makeDom, lenOf, hOf, joined, card, column, BOARD };
