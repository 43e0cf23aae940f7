// Tests of resume in assets/live.js over a mock socket: a dropped connection shows nothing at
// first, then `live-reconnecting`; the rejoin names the view and the version applied; events
// sent or triggered offline are finished or sent after the resume; a refused resume joins
// anew; a graceful stop (drain) queues events and reconnects when the server said.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { tick, opened, makeDom } = require('./support');

const rootHtml = '<div data-live-root id="lv-1" data-live-token="TOK" class="live-loading"></div>';
const page = (n) => ({ s: [`<button id="b" live-click="inc">${n}</button><p id="t">${n}</p>`], l: [] });
const textDiff = (v, from, to) => ({ v, s: [[0, [`<button id="b" live-click="inc">`.length, -String(from).length, String(to)]]] });

async function joinedWithResume() {
  const env = makeDom(rootHtml);
  const ws = await opened(env.w);
  const j = ws.find('join')[0];
  ws.recv([j[0], j[1], j[2], 'reply', { status: 'ok', response: { rendered: page(0), v: 1, title: null, resume: 'R1' } }]);
  ws.recv([j[0], null, j[2], 'keep', { keep: 'BLOB-1' }]);
  return { ...env, ws, j, root: env.d.getElementById('lv-1') };
}

test('resume: no flicker on a blip, then live-reconnecting; the rejoin names the view, its version and its kept blob', async () => {
  const { w, ws, j, root, d } = await joinedWithResume();
  // Version 2 arrives, so the client is at 2.
  ws.recv([j[0], null, j[2], 'diff', { v: 2, s: [[0, [`<button id="b" live-click="inc">`.length, -1, '1']]] }]);
  assert.equal(d.getElementById('b').textContent, '1');
  ws.serverClose();
  assert.equal(root.className, 'live-connected', 'nothing shows at first');
  await tick(1150);
  assert.ok(root.classList.contains('live-error') && root.classList.contains('live-reconnecting'),
    `after a second: ${root.className}`);
  const ws2 = w.__sockets[w.__sockets.length - 1];
  assert.notEqual(ws2, ws);
  const j2 = ws2.find('join')[0];
  assert.deepEqual(j2[4].resume, { id: 'R1', v: 2 });
  assert.equal(j2[4].keep, 'BLOB-1');
  assert.equal(j2[4].token, 'TOK');
  ws2.recv([j2[0], j2[1], j2[2], 'reply', { status: 'ok', response: { resumed: true, title: null, resume: 'R2', events: 0 } }]);
  assert.equal(root.className, 'live-connected', 'reconnecting cleared');
  assert.equal(d.getElementById('b').textContent, '1', 'the page stays as it was (no full render)');
  // The diffs it missed follow, from its version.
  ws2.recv([j2[0], null, j2[2], 'diff', textDiff(3, 1, 2)]);
  assert.equal(d.getElementById('b').textContent, '2');
  assert.equal(ws2.find('resync').length, 0);
  // The next rejoin names the new id.
  ws2.serverClose();
  await tick(400);
  const ws3 = w.__sockets[w.__sockets.length - 1];
  assert.deepEqual(ws3.find('join')[0][4].resume, { id: 'R2', v: 3 });
});

test('failed attempts to reconnect show nothing before the delay either', async () => {
  const { w, ws, root } = await joinedWithResume();
  ws.serverClose();
  // Every attempt for a while fails at once (the server is unreachable).
  const t0 = Date.now();
  let failed = 0;
  while (Date.now() - t0 < 700) {
    const last = w.__sockets[w.__sockets.length - 1];
    if (last !== ws && last.readyState !== 3) { last.serverClose(); failed++; }
    await tick(5);
  }
  assert.ok(failed >= 1, 'an attempt was made and failed');
  assert.equal(root.className, 'live-connected', `after ${failed} failed attempts: ${root.className}`);
  await tick(500);
  assert.ok(root.classList.contains('live-reconnecting'), root.className);
});

test('resume: events in flight and events triggered offline are finished or sent, in order, once', async () => {
  const { w, ws, j, root, d } = await joinedWithResume();
  const b = d.getElementById('b');
  b.click(); // n = 1, sent; its reply is lost with the connection
  const e1 = ws.last('event');
  assert.equal(e1.n, 1);
  assert.ok(b.classList.contains('live-click-loading'));
  ws.serverClose();
  b.click(); // n = 2, offline: queued
  b.click(); // n = 3
  assert.equal(ws.find('event').length, 1, 'nothing sent while offline');
  await tick(400);
  const ws2 = w.__sockets[w.__sockets.length - 1];
  const j2 = ws2.find('join')[0];
  assert.equal(ws2.find('event').length, 0, 'queued events wait for the resume');
  // The server had handled event 1 (its reply was lost): it is done, not sent again.
  ws2.recv([j2[0], j2[1], j2[2], 'reply', { status: 'ok', response: { resumed: true, resume: 'R2', events: 1 } }]);
  const sent = ws2.find('event');
  assert.deepEqual(sent.map((f) => f.n), [2, 3], 'the others, in order');
  assert.ok(sent.every((f) => f[0] === j2[0]), 'on the new join');
  for (const f of sent) ws2.recv([f[0], f[1], f[2], 'reply', { status: 'ok', response: {} }]);
  assert.ok(!b.classList.contains('live-click-loading'), 'every loading state ended');
  assert.ok(!root.classList.contains('live-refused'));
  void j;
});

test('resume: an event in flight that the server had not handled is sent again', async () => {
  const { w, ws, d } = await joinedWithResume();
  d.getElementById('b').click(); // n = 1, lost before the server read it
  ws.serverClose();
  await tick(400);
  const ws2 = w.__sockets[w.__sockets.length - 1];
  const j2 = ws2.find('join')[0];
  ws2.recv([j2[0], j2[1], j2[2], 'reply', { status: 'ok', response: { resumed: true, resume: 'R2', events: 0 } }]);
  assert.deepEqual(ws2.find('event').map((f) => f.n), [1]);
});

test('a refused resume joins anew at once; a new mount refuses the queued events visibly', async () => {
  const { w, ws, d, root, logs } = await joinedWithResume();
  const refused = [];
  w.addEventListener('live:refused', (e) => refused.push(e.detail));
  ws.serverClose();
  d.getElementById('b').click(); // queued
  await tick(400);
  const ws2 = w.__sockets[w.__sockets.length - 1];
  const j2 = ws2.find('join')[0];
  assert.ok(j2[4].resume);
  ws2.recv([j2[0], j2[1], j2[2], 'reply', { status: 'error', response: { reason: 'bad_version' } }]);
  const joins = ws2.find('join');
  assert.equal(joins.length, 2, 'joined again without waiting');
  assert.equal(joins[1][4].resume, undefined, 'without a resume');
  assert.equal(joins[1][4].keep, 'BLOB-1', 'but with the kept blob');
  assert.ok(logs.warn.some((l) => l.includes('bad_version')));
  const j3 = joins[1];
  ws2.recv([j3[0], j3[1], j3[2], 'reply', { status: 'ok', response: { rendered: page(5), v: 1, resume: 'R9' } }]);
  assert.equal(d.getElementById('b').textContent, '5');
  assert.ok(root.classList.contains('live-refused'));
  assert.deepEqual(JSON.parse(JSON.stringify(refused)), [{ view: 'lv-1', events: ['inc'] }]);
  assert.equal(ws2.find('event').length, 0, 'the refused event is not sent to the new view');
});

test('drain: the client answers, queues events, and reconnects when the server said', async () => {
  const { w, ws, j, d } = await joinedWithResume();
  ws.recv([null, null, 'phoenix', 'drain', { reconnect_in: 30 }]);
  const drained = ws.find('drained', 'phoenix');
  assert.equal(drained.length, 1);
  assert.equal(drained[0][0], null);
  d.getElementById('b').click();
  assert.equal(ws.find('event').length, 0, 'nothing more is sent on a draining connection');
  const t0 = Date.now();
  ws.serverClose();
  while (w.__sockets[w.__sockets.length - 1] === ws && Date.now() - t0 < 1000) await tick(5);
  const waited = Date.now() - t0;
  assert.ok(waited < 150, `reconnected after ${waited} ms (the server said 30; a backoff is 200+)`);
  const ws2 = await opened(w);
  const j2 = ws2.find('join')[0];
  ws2.recv([j2[0], j2[1], j2[2], 'reply', { status: 'ok', response: { resumed: true, resume: 'R2', events: 0 } }]);
  assert.deepEqual(ws2.find('event').map((f) => f.n), [1]);
  void j;
});

test('offline events are capped; past the cap they are refused at once', async () => {
  const { ws, d, root } = await joinedWithResume();
  ws.serverClose();
  const b = d.getElementById('b');
  for (let i = 0; i < 100; i++) b.click();
  assert.ok(!root.classList.contains('live-refused'));
  b.click();
  assert.ok(root.classList.contains('live-refused'), 'the 101st is refused');
});
