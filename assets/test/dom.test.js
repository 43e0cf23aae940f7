// Tests of assets/live.js's DOM code under jsdom: form fields (collectFields, from the module, on
// jsdom elements) and the morph (window.Live.morph, in a page running live.js).
// Run: npm ci && npm test (in assets/test).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { makeDom } = require('./support');
const I = require('../live.js');

test('collectFields: names, checkboxes, arrays, disabled, selects', () => {
  const { d } = makeDom(`<form id="f">
    <input name="title" value="Hé 😀"><input name="done" type="checkbox" value="yes">
    <input name="tag" type="checkbox" value="a" checked><input name="tag" type="checkbox" value="b" checked>
    <input name="one[]" value="x"><input name="off" value="z" disabled>
    <select name="pick"><option value="1">1</option><option value="2" selected>2</option></select>
    <select name="many" multiple><option value="m" selected>m</option></select>
    <textarea name="body">text</textarea><input type="submit" name="go" value="Go">
    <input type="radio" name="r" value="r1"><input type="radio" name="r" value="r2" checked>
  </form>`);
  const f = d.getElementById('f');
  assert.deepEqual(JSON.parse(JSON.stringify(I.collectFields(f.elements))), {
    title: 'Hé 😀', tag: ['a', 'b'], 'one[]': ['x'], pick: '2', many: ['m'], body: 'text', r: 'r2',
  });
});

// ------------------------------------------------------------------ morph
test('morph: focused input keeps value and caret while siblings change', () => {
  const { d, w } = makeDom('<div id="root"><p>one</p><input id="q" value="server"><p>two</p></div>');
  const root = d.getElementById('root');
  const q = d.getElementById('q');
  q.focus();
  q.value = 'typed héllo';
  q.setSelectionRange(3, 5);
  w.Live.morph(root, '<h2>new</h2><p>one!</p><input id="q" value="server2" class="x"><p>three</p><p>four</p>');
  assert.equal(d.getElementById('q'), q, 'same element');
  assert.equal(d.activeElement, q);
  assert.equal(q.value, 'typed héllo');
  assert.equal(q.selectionStart, 3);
  assert.equal(q.selectionEnd, 5);
  assert.equal(q.getAttribute('value'), 'server2');
  assert.equal(q.className, 'x');
  assert.equal(root.textContent, 'newone!threefour');
  // siblings removed before it
  w.Live.morph(root, '<input id="q" value="server3">');
  assert.equal(root.firstChild, q);
  assert.equal(d.activeElement, q);
  assert.equal(q.value, 'typed héllo');
  assert.equal(q.selectionStart, 3);
});

test('morph: unfocused input takes the server value when the server changes it', () => {
  const { d, w } = makeDom('<div id="root"><input id="q" value="a"></div>');
  const q = d.getElementById('q');
  q.value = 'typed';
  w.Live.morph(d.getElementById('root'), '<input id="q" value="b">');
  assert.equal(q.value, 'b');
});

test('morph: what was typed into an unfocused control the server does not fill stays', () => {
  const { d, w } = makeDom('<div id="root"><input id="q"><textarea id="t">x</textarea><p>1</p></div>');
  const root = d.getElementById('root');
  const q = d.getElementById('q');
  const t = d.getElementById('t');
  q.value = 'typed, then focus left';
  t.value = 'notes';
  w.Live.morph(root, '<input id="q" class="c"><textarea id="t">x</textarea><p>2</p>');
  assert.equal(q.value, 'typed, then focus left');
  assert.equal(t.value, 'notes');
  w.Live.morph(root, '<input id="q" value=""><textarea id="t">y</textarea><p>3</p>');
  assert.equal(q.value, '', 'a value attribute that appears is the server changing it');
  assert.equal(t.value, 'y');
});

test('morph: focused input moved by a keyed reorder keeps focus and selection', () => {
  const { d, w } = makeDom('<ul id="root"><li data-live-key="1">1</li><li data-live-key="2"><input id="e" value="v"></li></ul>');
  const e = d.getElementById('e');
  e.focus();
  e.value = 'abcdef';
  e.setSelectionRange(2, 4);
  w.Live.morph(d.getElementById('root'), '<li data-live-key="2"><input id="e" value="v"></li><li data-live-key="1">1</li>');
  assert.equal(d.getElementById('root').firstElementChild.getAttribute('data-live-key'), '2');
  assert.equal(d.activeElement, e);
  assert.equal(e.value, 'abcdef');
  assert.equal(e.selectionStart, 2);
  assert.equal(e.selectionEnd, 4);
});

test('morph: keep placeholders reuse the old row untouched, keyed rows keep identity', () => {
  const { d, w } = makeDom('<ul id="root"><li data-live-key="1">a</li><li data-live-key="2">b</li><li data-live-key="3">c</li></ul>');
  const root = d.getElementById('root');
  const [l1, l2, l3] = root.children;
  l1.setAttribute('data-local', 'kept'); // a keep placeholder must not touch it
  w.Live.morph(root, '<template data-live-keep="3"></template><li data-live-key="2" class="done">B</li><template data-live-keep="1"></template>');
  assert.deepEqual([...root.children], [l3, l2, l1]);
  assert.equal(l1.getAttribute('data-local'), 'kept');
  assert.equal(l2.className, 'done');
  assert.equal(l2.textContent, 'B');
  assert.equal(root.querySelector('template'), null);
});

test('morph: attribute added, changed and removed', () => {
  const { d, w } = makeDom('<div id="root"><a id="a" href="/x" class="selected" title="t">A</a></div>');
  const a = d.getElementById('a');
  w.Live.morph(d.getElementById('root'), '<a id="a" href="/y" data-n="1">A</a>');
  assert.equal(d.getElementById('a'), a);
  assert.equal(a.getAttribute('href'), '/y');
  assert.equal(a.hasAttribute('class'), false);
  assert.equal(a.hasAttribute('title'), false);
  assert.equal(a.getAttribute('data-n'), '1');
});

test('morph: checkbox checked and option selected are properties', () => {
  const { d, w } = makeDom('<div id="root"><input id="c" type="checkbox"><select id="s"><option>a</option><option>b</option></select></div>');
  const c = d.getElementById('c');
  const s = d.getElementById('s');
  c.checked = true; // user clicked; server says unchecked
  w.Live.morph(d.getElementById('root'), '<input id="c" type="checkbox"><select id="s"><option>a</option><option selected>b</option></select>');
  assert.equal(c.checked, false);
  assert.equal(s.value, 'b');
  w.Live.morph(d.getElementById('root'), '<input id="c" type="checkbox" checked><select id="s"><option selected>a</option><option>b</option></select>');
  assert.equal(c.checked, true);
  assert.equal(c.hasAttribute('checked'), true);
  assert.equal(s.value, 'a');
  c.checked = false; // the attribute is still there, the property must follow the server
  w.Live.morph(d.getElementById('root'), '<input id="c" type="checkbox" checked><select id="s"><option selected>a</option><option>b</option></select>');
  assert.equal(c.checked, true);
});

test('morph: live-ignore keeps children but updates attributes', () => {
  const { d, w } = makeDom('<div id="root"><div id="i" live-ignore class="a"><span>client</span></div></div>');
  w.Live.morph(d.getElementById('root'), '<div id="i" live-ignore class="b"><em>server</em></div>');
  const i = d.getElementById('i');
  assert.equal(i.className, 'b');
  assert.equal(i.innerHTML, '<span>client</span>');
});

test('morph: newly added autofocus element is focused with the caret at the end', () => {
  const { d, w } = makeDom('<ul id="root"><li data-live-key="1"><div class="view">x</div></li></ul>');
  const li = d.querySelector('li');
  w.Live.morph(d.getElementById('root'), '<li data-live-key="1" class="editing"><div class="view">x</div><input class="edit" value="Tïtle 😀" autofocus></li>');
  const edit = d.querySelector('.edit');
  assert.equal(d.querySelector('li'), li);
  assert.equal(d.activeElement, edit);
  assert.equal(edit.selectionStart, 'Tïtle 😀'.length);
  // an existing autofocus element is not refocused
  d.body.focus();
  edit.blur();
  w.Live.morph(d.getElementById('root'), '<li data-live-key="1" class="editing"><div class="view">y</div><input class="edit" value="Tïtle 😀" autofocus></li>');
  assert.notEqual(d.activeElement, edit);
});

test('morph: focused textarea keeps its text; unkeyed text nodes and comments update', () => {
  const { d, w } = makeDom('<div id="root">hi<!--c--><textarea id="t">a</textarea></div>');
  const t = d.getElementById('t');
  t.focus();
  t.value = 'mine';
  w.Live.morph(d.getElementById('root'), 'ho<!--d--><textarea id="t">server</textarea>');
  assert.equal(t.value, 'mine');
  assert.equal(d.getElementById('root').firstChild.nodeValue, 'ho');
  assert.equal(d.getElementById('root').childNodes[1].nodeValue, 'd');
  t.blur();
  w.Live.morph(d.getElementById('root'), 'ho<!--d--><textarea id="t">server2</textarea>');
  assert.equal(t.value, 'server2');
});
