// Shared by every page: session (token in sessionStorage), API calls with
// JSON errors, the events WebSocket with reconnect, small DOM helpers.

const KEY = 'hotline.session';

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

function saveSession(s) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** fetch an /api path with the token; JSON in and out; throws ApiError. */
export async function api(path, { method = 'GET', body, raw = false } = {}) {
  const s = session();
  const headers = {};
  if (s) headers.Authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    let code = 'http', message = `${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      code = j.code || code;
      message = j.error || message;
    } catch { /* not JSON */ }
    if (res.status === 401 && path !== '/api/login') {
      saveSession(null);
    }
    throw new ApiError(res.status, code, message);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

export async function login(id, password) {
  const r = await api('/api/login', { method: 'POST', body: { id, password } });
  saveSession(r);
  return r;
}

export async function logout() {
  try { await api('/api/logout', { method: 'POST' }); } catch { /* already gone */ }
  saveSession(null);
  location.reload();
}

/** Create an element: el('td', {class: 'num'}, 'text', child...). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function $(sel, root = document) {
  return root.querySelector(sel);
}

/** 75000 → "1:15"; 3700000 → "1:01:40". */
export function dur(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  const t = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return `${h ? h + ':' : ''}${mm}:${String(s).padStart(2, '0')}`;
}

export function time(ms) {
  if (!ms) return '–';
  return new Date(ms).toLocaleString('zh-CN', { hour12: false });
}

export function pct(v) {
  return v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`;
}

export const STATE_LABELS = {
  ready: '就绪 ready',
  reserved: '振铃 ringing',
  on_call: '通话 on call',
  wrap_up: '话后 wrap-up',
  not_ready: '未就绪 not ready',
  offline: '离线 offline',
};

export function stateBadge(state, reason) {
  const label = STATE_LABELS[state] || state || '–';
  return el('span', { class: `badge state-${state}`, 'data-state': state }, reason ? `${label} · ${reason}` : label);
}

/**
 * Open /api/events; call onMessage(msg) for the snapshot and each event;
 * reconnect (for a fresh snapshot) after a drop. Returns {close()}.
 */
export function connectEvents(onMessage, onStatus = () => {}) {
  let ws, stopped = false, retry = 1000;
  const open = () => {
    const s = session();
    if (!s || stopped) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    ws = new WebSocket(`${proto}://${location.host}/api/events?token=${encodeURIComponent(s.token)}`);
    ws.onopen = () => { retry = 1000; onStatus('live'); };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      onMessage(msg);
    };
    ws.onclose = (e) => {
      onStatus('down');
      if (stopped) return;
      if (e.code === 1008) { saveSession(null); location.reload(); return; }
      setTimeout(open, retry);
      retry = Math.min(retry * 2, 15000);
    };
  };
  open();
  return { close() { stopped = true; if (ws) ws.close(); } };
}

/** Page chrome: the nav bar, the user and the live indicator. */
export function chrome(active) {
  const s = session();
  const links = [['/desk', '坐席台 Desk'], ['/wallboard', '监控墙 Wallboard'], ['/reports', '报表 Reports']];
  const header = el('header', { class: 'top' },
    el('span', { class: 'brand' }, '☎ hotline'),
    el('nav', {}, links.map(([href, label]) => el('a', { href, class: href === active ? 'active' : '' }, label))),
    el('div', { class: 'who' },
      el('span', { id: 'conn', class: 'conn hidden' }, '…'),
      s ? el('span', { id: 'whoami' }, `${s.name} (${s.id} · ${s.role})`) : null,
      s ? el('button', { class: 'secondary', id: 'logout', onclick: logout }, '退出 Log out') : null));
  document.body.prepend(header);
}

export function setConn(status) {
  const c = $('#conn');
  if (!c) return;
  c.className = `conn ${status}`;
  c.textContent = status === 'live' ? '实时 live' : '断开 reconnecting';
}

/**
 * Show the login form in `root` until someone logs in with one of `roles`,
 * then resolve with the session.
 */
export function requireLogin(root, roles, title) {
  const s = session();
  if (s && roles.includes(s.role) && s.expires_at_ms > Date.now()) return Promise.resolve(s);
  return new Promise((resolve) => {
    const msg = el('div', { class: 'msg err', id: 'login-error' });
    const id = el('input', { id: 'login-id', autocomplete: 'username', required: true });
    const pw = el('input', { id: 'login-password', type: 'password', autocomplete: 'current-password', required: true });
    const form = el('form', { class: 'panel login', id: 'login-form' },
      el('h1', {}, title),
      el('label', { for: 'login-id' }, '工号 / 用户 ID'), id,
      el('label', { for: 'login-password' }, '密码 Password'), pw,
      el('div', { class: 'row', style: 'margin-top:12px' }, el('button', { type: 'submit', id: 'login-submit' }, '登录 Log in')),
      msg);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      msg.textContent = '';
      try {
        const r = await login(id.value.trim(), pw.value);
        if (!roles.includes(r.role)) {
          saveSession(null);
          msg.textContent = `此页面需要 ${roles.join(' / ')} 角色 (this page needs role ${roles.join(' or ')})`;
          return;
        }
        location.reload();
        resolve(r);
      } catch (err) {
        msg.textContent = err.message;
      }
    });
    root.replaceChildren(form);
    id.focus();
  });
}

/** Download a Response body as a file (the API needs the bearer header, so no plain link). */
export async function download(path, filename) {
  const res = await api(path, { raw: true });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
