// Tests of assets/live.js in a jsdom page over a mock socket: join, diffs, resync, events,
// debounce/throttle, patches, hooks, reconnect, form recovery, the reload cap.
// Run: npm ci && npm test (in assets/test).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { tick, opened, refHash, eq, makeDom, lenOf, hOf, joined, card, column, BOARD } = require('./support');
const I = require('../live.js');

const TODO = (items, { value = '' } = {}) => {
  const rowsHtml = items.map(([k, t, c]) => [k, `<li data-live-key="${k}"${c ? ' class="completed"' : ''}><div class="view"><input class="toggle" type="checkbox"${c ? ' checked' : ''} live-click="toggle" live-value-id="${k}"><label live-dblclick="edit" live-value-id="${k}">${t}</label><button class="destroy" live-click="destroy" live-value-id="${k}"></button></div></li>`]);
  return {
    s: [`<section class="todoapp"><header class="header"><h1>todos</h1><input class="new-todo" value="${value}" autocomplete="off" live-keydown="add" live-key="Enter"></header><ul class="todo-list">`,
      `</ul><footer class="footer"><span class="todo-count"><strong>${items.length}</strong> items left</span><a id="act" href="/lists/1?filter=active" live-patch>Active</a></footer></section>`],
    l: [rowsHtml],
  };
};
const rootHtml = (id = 'lv-1', extra = '') => `<div data-live-root id="${id}" data-live-token="TOK-${id}" class="live-loading">${extra}</div>`;

test('browser part: window.Live has socket, views, connect, disconnect, morph, navigation; no _internals', () => {
  const { w } = makeDom('');
  assert.deepEqual(Object.keys(w.Live).sort(), ['connect', 'disconnect', 'morph', 'navigation', 'socket', 'views']);
  assert.equal(w.Live._internals, undefined);
  assert.equal(typeof w.Live.morph, 'function');
  assert.deepEqual(Object.keys(w.Live.navigation).sort(), ['assign', 'reload']);
});

test('join: frame shape, socket URL, connected class, title, render', async () => {
  const R = TODO([['1', 'Milk', false]]);
  const env = await joined(rootHtml(), R, { title: 'Todos' });
  const { ws, d, w } = env;
  assert.equal(ws.url, 'ws://example.test/live/websocket');
  const j = ws.find('join')[0];
  assert.equal(j[0], j[1]);
  assert.equal(j[2], 'lv:lv-1');
  assert.deepEqual(j[4], { token: 'TOK-lv-1', url: 'http://example.test/lists/1' });
  const root = d.getElementById('lv-1');
  assert.equal(root.className, 'live-connected');
  assert.equal(d.title, 'Todos');
  assert.equal(root.querySelectorAll('li').length, 1);
  assert.ok(w.Live.views.get('lv-1'));
});

test('diff: text + row ops are applied and morphed; kept rows keep identity', async () => {
  let m = TODO([['1', 'Milk', false], ['2', 'Eggs', false]]);
  const { ws, d } = await joined(rootHtml(), m);
  const root = d.getElementById('lv-1');
  const [li1, li2] = root.querySelectorAll('li');
  const jr = ws.find('join')[0][0];
  const next = TODO([['3', 'Crème brûlée 😀', false], ['1', 'Milk', true], ['2', 'Eggs', false]]);
  // statics change "2" -> "3" inside <strong>
  const i = m.s[1].indexOf('<strong>2') + 8;
  ws.recv([jr, null, 'lv:lv-1', 'diff', {
    v: 2,
    s: [[1, [i, -1, '3']]],
    l: [[0, [['i', '3', null, next.l[0][0][1]], ['r', '1', next.l[0][1][1]]]]],
    len: lenOf(next), h: hOf(next),
  }]);
  const lis = root.querySelectorAll('li');
  assert.equal(lis.length, 3);
  assert.equal(lis[1], li1);
  assert.equal(lis[2], li2);
  assert.equal(li1.className, 'completed');
  assert.equal(li1.querySelector('.toggle').checked, true);
  assert.equal(lis[0].textContent, 'Crème brûlée 😀');
  assert.equal(root.querySelector('strong').textContent, '3');
  assert.equal(ws.find('resync').length, 0);
  m = next;
  // move + delete
  const after = { s: m.s, l: [[m.l[0][2], m.l[0][1]]] };
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 3, l: [[0, [['d', '3'], ['m', '2', null]]]], len: lenOf(after), h: hOf(after) }]);
  assert.deepEqual([...root.querySelectorAll('li')], [li2, li1]);
});

test('nested lists in a view: a p diff morphs one card; other cards and columns keep identity', async () => {
  const m = BOARD([column(1, 'To do', [card(7, 'a'), card(8, 'b')]), column(2, 'Done', [card(9, 'c')])]);
  const { ws, d } = await joined(rootHtml(), m);
  const root = d.getElementById('lv-1');
  const [s1, s2] = root.querySelectorAll('section');
  const [c7, c8, c9] = root.querySelectorAll('li');
  const jr = ws.find('join')[0][0];
  const next = BOARD([column(1, 'To do', [card(7, 'A')]), column(2, 'Done', [card(8, 'b'), card(9, 'c')])]);
  ws.recv([jr, null, 'lv:lv-1', 'diff', {
    v: 2,
    l: [[0, [
      ['p', '1', { l: [[0, [['d', '8'], ['r', '7', '<li data-live-key="7">A</li>']]]] }],
      ['p', '2', { l: [[0, [['i', '8', null, '<li data-live-key="8">b</li>']]]] }],
    ]]],
    len: lenOf(next), h: hOf(next),
  }]);
  assert.equal(ws.find('resync').length, 0);
  assert.equal(root.innerHTML, I.renderModel(next));
  const [n1, n2] = root.querySelectorAll('section');
  assert.equal(n1, s1);
  assert.equal(n2, s2);
  const lis = root.querySelectorAll('li');
  assert.equal(lis[0], c7, 'the renamed card is morphed in place');
  assert.equal(lis[0].textContent, 'A');
  assert.equal(lis[2], c9, 'an untouched card in a patched column is the same node');
  assert.equal(lis[1].textContent, 'b');
  assert.notEqual(lis[1], c8, 'a card moved between lists is a new node');
});

test('diff: bad hash, bad version and unknown key resync; non-full ignored until full', async () => {
  const m = TODO([['1', 'Milk', false]]);
  const { ws, d, logs } = await joined(rootHtml(), m);
  const root = d.getElementById('lv-1');
  const jr = ws.find('join')[0][0];
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 2, s: [[0, ['X']]], len: lenOf(m) + 1, h: 1 }]);
  assert.equal(ws.find('resync').length, 1);
  assert.equal(root.textContent.startsWith('X'), false, 'dropped');
  assert.ok(logs.error.some((e) => e.includes('resyncing')));
  // a well-formed non-full diff is ignored while resyncing
  const m2 = { s: ['Y' + m.s[0], m.s[1]], l: m.l };
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 2, s: [[0, ['Y']]], len: lenOf(m2), h: hOf(m2) }]);
  assert.equal(root.textContent.startsWith('Y'), false);
  const full = TODO([['5', 'Fresh', false]]);
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 9, full, len: lenOf(full), h: hOf(full) }]);
  assert.equal(root.querySelector('li').textContent, 'Fresh');
  const rs = ws.last('resync');
  ws.recv([jr, rs[1], 'lv:lv-1', 'reply', { status: 'ok', response: {} }]);
  // version continues from the full one
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 11, l: [[0, [['d', '5']]]] }]);
  assert.equal(ws.find('resync').length, 2, 'wrong version resyncs');
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 9, full }]);
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 10, l: [[0, [['d', 'nope']]]] }]);
  assert.equal(ws.find('resync').length, 3, 'unknown key resyncs');
});

test('diff: placeholder without an old row falls back to full HTML', async () => {
  const m = { s: ['<ul>', '</ul>'], l: [[['1', '<li data-live-key="1">a</li>']]] };
  const { ws, d } = await joined(rootHtml(), m);
  const root = d.getElementById('lv-1');
  root.querySelector('li').remove(); // someone broke the DOM
  const jr = ws.find('join')[0][0];
  const next = { s: ['<ul class="x">', '</ul>'], l: m.l };
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 2, s: [[0, [3, ' class="x"']]], len: lenOf(next), h: hOf(next) }]);
  assert.equal(root.innerHTML, '<ul class="x"><li data-live-key="1">a</li></ul>');
  // the list's parent changes tag: its placeholders have no old parent
  const ul = root.firstChild;
  const next2 = { s: ['<ol>', '</ol>'], l: m.l };
  ws.recv([jr, null, 'lv:lv-1', 'diff', { v: 3, s: [[0, [1, -12, 'ol']], [1, [2, -2, 'ol']]], len: lenOf(next2), h: hOf(next2) }]);
  assert.equal(root.innerHTML, '<ol><li data-live-key="1">a</li></ol>');
  assert.equal(ws.find('resync').length, 0);
  assert.equal(ul.isConnected, false);
});

test('click: live-value-*, loading class until the reply; dblclick', async () => {
  const { ws, d } = await joined(rootHtml(), TODO([['1', 'Milk', false]]));
  const btn = d.querySelector('.destroy');
  btn.click();
  const ev = ws.last('event');
  assert.deepEqual(ev[4], { type: 'click', event: 'destroy', value: { id: '1' } });
  assert.equal(ev[0], ws.find('join')[0][0]);
  assert.ok(btn.classList.contains('live-click-loading'));
  ws.recv([ev[0], ev[1], ev[2], 'reply', { status: 'ok', response: {} }]);
  assert.equal(btn.classList.contains('live-click-loading'), false);
  assert.equal(btn.hasAttribute('class') && btn.className, 'destroy');
  const label = d.querySelector('label');
  label.dispatchEvent(new d.defaultView.MouseEvent('dblclick', { bubbles: true }));
  assert.deepEqual(ws.last('event')[4], { type: 'dblclick', event: 'edit', value: { id: '1' } });
});

test('keydown Enter: focused input kept across the diff, server value after the ok reply', async () => {
  const m = TODO([]);
  const { ws, d, w } = await joined(rootHtml(), m);
  const input = d.querySelector('.new-todo');
  input.focus();
  input.value = 'Buy 😀 milk';
  input.dispatchEvent(new w.KeyboardEvent('keydown', { key: 'a', bubbles: true }));
  assert.equal(ws.find('event').length, 0, 'filtered out');
  input.dispatchEvent(new w.KeyboardEvent('keydown', { key: 'enter', bubbles: true }));
  const ev = ws.last('event');
  assert.deepEqual(ev[4], { type: 'keydown', event: 'add', value: { key: 'enter', value: 'Buy 😀 milk' } });
  assert.ok(input.classList.contains('live-keydown-loading'));
  const next = TODO([['1', 'Buy 😀 milk', false]]);
  const li = next.l[0][0];
  ws.recv([ev[0], null, 'lv:lv-1', 'diff', { v: 2, l: [[0, [['i', '1', null, li[1]]]]], s: [[1, [m.s[1].indexOf('<strong>0') + 8, -1, '1']]], len: lenOf(next), h: hOf(next) }]);
  assert.equal(input.value, 'Buy 😀 milk', 'still focused: kept');
  assert.equal(d.querySelectorAll('li').length, 1);
  ws.recv([ev[0], ev[1], ev[2], 'reply', { status: 'ok', response: {} }]);
  assert.equal(input.value, '', 'server value after ack');
  assert.equal(d.activeElement, input);
  // Text typed after the Enter, before the reply, is not wiped by the reply.
  input.value = 'second';
  input.dispatchEvent(new w.KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
  const ev2 = ws.last('event');
  input.value = 'third, typed while waiting';
  ws.recv([ev2[0], ev2[1], ev2[2], 'reply', { status: 'ok', response: {} }]);
  assert.equal(input.value, 'third, typed while waiting');
});

test('keydown: live-keydown-KEYNAME extra binding, blur binding, no blur during morph', async () => {
  const m = { s: ['<ul>', '</ul>'], l: [[['2', '<li data-live-key="2" class="editing"><input class="edit" value="T" live-keydown="save" live-key="Enter" live-keydown-escape="cancel" live-blur="save" live-value-id="2"></li>']]] };
  const { ws, d, w } = await joined(rootHtml(), m);
  const edit = d.querySelector('.edit');
  edit.focus();
  edit.dispatchEvent(new w.KeyboardEvent('keydown', { key: 'Escape', bubbles: true }));
  const ev = ws.last('event');
  assert.deepEqual(ev[4], { type: 'keydown', event: 'cancel', value: { key: 'Escape', value: 'T', id: '2' } });
  assert.equal(ws.find('event').length, 1);
  // server removes the edit input: no blur event must be sent
  const next = { s: m.s, l: [[['2', '<li data-live-key="2"><label>T</label></li>']]] };
  ws.recv([ev[0], null, 'lv:lv-1', 'diff', { v: 2, l: [[0, [['r', '2', next.l[0][0][1]]]]], len: lenOf(next), h: hOf(next) }]);
  assert.equal(d.querySelector('.edit'), null);
  assert.equal(ws.find('event').length, 1, 'no save on removal');
  // a real blur sends
  const m3 = { s: m.s, l: [[['2', m.l[0][0][1]]]] };
  ws.recv([ev[0], null, 'lv:lv-1', 'diff', { v: 3, l: [[0, [['r', '2', m.l[0][0][1]]]]], len: lenOf(m3), h: hOf(m3) }]);
  const e2 = d.querySelector('.edit');
  e2.focus();
  e2.value = 'New';
  e2.blur();
  assert.deepEqual(ws.last('event')[4], { type: 'blur', event: 'save', value: { value: 'New', id: '2' } });
});

test('submit: fields, disable-with, loading, server value after reply', async () => {
  const m = { s: ['<form id="f" live-submit="save" live-value-list="1"><input name="title" value=""><input type="checkbox" name="urgent" value="y" checked><button type="submit" live-disable-with="Saving…">Save <b>it</b></button></form>'], l: [] };
  const { ws, d, w } = await joined(rootHtml(), m);
  const form = d.getElementById('f');
  const input = form.querySelector('[name=title]');
  const btn = form.querySelector('button');
  input.focus();
  input.value = 'Hello';
  const evt = new w.Event('submit', { bubbles: true, cancelable: true });
  form.dispatchEvent(evt);
  assert.equal(evt.defaultPrevented, true);
  const ev = ws.last('event');
  assert.deepEqual(ev[4], { type: 'submit', event: 'save', value: { title: 'Hello', urgent: 'y', list: '1' } });
  assert.ok(form.classList.contains('live-submit-loading'));
  assert.equal(btn.disabled, true);
  assert.equal(btn.textContent, 'Saving…');
  // a diff during the request keeps the loading state and updates the server's content underneath
  const m2 = { s: [m.s[0].replace('Save <b>it</b>', 'Save <b>now</b>')], l: [] };
  ws.recv([ev[0], null, 'lv:lv-1', 'diff', { v: 2, full: m2 }]);
  assert.equal(btn.disabled, true);
  assert.equal(btn.textContent, 'Saving…');
  assert.ok(form.classList.contains('live-submit-loading'));
  assert.equal(input.value, 'Hello');
  ws.recv([ev[0], ev[1], ev[2], 'reply', { status: 'ok', response: {} }]);
  assert.equal(btn.disabled, false);
  assert.equal(btn.innerHTML, 'Save <b>now</b>');
  assert.equal(form.getAttribute('class'), null);
  assert.equal(input.value, '');
});

test('change: form and single input, input+change sent once, target, debounce', async () => {
  const m = { s: ['<form id="f" live-change="validate"><input name="a" value=""><input name="b" live-debounce="30" value=""></form><input name="solo" live-change="solo" value=""><input type="checkbox" name="cb" value="on" live-change="cb">'], l: [] };
  const { ws, d, w } = await joined(rootHtml(), m);
  const a = d.querySelector('[name=a]');
  a.value = 'x';
  a.dispatchEvent(new w.Event('input', { bubbles: true }));
  a.dispatchEvent(new w.Event('change', { bubbles: true }));
  let evs = ws.find('event');
  assert.equal(evs.length, 1);
  assert.deepEqual(evs[0][4], { type: 'change', event: 'validate', value: { a: 'x', b: '' }, target: 'a' });
  const b = d.querySelector('[name=b]');
  for (const v of ['1', '12', '123']) { b.value = v; b.dispatchEvent(new w.Event('input', { bubbles: true })); }
  assert.equal(ws.find('event').length, 1, 'debounced');
  await tick(60);
  evs = ws.find('event');
  assert.equal(evs.length, 2);
  assert.deepEqual(evs[1][4].value, { a: 'x', b: '123' });
  const solo = d.querySelector('[name=solo]');
  solo.value = 'é';
  solo.dispatchEvent(new w.Event('input', { bubbles: true }));
  assert.deepEqual(ws.last('event')[4], { type: 'change', event: 'solo', value: { solo: 'é' }, target: 'solo' });
  const cb = d.querySelector('[name=cb]');
  cb.click(); // jsdom fires input + change
  assert.deepEqual(ws.last('event')[4], { type: 'change', event: 'cb', value: { cb: 'on' }, target: 'cb' });
  const n = ws.find('event').length;
  cb.click();
  assert.deepEqual(ws.last('event')[4].value, {});
  assert.equal(ws.find('event').length, n + 1);
});

test('throttle: first immediately, last at the end', async () => {
  const m = { s: ['<button id="t" live-click="inc" live-throttle="40">+</button>'], l: [] };
  const { ws, d } = await joined(rootHtml(), m);
  const t = d.getElementById('t');
  t.click(); t.click(); t.click();
  assert.equal(ws.find('event').length, 1);
  await tick(60);
  assert.equal(ws.find('event').length, 2);
  await tick(60);
  assert.equal(ws.find('event').length, 2);
});

test('live-patch link: pushState then params; popstate sends params', async () => {
  const { ws, d, w } = await joined(rootHtml(), TODO([]));
  const a = d.getElementById('act');
  const evt = new w.MouseEvent('click', { bubbles: true, cancelable: true, button: 0 });
  a.dispatchEvent(evt);
  assert.equal(evt.defaultPrevented, true);
  assert.equal(w.location.href, 'http://example.test/lists/1?filter=active');
  assert.deepEqual(ws.last('params')[4], { url: 'http://example.test/lists/1?filter=active' });
  w.dispatchEvent(new w.PopStateEvent('popstate'));
  assert.equal(ws.find('params').length, 2);
});

test('server pushes: patch, title, push_event to hooks and window, redirect', async () => {
  const m = { s: ['<div id="h" live-hook="Chart">0</div>'], l: [] };
  const env = makeDom(rootHtml());
  const { w, d } = env;
  const calls = [];
  w.LiveHooks = {
    Chart: {
      mounted() { calls.push(['mounted', this.el.id]); this.handleEvent('point', (p) => calls.push(['point', p])); this.pushEvent('ready', { n: 1 }); },
      updated() { calls.push(['updated', this.el.textContent]); },
      destroyed() { calls.push(['destroyed']); },
    },
  };
  const ws = await opened(w);
  const j = ws.find('join')[0];
  ws.recv([j[0], j[1], j[2], 'reply', { status: 'ok', response: { rendered: m, v: 1, title: null } }]);
  assert.deepEqual(calls[0], ['mounted', 'h']);
  assert.deepEqual(ws.last('event')[4], { type: 'hook', event: 'ready', value: { n: 1 } });
  const got = [];
  w.addEventListener('live:point', (e) => got.push(e.detail));
  ws.recv([j[0], null, j[2], 'push_event', { event: 'point', payload: { x: 1 } }]);
  eq(calls[1], ['point', { x: 1 }]);
  eq(got, [{ x: 1 }]);
  ws.recv([j[0], null, j[2], 'diff', { v: 2, s: [[0, [m.s[0].indexOf('>0<') + 1, -1, '1']]] }]);
  assert.deepEqual(calls[2], ['updated', '1']);
  ws.recv([j[0], null, j[2], 'diff', { v: 3, s: [[0, [-m.s[0].length, 'gone']]] }]);
  assert.deepEqual(calls[3], ['destroyed']);
  ws.recv([j[0], null, j[2], 'title', { title: 'Nouveau' }]);
  assert.equal(d.title, 'Nouveau');
  ws.recv([j[0], null, j[2], 'patch', { to: '/lists/2', replace: true }]);
  assert.equal(w.location.pathname, '/lists/2');
  const assigned = [];
  w.Live.navigation.assign = (u) => assigned.push(u);
  ws.recv([j[0], null, j[2], 'redirect', { to: '/lists/3' }]);
  eq(assigned, ['http://example.test/lists/3']);
  // frames for another join ref are ignored
  ws.recv(['999', null, j[2], 'title', { title: 'stale' }]);
  assert.equal(d.title, 'Nouveau');
});

// Targets a server push or a live-patch link must never be followed to.
const FOREIGN = ['javascript:alert(1)', ' JavaScript:alert(1)', 'data:text/html,<b>x</b>', '//evil.example/x',
  'https://evil.example/lists/1', 'https://example.test/lists/2', 'http://example.test:8080/lists/2'];

test('redirect push: same-origin targets followed, foreign ones refused and logged', async () => {
  for (const to of FOREIGN) {
    const { ws, w, logs } = await joined(rootHtml(), { s: ['<p>x</p>'], l: [] });
    const assigned = [];
    w.Live.navigation.assign = (u) => assigned.push(u);
    const j = ws.find('join')[0];
    ws.recv([j[0], null, j[2], 'redirect', { to }]);
    eq(assigned, [], to);
    assert.equal(w.location.href, 'http://example.test/lists/1', to);
    assert.ok(logs.error.some((e) => e.includes('redirect to') && e.includes('refused')), `${to}: ${logs.error}`);
    assert.equal(w.Live.socket.unloading, false, `${to}: the socket still reconnects`);
  }
  const { ws, w, logs } = await joined(rootHtml(), { s: ['<p>x</p>'], l: [] });
  const assigned = [];
  w.Live.navigation.assign = (u) => assigned.push(u);
  const j = ws.find('join')[0];
  ws.recv([j[0], null, j[2], 'redirect', { to: '/lists/2?filter=active' }]);
  eq(assigned, ['http://example.test/lists/2?filter=active']);
  eq(logs.error, []);
});

test('patch push: same-origin targets pushed, foreign ones refused and logged', async () => {
  for (const to of FOREIGN) {
    const { ws, w, logs } = await joined(rootHtml(), { s: ['<p>x</p>'], l: [] });
    const j = ws.find('join')[0];
    const before = w.history.length;
    for (const replace of [false, true]) ws.recv([j[0], null, j[2], 'patch', { to, replace }]);
    assert.equal(w.location.href, 'http://example.test/lists/1', to);
    assert.equal(w.history.length, before, to);
    assert.equal(logs.error.filter((e) => e.includes('patch to') && e.includes('refused')).length, 2, `${to}: ${logs.error}`);
  }
  const { ws, w, logs } = await joined(rootHtml(), { s: ['<p>x</p>'], l: [] });
  const j = ws.find('join')[0];
  ws.recv([j[0], null, j[2], 'patch', { to: 'http://example.test/lists/3?filter=completed', replace: false }]);
  assert.equal(w.location.href, 'http://example.test/lists/3?filter=completed');
  eq(logs.error, []);
});

test('live-patch link: foreign targets refused (no navigation, no params) and logged', async () => {
  for (const href of FOREIGN) {
    const m = { s: [`<a id="x" href="${href.replace(/"/g, '&quot;')}" live-patch>x</a>`], l: [] };
    const { ws, d, w, logs } = await joined(rootHtml(), m);
    const evt = new w.MouseEvent('click', { bubbles: true, cancelable: true, button: 0 });
    d.getElementById('x').dispatchEvent(evt);
    assert.equal(evt.defaultPrevented, true, `${href}: the browser does not follow it either`);
    assert.equal(w.location.href, 'http://example.test/lists/1', href);
    assert.equal(ws.find('params').length, 0, href);
    assert.ok(logs.error.some((e) => e.includes('live-patch to') && e.includes('refused')), `${href}: ${logs.error}`);
  }
});

test('robustness: bad frames are logged and do not break other views', async () => {
  const R = { 'lv:lv-1': { s: ['<p>one</p>'], l: [] }, 'lv:lv-2': { s: ['<p>two</p>'], l: [] } };
  const { ws, d, logs } = await joined(rootHtml('lv-1') + rootHtml('lv-2'), R);
  const j1 = ws.find('join', 'lv:lv-1')[0][0];
  const j2 = ws.find('join', 'lv:lv-2')[0][0];
  ws.recv('not json');
  ws.recv('{"a":1}');
  ws.recv([j1, null, 'lv:lv-1', 'diff', null]);
  ws.recv([j1, null, 'lv:lv-1', 'diff', { v: 2, s: 'garbage' }]);
  ws.recv([j1, null, 'lv:lv-1', 'diff', { v: 2, full: { s: [1, 2] } }]);
  ws.recv([null, null, 'phoenix', 'error', { reason: 'malformed' }]);
  assert.ok(logs.error.length >= 4, logs.error.join('\n'));
  ws.recv([j2, null, 'lv:lv-2', 'diff', { v: 2, s: [[0, [10, '!']]], len: 11, h: refHash('<p>two</p>!') }]);
  assert.equal(d.getElementById('lv-2').innerHTML, '<p>two</p>!');
  assert.equal(d.getElementById('lv-2').className, 'live-connected');
  assert.equal(d.getElementById('lv-1').textContent, 'one');
});

test('join errors: invalid_token reloads (capped at 3 per minute); failures retry', async () => {
  const env = makeDom(rootHtml());
  const { w, d } = env;
  const ws = await opened(w);
  const j = ws.find('join')[0];
  ws.recv([j[0], j[1], j[2], 'reply', { status: 'error', response: { reason: 'invalid_token' } }]);
  assert.equal(w.__reloads, 1);
  assert.equal(JSON.parse(w.sessionStorage.getItem('live:reloads')).length, 1);
  w.sessionStorage.setItem('live:reloads', JSON.stringify([Date.now(), Date.now(), Date.now()]));
  const v = w.Live.views.get('lv-1');
  v.state = 'idle';
  v.join();
  const j2 = ws.last('join');
  ws.recv([j2[0], j2[1], j2[2], 'reply', { status: 'error', response: { reason: 'expired' } }]);
  assert.equal(w.__reloads, 1, 'cap reached: no reload');
  assert.equal(d.getElementById('lv-1').className, 'live-error');
  assert.equal(v.state, 'dead');
  // a retryable failure rejoins after backoff
  v.state = 'idle';
  v.join();
  const j3 = ws.last('join');
  assert.equal(d.getElementById('lv-1').className, 'live-loading');
  ws.recv([j3[0], j3[1], j3[2], 'reply', { status: 'error', response: { reason: 'mount_failed' } }]);
  assert.equal(d.getElementById('lv-1').className, 'live-error');
  await tick(400);
  assert.equal(ws.find('join').length, 4, 'rejoined after backoff');
});

test('10 failed joins in a row reload the page', async () => {
  const env = makeDom(rootHtml());
  const { w } = env;
  const ws = await opened(w);
  const v = w.Live.views.get('lv-1');
  for (let i = 0; i < 10; i++) {
    const j = ws.last('join');
    ws.recv([j[0], j[1], j[2], 'reply', { status: 'error', response: { reason: 'mount_failed' } }]);
    clearTimeout(v.timer);
    if (i < 9) v.join();
  }
  assert.equal(w.__reloads, 1);
});

test('view crash (error push) → live-error, rejoin; socket loss → reconnect, rejoin, form recovery', async () => {
  const m = { s: ['<form id="f" live-change="validate"><input name="q" value=""></form><p>x</p>'], l: [] };
  const { ws, d, w } = await joined(rootHtml(), m);
  const root = d.getElementById('lv-1');
  const j = ws.find('join')[0];
  ws.recv([j[0], null, j[2], 'error', { reason: 'panic' }]);
  assert.equal(root.className, 'live-error');
  await tick(400);
  const j2 = ws.last('join');
  assert.notEqual(j2[0], j[0]);
  ws.recv([j2[0], j2[1], j2[2], 'reply', { status: 'ok', response: { rendered: m, v: 1 } }]);
  assert.equal(root.className, 'live-connected');
  // user typed, then the socket dies
  const q = d.querySelector('[name=q]');
  q.value = 'typed';
  ws.serverClose();
  assert.equal(root.className, 'live-connected', 'a blip shows nothing at first');
  q.dispatchEvent(new w.Event('input', { bubbles: true })); // queued while disconnected
  await tick(400);
  const ws2 = w.__sockets[w.__sockets.length - 1];
  assert.notEqual(ws2, ws);
  const j3 = ws2.find('join')[0];
  assert.ok(j3, 'rejoined on the new socket');
  assert.equal(root.className, 'live-connected', 'no flicker while the rejoin is in flight');
  assert.equal(ws2.find('event').length, 0, 'the queued event waits for the join');
  ws2.recv([j3[0], j3[1], j3[2], 'reply', { status: 'ok', response: { rendered: m, v: 1 } }]);
  assert.ok(root.classList.contains('live-connected'));
  // Mounted anew (not resumed): the event queued offline is refused, visibly; the form's
  // fields are recovered and sent.
  assert.ok(root.classList.contains('live-refused'));
  assert.equal(q.value, 'typed', 'recovered value stays in the field');
  assert.equal(ws2.find('event').length, 1);
  assert.deepEqual(ws2.last('event')[4], { type: 'change', event: 'validate', value: { q: 'typed' } });
});

test('heartbeat frame shape; Live.disconnect stops reconnecting', async () => {
  const { ws, w } = await joined(rootHtml(), { s: ['x'], l: [] });
  w.Live.socket.heartbeat();
  const hb = ws.last('heartbeat');
  assert.deepEqual([hb[0], hb[2], hb[4]], [null, 'phoenix', {}]);
  ws.recv([null, hb[1], 'phoenix', 'reply', { status: 'ok', response: {} }]);
  assert.equal(w.Live.socket.hbTimeout, null);
  const n = w.__sockets.length;
  w.Live.disconnect();
  await tick(400);
  assert.equal(w.__sockets.length, n);
});

test('event answered not_joined rejoins; patch without "to" is logged; IME input sent on compositionend', async () => {
  const m = { s: ['<button id="b" live-click="go">go</button><input name="q" live-change="q" value="">'], l: [] };
  const { ws, d, w, logs } = await joined(rootHtml(), m);
  const j = ws.find('join')[0];
  ws.recv([j[0], null, j[2], 'patch', { replace: false }]);
  assert.ok(logs.error.some((e) => e.includes('without "to"')));
  const q = d.querySelector('[name=q]');
  q.value = 'にほ';
  q.dispatchEvent(new w.InputEvent('input', { bubbles: true, isComposing: true }));
  assert.equal(ws.find('event').length, 0, 'skipped while composing');
  q.value = '日本';
  q.dispatchEvent(new w.CompositionEvent('compositionend', { bubbles: true }));
  assert.deepEqual(ws.last('event')[4], { type: 'change', event: 'q', value: { q: '日本' }, target: 'q' });
  d.getElementById('b').click();
  const ev = ws.last('event');
  ws.recv([ev[0], ev[1], ev[2], 'reply', { status: 'error', response: { reason: 'not_joined' } }]);
  assert.equal(d.getElementById('lv-1').className, 'live-error');
  await tick(400);
  assert.equal(ws.find('join').length, 2);
});
