// Tests of the pure part of assets/live.js, loaded with require() (no DOM): FNV-1a, UTF-16 text
// ops, keyed row ops (nested lists too), applyDiff's checks, renderModel's keep placeholders.
// Run: npm ci && npm test (in assets/test).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { refHash, eq, lenOf, hOf, card, column, BOARD } = require('./support');
const I = require('../live.js');

test('module: require() gives the pure part, and the browser part does not run', () => {
  assert.deepEqual(Object.keys(I).sort(), ['DiffError', 'Fresh', 'applyDiff', 'applyRowOps', 'applyTextOps',
    'checkRendered', 'collectFields', 'fnv1a', 'liveValues', 'modelLength', 'renderModel', 'staticsHash']);
  assert.equal(typeof globalThis.Live, 'undefined');
  assert.equal(typeof globalThis.document, 'undefined');
});

test('fnv1a: empty string is 2166136261', () => {
  assert.equal(I.fnv1a(''), 2166136261);
  assert.equal(refHash(''), 2166136261);
});

// The hash is printed: live-core's hash_matches_the_client_spec pins the same value.
test('fnv1a: "a<b>é😀" matches the byte-wise reference', (t) => {
  const s = 'a<b>é😀';
  assert.equal(s.length, 7);
  const sampleHash = I.fnv1a(s);
  assert.equal(sampleHash, refHash(s));
  assert.ok(sampleHash >= 0 && sampleHash <= 0xffffffff);
  t.diagnostic(`FNV-1a("a<b>é😀") = ${sampleHash} (0x${(sampleHash >>> 0).toString(16)})`);
});

test('fnv1a: running hash over parts equals hash of the concatenation', () => {
  const m = { s: ['<h1>é', '😀</h1>', ''], l: [[], []] };
  assert.equal(I.staticsHash(m), I.fnv1a('<h1>é😀</h1>'));
  assert.equal(I.staticsHash(m), refHash('<h1>é😀</h1>'));
});

test('text ops: keep/delete/insert in UTF-16 units with emoji and accents', () => {
  const s = 'héllo 😀 wörld';
  // keep "héllo " (6), delete 😀 (2 units), insert "🎉", keep " w" (2), delete "ö", insert "o"
  assert.equal(I.applyTextOps(s, [6, -2, '🎉', 2, -1, 'o']), 'héllo 🎉 world');
  assert.equal(I.applyTextOps(s, []), s);
  assert.equal(I.applyTextOps(s, ['¡']), '¡' + s);
  assert.equal(I.applyTextOps(s, [s.length, '!']), s + '!');
  assert.equal(I.applyTextOps(s, [-s.length]), '');
  assert.equal(I.applyTextOps('😀', [1, 'x', 1]), '\ud83dx\ude00'); // splits a pair, as JS strings do
});

test('text ops: errors past the end and bad ops', () => {
  assert.throws(() => I.applyTextOps('ab', [3]), I.DiffError);
  assert.throws(() => I.applyTextOps('ab', [1, -2]), I.DiffError);
  assert.throws(() => I.applyTextOps('ab', [1.5]), I.DiffError);
  assert.throws(() => I.applyTextOps('ab', [null]), I.DiffError);
});

const rows = [['1', '<li data-live-key="1">a</li>'], ['2', '<li data-live-key="2">b</li>'], ['3', '<li data-live-key="3">c</li>']];
test('row ops: r/i/d/m in order, fresh keys reported', () => {
  const [out, fresh] = I.applyRowOps(rows, [
    ['r', '2', '<li data-live-key="2">B</li>'],
    ['i', '4', '1', '<li data-live-key="4">d</li>'],
    ['i', '0', null, '<li data-live-key="0">z</li>'],
    ['d', '3'],
    ['m', '1', '2'],
  ]);
  assert.deepEqual(out.map((r) => r[0]), ['0', '4', '2', '1']);
  assert.equal(out[2][1], '<li data-live-key="2">B</li>');
  assert.deepEqual([...fresh].sort(), ['0', '2', '4']);
  assert.deepEqual(rows.map((r) => r[0]), ['1', '2', '3'], 'input untouched');
});

test('row ops: move first, replace whole list', () => {
  const [out] = I.applyRowOps(rows, [['m', '3', null]]);
  assert.deepEqual(out.map((r) => r[0]), ['3', '1', '2']);
  const [out2, fresh2] = I.applyRowOps(rows, [['=', [['9', '<li data-live-key="9">n</li>']]]]);
  eq(out2, [['9', '<li data-live-key="9">n</li>']]);
  assert.equal(fresh2, true);
});

test('row ops: errors (missing key, duplicate insert, missing after, move after itself, unknown op)', () => {
  assert.throws(() => I.applyRowOps(rows, [['r', '9', 'x']]), I.DiffError);
  assert.throws(() => I.applyRowOps(rows, [['d', '9']]), I.DiffError);
  assert.throws(() => I.applyRowOps(rows, [['i', '1', null, 'x']]), I.DiffError);
  assert.throws(() => I.applyRowOps(rows, [['i', '7', '9', 'x']]), I.DiffError);
  assert.throws(() => I.applyRowOps(rows, [['m', '1', '1']]), I.DiffError);
  assert.throws(() => I.applyRowOps(rows, [['x', '1']]), I.DiffError);
  assert.throws(() => I.applyRowOps(rows, [['=', [['1', 'a'], ['1', 'b']]]]), I.DiffError);
});

test('applyDiff: version, len and hash checks; full resets', () => {
  const m = I.checkRendered({ s: ['<ul>', '</ul><p>é</p>'], l: [rows] });
  const next = { s: ['<ul>', '</ul><p>é😀</p>'], l: [rows.slice(0, 2)] };
  const d = { v: 2, s: [[1, [9, '😀']]], l: [[0, [['d', '3']]]], len: lenOf(next), h: hOf(next) };
  const r = I.applyDiff(m, 1, d);
  eq(r.model, next);
  assert.equal(r.v, 2);
  assert.throws(() => I.applyDiff(m, 2, d), /version/);
  assert.throws(() => I.applyDiff(m, 1, { ...d, len: d.len + 1 }), /length/);
  assert.throws(() => I.applyDiff(m, 1, { ...d, h: (d.h + 1) >>> 0 }), /hash/);
  assert.throws(() => I.applyDiff(m, 1, { v: 2, s: [[5, []]] }), I.DiffError);
  const f = I.applyDiff(m, 1, { v: 40, full: { s: ['x'], l: [] }, len: 1, h: refHash('x') });
  assert.equal(f.v, 40);
  assert.equal(f.fresh, null);
  assert.equal(f.warning, null);
  assert.ok(I.applyDiff(m, 1, { v: 40, full: { s: ['x'], l: [] }, len: 2 }).warning);
  assert.equal(I.modelLength(m), lenOf(m));
});

test('renderModel: keep placeholders for rows not sent by the diff', () => {
  const m = { s: ['<ul>', '</ul>'], l: [[['1', '<li data-live-key="1">a</li>'], ['a"b', '<li>x</li>']]] };
  assert.equal(I.renderModel(m), '<ul><li data-live-key="1">a</li><li>x</li></ul>');
  assert.equal(I.renderModel(m, [new Set(['1'])]),
    '<ul><li data-live-key="1">a</li><template data-live-keep="a&quot;b"></template></ul>');
});

test('nested lists: checked recursively; p patches a row\'s inner lists; lengths count them', () => {
  const m = I.checkRendered(BOARD([column(1, 'To do', [card(7, 'a'), card(8, 'b')]), column(2, 'Done', [])]));
  assert.equal(I.modelLength(m), lenOf(m));
  assert.equal(I.renderModel(m), '<main><section data-live-key="1"><h2>To do</h2><ul><li data-live-key="7">a</li>'
    + '<li data-live-key="8">b</li></ul></section><section data-live-key="2"><h2>Done</h2><ul></ul></section></main>');
  // A card moves from column 1 to column 2, and card 7 is renamed.
  const [rows, fresh] = I.applyRowOps(m.l[0], [
    ['p', '1', { l: [[0, [['d', '8'], ['r', '7', '<li data-live-key="7">A</li>']]]] }],
    ['p', '2', { l: [[0, [['i', '8', null, '<li data-live-key="8">b</li>']]]] }],
  ]);
  assert.equal(fresh.size, 0, 'no column was sent whole');
  assert.deepEqual([...fresh.patched.keys()], ['1', '2']);
  assert.deepEqual([...fresh.patched.get('1')[0]], ['7']);
  const next = { s: m.s, l: [rows] };
  assert.equal(I.modelLength(next), lenOf(next));
  assert.equal(m.l[0][0][1].l[0].length, 2, 'input untouched');
  // Rows the diff did not send are kept; the patched columns are written around them.
  assert.equal(I.renderModel(next, [fresh]), '<main><section data-live-key="1"><h2>To do</h2><ul><li data-live-key="7">A</li>'
    + '</ul></section><section data-live-key="2"><h2>Done</h2><ul><li data-live-key="8">b</li></ul></section></main>');
  const [, fresh2] = I.applyRowOps(m.l[0], [['p', '1', { l: [[0, [['d', '8']]]] }]]);
  assert.equal(I.renderModel({ s: m.s, l: [I.applyRowOps(m.l[0], [['p', '1', { l: [[0, [['d', '8']]]] }]])[0]] }, [fresh2]),
    '<main><section data-live-key="1"><h2>To do</h2><ul><template data-live-keep="7"></template></ul></section>'
    + '<template data-live-keep="2"></template></main>');
  // A replace after a patch sends the row whole; a text patch inside works too.
  const [, fresh3] = I.applyRowOps(m.l[0], [['p', '1', { l: [[0, [['d', '8']]]] }], ['r', '1', column(1, 'x', [])[1]]]);
  assert.ok(fresh3.has('1'));
  assert.equal(fresh3.patched.size, 0);
  const at = m.l[0][0][1].s[0].indexOf('To do');
  const [rows4] = I.applyRowOps(m.l[0], [['p', '1', { s: [[0, [at, -5, 'Doing']]] }]]);
  assert.equal(rows4[0][1].s[0], '<section data-live-key="1"><h2>Doing</h2><ul>');
});

test('nested lists: errors (p on a plain row, bad inner ops, bad row values, too deep)', () => {
  const m = I.checkRendered(BOARD([column(1, 'To do', [card(7, 'a')])]));
  assert.throws(() => I.applyRowOps(m.l[0][0][1].l[0], [['p', '7', { l: [] }]]), /no lists inside/);
  assert.throws(() => I.applyRowOps(m.l[0], [['p', '1', { l: [[0, [['d', '9']]]] }]]), /no row with key 9/);
  assert.throws(() => I.applyRowOps(m.l[0], [['p', '1', { l: [[1, []]] }]]), I.DiffError);
  assert.throws(() => I.applyRowOps(m.l[0], [['p', '1', null]]), I.DiffError);
  assert.throws(() => I.applyRowOps(m.l[0], [['r', '1', 5]]), /string or a model/);
  assert.throws(() => I.checkRendered({ s: ['a', 'b'], l: [[['1', { s: ['x'], l: [[]] }]]] }), I.DiffError);
  let deep = { s: ['x'], l: [] };
  for (let i = 0; i < 40; i++) deep = { s: ['<a>', '</a>'], l: [[['k', deep]]] };
  assert.throws(() => I.checkRendered(deep), /too deep/);
});
