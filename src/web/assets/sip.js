// The pure half of the browser softphone (softphone.js): SIP message parsing
// and serialising (RFC 3261 §7, §20), responses built from a request, the
// UAS dialog (§12) and its in-dialog requests, CANCEL matching (§9.2), HTTP
// digest (RFC 2617 / RFC 8760 with our own MD5 of RFC 1321; SHA-256 through
// WebCrypto). No DOM, no sockets: node's test runner imports this module
// directly (tests/web/softphone_unit.mjs).
//
// A message is a plain object:
//   request:  { method, uri, headers, body }
//   response: { status, reason, headers, body }
// `headers` is a list of [name, value] pairs in wire order. Parsed messages
// carry canonical names ("Call-ID", "Via", never "i" or "v"), and list headers
// (Via, Route, Contact, ...) are split into one pair per value, so
// `headerAll(m, 'Via')` gives every Via in order however the peer wrote them.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string. */
export const utf8 = (s) => encoder.encode(s);

/** Content-Length counts bytes, not UTF-16 units. */
export const byteLength = (s) => encoder.encode(s).length;

// ---------------------------------------------------------------- MD5 (RFC 1321)

// T[i] = floor(2^32 × |sin(i + 1)|), RFC 1321 §3.4.
const MD5_T = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);
// Left-rotation amounts: four per round, repeated four times in the round.
const MD5_SHIFT = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

/** MD5 of a string (as UTF-8) or bytes, as 32 lower-case hex digits. */
export function md5Hex(input) {
  const bytes = typeof input === 'string' ? utf8(input) : input;
  const n = bytes.length;
  // Message, 0x80, zeros, then the bit length (64-bit little-endian): a
  // multiple of 64 bytes.
  const padded = new Uint8Array((((n + 8) >>> 6) + 1) * 64);
  padded.set(bytes);
  padded[n] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, (n * 8) >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(n / 0x20000000), true);

  const state = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  const x = new Uint32Array(16);
  for (let block = 0; block < padded.length; block += 64) {
    for (let j = 0; j < 16; j++) x[j] = view.getUint32(block + 4 * j, true);
    let [a, b, c, d] = state;
    for (let i = 0; i < 64; i++) {
      const round = i >>> 4;
      let mixed, word;
      if (round === 0) { mixed = (b & c) | (~b & d); word = i; }
      else if (round === 1) { mixed = (b & d) | (c & ~d); word = (5 * i + 1) & 15; }
      else if (round === 2) { mixed = b ^ c ^ d; word = (3 * i + 5) & 15; }
      else { mixed = c ^ (b | ~d); word = (7 * i) & 15; }
      const shift = MD5_SHIFT[(round << 2) | (i & 3)];
      const sum = (a + mixed + MD5_T[i] + x[word]) | 0;
      a = d; d = c; c = b;
      b = (b + ((sum << shift) | (sum >>> (32 - shift)))) | 0;
    }
    state[0] = (state[0] + a) | 0;
    state[1] = (state[1] + b) | 0;
    state[2] = (state[2] + c) | 0;
    state[3] = (state[3] + d) | 0;
  }
  const out = new DataView(new ArrayBuffer(16));
  state.forEach((w, i) => out.setUint32(4 * i, w, true));
  return hex(new Uint8Array(out.buffer));
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** SHA-256 hex through WebCrypto (browsers: secure contexts only; node ≥ 19). */
export async function sha256Hex(input) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error('SHA-256 digest needs WebCrypto (a secure context: https or localhost)');
  return hex(new Uint8Array(await subtle.digest('SHA-256', utf8(input))));
}

// ---------------------------------------------------------------- digest authentication

/** Random hex (nonces, tags, branches). */
export function randomHex(bytes = 8) {
  const b = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(b);
  return hex(b);
}

/**
 * `Digest realm="x", nonce="y", qop="auth,auth-int", algorithm=MD5` →
 * { scheme: 'Digest', params: { realm: 'x', nonce: 'y', qop: 'auth,auth-int', algorithm: 'MD5' } }
 * (parameter names lower-cased, quotes and escapes removed).
 */
export function parseAuthHeader(value) {
  const m = /^\s*([!-~]+)\s*(.*)$/s.exec(value || '');
  if (!m) return null;
  const params = {};
  for (const part of splitList(m[2])) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    params[part.slice(0, eq).trim().toLowerCase()] = unquote(part.slice(eq + 1).trim());
  }
  return { scheme: m[1], params };
}

const DIGEST_HASHES = {
  MD5: async (s) => md5Hex(s),
  'SHA-256': sha256Hex,
};

function algorithmOf(challenge) {
  return (challenge.params.algorithm || 'MD5').toUpperCase();
}

/** True when we can answer this parsed challenge (Digest, MD5/SHA-256 [-sess], qop auth or none). */
export function canAnswer(challenge) {
  if (!challenge || challenge.scheme.toLowerCase() !== 'digest' || !challenge.params.nonce) return false;
  const alg = algorithmOf(challenge).replace(/-SESS$/, '');
  if (!DIGEST_HASHES[alg]) return false;
  if (alg === 'SHA-256' && !globalThis.crypto?.subtle) return false;
  const qop = challenge.params.qop;
  return qop === undefined || qop.split(',').some((q) => q.trim().toLowerCase() === 'auth');
}

/**
 * The challenge to answer in a 401/407: the topmost one we support, as
 * RFC 8760 §2.4 asks (the server lists its preferred algorithm first).
 * → { headerName: 'Authorization'|'Proxy-Authorization', challenge } or null.
 */
export function pickChallenge(response) {
  const [from, to] = response.status === 407
    ? ['Proxy-Authenticate', 'Proxy-Authorization']
    : ['WWW-Authenticate', 'Authorization'];
  for (const value of headerAll(response, from)) {
    const challenge = parseAuthHeader(value);
    if (canAnswer(challenge)) return { headerName: to, challenge };
  }
  return null;
}

/**
 * The digest `response` value (RFC 2617 §3.2.2; RFC 8760 for SHA-256):
 * with qop: H(H(A1):nonce:nc:cnonce:qop:H(A2)); without: H(H(A1):nonce:H(A2)).
 */
export async function digestResponse({ algorithm = 'MD5', username, password, realm, nonce, method, uri, qop, nc, cnonce }) {
  const alg = algorithm.toUpperCase();
  const hash = DIGEST_HASHES[alg.replace(/-SESS$/, '')];
  if (!hash) throw new Error(`unsupported digest algorithm ${algorithm}`);
  let ha1 = await hash(`${username}:${realm}:${password}`);
  if (alg.endsWith('-SESS')) ha1 = await hash(`${ha1}:${nonce}:${cnonce}`);
  const ha2 = await hash(`${method}:${uri}`);
  return qop
    ? hash(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`)
    : hash(`${ha1}:${nonce}:${ha2}`);
}

/** nc as the 8 hex digits the header carries. */
export const formatNc = (n) => n.toString(16).padStart(8, '0');

/**
 * The Authorization (or Proxy-Authorization) header value answering
 * `challenge` (from parseAuthHeader) for one request. `nc` is a number.
 */
export async function digestAuthorization(challenge, { username, password, method, uri, nc = 1, cnonce = randomHex(8) }) {
  const p = challenge.params;
  const qop = p.qop === undefined ? undefined : 'auth';
  const algorithm = p.algorithm || 'MD5';
  const response = await digestResponse({
    algorithm, username, password, realm: p.realm ?? '', nonce: p.nonce, method, uri,
    qop, nc: formatNc(nc), cnonce,
  });
  const parts = [
    `username=${quote(username)}`, `realm=${quote(p.realm ?? '')}`, `nonce=${quote(p.nonce)}`,
    `uri=${quote(uri)}`, `response=${quote(response)}`, `algorithm=${algorithm}`,
  ];
  if (p.opaque !== undefined) parts.push(`opaque=${quote(p.opaque)}`);
  if (qop) parts.push(`qop=${qop}`, `nc=${formatNc(nc)}`, `cnonce=${quote(cnonce)}`);
  return `Digest ${parts.join(', ')}`;
}

function quote(s) {
  return `"${String(s).replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

function unquote(s) {
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) return s.slice(1, -1).replace(/\\(.)/g, '$1');
  return s;
}

// ---------------------------------------------------------------- headers

// RFC 3261 §7.3.3 compact forms (and the common extension ones).
const COMPACT = {
  v: 'Via', f: 'From', t: 'To', i: 'Call-ID', m: 'Contact', l: 'Content-Length', c: 'Content-Type',
  k: 'Supported', s: 'Subject', e: 'Content-Encoding', o: 'Event', r: 'Refer-To', b: 'Referred-By',
  u: 'Allow-Events', x: 'Session-Expires',
};
// Names whose usual spelling is not "Each-Word-Capitalised".
const SPELLING = new Map(['Call-ID', 'CSeq', 'WWW-Authenticate', 'MIME-Version'].map((n) => [n.toLowerCase(), n]));
// Headers whose values may be listed with commas on one line (§7.3.1).
const LIST_HEADERS = new Set([
  'Via', 'Route', 'Record-Route', 'Contact', 'Allow', 'Supported', 'Require', 'Proxy-Require',
  'Unsupported', 'Accept', 'Accept-Encoding', 'Accept-Language', 'Allow-Events', 'Content-Encoding',
]);

/** "i" → "Call-ID", "call-id" → "Call-ID", "x-hotline-call" → "X-Hotline-Call". */
export function canonicalName(name) {
  const lower = name.trim().toLowerCase();
  if (lower.length === 1 && COMPACT[lower]) return COMPACT[lower];
  return SPELLING.get(lower) ?? lower.replace(/(^|-)([a-z])/g, (_, dash, ch) => dash + ch.toUpperCase());
}

/** Split at commas outside quotes and <...>. */
export function splitList(value) {
  const out = [];
  let depth = 0, quoted = false, start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') depth++;
    else if (ch === '>') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((v) => v !== '');
}

/** Every value of a header, in order (name in any case or compact form). */
export function headerAll(msg, name) {
  const want = canonicalName(name);
  return msg.headers.filter(([n]) => canonicalName(n) === want).map(([, v]) => v);
}

/** The first value of a header, or undefined. */
export function header(msg, name) {
  return headerAll(msg, name)[0];
}

// ---------------------------------------------------------------- parsing

export class SipParseError extends Error {}

/**
 * Parse one SIP message (a WebSocket text frame). Tolerates leading CRLFs,
 * bare LF line ends and folded header lines; the body is cut to
 * Content-Length bytes when there is one. Throws SipParseError.
 */
export function parseMessage(text) {
  text = text.replace(/^(\r?\n)+/, '');
  let split = text.indexOf('\r\n\r\n'), sepLength = 4;
  const lfSplit = text.indexOf('\n\n');
  if (lfSplit >= 0 && (split < 0 || lfSplit < split)) { split = lfSplit; sepLength = 2; }
  const head = split < 0 ? text : text.slice(0, split);
  let body = split < 0 ? '' : text.slice(split + sepLength);
  const lines = head.split(/\r?\n/);
  const start = lines.shift() || '';

  const msg = { headers: [], body: '' };
  let m;
  if ((m = /^SIP\/2\.0\s+(\d{3})(?:\s+(.*))?$/i.exec(start))) {
    msg.status = Number(m[1]);
    msg.reason = (m[2] || '').trim();
  } else if ((m = /^([A-Za-z0-9!%*_+`'~.-]+)\s+(\S+)\s+SIP\/2\.0\s*$/i.exec(start))) {
    msg.method = m[1].toUpperCase();
    msg.uri = m[2];
  } else {
    throw new SipParseError(`not a SIP start line: ${start.slice(0, 80)}`);
  }

  // Join folded lines (§7.3.1: a line starting with whitespace continues the previous one).
  const unfolded = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && unfolded.length) unfolded[unfolded.length - 1] += ` ${line.trim()}`;
    else if (line.trim() !== '') unfolded.push(line);
  }
  for (const line of unfolded) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new SipParseError(`bad header line: ${line.slice(0, 80)}`);
    const name = canonicalName(line.slice(0, colon));
    const value = line.slice(colon + 1).trim();
    if (LIST_HEADERS.has(name) && !(name === 'Contact' && value === '*')) {
      for (const v of splitList(value)) msg.headers.push([name, v]);
    } else {
      msg.headers.push([name, value]);
    }
  }
  for (const required of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
    if (!header(msg, required)) throw new SipParseError(`missing ${required}`);
  }

  const length = header(msg, 'Content-Length');
  if (length !== undefined) {
    if (!/^\d+$/.test(length)) throw new SipParseError(`bad Content-Length: ${length}`);
    const bytes = utf8(body);
    const want = Number(length);
    if (bytes.length < want) throw new SipParseError(`body shorter than Content-Length (${bytes.length} < ${want})`);
    if (bytes.length > want) body = decoder.decode(bytes.subarray(0, want));
  }
  msg.body = body;
  return msg;
}

/** CSeq: "4711 INVITE" → { seq: 4711, method: 'INVITE' }. */
export function parseCSeq(value) {
  const m = /^\s*(\d+)\s+(\S+)\s*$/.exec(value || '');
  return m ? { seq: Number(m[1]), method: m[2].toUpperCase() } : { seq: NaN, method: '' };
}

/** Via: "SIP/2.0/WSS a.invalid;branch=z9hG4bKx;rport" → { transport, sentBy, params }. */
export function parseVia(value) {
  const m = /^\s*SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+([^;\s]+)\s*(.*)$/i.exec(value || '');
  if (!m) return { transport: '', sentBy: '', params: {} };
  return { transport: m[1].toUpperCase(), sentBy: m[2].toLowerCase(), params: parseParams(m[3]) };
}

/** ";a=1;lr;tag=x" → { a: '1', lr: '', tag: 'x' } (names lower-cased). */
export function parseParams(text) {
  const params = {};
  for (const part of (text || '').split(';')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq < 0) params[p.toLowerCase()] = '';
    else params[p.slice(0, eq).trim().toLowerCase()] = unquote(p.slice(eq + 1).trim());
  }
  return params;
}

/**
 * A From/To/Contact/Route value: `"Bob" <sip:bob@x;transport=ws>;tag=1` →
 * { display: 'Bob', uri: 'sip:bob@x;transport=ws', params: { tag: '1' } }.
 * Without <>, everything after the first ';' is header parameters (§20.10).
 */
export function parseNameAddr(value) {
  const v = (value || '').trim();
  const lt = v.indexOf('<');
  if (lt >= 0) {
    const gt = v.indexOf('>', lt);
    let display = v.slice(0, lt).trim();
    if (display.startsWith('"')) display = unquote(display);
    return { display, uri: v.slice(lt + 1, gt < 0 ? undefined : gt).trim(), params: parseParams(gt < 0 ? '' : v.slice(gt + 1)) };
  }
  const semi = v.indexOf(';');
  return { display: '', uri: semi < 0 ? v : v.slice(0, semi), params: parseParams(semi < 0 ? '' : v.slice(semi)) };
}

/** "sip:13800138000@host:5060;transport=ws" → { scheme, user, host, port, params }. */
export function parseUri(uri) {
  const m = /^(sips?|tel):(?:([^@;?]*)@)?([^;?]*)(.*)$/i.exec((uri || '').trim());
  if (!m) return { scheme: '', user: '', host: '', port: undefined, params: {} };
  let host = m[3], port;
  const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  if (hp) { host = hp[1]; port = hp[2] ? Number(hp[2]) : undefined; }
  let user = m[2] ?? '';
  try { user = decodeURIComponent(user.split(':')[0]); } catch { /* keep it raw */ }
  if (m[1].toLowerCase() === 'tel') { user = host; host = ''; }
  return { scheme: m[1].toLowerCase(), user, host: host.toLowerCase(), port, params: parseParams(m[4].split('?')[0]) };
}

/** The tag parameter of a From/To value, or undefined. */
export function tagOf(value) {
  return parseNameAddr(value).params.tag;
}

// ---------------------------------------------------------------- serialising

/** A message object → wire text; Content-Length is always written, in bytes. */
export function serialize(msg) {
  const body = msg.body ?? '';
  const start = msg.method ? `${msg.method} ${msg.uri} SIP/2.0` : `SIP/2.0 ${msg.status} ${msg.reason ?? ''}`;
  const lines = [start];
  for (const [name, value] of msg.headers) {
    if (canonicalName(name) !== 'Content-Length') lines.push(`${name}: ${value}`);
  }
  lines.push(`Content-Length: ${byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

export const REASONS = {
  100: 'Trying', 180: 'Ringing', 183: 'Session Progress', 200: 'OK', 400: 'Bad Request',
  401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  407: 'Proxy Authentication Required', 408: 'Request Timeout', 415: 'Unsupported Media Type',
  480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist', 486: 'Busy Here',
  487: 'Request Terminated', 488: 'Not Acceptable Here', 500: 'Server Internal Error',
  501: 'Not Implemented', 503: 'Service Unavailable', 603: 'Decline',
};

/**
 * A response to `request` (§8.2.6.2): its Via headers in order, From, To
 * (with `toTag` added when the request's To has none), Call-ID, CSeq; the
 * Record-Route too for 101–299 to INVITE (§12.1.1); then `headers`, a
 * Content-Type when there is a body, and Content-Length.
 */
export function buildResponse(request, status, { reason = REASONS[status] ?? '', toTag, headers = [], body = '', contentType } = {}) {
  const out = headerAll(request, 'Via').map((v) => ['Via', v]);
  if (request.method === 'INVITE' && status > 100 && status < 300) {
    for (const rr of headerAll(request, 'Record-Route')) out.push(['Record-Route', rr]);
  }
  let to = header(request, 'To');
  if (toTag && status > 100 && tagOf(to) === undefined) to = `${to};tag=${toTag}`;
  out.push(['From', header(request, 'From')], ['To', to], ['Call-ID', header(request, 'Call-ID')], ['CSeq', header(request, 'CSeq')]);
  out.push(...headers);
  if (body && contentType) out.push(['Content-Type', contentType]);
  return { status, reason, headers: out, body };
}

// ---------------------------------------------------------------- requests and dialogs

/** A request message with the usual header order; `headers` go after CSeq. */
export function buildRequest({ method, uri, via, from, to, callId, cseq, maxForwards = 70, headers = [], body = '', contentType }) {
  const out = [['Via', via], ['Max-Forwards', String(maxForwards)], ['To', to], ['From', from],
    ['Call-ID', callId], ['CSeq', `${cseq} ${method}`], ...headers];
  if (body && contentType) out.push(['Content-Type', contentType]);
  return { method, uri, headers: out, body };
}

/**
 * The dialog we (UAS) hold after answering `invite` with our tag (§12.1.1):
 * our side is the INVITE's To, theirs its From; their Contact is the remote
 * target; the route set is the Record-Route in order. Our first CSeq goes
 * above theirs, so it is above any the dialog has seen.
 */
export function uasDialog(invite, localTag) {
  const to = header(invite, 'To');
  const from = header(invite, 'From');
  const contact = header(invite, 'Contact');
  const seq = parseCSeq(header(invite, 'CSeq')).seq;
  return {
    callId: header(invite, 'Call-ID'),
    localTag,
    remoteTag: tagOf(from),
    local: tagOf(to) === undefined ? `${to};tag=${localTag}` : to,
    remote: from,
    remoteTarget: contact ? parseNameAddr(contact).uri : parseNameAddr(from).uri,
    routeSet: headerAll(invite, 'Record-Route'),
    remoteSeq: seq,
    localSeq: seq,
  };
}

/** True when `request` belongs to `dialog` (Call-ID and both tags, §12.2.2). */
export function inDialog(request, dialog) {
  return Boolean(dialog)
    && header(request, 'Call-ID') === dialog.callId
    && tagOf(header(request, 'To')) === dialog.localTag
    && tagOf(header(request, 'From')) === dialog.remoteTag;
}

/**
 * A request inside `dialog` (BYE, INFO): From = our side with our tag, To =
 * theirs, next CSeq, Request-URI and Route from the remote target and route
 * set (§12.2.1.1, loose or strict first hop). Advances dialog.localSeq.
 */
export function dialogRequest(dialog, method, { via, headers = [], body = '', contentType, maxForwards = 70 }) {
  dialog.localSeq = Math.max(dialog.localSeq, dialog.remoteSeq) + 1;
  let uri = dialog.remoteTarget;
  let routes = [...dialog.routeSet];
  if (routes.length && !('lr' in parseUri(parseNameAddr(routes[0]).uri).params)) {
    // Strict router: it goes in the Request-URI, the remote target last in Route.
    uri = parseNameAddr(routes[0]).uri;
    routes = [...routes.slice(1), `<${dialog.remoteTarget}>`];
  }
  return buildRequest({
    method, uri, via, from: dialog.local, to: dialog.remote, callId: dialog.callId, cseq: dialog.localSeq,
    maxForwards, headers: [...routes.map((r) => ['Route', r]), ...headers], body, contentType,
  });
}

/**
 * True when `cancel` cancels `invite` (§9.2): same top Via branch and
 * sent-by, Call-ID and CSeq number; for pre-RFC 3261 branches also the
 * Request-URI and From tag.
 */
export function cancels(cancel, invite) {
  if (cancel.method !== 'CANCEL' || invite.method !== 'INVITE') return false;
  const a = parseVia(header(cancel, 'Via'));
  const b = parseVia(header(invite, 'Via'));
  const same = a.params.branch === b.params.branch && a.sentBy === b.sentBy
    && header(cancel, 'Call-ID') === header(invite, 'Call-ID')
    && parseCSeq(header(cancel, 'CSeq')).seq === parseCSeq(header(invite, 'CSeq')).seq;
  if (!same) return false;
  if ((a.params.branch || '').startsWith('z9hG4bK')) return true;
  return cancel.uri === invite.uri && tagOf(header(cancel, 'From')) === tagOf(header(invite, 'From'));
}
