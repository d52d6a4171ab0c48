// Unit tests of the browser softphone's pure parts (src/web/assets/sip.js)
// and of its SIP behaviour over a fake WebSocket (src/web/assets/softphone.js;
// everything but answer(), which needs WebRTC).
//
//   node --test tests/web/softphone_unit.mjs

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import {
  buildResponse, byteLength, cancels, canonicalName, dialogRequest, digestAuthorization, digestResponse,
  header, headerAll, inDialog, md5Hex, parseAuthHeader, parseCSeq, parseMessage, parseNameAddr, parseUri,
  parseVia, pickChallenge, serialize, SipParseError, tagOf, uasDialog,
} from '../../src/web/assets/sip.js';
import { Softphone } from '../../src/web/assets/softphone.js';

const CRLF = '\r\n';
const msg = (lines, body = '') => lines.join(CRLF) + CRLF + CRLF + body;

// ---------------------------------------------------------------- MD5, digest

test('MD5: the RFC 1321 appendix A.5 test suite', () => {
  const suite = [
    ['', 'd41d8cd98f00b204e9800998ecf8427e'],
    ['a', '0cc175b9c0f1b6a831c399e269772661'],
    ['abc', '900150983cd24fb0d6963f7d28e17f72'],
    ['message digest', 'f96b697d7cb7938d525a2f31aaf161d0'],
    ['abcdefghijklmnopqrstuvwxyz', 'c3fcd3d76192e4007dfb496cca67e13b'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 'd174ab98d277d9f5a5611c2c9f419d9f'],
    ['1234567890'.repeat(8), '57edf4a22be3c955ac49da2e2107b67a'],
  ];
  for (const [input, want] of suite) assert.equal(md5Hex(input), want, JSON.stringify(input));
});

test('MD5: every length across the padding boundaries, and UTF-8, agree with node:crypto', () => {
  for (let n = 0; n <= 200; n++) {
    const s = 'x'.repeat(n);
    assert.equal(md5Hex(s), createHash('md5').update(s).digest('hex'), `length ${n}`);
  }
  for (const s of ['王芳:hotline:密码', 'é', '🙂'.repeat(30)]) {
    assert.equal(md5Hex(s), createHash('md5').update(s, 'utf8').digest('hex'), s);
  }
  assert.equal(md5Hex(new Uint8Array([0, 255, 128])), createHash('md5').update(Buffer.from([0, 255, 128])).digest('hex'));
});

test('digest: the RFC 2617 §3.5 example (Mufasa)', async () => {
  const response = await digestResponse({
    username: 'Mufasa', realm: 'testrealm@host.com', password: 'Circle Of Life',
    nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', method: 'GET', uri: '/dir/index.html',
    qop: 'auth', nc: '00000001', cnonce: '0a4f113b',
  });
  assert.equal(response, '6629fae49393a05397450978507c4ef1');
});

test('digest: RFC 2069 form without qop, and SHA-256 (RFC 8760) through WebCrypto', async () => {
  const base = { username: 'u', realm: 'r', password: 'p', nonce: 'n', method: 'REGISTER', uri: 'sip:d' };
  const h = (alg, s) => createHash(alg).update(s).digest('hex');
  const md5Want = h('md5', `${h('md5', 'u:r:p')}:n:${h('md5', 'REGISTER:sip:d')}`);
  assert.equal(await digestResponse(base), md5Want);
  const shaWant = h('sha256', `${h('sha256', 'u:r:p')}:n:00000002:c:auth:${h('sha256', 'REGISTER:sip:d')}`);
  assert.equal(await digestResponse({ ...base, algorithm: 'SHA-256', qop: 'auth', nc: '00000002', cnonce: 'c' }), shaWant);
});

test('digest: the Authorization header answers a parsed challenge', async () => {
  const challenge = parseAuthHeader('Digest realm="hotline", nonce="abc\\"def", qop="auth,auth-int", opaque="op", algorithm=MD5');
  assert.equal(challenge.scheme, 'Digest');
  assert.deepEqual(challenge.params, { realm: 'hotline', nonce: 'abc"def', qop: 'auth,auth-int', opaque: 'op', algorithm: 'MD5' });
  const value = await digestAuthorization(challenge, { username: '1001', password: 'pw', method: 'REGISTER', uri: 'sip:h', nc: 10, cnonce: 'cn' });
  const p = parseAuthHeader(value).params;
  assert.equal(p.username, '1001');
  assert.equal(p.nonce, 'abc"def');
  assert.equal(p.uri, 'sip:h');
  assert.equal(p.qop, 'auth');
  assert.equal(p.nc, '0000000a');
  assert.equal(p.cnonce, 'cn');
  assert.equal(p.opaque, 'op');
  assert.match(value, /qop=auth, nc=0000000a/); // qop and nc are tokens, not quoted
  const want = await digestResponse({ username: '1001', realm: 'hotline', password: 'pw', nonce: 'abc"def', method: 'REGISTER', uri: 'sip:h', qop: 'auth', nc: '0000000a', cnonce: 'cn' });
  assert.equal(p.response, want);
});

// ---------------------------------------------------------------- parsing

const REGISTER_401 = msg([
  'SIP/2.0 401 Unauthorized',
  'Via: SIP/2.0/WSS a1b2.invalid;branch=z9hG4bK776asdhds;received=127.0.0.1;rport=53422',
  'From: <sip:1001@127.0.0.1>;tag=1928301774',
  'To: <sip:1001@127.0.0.1>;tag=as6151ad25',
  'Call-ID: a84b4c76e66710@a1b2.invalid',
  'CSeq: 1 REGISTER',
  'WWW-Authenticate: Digest realm="hotline", nonce="MTcwMDAwMDAwMDAwMA.abc", algorithm=MD5, qop="auth"',
  'WWW-Authenticate: Digest realm="hotline", nonce="MTcwMDAwMDAwMDAwMA.abc", algorithm=SHA-256, qop="auth"',
  'Content-Length: 0',
]);

test('parse: a REGISTER 401 with two challenges; the topmost supported one is picked', () => {
  const res = parseMessage(REGISTER_401);
  assert.equal(res.status, 401);
  assert.equal(res.reason, 'Unauthorized');
  assert.equal(res.method, undefined);
  assert.equal(headerAll(res, 'www-authenticate').length, 2);
  assert.equal(parseVia(header(res, 'v')).params.branch, 'z9hG4bK776asdhds');
  assert.deepEqual(parseCSeq(header(res, 'CSeq')), { seq: 1, method: 'REGISTER' });
  const picked = pickChallenge(res);
  assert.equal(picked.headerName, 'Authorization');
  assert.equal(picked.challenge.params.algorithm, 'MD5');
  assert.equal(picked.challenge.params.nonce, 'MTcwMDAwMDAwMDAwMA.abc');
  // 407 → Proxy-Authorization; an unknown algorithm is skipped.
  const proxy = parseMessage(REGISTER_401.replace('401 Unauthorized', '407 Proxy Authentication Required')
    .replaceAll('WWW-Authenticate', 'Proxy-Authenticate').replace('algorithm=MD5', 'algorithm=SHA-512-256'));
  const p2 = pickChallenge(proxy);
  assert.equal(p2.headerName, 'Proxy-Authorization');
  assert.equal(p2.challenge.params.algorithm, 'SHA-256');
});

const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=呼叫中心\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 8 101\r\n';

function invite({ extraHeaders = [], body = SDP } = {}) {
  return msg([
    'INVITE sip:1001@f00d.invalid;transport=ws SIP/2.0',
    'v: SIP/2.0/WS 10.0.0.1:5060;branch=z9hG4bKtop , SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKmid',
    'Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKlast',
    'record-route: <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>',
    'f: "客户" <sip:13800138000@hotline.example>;tag=from1',
    't: <sip:1001@hotline.example>',
    'i: call-1@10.0.0.1',
    'CSeq: 42 INVITE',
    'm: <sip:hotline@10.0.0.1:5060;transport=ws>',
    'Max-Forwards: 69',
    'X-Hotline-Call: C-000123',
    'X-Hotline-Customer:',
    '  CU-9',
    'Subject: a long',
    '\tfolded subject',
    'c: application/sdp',
    ...extraHeaders,
    `l: ${byteLength(body)}`,
  ], body);
}

test('parse: an INVITE with compact headers, a Via list, folded lines and a UTF-8 body', () => {
  const req = parseMessage(`\r\n${invite()}trailing bytes past Content-Length`);
  assert.equal(req.method, 'INVITE');
  assert.equal(req.uri, 'sip:1001@f00d.invalid;transport=ws');
  assert.deepEqual(headerAll(req, 'Via').map((v) => parseVia(v).params.branch), ['z9hG4bKtop', 'z9hG4bKmid', 'z9hG4bKlast']);
  assert.deepEqual(headerAll(req, 'Record-Route'), ['<sip:10.0.0.1;lr>', '<sip:10.0.0.2;lr>']);
  assert.equal(header(req, 'Call-ID'), 'call-1@10.0.0.1');
  assert.equal(header(req, 'x-hotline-call'), 'C-000123');
  assert.equal(header(req, 'X-Hotline-Customer'), 'CU-9');
  assert.equal(header(req, 'Subject'), 'a long folded subject');
  assert.equal(header(req, 'Content-Type'), 'application/sdp');
  assert.equal(req.body, SDP); // bytes, not UTF-16 units: "呼叫中心" is 12 bytes
  const from = parseNameAddr(header(req, 'From'));
  assert.deepEqual(from, { display: '客户', uri: 'sip:13800138000@hotline.example', params: { tag: 'from1' } });
  assert.equal(parseUri(from.uri).user, '13800138000');
  assert.equal(tagOf(header(req, 'To')), undefined);
  assert.equal(canonicalName('i'), 'Call-ID');
  assert.equal(canonicalName('WWW-AUTHENTICATE'), 'WWW-Authenticate');
});

test('parse: broken messages are refused with SipParseError', () => {
  assert.throws(() => parseMessage('hello world\r\n\r\n'), SipParseError);
  assert.throws(() => parseMessage(invite().replace('i: call-1@10.0.0.1\r\n', '')), /missing Call-ID/);
  assert.throws(() => parseMessage(invite().replace(`l: ${byteLength(SDP)}`, `l: ${byteLength(SDP) + 5}`)), /shorter than Content-Length/);
  // Bare LF line ends are tolerated.
  const lf = parseMessage(invite().replaceAll('\r\n', '\n').replace(/l: \d+/, `l: ${byteLength(SDP.replaceAll('\r\n', '\n'))}`));
  assert.equal(lf.method, 'INVITE');
});

test('name-addr and URI forms', () => {
  assert.deepEqual(parseNameAddr('sip:a@b;tag=x'), { display: '', uri: 'sip:a@b', params: { tag: 'x' } });
  assert.deepEqual(parseNameAddr('Bob <sips:bob@[::1]:5061;transport=tls>;expires=60'),
    { display: 'Bob', uri: 'sips:bob@[::1]:5061;transport=tls', params: { expires: '60' } });
  const u = parseUri('sips:bob@[::1]:5061;transport=tls');
  assert.equal(u.host, '[::1]');
  assert.equal(u.port, 5061);
  assert.equal(u.params.transport, 'tls');
  assert.equal(parseUri('sip:%2B8613800138000@x').user, '+8613800138000');
});

// ---------------------------------------------------------------- responses and dialogs

test('responses: 180, 200 and 487 from an INVITE copy Vias, From, Call-ID, CSeq and add our To tag', () => {
  const req = parseMessage(invite());
  for (const status of [180, 200, 487]) {
    const body = status === 200 ? 'v=0\r\ns=答\r\n' : '';
    const res = buildResponse(req, status, { toTag: 'ours', body, contentType: body ? 'application/sdp' : undefined, headers: [['Contact', '<sip:1001@f00d.invalid;transport=ws>']] });
    const wire = serialize(res);
    const back = parseMessage(wire);
    assert.equal(back.status, status);
    assert.deepEqual(headerAll(back, 'Via'), headerAll(req, 'Via'));
    assert.equal(header(back, 'From'), header(req, 'From'));
    assert.equal(header(back, 'To'), '<sip:1001@hotline.example>;tag=ours');
    assert.equal(header(back, 'Call-ID'), 'call-1@10.0.0.1');
    assert.equal(header(back, 'CSeq'), '42 INVITE');
    assert.equal(Number(header(back, 'Content-Length')), Buffer.byteLength(body));
    assert.equal(back.body, body);
    // Record-Route goes back in responses that make the dialog, not in errors.
    assert.equal(headerAll(back, 'Record-Route').length, status < 300 ? 2 : 0);
    assert.match(wire, new RegExp(`^SIP/2.0 ${status} `));
    assert.ok(wire.endsWith(`\r\n\r\n${body}`));
  }
  assert.equal(buildResponse(req, 200, { toTag: 'ours' }).reason, 'OK');
  assert.equal(buildResponse(req, 487).reason, 'Request Terminated');
  // A To that has a tag keeps it.
  const inDlg = parseMessage(invite().replace('t: <sip:1001@hotline.example>', 't: <sip:1001@hotline.example>;tag=had'));
  assert.equal(header(buildResponse(inDlg, 200, { toTag: 'ours' }), 'To'), '<sip:1001@hotline.example>;tag=had');
});

test('dialog: our BYE goes to their Contact through the Record-Route with From/To swapped', () => {
  const req = parseMessage(invite());
  const dialog = uasDialog(req, 'ours');
  const bye = parseMessage(serialize(dialogRequest(dialog, 'BYE', { via: 'SIP/2.0/WS me.invalid;branch=z9hG4bKbye' })));
  assert.equal(bye.method, 'BYE');
  assert.equal(bye.uri, 'sip:hotline@10.0.0.1:5060;transport=ws');
  assert.equal(header(bye, 'From'), '<sip:1001@hotline.example>;tag=ours');
  assert.equal(header(bye, 'To'), '"客户" <sip:13800138000@hotline.example>;tag=from1');
  assert.equal(header(bye, 'Call-ID'), 'call-1@10.0.0.1');
  assert.deepEqual(parseCSeq(header(bye, 'CSeq')), { seq: 43, method: 'BYE' });
  assert.deepEqual(headerAll(bye, 'Route'), ['<sip:10.0.0.1;lr>', '<sip:10.0.0.2;lr>']);
  assert.equal(header(bye, 'Max-Forwards'), '70');
  assert.equal(header(bye, 'Content-Length'), '0');
  // A higher CSeq seen from them moves ours above it.
  dialog.remoteSeq = 50;
  assert.equal(parseCSeq(header(dialogRequest(dialog, 'INFO', { via: 'x' }), 'CSeq')).seq, 51);
  // Requests in this dialog are recognised; others are not.
  const theirBye = parseMessage(msg(['BYE sip:1001@f00d.invalid SIP/2.0', 'Via: SIP/2.0/WS 10.0.0.1;branch=z9hG4bKb',
    'From: <sip:13800138000@hotline.example>;tag=from1', 'To: <sip:1001@hotline.example>;tag=ours',
    'Call-ID: call-1@10.0.0.1', 'CSeq: 43 BYE', 'Content-Length: 0']));
  assert.ok(inDialog(theirBye, dialog));
  assert.ok(!inDialog(parseMessage(serialize(theirBye).replace('tag=ours', 'tag=other')), dialog));
  // Strict router (no ;lr): it becomes the Request-URI, the Contact the last Route.
  const strict = uasDialog(parseMessage(invite().replace('record-route: <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>', 'Record-Route: <sip:10.0.0.9>')), 'ours');
  const sbye = dialogRequest(strict, 'BYE', { via: 'x' });
  assert.equal(sbye.uri, 'sip:10.0.0.9');
  assert.deepEqual(headerAll(sbye, 'Route'), ['<sip:hotline@10.0.0.1:5060;transport=ws>']);
});

test('CANCEL matches its INVITE by top Via branch, Call-ID and CSeq number', () => {
  const inv = parseMessage(invite());
  const cancel = (lines) => parseMessage(msg(lines));
  const base = ['CANCEL sip:1001@f00d.invalid;transport=ws SIP/2.0', 'Via: SIP/2.0/WS 10.0.0.1:5060;branch=z9hG4bKtop',
    'From: <sip:13800138000@hotline.example>;tag=from1', 'To: <sip:1001@hotline.example>', 'Call-ID: call-1@10.0.0.1',
    'CSeq: 42 CANCEL', 'Content-Length: 0'];
  assert.ok(cancels(cancel(base), inv));
  assert.ok(!cancels(cancel(base.map((l) => l.replace('z9hG4bKtop', 'z9hG4bKother'))), inv));
  assert.ok(!cancels(cancel(base.map((l) => l.replace('42 CANCEL', '43 CANCEL'))), inv));
  assert.ok(!cancels(cancel(base.map((l) => l.replace('call-1@', 'call-2@'))), inv));
  assert.ok(!cancels(inv, inv));
});

// ---------------------------------------------------------------- the UA over a fake WebSocket

class FakeSocket {
  static last = null;
  constructor(url, protocol) {
    this.url = url;
    this.protocol = protocol;
    this.readyState = 0;
    this.sent = [];
    this.closed = false;
    FakeSocket.last = this;
  }
  send(text) { this.sent.push(text); }
  close() {
    if (this.closed) return;
    this.closed = true;
    this.readyState = 3;
    this.onclose?.({ code: 1000 });
  }
  open() { this.readyState = 1; this.onopen?.(); }
  deliver(text) { this.onmessage?.({ data: text }); }
  /** Parsed messages sent so far, excluding keep-alives. */
  messages() { return this.sent.filter((t) => t.trim()).map(parseMessage); }
}

const flush = () => new Promise((r) => setImmediate(r));

/** Wait (real event-loop turns; timers are mocked) until `ok()`: WebCrypto answers off the loop. */
async function until(ok, what) {
  for (let i = 0; i < 1000; i++) {
    if (ok()) return;
    await flush();
  }
  assert.fail(`never happened: ${what}`);
}

/** stop(), answering its REGISTER Expires: 0 (timers are mocked: the 2 s cap never fires). */
async function stopPhone(phone, ws) {
  const stopping = phone.stop();
  await flush();
  const last = ws.messages().at(-1);
  if (last?.method === 'REGISTER' && header(last, 'Expires') === '0') ws.deliver(respond(last, 200, 'OK'));
  await stopping;
}

/** Our request → a response from "the server" with these extra headers. */
function respond(req, status, reason, extra = []) {
  const lines = [`SIP/2.0 ${status} ${reason}`, ...headerAll(req, 'Via').map((v) => `Via: ${v};received=127.0.0.1`),
    `From: ${header(req, 'From')}`, `To: ${header(req, 'To')}${tagOf(header(req, 'To')) ? '' : ';tag=srv'}`,
    `Call-ID: ${header(req, 'Call-ID')}`, `CSeq: ${header(req, 'CSeq')}`, ...extra, 'Content-Length: 0'];
  return msg(lines);
}

function newPhone(events) {
  const phone = new Softphone({ url: 'ws://127.0.0.1:8080/sip', user: '1001', password: 'hotline1001', domain: '127.0.0.1', WebSocket: FakeSocket });
  for (const type of ['connection', 'registered', 'unregistered', 'registration_failed', 'incoming', 'connected', 'ended', 'mic_error']) {
    phone.addEventListener(type, (e) => events.push([type, e.detail]));
  }
  return phone;
}

const CHALLENGE_MD5 = 'WWW-Authenticate: Digest realm="hotline", nonce="n1", algorithm=MD5, qop="auth"';

test('UA: REGISTER, digest answer, refresh at half the granted expiry with the next nc', async (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  t.after(() => mock.timers.reset());
  const events = [];
  const phone = newPhone(events);
  const started = phone.start();
  const ws = FakeSocket.last;
  assert.equal(ws.url, 'ws://127.0.0.1:8080/sip');
  assert.equal(ws.protocol, 'sip');
  ws.open();
  await flush();

  const [reg1] = ws.messages();
  assert.equal(reg1.method, 'REGISTER');
  assert.equal(reg1.uri, 'sip:127.0.0.1');
  const via = parseVia(header(reg1, 'Via'));
  assert.equal(via.transport, 'WS');
  assert.match(via.sentBy, /^[0-9a-f]+\.invalid$/);
  assert.match(via.params.branch, /^z9hG4bK./);
  assert.equal(header(reg1, 'To'), '<sip:1001@127.0.0.1>');
  assert.ok(tagOf(header(reg1, 'From')));
  assert.equal(header(reg1, 'Contact'), `<sip:1001@${via.sentBy};transport=ws>`);
  assert.equal(header(reg1, 'Expires'), '300');
  assert.equal(header(reg1, 'Max-Forwards'), '70');
  assert.equal(header(reg1, 'User-Agent'), 'hotline-desk');
  assert.equal(header(reg1, 'Content-Length'), '0');
  assert.equal(parseCSeq(header(reg1, 'CSeq')).seq, 1);
  assert.equal(header(reg1, 'Authorization'), undefined);

  ws.deliver(respond(reg1, 401, 'Unauthorized', [CHALLENGE_MD5, 'WWW-Authenticate: Digest realm="hotline", nonce="n1", algorithm=SHA-256, qop="auth"']));
  await flush();
  const reg2 = ws.messages()[1];
  assert.equal(header(reg2, 'Call-ID'), header(reg1, 'Call-ID'));
  assert.equal(parseCSeq(header(reg2, 'CSeq')).seq, 2);
  assert.notEqual(parseVia(header(reg2, 'Via')).params.branch, via.params.branch);
  const auth = parseAuthHeader(header(reg2, 'Authorization')).params;
  assert.equal(auth.algorithm, 'MD5');
  assert.equal(auth.nc, '00000001');
  assert.equal(auth.uri, 'sip:127.0.0.1');
  assert.equal(auth.response, await digestResponse({ username: '1001', realm: 'hotline', password: 'hotline1001', nonce: 'n1', method: 'REGISTER', uri: 'sip:127.0.0.1', qop: 'auth', nc: '00000001', cnonce: auth.cnonce }));

  // Granted 120 s on our Contact (another contact of the same agent says 3600).
  ws.deliver(respond(reg2, 200, 'OK', [`Contact: <sip:1001@10.1.1.1:5060>;expires=3600, ${header(reg1, 'Contact')};expires=120`, 'Expires: 300']));
  await started;
  assert.deepEqual(events.filter(([k]) => k === 'registered'), [['registered', { expires: 120 }]]);
  assert.ok(phone.registered);

  mock.timers.tick(59_000);
  await flush();
  assert.equal(ws.messages().length, 2, 'no refresh before half the expiry');
  mock.timers.tick(1_000);
  await flush();
  const reg3 = ws.messages()[2];
  assert.equal(parseCSeq(header(reg3, 'CSeq')).seq, 3);
  assert.equal(header(reg3, 'Call-ID'), header(reg1, 'Call-ID'));
  const auth3 = parseAuthHeader(header(reg3, 'Authorization')).params;
  assert.equal(auth3.nonce, 'n1');
  assert.equal(auth3.nc, '00000002');

  // A stale nonce is answered again at once.
  ws.deliver(respond(reg3, 401, 'Unauthorized', ['WWW-Authenticate: Digest realm="hotline", nonce="n2", algorithm=MD5, qop="auth", stale=true']));
  await flush();
  const reg4 = ws.messages()[3];
  const auth4 = parseAuthHeader(header(reg4, 'Authorization')).params;
  assert.equal(auth4.nonce, 'n2');
  assert.equal(auth4.nc, '00000001');
  ws.deliver(respond(reg4, 200, 'OK', ['Expires: 300']));
  await flush();
  assert.deepEqual(events.filter(([k]) => k === 'registered').at(-1), ['registered', { expires: 300 }]);

  // stop(): REGISTER Expires: 0, then the socket closes.
  const stopping = phone.stop();
  await flush();
  const unreg = ws.messages()[4];
  assert.equal(header(unreg, 'Expires'), '0');
  ws.deliver(respond(unreg, 200, 'OK'));
  await stopping;
  assert.ok(ws.closed);
  assert.ok(events.some(([k]) => k === 'unregistered'));
});

test('UA: a refused password is final (no retry), SHA-256 when it is the only challenge', async (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  t.after(() => mock.timers.reset());
  const events = [];
  const phone = newPhone(events);
  const started = phone.start();
  const ws = FakeSocket.last;
  ws.open();
  await flush();
  ws.deliver(respond(ws.messages()[0], 401, 'Unauthorized', ['WWW-Authenticate: Digest realm="hotline", nonce="s1", algorithm=SHA-256, qop="auth"']));
  await until(() => ws.messages().length === 2, 'the SHA-256 answer');
  const reg2 = ws.messages()[1];
  const auth = parseAuthHeader(header(reg2, 'Authorization')).params;
  assert.equal(auth.algorithm, 'SHA-256');
  assert.equal(auth.response, await digestResponse({ algorithm: 'SHA-256', username: '1001', realm: 'hotline', password: 'hotline1001', nonce: 's1', method: 'REGISTER', uri: 'sip:127.0.0.1', qop: 'auth', nc: '00000001', cnonce: auth.cnonce }));
  ws.deliver(respond(reg2, 401, 'Unauthorized', ['WWW-Authenticate: Digest realm="hotline", nonce="s2", algorithm=SHA-256, qop="auth"']));
  await assert.rejects(started, /registration failed: 401/);
  assert.deepEqual(events.find(([k]) => k === 'registration_failed'), ['registration_failed', { status: 401, reason: 'Unauthorized', final: true }]);
  assert.ok(ws.closed);
  mock.timers.tick(120_000);
  await flush();
  assert.equal(FakeSocket.last, ws, 'no reconnect after a refused password');
  assert.equal(ws.messages().length, 2);
});

test('UA: the socket drops → unregistered, reconnect with back-off, register again', async (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  t.after(() => mock.timers.reset());
  const events = [];
  const phone = newPhone(events);
  phone.start().catch(() => {});
  const ws = FakeSocket.last;
  ws.open();
  await flush();
  ws.deliver(respond(ws.messages()[0], 200, 'OK', ['Expires: 300']));
  await flush();
  assert.ok(phone.registered);
  ws.close();
  assert.ok(!phone.registered);
  assert.ok(events.some(([k]) => k === 'unregistered'));
  assert.deepEqual(events.filter(([k]) => k === 'connection').map(([, d]) => d.state), ['connecting', 'open', 'closed']);
  mock.timers.tick(1_600); // the first delay is 1 s ± 25 %
  const ws2 = FakeSocket.last;
  assert.notEqual(ws2, ws);
  ws2.open();
  await flush();
  const reg = ws2.messages()[0];
  assert.equal(reg.method, 'REGISTER');
  // Same registration (Call-ID), next CSeq.
  assert.equal(header(reg, 'Call-ID'), header(ws.messages()[0], 'Call-ID'));
  assert.equal(parseCSeq(header(reg, 'CSeq')).seq, 2);
  await stopPhone(phone, ws2);
});

/** A registered phone on a fake socket. */
async function registeredPhone(t, events) {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  t.after(() => mock.timers.reset());
  const phone = newPhone(events);
  phone.start().catch(() => {});
  const ws = FakeSocket.last;
  ws.open();
  await flush();
  ws.deliver(respond(ws.messages()[0], 200, 'OK', ['Expires: 300']));
  await flush();
  ws.sent.length = 0;
  return { phone, ws };
}

test('UA: INVITE → 180 Ringing with our tag and the incoming event; a second INVITE gets 486', async (t) => {
  const events = [];
  const { phone, ws } = await registeredPhone(t, events);
  ws.deliver(invite());
  const [ringing] = ws.messages();
  assert.equal(ringing.status, 180);
  assert.deepEqual(headerAll(ringing, 'Via').map((v) => parseVia(v).params.branch), ['z9hG4bKtop', 'z9hG4bKmid', 'z9hG4bKlast']);
  const toTag = tagOf(header(ringing, 'To'));
  assert.ok(toTag);
  assert.match(header(ringing, 'Contact'), /^<sip:1001@[0-9a-f]+\.invalid;transport=ws>$/);
  assert.equal(header(ringing, 'CSeq'), '42 INVITE');
  assert.deepEqual(events.find(([k]) => k === 'incoming')[1], {
    callId: 'call-1@10.0.0.1', caller: '13800138000', display: '客户', hotlineCall: 'C-000123', customer: 'CU-9',
  });
  assert.equal(phone.call.state, 'ringing');

  // The same INVITE again: the same 180 (same tag).
  ws.deliver(invite());
  assert.equal(tagOf(header(ws.messages()[1], 'To')), toTag);
  // Another call meanwhile: busy.
  ws.deliver(invite().replaceAll('call-1@', 'call-2@').replace('z9hG4bKtop', 'z9hG4bKtop2'));
  const busy = ws.messages()[2];
  assert.equal(busy.status, 486);
  assert.equal(header(busy, 'Call-ID'), 'call-2@10.0.0.1');
  assert.ok(tagOf(header(busy, 'To')));

  // OPTIONS in the middle: 200 with Allow.
  ws.deliver(msg(['OPTIONS sip:1001@f00d.invalid SIP/2.0', 'Via: SIP/2.0/WS 10.0.0.1;branch=z9hG4bKo', 'From: <sip:hotline@10.0.0.1>;tag=o',
    'To: <sip:1001@f00d.invalid>', 'Call-ID: opt-1', 'CSeq: 1 OPTIONS', 'Content-Length: 0']));
  const ok = ws.messages()[3];
  assert.equal(ok.status, 200);
  assert.match(header(ok, 'Allow'), /INVITE/);
  await stopPhone(phone, ws);
});

test('UA: CANCEL of the ringing INVITE → 200 to the CANCEL, 487 to the INVITE, ended cancelled', async (t) => {
  const events = [];
  const { phone, ws } = await registeredPhone(t, events);
  ws.deliver(invite());
  const toTag = tagOf(header(ws.messages()[0], 'To'));
  // A CANCEL for some other transaction: 481.
  ws.deliver(msg(['CANCEL sip:1001@f00d.invalid SIP/2.0', 'Via: SIP/2.0/WS 10.0.0.1:5060;branch=z9hG4bKnope',
    'From: <sip:13800138000@hotline.example>;tag=from1', 'To: <sip:1001@hotline.example>', 'Call-ID: call-1@10.0.0.1', 'CSeq: 42 CANCEL', 'Content-Length: 0']));
  assert.equal(ws.messages()[1].status, 481);
  ws.deliver(msg(['CANCEL sip:1001@f00d.invalid;transport=ws SIP/2.0', 'Via: SIP/2.0/WS 10.0.0.1:5060;branch=z9hG4bKtop',
    'From: "客户" <sip:13800138000@hotline.example>;tag=from1', 'To: <sip:1001@hotline.example>', 'Call-ID: call-1@10.0.0.1', 'CSeq: 42 CANCEL', 'Content-Length: 0']));
  const [, , cancelOk, terminated] = ws.messages();
  assert.equal(cancelOk.status, 200);
  assert.equal(header(cancelOk, 'CSeq'), '42 CANCEL');
  assert.equal(terminated.status, 487);
  assert.equal(header(terminated, 'CSeq'), '42 INVITE');
  assert.equal(tagOf(header(terminated, 'To')), toTag);
  assert.deepEqual(events.find(([k]) => k === 'ended')[1], { cause: 'cancelled', status: 487, callId: 'call-1@10.0.0.1', hotlineCall: 'C-000123' });
  assert.equal(phone.call, null);
  // Free again: the next INVITE rings.
  ws.deliver(invite().replaceAll('call-1@', 'call-3@').replace('z9hG4bKtop', 'z9hG4bKtop3'));
  assert.equal(ws.messages()[4].status, 180);
  await stopPhone(phone, ws);
});

test('UA: reject(603) and hangup() before answer (486); BYE outside a dialog gets 481', async (t) => {
  const events = [];
  const { phone, ws } = await registeredPhone(t, events);
  ws.deliver(invite());
  assert.ok(phone.reject(603));
  assert.equal(ws.messages()[1].status, 603);
  assert.equal(ws.messages()[1].reason, 'Decline');
  assert.deepEqual(events.find(([k]) => k === 'ended')[1], { cause: 'rejected', status: 603, callId: 'call-1@10.0.0.1', hotlineCall: 'C-000123' });
  assert.ok(!phone.reject());

  ws.deliver(invite().replaceAll('call-1@', 'call-4@').replace('z9hG4bKtop', 'z9hG4bKtop4'));
  phone.hangup();
  assert.equal(ws.messages()[3].status, 486);

  ws.deliver(msg(['BYE sip:1001@f00d.invalid SIP/2.0', 'Via: SIP/2.0/WS 10.0.0.1;branch=z9hG4bKb', 'From: <sip:x@h>;tag=a',
    'To: <sip:1001@h>;tag=b', 'Call-ID: gone', 'CSeq: 2 BYE', 'Content-Length: 0']));
  assert.equal(ws.messages()[4].status, 481);
  // An INVITE without SDP cannot be answered.
  ws.deliver(invite({ body: '' }).replace('c: application/sdp\r\n', ''));
  assert.equal(ws.messages()[5].status, 488);
  await stopPhone(phone, ws);
});

// ---------------------------------------------------------------- answered calls (WebRTC stand-ins)

/** Just enough of getUserMedia and RTCPeerConnection for answer(): the SIP side is what is tested here. */
function fakeWebRtc(t, { dtmf = true } = {}) {
  const made = { pcs: [], tracks: [] };
  const track = () => {
    const tr = { kind: 'audio', enabled: true, stopped: false, stop() { this.stopped = true; } };
    made.tracks.push(tr);
    return tr;
  };
  const stream = () => {
    const tracks = [track()];
    return { getAudioTracks: () => tracks, getTracks: () => tracks };
  };
  class FakePeerConnection extends EventTarget {
    constructor(config) {
      super();
      this.config = config;
      this.iceGatheringState = 'new';
      this.closed = false;
      this.tones = [];
      made.pcs.push(this);
    }
    async setRemoteDescription(d) { this.remoteDescription = d; }
    addTrack(tr) {
      const pc = this;
      this.sender = {
        track: tr,
        dtmf: dtmf ? { canInsertDTMF: true, toneBuffer: '', insertDTMF(tones, duration, gap) { pc.tones.push([tones, duration, gap]); } } : null,
        async replaceTrack(next) { this.track = next; },
      };
      return this.sender;
    }
    async createAnswer() { return { type: 'answer', sdp: 'v=0\r\ns=答\r\na=fingerprint:sha-256 AA\r\n' }; }
    async setLocalDescription(d) {
      this.localDescription = { ...d, sdp: `${d.sdp}a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n` };
      setTimeout(() => { this.iceGatheringState = 'complete'; this.dispatchEvent(new Event('icegatheringstatechange')); }, 10);
    }
    close() { this.closed = true; }
  }
  const saved = { navigator: Object.getOwnPropertyDescriptor(globalThis, 'navigator'), pc: globalThis.RTCPeerConnection };
  Object.defineProperty(globalThis, 'navigator', { configurable: true, value: { mediaDevices: { getUserMedia: async (c) => { made.constraints = c; return stream(); } } } });
  globalThis.RTCPeerConnection = FakePeerConnection;
  t.after(() => {
    if (saved.navigator) Object.defineProperty(globalThis, 'navigator', saved.navigator);
    else delete globalThis.navigator;
    globalThis.RTCPeerConnection = saved.pc;
  });
  return made;
}

/** Answer the test INVITE on a registered phone; returns the 200 and the socket. */
async function answeredCall(t, events, opts) {
  const made = fakeWebRtc(t, opts);
  const { phone, ws } = await registeredPhone(t, events);
  ws.deliver(invite());
  const answering = phone.answer({ deviceId: 'mic-2' });
  for (let i = 0; i < 10; i++) await flush();
  mock.timers.tick(10); // ICE gathering "completes"
  await answering;
  const ok = ws.messages().find((m) => m.status === 200);
  return { phone, ws, ok, made };
}

const ack = (ok) => msg(['ACK sip:1001@f00d.invalid;transport=ws SIP/2.0', 'Via: SIP/2.0/WS 10.0.0.1:5060;branch=z9hG4bKack',
  `From: ${header(ok, 'From')}`, `To: ${header(ok, 'To')}`, 'Call-ID: call-1@10.0.0.1', 'CSeq: 42 ACK', 'Content-Length: 0']);

const inDialogRequest = (ok, method, seq, extra = []) => msg([`${method} sip:1001@f00d.invalid;transport=ws SIP/2.0`,
  `Via: SIP/2.0/WS 10.0.0.1:5060;branch=z9hG4bK${method}${seq}`, `From: ${header(ok, 'From')}`, `To: ${header(ok, 'To')}`,
  'Call-ID: call-1@10.0.0.1', `CSeq: ${seq} ${method}`, ...extra, 'Content-Length: 0']);

test('UA: answer → 200 OK with the SDP answer, repeated (T1 doubling) until the ACK', async (t) => {
  const events = [];
  const { phone, ws, ok, made } = await answeredCall(t, events);
  assert.deepEqual(made.constraints, { audio: { deviceId: { exact: 'mic-2' } }, video: false });
  assert.deepEqual(made.pcs[0].config, { iceServers: [] });
  assert.equal(made.pcs[0].remoteDescription.sdp, SDP);
  const ringing = ws.messages()[0];
  assert.equal(tagOf(header(ok, 'To')), tagOf(header(ringing, 'To')));
  assert.equal(header(ok, 'Content-Type'), 'application/sdp');
  assert.match(header(ok, 'Contact'), /transport=ws>$/);
  assert.match(ok.body, /a=candidate:/);
  assert.equal(Number(header(ok, 'Content-Length')), Buffer.byteLength(ok.body));
  assert.equal(headerAll(ok, 'Record-Route').length, 2);
  assert.deepEqual(events.find(([k]) => k === 'connected')[1], { callId: 'call-1@10.0.0.1', hotlineCall: 'C-000123' });
  assert.equal(phone.call.state, 'connected');
  const oks = () => ws.messages().filter((m) => m.status === 200 && header(m, 'CSeq') === '42 INVITE').length;
  mock.timers.tick(500);
  assert.equal(oks(), 2);
  mock.timers.tick(1000);
  assert.equal(oks(), 3);
  ws.deliver(ack(ok));
  mock.timers.tick(10_000);
  assert.equal(oks(), 3, 'quiet after the ACK');

  // In the dialog: INFO and NOTIFY 200, re-INVITE 488, UPDATE 501; OPTIONS 200.
  ws.deliver(inDialogRequest(ok, 'INFO', 43));
  ws.deliver(inDialogRequest(ok, 'NOTIFY', 44));
  ws.deliver(inDialogRequest(ok, 'INVITE', 45));
  ws.deliver(inDialogRequest(ok, 'UPDATE', 46));
  ws.deliver(inDialogRequest(ok, 'OPTIONS', 47));
  const answers = ws.messages().slice(-5).map((m) => `${m.status} ${header(m, 'CSeq')}`);
  assert.deepEqual(answers, ['200 43 INFO', '200 44 NOTIFY', '488 45 INVITE', '501 46 UPDATE', '200 47 OPTIONS']);

  // DTMF through the sender, appended to what is still queued.
  assert.ok(phone.sendDtmf('1'));
  assert.deepEqual(made.pcs[0].tones, [['1', 100, 70]]);
  // Mute silences the track; the next microphone replaces it and stays muted.
  phone.setMuted(true);
  assert.equal(made.tracks[0].enabled, false);
  await phone.selectMicrophone('mic-3');
  assert.equal(made.pcs[0].sender.track, made.tracks[1]);
  assert.equal(made.tracks[1].enabled, false);
  assert.ok(made.tracks[0].stopped);

  // Their BYE: 200, media closed, ended remote_bye.
  ws.deliver(inDialogRequest(ok, 'BYE', 48));
  const byeOk = ws.messages().at(-1);
  assert.equal(`${byeOk.status} ${header(byeOk, 'CSeq')}`, '200 48 BYE');
  assert.ok(made.pcs[0].closed);
  assert.ok(made.tracks[1].stopped);
  assert.deepEqual(events.find(([k]) => k === 'ended')[1], { cause: 'remote_bye', callId: 'call-1@10.0.0.1', hotlineCall: 'C-000123' });
  assert.equal(phone.call, null);
  assert.equal(phone.muted, false, 'mute does not outlive the call');
  await stopPhone(phone, ws);
});

test('UA: hangup() sends BYE in the dialog above every CSeq seen', async (t) => {
  const events = [];
  const { phone, ws, ok } = await answeredCall(t, events);
  ws.deliver(ack(ok));
  ws.deliver(inDialogRequest(ok, 'INFO', 60));
  phone.hangup();
  await flush();
  const bye = ws.messages().at(-1);
  assert.equal(bye.method, 'BYE');
  assert.equal(bye.uri, 'sip:hotline@10.0.0.1:5060;transport=ws');
  assert.equal(header(bye, 'From'), header(ok, 'To'));
  assert.equal(header(bye, 'To'), header(ok, 'From'));
  assert.equal(header(bye, 'Call-ID'), 'call-1@10.0.0.1');
  assert.deepEqual(parseCSeq(header(bye, 'CSeq')), { seq: 61, method: 'BYE' });
  assert.deepEqual(headerAll(bye, 'Route'), ['<sip:10.0.0.1;lr>', '<sip:10.0.0.2;lr>']);
  assert.equal(parseVia(header(bye, 'Via')).transport, 'WS');
  assert.equal(events.find(([k]) => k === 'ended')[1].cause, 'local_bye');
  ws.deliver(respond(bye, 200, 'OK'));
  await stopPhone(phone, ws);
});

test('UA: no ACK within 32 s ends the call with a BYE; DTMF falls back to SIP INFO', async (t) => {
  const events = [];
  const { phone, ws } = await answeredCall(t, events, { dtmf: false });
  assert.ok(phone.sendDtmf('5'));
  await flush();
  const info = ws.messages().at(-1);
  assert.equal(info.method, 'INFO');
  assert.equal(header(info, 'Content-Type'), 'application/dtmf-relay');
  assert.equal(info.body, 'Signal=5\r\nDuration=160\r\n');
  ws.deliver(respond(info, 200, 'OK'));
  mock.timers.tick(31_000);
  assert.equal(phone.call.state, 'connected');
  mock.timers.tick(4_000);
  await flush();
  assert.equal(ws.messages().at(-1).method, 'BYE');
  assert.deepEqual(events.find(([k]) => k === 'ended')[1], { cause: 'failed', callId: 'call-1@10.0.0.1', hotlineCall: 'C-000123' });
  await stopPhone(phone, ws);
});

test('UA: a refused microphone → mic_error, the call keeps ringing', async (t) => {
  fakeWebRtc(t);
  const events = [];
  const { phone, ws } = await registeredPhone(t, events);
  globalThis.navigator.mediaDevices.getUserMedia = async () => {
    throw Object.assign(new Error('Permission denied'), { name: 'NotAllowedError' });
  };
  ws.deliver(invite());
  await assert.rejects(phone.answer(), { name: 'NotAllowedError' });
  assert.deepEqual(events.find(([k]) => k === 'mic_error')[1], { name: 'NotAllowedError', message: 'Permission denied' });
  assert.equal(phone.call.state, 'ringing');
  assert.ok(phone.reject());
  await stopPhone(phone, ws);
});
