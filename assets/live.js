/*
 * live.js: the browser client of the live-view framework.
 * It implements the contract in assets/README.md (wire protocol, rendered model, diffs, morph
 * rules, bindings, connection life). Plain ES2020, no dependencies, a classic script.
 *
 * Layout: first the names it uses (attributes, classes, DOM events, wire events); then its pure
 * part (the rendered model and diffs, and form fields read from elements passed in); then the
 * browser part (loading states, morph, socket, views, bindings, start).
 * Loaded by Node (`require`, no `document`), it exports the pure part (`module.exports`) and runs
 * nothing else: assets/test tests it that way. In the browser, `window.Live` is exposed for
 * debugging and tests, not as a stable API: {socket, views, connect, disconnect, morph,
 * navigation}, where `navigation` holds `reload()` and `assign(url)`, the page loads the client
 * starts (tests replace them).
 */
(() => {
  'use strict';

  // ==== Names: attributes, classes, DOM events, wire events (see assets/README.md)

  /** Attributes. The bindings are keyed by their type (the `type` of the event frame they send). */
  const ATTR = Object.freeze({
    click: 'live-click',
    dblclick: 'live-dblclick',
    submit: 'live-submit',
    change: 'live-change',
    keydown: 'live-keydown', // and live-keydown-KEY: `${ATTR.keydown}-${key}`
    keyup: 'live-keyup', // and live-keyup-KEY
    focus: 'live-focus',
    blur: 'live-blur',
    key: 'live-key', // the key filter of live-keydown / live-keyup
    valuePrefix: 'live-value-', // live-value-NAME
    debounce: 'live-debounce',
    throttle: 'live-throttle',
    disableWith: 'live-disable-with',
    patch: 'live-patch',
    ignore: 'live-ignore',
    hook: 'live-hook',
    root: 'data-live-root',
    token: 'data-live-token',
    socket: 'data-live-socket',
    rowKey: 'data-live-key',
    keep: 'data-live-keep', // on the <template> placeholder of a row a diff did not send
  });

  /** Binding types: the `type` of an event frame. */
  const TYPE = Object.freeze({
    click: 'click', dblclick: 'dblclick', submit: 'submit', change: 'change',
    keydown: 'keydown', keyup: 'keyup', focus: 'focus', blur: 'blur', hook: 'hook',
  });

  /** Container classes: exactly one is set on a view's root. */
  const CLASS = Object.freeze({ loading: 'live-loading', connected: 'live-connected', error: 'live-error' });
  /** Also on the root: the connection has been down a while (after RECONNECTING_DELAY_MS); and
   * events the user sent while offline could not be applied (the view was mounted anew). */
  const STATUS = Object.freeze({ reconnecting: 'live-reconnecting', refused: 'live-refused' });
  /** The class of an element whose event of `type` awaits its reply (live-click-loading, …). */
  const loadingClass = (type) => `live-${type}-loading`;

  /** DOM events listened to, and the prefix of the CustomEvents a `push_event` dispatches. */
  const EV = Object.freeze({
    click: 'click', dblclick: 'dblclick', submit: 'submit', input: 'input', change: 'change',
    compositionend: 'compositionend', keydown: 'keydown', keyup: 'keyup', focusin: 'focusin', focusout: 'focusout',
    popstate: 'popstate', visibilitychange: 'visibilitychange', pagehide: 'pagehide', pageshow: 'pageshow',
    ready: 'DOMContentLoaded',
    customPrefix: 'live:', // CustomEvent('live:' + name) on window
  });

  /** Frame events (client → server, then server → client) and topics. */
  const WIRE = Object.freeze({
    join: 'join', event: 'event', params: 'params', resync: 'resync', leave: 'leave', heartbeat: 'heartbeat',
    reply: 'reply', diff: 'diff', redirect: 'redirect', patch: 'patch', title: 'title', pushEvent: 'push_event',
    error: 'error', keep: 'keep',
    drain: 'drain', drained: 'drained', // the server stops: it asks, the client answers
    socketTopic: 'phoenix', // heartbeats, and the server's errors about the connection
    viewTopicPrefix: 'lv:', // lv:<root id>
  });

  /** Error reasons of replies the client tells apart (`disconnected`, `bad_reply`: its own). */
  const REASON = Object.freeze({
    disconnected: 'disconnected', badReply: 'bad_reply', notJoined: 'not_joined', navigate: 'navigate',
    invalidToken: 'invalid_token', expired: 'expired',
    resumeRefused: 'resume_refused', badVersion: 'bad_version', // a resume the server refused
    viewGone: 'view_gone', tooManyQueued: 'too_many_queued', // events refused by the client
  });

  const SOCKET_PATH = '/live/websocket'; // when the script tag has no data-live-socket
  const HEARTBEAT_MS = 30000, HEARTBEAT_TIMEOUT_MS = 10000;
  const BACKOFF_MIN_MS = 200, BACKOFF_MAX_MS = 10000;
  const MAX_JOIN_FAILURES = 10;
  /** A dropped connection shows as `live-reconnecting` only after this long (no flicker). */
  const RECONNECTING_DELAY_MS = 1000;
  /** Events a view keeps while offline, sent when it resumes. */
  const MAX_QUEUED_EVENTS = 100;
  /** How long `live-refused` stays on the root. */
  const REFUSED_MS = 8000;
  const RELOAD_CAP = 3, RELOAD_WINDOW_MS = 60000, RELOAD_KEY = 'live:reloads';
  const TEXT_TYPES = new Set(['text', 'search', 'email', 'url', 'tel', 'password', 'number']);
  const BUTTON_TYPES = new Set(['submit', 'button', 'reset', 'image']);

  // ==== The rendered model (pure): {s: [static, …], l: [[[key, html], …], …]}

  class DiffError extends Error {}
  const fail = (msg) => { throw new DiffError(msg); };

  /** FNV-1a 32-bit over UTF-16 code units, low byte then high byte; `h` continues a running hash. */
  function fnv1a(str, h = 0x811c9dc5) {
    for (let i = 0; i < str.length; i++) {
      const c = str.charCodeAt(i);
      h = Math.imul(h ^ (c & 0xff), 0x01000193) >>> 0;
      h = Math.imul(h ^ (c >>> 8), 0x01000193) >>> 0;
    }
    return h >>> 0;
  }

  /** Applies text ops (keep n / delete -n / insert "str", in UTF-16 units) to `str`. */
  function applyTextOps(str, ops) {
    if (!Array.isArray(ops)) fail('text ops must be an array');
    let out = '', pos = 0;
    for (const op of ops) {
      if (typeof op === 'string') { out += op; continue; }
      if (!Number.isInteger(op)) fail(`bad text op ${JSON.stringify(op)}`);
      const n = Math.abs(op);
      if (pos + n > str.length) fail(`text op ${op} goes past the end (${str.length - pos} units left)`);
      if (op > 0) out += str.slice(pos, pos + n);
      pos += n;
    }
    return out + str.slice(pos);
  }

  /** How deep rows with lists inside may nest. */
  const MAX_DEPTH = 32;

  /**
   * The rows of one list that a diff sent: the keys sent whole (the set itself), and the rows
   * with lists inside that were patched (`patched`: key -> a Fresh per inner list).
   */
  class Fresh extends Set {
    constructor(keys) { super(keys); this.patched = new Map(); }
  }

  /** A row's html: a string, or the model `R` of a row with keyed lists inside. */
  function checkRowValue(h, depth) {
    if (typeof h === 'string') return h;
    if (h && typeof h === 'object' && !Array.isArray(h)) return checkRendered(h, depth + 1);
    return fail('row html must be a string or a model');
  }

  function checkRows(rows, depth = 0) {
    if (!Array.isArray(rows)) fail('a list must be an array of rows');
    const seen = new Set();
    return rows.map((r) => {
      if (!Array.isArray(r) || r.length !== 2 || r[0] == null) fail('a row must be [key, html]');
      const key = String(r[0]);
      if (seen.has(key)) fail(`duplicate row key ${key}`);
      seen.add(key);
      return [key, checkRowValue(r[1], depth)];
    });
  }

  /** Validates a rendered `R` and returns a copy. */
  function checkRendered(r, depth = 0) {
    if (depth > MAX_DEPTH) fail('rendered: lists nested too deep');
    if (!r || !Array.isArray(r.s) || !r.s.length || r.s.some((x) => typeof x !== 'string')) fail('rendered: bad "s"');
    const l = r.l == null ? [] : r.l;
    if (!Array.isArray(l) || l.length !== r.s.length - 1) fail('rendered: "l" must hold s.length - 1 lists');
    return { s: r.s.slice(), l: l.map((rows) => checkRows(rows, depth)) };
  }

  /**
   * Applies row ops to a copy of `rows`. `fresh` collects the keys whose HTML this diff sent
   * (`true`: the whole list) and the rows patched inside. Returns [rows, fresh].
   */
  function applyRowOps(rows, ops, fresh = new Fresh(), depth = 0) {
    if (!Array.isArray(ops)) fail('row ops must be an array');
    rows = rows.slice();
    const find = (k) => {
      const i = rows.findIndex((r) => r[0] === k);
      return i < 0 ? fail(`no row with key ${k}`) : i;
    };
    const pos = (after) => (after == null ? 0 : find(String(after)) + 1);
    const mark = (k) => { if (fresh !== true) { fresh.add(k); fresh.patched.delete(k); } };
    for (const op of ops) {
      if (!Array.isArray(op)) fail(`bad row op ${JSON.stringify(op)}`);
      if (op[0] === '=') { rows = checkRows(op[1], depth); fresh = true; continue; }
      if (op[1] == null) fail(`row op ${op[0]} without a key`);
      const key = String(op[1]);
      if (op[0] === 'r') {
        rows[find(key)] = [key, checkRowValue(op[2], depth)];
        mark(key);
      } else if (op[0] === 'i') {
        if (rows.some((r) => r[0] === key)) fail(`insert of an existing key ${key}`);
        rows.splice(pos(op[2]), 0, [key, checkRowValue(op[3], depth)]);
        mark(key);
      } else if (op[0] === 'd') {
        rows.splice(find(key), 1);
        if (fresh !== true) { fresh.delete(key); fresh.patched.delete(key); }
      } else if (op[0] === 'm') {
        if (op[2] != null && String(op[2]) === key) fail(`row ${key} moved after itself`);
        const [row] = rows.splice(find(key), 1);
        rows.splice(pos(op[2]), 0, row);
      } else if (op[0] === 'p') {
        const i = find(key), cur = rows[i][1];
        if (typeof cur === 'string') fail(`row ${key} has no lists inside to patch`);
        const whole = fresh === true || fresh.has(key);
        const sub = (!whole && fresh.patched.get(key)) || cur.l.map(() => new Fresh());
        rows[i] = [key, applyParts(cur, op[2], sub, depth + 1)];
        if (!whole) fresh.patched.set(key, sub);
      } else {
        fail(`unknown row op ${JSON.stringify(op[0])}`);
      }
    }
    return [rows, fresh];
  }

  /**
   * Applies the `s` (text ops) and `l` (row ops) parts of `d` to a copy of model `m` (a page,
   * or a row with lists inside); `fresh` holds a Fresh per list and is updated.
   */
  function applyParts(m, d, fresh, depth) {
    if (depth > MAX_DEPTH) fail('lists nested too deep');
    if (!d || typeof d !== 'object') fail('a patch must be an object');
    const s = m.s.slice(), l = m.l.slice();
    for (const [i, ops] of indexed(d.s, s.length, 's')) s[i] = applyTextOps(s[i], ops);
    for (const [i, ops] of indexed(d.l, l.length, 'l')) [l[i], fresh[i]] = applyRowOps(l[i], ops, fresh[i], depth);
    return { s, l };
  }

  const modelLength = (m) => m.s.reduce((n, s) => n + s.length, 0)
    + m.l.reduce((n, rows) => rows.reduce((k, r) => k + (typeof r[1] === 'string' ? r[1].length : modelLength(r[1])), n), 0);
  const staticsHash = (m) => m.s.reduce((h, s) => fnv1a(s, h), 0x811c9dc5);

  function verify(m, d) {
    if (d.len != null && modelLength(m) !== d.len) return `length ${modelLength(m)}, the server says ${d.len}`;
    if (d.h != null && staticsHash(m) !== d.h) return `statics hash ${staticsHash(m)}, the server says ${d.h}`;
    return null;
  }

  function indexed(list, n, what) {
    if (list == null) return [];
    if (!Array.isArray(list)) fail(`"${what}" must be an array`);
    for (const p of list) {
      if (!Array.isArray(p) || !Number.isInteger(p[0]) || p[0] < 0 || p[0] >= n) fail(`bad "${what}" entry ${JSON.stringify(p)}`);
    }
    return list;
  }

  /**
   * Applies diff `d` to `model` at version `v`; never mutates them. Returns {model, v, fresh,
   * warning}: `fresh` is null for a full render, else per list the rows sent in full. Throws a
   * DiffError when the diff must be dropped (the caller resyncs).
   */
  function applyDiff(model, v, d) {
    if (!d || typeof d !== 'object') fail('a diff must be an object');
    if (d.full != null) {
      const m = checkRendered(d.full);
      return { model: m, v: Number.isInteger(d.v) ? d.v : v, fresh: null, warning: verify(m, d) };
    }
    if (!model) fail('no model to patch');
    if (d.v !== v + 1) fail(`version ${d.v}, expected ${v + 1}`);
    const fresh = model.l.map(() => new Fresh());
    const m = applyParts(model, d, fresh, 0), bad = verify(m, d);
    if (bad) fail(bad);
    return { model: m, v: d.v, fresh, warning: null };
  }

  const escAttr = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

  /**
   * The view's HTML; with `fresh`, rows this diff did not send become keep placeholders (and
   * a row patched inside is written with placeholders for its own unsent rows).
   */
  function renderModel(m, fresh = null) {
    let out = m.s[0];
    m.l.forEach((rows, i) => {
      const f = fresh ? fresh[i] : true;
      for (const [key, html] of rows) {
        if (f === true || f.has(key)) out += typeof html === 'string' ? html : renderModel(html, null);
        else if (f.patched && f.patched.has(key)) out += renderModel(html, f.patched.get(key));
        else out += `<template ${ATTR.keep}="${escAttr(key)}"></template>`;
      }
      out += m.s[i + 1];
    });
    return out;
  }

  // ==== Form fields (pure but for the elements passed in)

  const isControl = (el) => !!el && /^(input|select|textarea)$/.test(el.localName);

  /** The fields among `els`: named, enabled, checked boxes only; strings, or arrays when repeated. */
  function collectFields(els) {
    const vals = new Map(), arrays = new Set();
    for (const el of els) {
      const name = el.name, type = el.type;
      if (!name || !isControl(el) || el.disabled || el.closest('fieldset[disabled]')) continue;
      if ((el.localName === 'input' && BUTTON_TYPES.has(type)) || ((type === 'checkbox' || type === 'radio') && !el.checked)) continue;
      let list = [el.value];
      if (el.localName === 'select') {
        list = Array.from(el.options).filter((o) => o.selected && !o.disabled).map((o) => o.value);
        if (el.multiple) arrays.add(name);
      } else if (type === 'file') {
        list = Array.from(el.files || [], (f) => f.name);
      }
      if (name.endsWith('[]')) arrays.add(name);
      if (!vals.has(name)) vals.set(name, []);
      vals.get(name).push(...list);
    }
    const out = {};
    for (const [name, list] of vals) {
      if (list.length > 1 || arrays.has(name)) out[name] = list;
      else if (list.length) out[name] = list[0];
    }
    return out;
  }

  /** Adds the `live-value-NAME` attributes of `el` to `into`. */
  function liveValues(el, into = {}) {
    for (const a of Array.from(el.attributes)) {
      if (a.name.startsWith(ATTR.valuePrefix)) into[a.name.slice(ATTR.valuePrefix.length)] = a.value;
    }
    return into;
  }

  // ==== Outside a browser (Node: the tests), the pure part is exported and nothing else runs

  if (typeof document === 'undefined') {
    if (typeof module === 'object' && module && module.exports) {
      module.exports = {
        fnv1a, applyTextOps, applyRowOps, applyDiff, checkRendered, renderModel, modelLength, staticsHash,
        Fresh, DiffError, collectFields, liveValues,
      };
    }
    return;
  }

  // ==== The browser part

  const backoff = (n) => Math.min(BACKOFF_MIN_MS * 2 ** n, BACKOFF_MAX_MS) * (1 + Math.random() * 0.5);
  const safe = (fn, what) => {
    try { return fn(); } catch (e) { console.error(`live: ${what} failed`, e); }
  };
  /** `to` made absolute if it is an http(s) URL of this page's origin; else logged and null. */
  const sameOrigin = (to, what) => {
    let u = null;
    try { u = new URL(to, location.href); } catch (e) { /* not a URL: refused below */ }
    if (u && (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === location.origin) return u.href;
    console.error(`live: ${what} to ${JSON.stringify(String(to))} refused: not this page's origin`);
    return null;
  };

  // ==== Loading state: classes, and live-disable-with (disabled, text swapped), until the reply

  const loadStates = new WeakMap(); // element -> {cls: Map(class -> count), texts: [], saved, on}

  function loadingOn(el, cls, text) {
    let st = loadStates.get(el);
    if (!st) loadStates.set(el, (st = { cls: new Map(), texts: [], saved: null, on: false }));
    suspendLoading(el, st);
    if (cls) st.cls.set(cls, (st.cls.get(cls) || 0) + 1);
    if (text != null) st.texts.push(text);
    resumeLoading(el, st);
  }

  function loadingOff(el, cls, text) {
    const st = loadStates.get(el);
    if (!st) return;
    suspendLoading(el, st);
    if (cls && st.cls.get(cls) > 1) st.cls.set(cls, st.cls.get(cls) - 1); else st.cls.delete(cls);
    if (text != null && st.texts.includes(text)) st.texts.splice(st.texts.indexOf(text), 1);
    if (st.cls.size || st.texts.length) resumeLoading(el, st); else loadStates.delete(el);
  }

  // The morph suspends an element's loading state around its changes, so the server's new
  // attributes and children are compared with its previous ones; then the state is put back.
  function resumeLoading(el, st) {
    if (st.on) return;
    st.on = true;
    for (const c of st.cls.keys()) el.classList.add(c);
    if (!st.texts.length) return;
    const text = st.texts[st.texts.length - 1], isInput = el.localName === 'input';
    st.saved = { disabled: el.disabled, content: isInput ? el.value : Array.from(el.childNodes) };
    if (isInput) el.value = text; else el.replaceChildren(text);
    if ('disabled' in el) el.disabled = true;
  }

  function suspendLoading(el, st) {
    if (!st.on) return;
    st.on = false;
    for (const c of st.cls.keys()) el.classList.remove(c);
    if (el.getAttribute('class') === '') el.removeAttribute('class');
    const s = st.saved;
    if (!s) return;
    if (el.localName === 'input') el.value = s.content; else el.replaceChildren(...s.content);
    if ('disabled' in el) el.disabled = s.disabled;
    st.saved = null;
  }

  // ==== Morph: make the live DOM match new HTML parsed in a detached <template>

  let morphing = false; // focus events caused by the morph are not the user's

  const isTextLike = (el) =>
    !!el && (el.localName === 'textarea' || (el.localName === 'input' && TEXT_TYPES.has(el.type)));
  const saveSel = (el) => ({ value: el.value, start: el.selectionStart, end: el.selectionEnd, dir: el.selectionDirection });

  function restoreSel(el, s) {
    if (el.value !== s.value) el.value = s.value;
    if (s.start == null || (el.selectionStart === s.start && el.selectionEnd === s.end)) return;
    try { el.setSelectionRange(s.start, s.end, s.dir || 'none'); } catch (_) { /* no selection API */ }
  }

  function syncAttrs(o, n) {
    let changed = false;
    for (const a of Array.from(n.attributes)) {
      const ns = a.namespaceURI;
      if ((ns ? o.getAttributeNS(ns, a.localName) : o.getAttribute(a.name)) === a.value) continue;
      if (ns) o.setAttributeNS(ns, a.name, a.value); else o.setAttribute(a.name, a.value);
      changed = true;
    }
    for (const a of Array.from(o.attributes)) {
      if (a.namespaceURI ? n.hasAttributeNS(a.namespaceURI, a.localName) : n.hasAttribute(a.name)) continue;
      o.removeAttributeNode(a);
      changed = true;
    }
    return changed;
  }

  /** Morphs the matched old node `o` into new node `n`; returns whether anything changed. */
  function morphNode(o, n, ctx) {
    if (o.nodeType !== 1) {
      if (o.nodeValue === n.nodeValue) return false;
      o.nodeValue = n.nodeValue;
      return true;
    }
    const st = loadStates.get(o);
    if (st) suspendLoading(o, st);
    const focused = o === document.activeElement;
    const keep = focused && isTextLike(o) ? saveSel(o) : null;
    // What the server rendered last time, to tell whether it changed a control's value now.
    const tag = o.localName;
    const before = tag === 'textarea' ? o.defaultValue : tag === 'option' ? o.hasAttribute('selected')
      : o.type === 'checkbox' || o.type === 'radio' ? o.hasAttribute('checked') : o.getAttribute('value');
    let changed = syncAttrs(o, n);
    if (!o.hasAttribute(ATTR.ignore)) {
      const tpl = o.localName === 'template';
      if (morphChildren(tpl ? o.content : o, tpl ? n.content : n, ctx)) changed = true;
    }
    // value / checked / selected are properties. A text value is set only when the server
    // changed it (what was typed into a control the server does not fill stays), and never in
    // the focused control; checked / selected follow the server unless the user is on it.
    let prop = null, val;
    if (tag === 'input' && (o.type === 'checkbox' || o.type === 'radio')) {
      val = n.hasAttribute('checked');
      if (val !== before || !focused) prop = 'checked';
    } else if (tag === 'input' && o.type !== 'file') {
      val = n.getAttribute('value') ?? '';
      if (!keep && n.getAttribute('value') !== before) prop = 'value';
    } else if (tag === 'textarea') {
      val = n.value;
      if (!keep && val !== before) prop = 'value';
    } else if (tag === 'option') {
      val = n.hasAttribute('selected');
      const select = o.closest('select');
      if (val !== before || !(select && select === document.activeElement)) prop = 'selected';
    }
    if (prop && o[prop] !== val) { o[prop] = val; changed = true; }
    if (keep) restoreSel(o, keep); // the focused text control keeps value, caret and selection
    if (st) resumeLoading(o, st);
    if (changed && o.hasAttribute(ATTR.hook)) ctx.updated.add(o);
    return changed;
  }

  /**
   * Morphs the children of `oldP` into those of `newP`. Matching: by id, then data-live-key, then
   * position among unkeyed nodes of the same type and tag; a keep placeholder takes the old child
   * with that key, untouched. Unmatched new nodes are moved in from `newP`.
   */
  function morphChildren(oldP, newP, ctx) {
    const olds = Array.from(oldP.childNodes), news = Array.from(newP.childNodes);
    const byId = new Map(), byKey = new Map(), pools = new Map();
    for (const o of olds) {
      if (o.nodeType === 1) {
        const id = o.getAttribute('id'), key = o.getAttribute(ATTR.rowKey);
        if (id && !byId.has(id)) byId.set(id, o);
        if (key != null && !byKey.has(key)) byKey.set(key, o);
        if (id || key != null) continue;
      }
      const k = o.nodeType + o.nodeName;
      if (!pools.has(k)) pools.set(k, []);
      pools.get(k).push(o);
    }
    const used = new Set();
    const claim = (o, n) => (o && !used.has(o) && o.nodeName === n.nodeName ? (used.add(o), o) : null);
    const fromPool = (n) => claim((pools.get(n.nodeType + n.nodeName) || []).shift(), n);
    const matches = news.map((n) => {
      if (n.nodeType !== 1) return fromPool(n);
      const keepKey = n.localName === 'template' ? n.getAttribute(ATTR.keep) : null;
      if (keepKey != null) {
        const o = byKey.get(keepKey);
        return o && !used.has(o) ? (used.add(o), { keep: o }) : null;
      }
      const id = n.getAttribute('id'), key = n.getAttribute(ATTR.rowKey);
      if (!id && key == null) return fromPool(n);
      return (id && claim(byId.get(id), n)) || (key != null && claim(byKey.get(key), n)) || null;
    });

    let changed = false;
    for (const o of olds) {
      if (!used.has(o)) { oldP.removeChild(o); changed = true; } // removed first: fewer moves
    }
    let cur = oldP.firstChild;
    news.forEach((n, i) => {
      const m = matches[i];
      let node = n; // a new node, moved in from the parsed template
      if (!m) { ctx.added.push(n); changed = true; }
      else if (m.keep) node = m.keep;
      else if (morphNode((node = m), n, ctx)) changed = true;
      if (node === cur) { cur = cur.nextSibling; return; }
      oldP.insertBefore(node, cur);
      changed = true;
    });
    return changed;
  }

  /** Morphs `root`'s children into `html`. Returns {added, updated}. */
  function morph(root, html) {
    const tpl = document.createElement('template');
    tpl.innerHTML = html; // a detached template: parsed, inert, never live
    const ctx = { added: [], updated: new Set() };
    const active = document.activeElement;
    const inside = !!active && active !== root && root.contains(active);
    const sel = inside && isTextLike(active) ? saveSel(active) : null;
    morphing = true;
    try {
      morphChildren(root, tpl.content, ctx);
      // A focused element that had to move may have lost focus: give it back.
      if (inside && active.isConnected && document.activeElement !== active) {
        active.focus({ preventScroll: true });
        if (sel) restoreSel(active, sel);
      }
      for (const n of ctx.added) { // newly added autofocus: focus, caret at the end
        const el = n.nodeType !== 1 ? null : n.hasAttribute('autofocus') ? n : n.querySelector('[autofocus]');
        if (!el || !el.isConnected) continue;
        el.focus();
        if (isTextLike(el)) try { el.setSelectionRange(el.value.length, el.value.length); } catch (_) { /* email… */ }
        break;
      }
    } finally {
      morphing = false;
    }
    return ctx;
  }

  // ==== Form values, recovery, the server's values after a reply

  const formValue = (form) => liveValues(form, collectFields(form.elements));

  /**
   * After the ok reply to a submit or key-filtered key event, the server's value wins — for
   * the controls still holding what was sent (text typed after the event stays).
   */
  function forceServerValues(els, sent) {
    for (const [i, el] of els.entries()) {
      if (!el.isConnected || !isTextLike(el) || el.value !== sent[i]) continue;
      const v = el.localName === 'textarea' ? el.defaultValue : el.getAttribute('value') ?? '';
      if (el.value !== v) el.value = v;
    }
  }

  /** Snapshot of the forms a rejoin recovers: `form[id][live-change]` inside `root`. */
  function captureForms(root) {
    return Array.from(root.querySelectorAll(`form[id][${ATTR.change}]`), (form) => ({
      id: form.id,
      event: form.getAttribute(ATTR.change),
      value: formValue(form),
      state: Array.from(form.elements)
        .filter((el) => isControl(el) && !BUTTON_TYPES.has(el.type) && el.type !== 'file')
        .map((el) => [el, el.value, el.checked, el.localName === 'select' ? Array.from(el.options, (o) => o.selected) : null]),
    }));
  }

  function restoreForm(state) {
    for (const [el, value, checked, selected] of state) {
      if (!el.isConnected) continue;
      if (selected) Array.from(el.options).forEach((o, i) => { if (i < selected.length) o.selected = selected[i]; });
      else if (el.type === 'checkbox' || el.type === 'radio') el.checked = checked;
      else if (el.value !== value) el.value = value;
    }
  }

  // ==== Socket: one websocket for every view on the page

  class Socket {
    constructor(url) {
      this.url = url;
      this.ws = null;
      this.ref = 0;
      this.pending = new Map(); // ref -> onReply(status, response)
      this.topics = new Map(); // topic -> View
      this.attempts = 0; // reconnect backoff
      this.timer = this.hb = this.hbTimeout = null;
      this.waitVisible = this.stopped = this.unloading = false;
      this.draining = false; // the server stops: send nothing more on this connection
      this.reconnectIn = null; // ms: when the server said to come back (it stopped gracefully)
    }

    isOpen() { return !!this.ws && this.ws.readyState === 1; }
    /** Whether events may be sent now (else views queue them). */
    canSend() { return this.isOpen() && !this.draining; }
    nextRef() { return String(++this.ref); }

    connect() {
      if (this.ws || this.stopped) return;
      clearTimeout(this.timer);
      this.timer = null;
      let ws;
      try { ws = new WebSocket(this.url); } catch (e) {
        console.error('live: cannot open the socket', e);
        this.reconnect();
        return;
      }
      this.ws = ws;
      ws.onopen = () => this.onOpen(ws);
      ws.onclose = () => this.onClose(ws);
      ws.onerror = () => {}; // a close event follows
      ws.onmessage = (e) => this.onMessage(e.data);
    }

    reconnect() {
      if (this.stopped || this.unloading || this.timer) return;
      // After a graceful stop: when the server said (spread over clients), not a backoff.
      const delay = this.reconnectIn != null ? this.reconnectIn : backoff(this.attempts++);
      this.reconnectIn = null;
      this.timer = setTimeout(() => {
        this.timer = null;
        if (document.hidden) this.waitVisible = true; // resumed on visibilitychange
        else this.connect();
      }, delay);
    }

    /** The server stops: it finishes what was sent, then closes; come back in `reconnect_in`. */
    onDrain(p) {
      this.draining = true;
      const ms = Number(p && p.reconnect_in);
      this.reconnectIn = Number.isFinite(ms) && ms >= 0 ? Math.min(ms, BACKOFF_MAX_MS) : null;
      this.push(null, WIRE.socketTopic, WIRE.drained, {});
    }

    onOpen(ws) {
      if (ws !== this.ws) return;
      this.hb = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
      for (const view of this.topics.values()) view.join();
    }

    heartbeat() {
      if (this.hbTimeout) return;
      this.hbTimeout = setTimeout(() => { console.warn('live: no heartbeat reply, reconnecting'); this.drop(); }, HEARTBEAT_TIMEOUT_MS);
      this.push(null, WIRE.socketTopic, WIRE.heartbeat, {}, () => { clearTimeout(this.hbTimeout); this.hbTimeout = null; });
    }

    /** Closes now, without waiting for a dead peer to finish the closing handshake. */
    drop() {
      const ws = this.ws;
      if (!ws) return;
      try { ws.close(); } catch (_) { /* already closing */ }
      this.onClose(ws);
    }

    onClose(ws) {
      if (ws !== this.ws) return;
      this.ws = null;
      ws.onopen = ws.onclose = ws.onmessage = ws.onerror = null;
      this.draining = false;
      clearInterval(this.hb);
      clearTimeout(this.hbTimeout);
      this.hb = this.hbTimeout = null;
      const pending = Array.from(this.pending.values());
      this.pending.clear();
      for (const cb of pending) safe(() => cb('error', { reason: REASON.disconnected }), 'reply callback');
      for (const view of this.topics.values()) safe(() => view.onDisconnect(this.unloading), 'disconnect');
      this.reconnect();
    }

    /** Sends a frame; `onReply(status, response)` gets the reply (or a 'disconnected' error). */
    push(joinRef, topic, event, payload, onReply, ref = this.nextRef()) {
      if (!this.isOpen()) return onReply && onReply('error', { reason: REASON.disconnected });
      if (onReply) this.pending.set(ref, onReply);
      this.ws.send(JSON.stringify([joinRef, ref, topic, event, payload]));
    }

    onMessage(data) {
      let msg = null;
      try { msg = JSON.parse(data); } catch (_) { /* reported below */ }
      if (!Array.isArray(msg) || msg.length !== 5) return console.error('live: malformed frame from the server', data);
      const [joinRef, ref, topic, event, payload] = msg;
      try {
        if (event === WIRE.reply) {
          const cb = this.pending.get(ref);
          if (!cb) return;
          this.pending.delete(ref);
          const ok = !!payload && payload.status === 'ok';
          const resp = payload && payload.response && typeof payload.response === 'object' ? payload.response : {};
          if (!ok && !resp.reason) resp.reason = REASON.badReply;
          cb(ok ? 'ok' : 'error', resp);
        } else if (topic === WIRE.socketTopic && event === WIRE.drain) {
          this.onDrain(payload);
        } else if (topic === WIRE.socketTopic) {
          console.error('live: server error:', payload && payload.reason);
        } else if (this.topics.has(topic)) {
          this.topics.get(topic).onPush(joinRef, event, payload);
        }
      } catch (e) {
        console.error('live: failed to handle a frame', msg, e);
      }
    }
  }

  // ==== View: one [data-live-root] container, joined on topic lv:<id>

  class View {
    constructor(el, socket) {
      this.el = el;
      this.id = el.id;
      this.topic = WIRE.viewTopicPrefix + el.id;
      this.socket = socket;
      this.token = el.getAttribute(ATTR.token);
      this.state = 'idle'; // idle | joining | joined | error | dead
      this.joinRef = this.model = this.timer = null;
      this.v = 0;
      this.failures = 0; // failed joins in a row
      this.attempts = 0; // rejoin backoff
      this.resyncing = this.joinedOnce = this.waitVisible = false;
      this.hooks = new Map(); // element -> {hook, handlers}
      // Resume: the server's name for this view and the blob of its kept assigns.
      this.resumeId = this.keep = null;
      // Events not answered yet (sent, or queued while offline), in order: {n, payload, …}.
      this.outbox = [];
      this.nextEvent = 1;
      this.statusTimer = this.refusedTimer = null;
      socket.topics.set(this.topic, this);
    }

    setClass(name) {
      for (const c of Object.values(CLASS)) this.el.classList.toggle(c, c === name);
      if (name !== CLASS.error) this.setReconnecting(false);
    }

    setReconnecting(on) {
      clearTimeout(this.statusTimer);
      this.statusTimer = null;
      this.el.classList.toggle(STATUS.reconnecting, on);
    }

    join() {
      if (this.state === 'dead' || !this.socket.isOpen()) return;
      clearTimeout(this.timer);
      this.timer = null;
      this.waitVisible = false;
      this.state = 'joining';
      // A rejoin keeps showing the page as it was (no flicker on a blip): `live-reconnecting`
      // comes after a delay if the connection stays down.
      if (!this.joinedOnce) this.setClass(CLASS.loading);
      const ref = (this.joinRef = this.socket.nextRef());
      const payload = { token: this.token, url: location.href };
      // Resume the view the server may still hold, from the last version applied.
      if (this.resumeId && this.model && this.v > 0) payload.resume = { id: this.resumeId, v: this.v };
      if (this.keep) payload.keep = this.keep;
      this.socket.push(ref, this.topic, WIRE.join, payload, (status, resp) => {
        if (this.joinRef !== ref) return; // an older join
        if (status === 'ok') this.onJoined(resp); else this.onJoinError(resp.reason);
      }, ref);
    }

    onJoined(resp) {
      if (typeof resp.resume === 'string') this.resumeId = resp.resume;
      if (resp.resumed === true && this.model) return this.onResumed(resp);
      let r;
      try {
        r = applyDiff(null, 0, { full: resp.rendered, v: Number.isInteger(resp.v) ? resp.v : 1 });
      } catch (e) {
        console.error(`live: bad join reply for ${this.id}`, e);
        this.socket.push(this.joinRef, this.topic, WIRE.leave, {}, () => {}); // the server thinks we joined
        return this.onJoinError(REASON.badReply);
      }
      if (resp.keep_refused) console.warn(`live: kept assigns of ${this.id} refused: ${resp.keep_refused}`);
      const recovery = this.joinedOnce ? captureForms(this.el) : [];
      Object.assign(this, { model: r.model, v: r.v, state: 'joined', resyncing: false, joinedOnce: true, failures: 0, attempts: 0 });
      this.socket.attempts = 0;
      if (resp.title != null) document.title = resp.title;
      this.render(null);
      this.setClass(CLASS.connected);
      // A new mount: events sent to the view that is gone are refused, visibly.
      this.refuseOutbox(REASON.viewGone);
      for (const f of recovery) { // form recovery: the user's fields survive a rejoin
        const form = document.getElementById(f.id);
        if (!form || !this.el.contains(form)) continue;
        restoreForm(f.state);
        this.pushEvent(TYPE.change, f.event, f.value, { el: form });
      }
    }

    /**
     * The server still had the view: the page stays as it is, the diffs it missed follow this
     * reply, events it had handled are done (their replies were lost), the others are sent.
     */
    onResumed(resp) {
      Object.assign(this, { state: 'joined', resyncing: false, failures: 0, attempts: 0 });
      this.socket.attempts = 0;
      if (resp.title != null) document.title = resp.title;
      this.setClass(CLASS.connected);
      const handled = Number.isInteger(resp.events) ? resp.events : 0;
      for (const e of this.outbox.slice()) {
        if (e.sent && e.n <= handled) this.finishEvent(e, 'ok', {});
      }
      for (const e of this.outbox.slice()) this.sendEvent(e);
    }

    onJoinError(reason) {
      this.state = 'error';
      this.joinRef = null;
      if (reason === REASON.disconnected) return; // rejoined when the socket is back
      if (reason === REASON.resumeRefused || reason === REASON.badVersion) {
        // The server will not resume this view: mount it anew, now.
        console.warn(`live: resume of ${this.id} refused (${reason}); joining anew`);
        this.resumeId = null;
        return this.join();
      }
      this.setClass(CLASS.error);
      console.error(`live: join of ${this.id} failed: ${reason}`);
      if (reason === REASON.invalidToken || reason === REASON.expired) {
        if (!reloadPage()) this.state = 'dead'; // a stale page: retrying cannot help
        return;
      }
      if (++this.failures >= MAX_JOIN_FAILURES && reloadPage()) return;
      this.scheduleRejoin();
    }

    scheduleRejoin() {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = null;
        if (document.hidden) this.waitVisible = true; else this.join();
      }, backoff(this.attempts++));
    }

    /** The view broke on the server or here: show the error and rejoin after backoff. */
    crash(reason, leave) {
      console.error(`live: view ${this.id}: ${reason}`);
      if (leave && this.joinRef) this.socket.push(this.joinRef, this.topic, WIRE.leave, {}, () => {});
      this.resumeId = null; // that view is gone on the server
      this.state = 'error';
      this.joinRef = null;
      this.setClass(CLASS.error);
      this.scheduleRejoin();
    }

    onDisconnect(unloading) {
      clearTimeout(this.timer);
      this.timer = this.joinRef = null;
      this.waitVisible = false;
      if (this.state === 'dead') return;
      this.state = 'idle';
      if (unloading) return;
      if (!this.joinedOnce) return this.setClass(CLASS.error); // it never got a page
      // A blip shows nothing; a connection down for a while (failed attempts to reconnect
      // included) shows `live-error live-reconnecting`.
      if (this.statusTimer || this.el.classList.contains(STATUS.reconnecting)) return;
      this.statusTimer = setTimeout(() => {
        this.statusTimer = null;
        if (this.state === 'joined') return;
        this.setClass(CLASS.error);
        this.setReconnecting(true);
      }, RECONNECTING_DELAY_MS);
    }

    onPush(joinRef, event, p) {
      if (this.state !== 'joined' || (joinRef != null && joinRef !== this.joinRef)) return; // stale
      p = p && typeof p === 'object' ? p : {};
      const nav = event === WIRE.redirect || event === WIRE.patch;
      if (nav && typeof p.to !== 'string') console.error(`live: ${event} without "to"`);
      else if (event === WIRE.diff) this.onDiff(p);
      else if (nav) this.navigate(event, p);
      else if (event === WIRE.title) document.title = p.title;
      else if (event === WIRE.keep) { if (typeof p.keep === 'string') this.keep = p.keep; }
      else if (event === WIRE.pushEvent) this.dispatch(p.event, p.payload);
      else if (event === WIRE.error) this.crash(`crashed on the server: ${p.reason}`, false);
      else console.error(`live: unknown event ${event} for ${this.id}`);
    }

    /** A server `redirect` or `patch`: followed only within this origin. */
    navigate(event, p) {
      const to = sameOrigin(p.to, event);
      if (!to) return;
      if (event === WIRE.patch) {
        // A patch to other path parameters comes with a token signed for them (rejoins use it).
        if (typeof p.token === 'string') this.token = p.token;
        return history[p.replace ? 'replaceState' : 'pushState'](null, '', to);
      }
      this.socket.unloading = true;
      navigation.assign(to);
    }

    onDiff(d) {
      if (this.resyncing && d.full == null) return; // waiting for the full render
      let r;
      try {
        r = applyDiff(this.model, this.v, d);
      } catch (e) {
        console.error(`live: diff for ${this.id} dropped (${e.message}), resyncing`);
        return this.resync();
      }
      if (r.warning) console.error(`live: full render for ${this.id} does not check out: ${r.warning}`);
      Object.assign(this, { model: r.model, v: r.v, resyncing: false });
      this.render(r.fresh);
    }

    resync() {
      if (this.resyncing) return;
      this.resyncing = true;
      this.socket.push(this.joinRef, this.topic, WIRE.resync, {}, (status, resp) => {
        if (status !== 'ok' && resp.reason !== REASON.disconnected && this.state === 'joined') this.crash(`resync failed: ${resp.reason}`, true);
      });
    }

    render(fresh) {
      try {
        const ctx = morph(this.el, renderModel(this.model, fresh));
        if (fresh && this.el.querySelector(`template[${ATTR.keep}]`)) {
          // A placeholder found no old row in its parent: morph again with every row's HTML.
          morph(this.el, renderModel(this.model, null)).updated.forEach((el) => ctx.updated.add(el));
        }
        this.syncHooks(ctx.updated);
      } catch (e) {
        console.error(`live: render of ${this.id} failed`, e);
      }
    }

    syncHooks(updated) {
      const seen = new Set(), defs = window.LiveHooks || {};
      const call = (h, fn) => { if (typeof h.hook[fn] === 'function') safe(() => h.hook[fn](), `hook ${fn}`); };
      for (const el of this.el.querySelectorAll(`[${ATTR.hook}][id]`)) {
        seen.add(el);
        const h = this.hooks.get(el);
        if (h) { if (updated.has(el)) call(h, 'updated'); continue; }
        const def = defs[el.getAttribute(ATTR.hook)];
        if (!def) { console.error(`live: no hook ${el.getAttribute(ATTR.hook)} in window.LiveHooks`); continue; }
        const hook = Object.create(def), handlers = new Map();
        hook.el = el;
        hook.pushEvent = (name, value = {}) => this.pushEvent(TYPE.hook, name, value, { el });
        hook.handleEvent = (name, cb) => handlers.set(name, cb);
        this.hooks.set(el, { hook, handlers });
        call(this.hooks.get(el), 'mounted');
      }
      for (const [el, h] of this.hooks) if (!seen.has(el)) { this.hooks.delete(el); call(h, 'destroyed'); }
    }

    dispatch(name, payload) {
      for (const h of this.hooks.values()) {
        const cb = h.handlers.get(name);
        if (cb) safe(() => cb.call(h.hook, payload), `handleEvent ${name}`);
      }
      window.dispatchEvent(new CustomEvent(EV.customPrefix + name, { detail: payload }));
    }

    /**
     * Sends an event. opts: el (gets live-<type>-loading), target, disable (elements with
     * live-disable-with), force (inputs that take the server's value after an ok reply).
     * Resolves with {status, response}. Events are numbered; while the connection is down (or
     * the server is stopping) they wait in the outbox and are sent when the view resumes, in
     * order, or refused visibly (`live-refused`) if it was mounted anew.
     */
    pushEvent(type, name, value, opts = {}) {
      return new Promise((resolve) => {
        const offline = this.joinedOnce && (this.state === 'idle' || this.state === 'joining');
        if (this.state !== 'joined' && !offline) {
          console.warn(`live: ${type} "${name}" dropped: ${this.id} is not connected`);
          return resolve({ status: 'error', response: { reason: REASON.notJoined } });
        }
        if (this.outbox.length >= MAX_QUEUED_EVENTS) {
          console.warn(`live: ${type} "${name}" refused: ${MAX_QUEUED_EVENTS} events wait already`);
          this.showRefused([name]);
          return resolve({ status: 'error', response: { reason: REASON.tooManyQueued } });
        }
        const payload = { type, event: name, value, n: this.nextEvent++ };
        if (opts.target) payload.target = opts.target;
        const items = (opts.disable || []).map((d) => [d, null, d.getAttribute(ATTR.disableWith)]);
        if (opts.el) items.push([opts.el, loadingClass(type), null]);
        for (const [el, cls, text] of items) loadingOn(el, cls, text);
        const sentValues = (opts.force || []).map((el) => el.value);
        const entry = { n: payload.n, name, payload, items, force: opts.force, sentValues, resolve, sent: false };
        this.outbox.push(entry);
        this.sendEvent(entry);
      });
    }

    /** Sends an event of the outbox now if the view is joined and the socket may send. */
    sendEvent(e) {
      if (this.state !== 'joined' || !this.socket.canSend()) return;
      e.sent = true;
      this.socket.push(this.joinRef, this.topic, WIRE.event, e.payload, (status, resp) => {
        // The connection dropped before the reply: the event waits for the resume (the
        // server says then whether it had handled it).
        if (resp.reason === REASON.disconnected) return;
        this.finishEvent(e, status, resp);
      });
    }

    finishEvent(e, status, resp) {
      const i = this.outbox.indexOf(e);
      if (i < 0) return;
      this.outbox.splice(i, 1);
      for (const [el, cls, text] of e.items) loadingOff(el, cls, text);
      if (status === 'ok') { if (e.force) forceServerValues(e.force, e.sentValues); }
      else console.warn(`live: event "${e.name}" failed: ${resp.reason}`);
      if (resp.reason === REASON.notJoined && this.state === 'joined') this.crash('the server lost the view', false);
      e.resolve({ status, response: resp });
    }

    /** Refuses every event of the outbox (the view they were for is gone), visibly. */
    refuseOutbox(reason) {
      const refused = this.outbox.slice();
      if (!refused.length) return;
      for (const e of refused) this.finishEvent(e, 'error', { reason });
      this.showRefused(refused.map((e) => e.name));
    }

    /** `live-refused` on the root for a while, and a `live:refused` event on window. */
    showRefused(names) {
      console.warn(`live: ${names.length} event(s) of ${this.id} could not be applied`, names);
      this.el.classList.add(STATUS.refused);
      clearTimeout(this.refusedTimer);
      this.refusedTimer = setTimeout(() => this.el.classList.remove(STATUS.refused), REFUSED_MS);
      window.dispatchEvent(new CustomEvent(EV.customPrefix + 'refused', { detail: { view: this.id, events: names } }));
    }

    pushParams(url) {
      if (this.state !== 'joined') return; // a later join sends location.href anyway
      this.socket.push(this.joinRef, this.topic, WIRE.params, { url }, (status, resp) => {
        // Other path parameters than the page's token was signed for: load that page.
        if (status !== 'ok' && resp.reason === REASON.navigate) {
          this.socket.unloading = true;
          return navigation.assign(url);
        }
        if (status !== 'ok') console.warn(`live: params failed: ${resp.reason}`);
      });
    }
  }

  /** The page loads the client starts; `window.Live.navigation`, so tests can replace them. */
  const navigation = {
    reload: () => location.reload(),
    assign: (url) => location.assign(url),
  };

  /** Reloads the page unless 3 reloads happened in the last 60 s (counted in sessionStorage). */
  function reloadPage() {
    const now = Date.now();
    try {
      const times = JSON.parse(sessionStorage.getItem(RELOAD_KEY) || '[]').filter((t) => now - t < RELOAD_WINDOW_MS);
      if (times.length >= RELOAD_CAP) return console.error('live: reloaded too often, staying disconnected'), false;
      sessionStorage.setItem(RELOAD_KEY, JSON.stringify(times.concat(now)));
    } catch (_) {
      return false; // no sessionStorage, no cap: no reload
    }
    socket.unloading = true;
    navigation.reload();
    return true;
  }

  // ==== Bindings: delegated listeners on document

  const views = new Map(); // root id -> View
  let socket = null;

  const viewFor = (el) => {
    const root = el && el.closest(`[${ATTR.root}]`);
    return (root && views.get(root.id)) || null;
  };
  const targetOf = (e) => (e.target instanceof Element ? e.target : e.target && e.target.parentElement) || null;

  const rates = new WeakMap(); // element -> Map(binding -> {timer, fn, debounce})

  /** Runs `fn` now, or later per the element's live-debounce / live-throttle. */
  function rateLimit(el, kind, fn) {
    const deb = el.getAttribute(ATTR.debounce), thr = el.getAttribute(ATTR.throttle);
    if (deb == null && thr == null) return fn();
    if (!rates.has(el)) rates.set(el, new Map());
    const m = rates.get(el);
    if (!m.has(kind)) m.set(kind, { timer: null, fn: null, debounce: deb != null });
    const st = m.get(kind);
    if (deb != null) {
      clearTimeout(st.timer);
      st.fn = fn;
      if (deb !== 'blur') st.timer = setTimeout(() => flushState(st), parseInt(deb, 10) || 0);
      return;
    }
    if (st.timer) { st.fn = fn; return; } // throttled: the last call runs at the end of the window
    const ms = parseInt(thr, 10) || 0;
    const tick = () => {
      const next = st.fn;
      st.fn = null;
      st.timer = next ? setTimeout(tick, ms) : null;
      if (next) next();
    };
    st.timer = setTimeout(tick, ms);
    fn();
  }

  function flushState(st) {
    clearTimeout(st.timer);
    const fn = st.fn;
    st.timer = st.fn = null;
    if (fn) fn();
  }

  /** Sends `el`'s pending debounced events now (on blur, and before a submit). */
  function flushRates(el) {
    const m = rates.get(el);
    if (m) for (const st of m.values()) if (st.debounce && st.fn) flushState(st);
  }

  /** Sends an event for binding element `el`; `build()` runs at send time and may return null. */
  function send(view, el, type, name, build, rateEl = el) {
    rateLimit(rateEl, `${type}:${name}`, () => {
      const p = build();
      if (!p) return;
      const disable = p.disable || (el.hasAttribute(ATTR.disableWith) ? [el] : []);
      view.pushEvent(type, name, p.value, { el, target: p.target, disable, force: p.force });
    });
  }

  function onClick(e, type) {
    const t = targetOf(e);
    if (!t) return;
    const prevented = e.defaultPrevented;
    const el = t.closest(`[${ATTR[type]}]`);
    const view = el && viewFor(el);
    if (view) {
      if (el.localName === 'a') e.preventDefault();
      send(view, el, type, el.getAttribute(ATTR[type]), () => ({ value: liveValues(el) }));
    }
    const a = type === TYPE.click && !prevented ? t.closest(`a[${ATTR.patch}][href]`) : null;
    if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.target && a.target !== '_self') return;
    e.preventDefault();
    const to = sameOrigin(a.href, ATTR.patch);
    if (!to) return;
    history.pushState(null, '', to);
    const own = viewFor(a);
    for (const v of own ? [own] : views.values()) v.pushParams(location.href);
  }

  const lastChange = new WeakMap(); // binding element -> JSON of the last change value sent

  function onChange(e) {
    const input = targetOf(e);
    if (e.isComposing || !isControl(input)) return;
    const el = input.hasAttribute(ATTR.change) ? input : input.form && input.form.hasAttribute(ATTR.change) ? input.form : null;
    const view = el && viewFor(el);
    if (!view) return;
    const rateEl = input.hasAttribute(ATTR.debounce) || input.hasAttribute(ATTR.throttle) ? input : el;
    send(view, el, TYPE.change, el.getAttribute(ATTR.change), () => {
      let value;
      if (el !== input) value = formValue(el);
      else value = liveValues(input, input.name ? collectFields([input]) : { value: input.value });
      const json = JSON.stringify(value);
      if (e.type === EV.change && lastChange.get(el) === json) return null; // `input` already sent it
      lastChange.set(el, json);
      return { value, target: input.name || undefined };
    }, rateEl);
  }

  function onSubmit(e) {
    const form = targetOf(e);
    const view = form && form.localName === 'form' && form.hasAttribute(ATTR.submit) && viewFor(form);
    if (!view) return;
    e.preventDefault();
    for (const el of [form, ...Array.from(form.elements)]) flushRates(el);
    lastChange.delete(form);
    send(view, form, TYPE.submit, form.getAttribute(ATTR.submit), () => {
      const els = Array.from(form.elements);
      return {
        value: formValue(form),
        disable: els.filter((b) => b.type === 'submit' && b.hasAttribute(ATTR.disableWith)),
        force: els.filter(isTextLike),
      };
    });
  }

  /** Key bindings of `el` for `key`: live-<type> (with its live-key filter) and live-<type>-<key>. */
  function keyBindings(el, type, key) {
    const out = [];
    const main = el.getAttribute(ATTR[type]), filter = el.getAttribute(ATTR.key);
    if (main != null && (filter == null || filter.toLowerCase() === key.toLowerCase())) out.push([main, filter != null]);
    const named = el.getAttribute(`${ATTR[type]}-${key.toLowerCase()}`);
    if (named != null) out.push([named, true]);
    return out;
  }

  function onKey(e, type) {
    const t = targetOf(e);
    if (typeof e.key !== 'string' || !e.key || !t || e.isComposing) return;
    for (let el = t; el; el = el.parentElement) { // the nearest element with a matching binding
      const found = keyBindings(el, type, e.key);
      if (found.length) {
        const view = viewFor(el);
        const ctl = isControl(el) ? el : isControl(t) ? t : null;
        for (const [name, filtered] of view ? found : []) {
          send(view, el, type, name, () => ({
            value: liveValues(el, ctl ? { key: e.key, value: ctl.value } : { key: e.key }),
            force: filtered && ctl ? [ctl] : null,
          }));
        }
        return;
      }
      if (el.hasAttribute(ATTR.root)) return;
    }
  }

  function onFocus(e, type) {
    const el = targetOf(e);
    if (morphing || !el) return; // focus moved by the morph, not by the user
    if (type === TYPE.blur) flushRates(el);
    const name = el.getAttribute(ATTR[type]);
    const view = name != null && viewFor(el);
    if (view) send(view, el, type, name, () => ({ value: liveValues(el, { value: isControl(el) ? el.value : '' }) }));
  }

  const listen = (type, fn) => document.addEventListener(type, (e) => safe(() => fn(e), `${type} handler`));
  listen(EV.click, (e) => onClick(e, TYPE.click));
  listen(EV.dblclick, (e) => onClick(e, TYPE.dblclick));
  listen(EV.submit, onSubmit);
  listen(EV.input, onChange);
  listen(EV.change, onChange);
  listen(EV.compositionend, onChange); // the input events during an IME composition were skipped
  listen(EV.keydown, (e) => onKey(e, TYPE.keydown));
  listen(EV.keyup, (e) => onKey(e, TYPE.keyup));
  listen(EV.focusin, (e) => onFocus(e, TYPE.focus));
  listen(EV.focusout, (e) => onFocus(e, TYPE.blur));

  window.addEventListener(EV.popstate, () => { for (const v of views.values()) v.pushParams(location.href); });
  document.addEventListener(EV.visibilitychange, () => {
    if (document.hidden || !socket) return;
    if (socket.waitVisible) { socket.waitVisible = false; socket.connect(); }
    for (const v of views.values()) if (v.waitVisible) v.join();
  });
  window.addEventListener(EV.pagehide, () => { if (socket) socket.unloading = true; });
  window.addEventListener(EV.pageshow, (e) => { // back from the bfcache
    if (e.persisted && socket) { socket.unloading = false; socket.connect(); }
  });

  // ==== Start

  const script = document.currentScript;

  function socketURL(path) {
    const u = new URL(path || SOCKET_PATH, location.href);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    return u.href;
  }

  /** Finds the views and connects (idempotent; also resumes after Live.disconnect()). */
  function connect() {
    if (!socket) {
      const s = script && script.hasAttribute(ATTR.socket) ? script : document.querySelector(`script[${ATTR.socket}]`);
      socket = new Socket(socketURL(s && s.getAttribute(ATTR.socket)));
    }
    socket.stopped = false;
    for (const el of document.querySelectorAll(`[${ATTR.root}]`)) {
      if (!el.id) console.error(`live: a [${ATTR.root}] needs an id`, el);
      else if (!views.has(el.id)) views.set(el.id, new View(el, socket));
    }
    if (views.size) socket.connect();
  }

  function disconnect() {
    if (!socket) return;
    socket.stopped = true;
    clearTimeout(socket.timer);
    socket.timer = null;
    socket.drop();
  }

  window.Live = { get socket() { return socket; }, views, connect, disconnect, morph, navigation };

  if (document.readyState === 'loading') document.addEventListener(EV.ready, connect);
  else connect();
})();
