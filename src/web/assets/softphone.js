// Browser softphone: a small SIP user agent over WebSocket (RFC 7118) with
// WebRTC audio, for agents who take calls in the desk page. It only ever
// answers: hotline INVITEs the browser's registered flow with a complete
// WebRTC offer (full ICE, every candidate inside, DTLS fingerprint, G.711 +
// telephone-event/8000); we answer with our complete SDP once ICE gathering
// is done (no trickle). The pure SIP pieces (parser, digest, dialog) live in
// sip.js.
//
//   const phone = new Softphone({ url: 'wss://host/sip', user: '1001', password, domain: 'host' });
//   phone.addEventListener('incoming', (e) => ...e.detail.caller...);
//   await phone.start();                 // resolves once registered
//   await phone.answer({ deviceId });    // or phone.reject(486 | 603)
//   phone.sendDtmf('1'); phone.setMuted(true); await phone.selectMicrophone(id);
//   phone.hangup(); await phone.stop();
//
// Events (CustomEvent, payload in `detail`):
//   connection          {state: 'connecting'|'open'|'closed'}   the WebSocket
//   registered          {expires}                                 seconds granted
//   unregistered        {}
//   registration_failed {status, reason, final}   final (401/403/404/407): no retry,
//                                          the server's brute-force guard counts them;
//                                          otherwise it tries again by itself
//   incoming            {callId, caller, display, hotlineCall, customer}
//   connected           {callId, hotlineCall}                     our 200 OK went out
//   ended               {cause: 'remote_bye'|'local_bye'|'cancelled'|'rejected'|'failed', status?, callId, hotlineCall}
//   mic_error           {name, message}    e.g. NotAllowedError: the microphone is blocked
//
// One call at a time: a second INVITE meanwhile gets 486 Busy Here.

import {
  buildRequest, buildResponse, cancels, dialogRequest, digestAuthorization, header, headerAll,
  inDialog, parseCSeq, parseMessage, parseNameAddr, parseUri, parseVia, pickChallenge, randomHex,
  serialize, tagOf, uasDialog,
} from './sip.js';

const T1 = 500;                    // RFC 3261 timer values (ms)
const T2 = 4000;
const TRANSACTION_TIMEOUT = 64 * T1; // Timer F / H: no answer (or no ACK) in 32 s
const ICE_GATHERING_MAX = 3000;
const KEEPALIVE_MS = 25000;        // double-CRLF ping (RFC 5626 §4.4.1): keeps idle proxies from closing us
const RECONNECT_MAX_MS = 30000;
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY';
const USER_AGENT = 'hotline-desk';
// Final registration failures: retrying would only feed the brute-force guard.
const FINAL_REGISTER_FAILURES = new Set([401, 403, 404, 407]);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A response we make up ourselves when the network gives none. */
const localResponse = (status, reason) => ({ status, reason, headers: [], body: '', local: true });

function stopTracks(stream) {
  for (const t of stream?.getTracks() || []) t.stop();
}

/** The microphone, or a named error (no mediaDevices outside secure contexts). */
function openMicrophone(deviceId) {
  const md = globalThis.navigator?.mediaDevices;
  if (!md?.getUserMedia) {
    const e = new Error('this page cannot use a microphone (it needs https or localhost)');
    e.name = 'NotSupportedError';
    return Promise.reject(e);
  }
  return md.getUserMedia({ audio: deviceId ? { deviceId: { exact: deviceId } } : true, video: false });
}

/** Resolves when ICE gathering completes or after `ms`, whichever first. */
function iceGatheringDone(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('icecandidate', last);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const last = (e) => { if (!e.candidate) done(); };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', last);
  });
}

/** A SIP URI user part: agent ids are plain, but escape anything else. */
const uriUser = (u) => String(u).replace(/[^A-Za-z0-9\-_.!~*'()&=+$,;?/]/g, (c) => encodeURIComponent(c));

export class Softphone extends EventTarget {
  #password;
  #socketClass;
  #secure;
  #hostname;
  #contact;
  #stopped = true;
  #connectionState = 'closed';
  #isRegistered = false;
  #ws = null;
  #reconnectDelay = 1000;
  #timers = { reconnect: 0, refresh: 0, keepalive: 0 };
  #pending = new Map();     // top Via branch of our request → {settle, method}
  #reg;                     // the registration: {callId, fromTag, cseq, auth}
  #startWaiter = null;
  #current = null;          // the one call (see #onInvite)
  #deviceId = undefined;
  #isMuted = false;
  /**
   * url: ws(s)://host/sip; user + password: the SIP (desk login) credentials;
   * domain: the registrar's domain (the page's hostname). Optional: displayName,
   * audio (an <audio> element for the remote voice; made when missing),
   * expires (REGISTER, seconds), WebSocket (a replacement class, for tests).
   */
  constructor({ url, user, password, domain, displayName, audio, expires = 300, WebSocket: socketClass } = {}) {
    super();
    if (!url || !user || !domain) throw new TypeError('Softphone needs url, user and domain');
    this.url = url;
    this.user = String(user);
    this.#password = password ?? '';
    this.domain = domain;
    this.displayName = displayName;
    this.audio = audio ?? null;
    this.expires = expires;
    /** The remote party's audio while in a call, else null. */
    this.remoteStream = null;
    this.#socketClass = socketClass ?? globalThis.WebSocket;
    this.#secure = /^wss:/i.test(url);
    // RFC 7118 §5: a browser has no address the server could reach, so our
    // Via and Contact name a random host under .invalid; the server answers
    // and calls us on the WebSocket connection itself.
    this.#hostname = `${randomHex(6)}.invalid`;
    this.#contact = `<sip:${uriUser(this.user)}@${this.#hostname};transport=ws>`;
    this.#reg = { callId: `${randomHex(12)}@${this.#hostname}`, fromTag: randomHex(6), cseq: 0, auth: { current: null } };
  }

  // ------------------------------------------------------------ public API

  /** Connect and register; resolves once registered, rejects on a final failure or stop(). */
  start() {
    if (!this.#stopped) return this.#startWaiter?.promise ?? Promise.resolve();
    this.#stopped = false;
    const waiter = {};
    waiter.promise = new Promise((resolve, reject) => { waiter.resolve = resolve; waiter.reject = reject; });
    this.#startWaiter = waiter;
    this.#connect();
    return waiter.promise;
  }

  /** Unregister (Expires: 0, best effort for 2 s) and close; no reconnect. */
  async stop() {
    if (this.#stopped && !this.#ws) return;
    this.#stopped = true;
    for (const k of Object.keys(this.#timers)) { clearTimeout(this.#timers[k]); clearInterval(this.#timers[k]); }
    if (this.#current) this.hangup();
    const ws = this.#ws;
    if (this.#isRegistered && ws?.readyState === 1) {
      await Promise.race([this.#register(0), sleep(2000)]);
    }
    this.#settleStart(new Error('stopped'));
    this.#ws = null;
    try { ws?.close(1000); } catch { /* already closed */ }
    this.#failPending();
    this.#setRegistered(false);
    this.#setConnection('closed');
  }

  /** The call in progress (a copy), or null. state: 'ringing'|'answering'|'connected'. */
  get call() {
    const c = this.#current;
    return c ? { ...c.info, state: c.state } : null;
  }

  /** True while the registrar holds our binding. */
  get registered() {
    return this.#isRegistered;
  }

  /** The WebSocket: 'connecting' | 'open' | 'closed'. */
  get connection() {
    return this.#connectionState;
  }

  get muted() {
    return this.#isMuted;
  }

  /** The call's RTCPeerConnection once answering (for getStats in tests and diagnostics), else null. */
  get peerConnection() {
    return this.#current?.pc ?? null;
  }

  /**
   * Answer the ringing call: microphone, RTCPeerConnection, the offer from
   * the INVITE, our answer after ICE gathering (3 s at most), 200 OK.
   * A refused microphone emits mic_error, throws, and leaves the call ringing.
   */
  async answer({ deviceId } = {}) {
    const call = this.#current;
    if (!call || call.state !== 'ringing') throw new Error('no ringing call to answer');
    call.state = 'answering';
    if (deviceId !== undefined) this.#deviceId = deviceId || undefined;
    let stream;
    try {
      stream = await openMicrophone(this.#deviceId);
    } catch (e) {
      if (call.state === 'answering') call.state = 'ringing';
      this.#emit('mic_error', { name: e.name || 'Error', message: e.message || String(e) });
      throw e;
    }
    if (call.state !== 'answering') { stopTracks(stream); return; } // cancelled meanwhile
    call.stream = stream;
    const pc = new RTCPeerConnection({ iceServers: [] });
    call.pc = pc;
    pc.addEventListener('track', (e) => this.#playRemote(e));
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && this.#current === call && call.state === 'connected') this.#hangUpConnected('failed');
    });
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: call.invite.body });
      const track = stream.getAudioTracks()[0];
      track.enabled = !this.#isMuted;
      call.sender = pc.addTrack(track, stream);
      await pc.setLocalDescription(await pc.createAnswer());
      await iceGatheringDone(pc, ICE_GATHERING_MAX);
    } catch (e) {
      if (call.state === 'ended') return; // cancelled or hung up meanwhile: closing pc made this fail
      this.#respondInvite(call, 488);
      this.#endCall(call, 'failed', 488);
      throw e;
    }
    if (call.state !== 'answering') return; // cancelled while gathering: already cleaned up
    call.dialog = uasDialog(call.invite, call.toTag);
    call.state = 'connected';
    this.#respondInvite(call, 200, { body: pc.localDescription.sdp, contentType: 'application/sdp' });
    this.#retransmitOk(call);
    this.#emit('connected', { callId: call.info.callId, hotlineCall: call.info.hotlineCall });
  }

  /** Refuse the ringing call: 486 Busy Here or 603 Decline. False when nothing rings. */
  reject(status = 486) {
    const call = this.#current;
    if (!call || (call.state !== 'ringing' && call.state !== 'answering')) return false;
    this.#respondInvite(call, status >= 400 && status < 700 ? status : 486);
    this.#endCall(call, 'rejected', status);
    return true;
  }

  /** End the call: BYE once answered (we close at once), 486 while it rings. */
  hangup() {
    const call = this.#current;
    if (!call) return;
    if (call.state === 'connected') this.#hangUpConnected('local_bye');
    else this.reject(486);
  }

  /** Send DTMF in the media (RFC 4733); SIP INFO when the peer took no telephone-event. */
  sendDtmf(digits) {
    const call = this.#current;
    const keys = String(digits).toUpperCase().replace(/[^0-9A-D#*,]/g, '');
    if (!call || call.state !== 'connected' || !keys) return false;
    const dtmf = call.sender?.dtmf;
    if (dtmf?.canInsertDTMF) {
      // insertDTMF replaces the queue: keep the keys not yet played.
      dtmf.insertDTMF(dtmf.toneBuffer + keys, 100, 70);
      return true;
    }
    for (const key of keys.replace(/,/g, '')) {
      this.#request(() => dialogRequest(call.dialog, 'INFO', {
        via: this.#via(), body: `Signal=${key}\r\nDuration=160\r\n`, contentType: 'application/dtmf-relay',
        headers: [['User-Agent', USER_AGENT]],
      })).catch(() => {});
    }
    return true;
  }

  /** Mute or unmute our microphone (the track stays, only silenced). */
  setMuted(muted) {
    this.#isMuted = Boolean(muted);
    for (const t of this.#current?.stream?.getAudioTracks() || []) t.enabled = !this.#isMuted;
    return this.#isMuted;
  }

  /** Use this microphone now (replaceTrack in a call) and for the next calls. */
  async selectMicrophone(deviceId) {
    this.#deviceId = deviceId || undefined;
    const call = this.#current;
    if (!call?.sender || !call.stream) return;
    let stream;
    try {
      stream = await openMicrophone(this.#deviceId);
    } catch (e) {
      this.#emit('mic_error', { name: e.name || 'Error', message: e.message || String(e) });
      throw e;
    }
    if (this.#current !== call || call.state === 'ended') { stopTracks(stream); return; }
    const track = stream.getAudioTracks()[0];
    track.enabled = !this.#isMuted;
    await call.sender.replaceTrack(track);
    stopTracks(call.stream);
    call.stream = stream;
  }

  /** The audio inputs (labels are empty until the page was allowed a microphone). */
  static async microphones() {
    const md = globalThis.navigator?.mediaDevices;
    if (!md?.enumerateDevices) return [];
    return (await md.enumerateDevices()).filter((d) => d.kind === 'audioinput');
  }

  // ------------------------------------------------------------ WebSocket

  #connect() {
    clearTimeout(this.#timers.reconnect);
    this.#setConnection('connecting');
    let ws;
    try {
      ws = new this.#socketClass(this.url, 'sip');
    } catch (e) {
      this.#setConnection('closed');
      this.#scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    ws.onopen = () => {
      if (this.#ws !== ws) return;
      this.#reconnectDelay = 1000;
      this.#setConnection('open');
      clearInterval(this.#timers.keepalive);
      this.#timers.keepalive = setInterval(() => { if (ws.readyState === 1) ws.send('\r\n\r\n'); }, KEEPALIVE_MS);
      this.#registerAndRefresh();
    };
    ws.onmessage = (e) => { if (this.#ws === ws) this.#onFrame(e.data); };
    ws.onerror = () => { /* onclose follows */ };
    ws.onclose = () => { if (this.#ws === ws) this.#onSocketClosed(); };
  }

  #onSocketClosed() {
    this.#ws = null;
    clearInterval(this.#timers.keepalive);
    clearTimeout(this.#timers.refresh);
    this.#failPending();
    this.#setRegistered(false);
    this.#setConnection('closed');
    // A call keeps its media (ICE is its own path); its BYE goes out on the next connection.
    if (!this.#stopped) this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    clearTimeout(this.#timers.reconnect);
    // Jitter, so a restarted server is not hit by every desk at once.
    const delay = this.#reconnectDelay * (0.75 + Math.random() / 2);
    this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, RECONNECT_MAX_MS);
    this.#timers.reconnect = setTimeout(() => { if (!this.#stopped) this.#connect(); }, delay);
  }

  #send(msg) {
    if (this.#ws?.readyState !== 1) return false;
    this.#ws.send(serialize(msg));
    return true;
  }

  #onFrame(data) {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
    if (text.trim() === '') return; // keep-alive answer
    let msg;
    try {
      msg = parseMessage(text);
    } catch (e) {
      console.warn('softphone: unparseable SIP message dropped:', e.message);
      return;
    }
    try {
      if (msg.status) this.#onResponse(msg);
      else this.#onRequest(msg);
    } catch (e) {
      // One odd message must not stop the phone; say what went wrong.
      console.warn('softphone: failed to handle', msg.method || msg.status, e);
    }
  }

  // ------------------------------------------------------------ our requests

  #via() {
    return `SIP/2.0/${this.#secure ? 'WSS' : 'WS'} ${this.#hostname};branch=z9hG4bK${randomHex(8)}`;
  }

  #aor() {
    const uri = `<sip:${uriUser(this.user)}@${this.domain}>`;
    return this.displayName ? `"${String(this.displayName).replace(/["\\]/g, '')}" ${uri}` : uri;
  }

  /** Send a request; resolves with its final response (408 after 32 s, 503 when the socket is gone). */
  #transact(msg) {
    const branch = parseVia(header(msg, 'Via')).params.branch;
    return new Promise((resolve) => {
      const settle = (res) => {
        clearTimeout(timer);
        this.#pending.delete(branch);
        resolve(res);
      };
      const timer = setTimeout(() => settle(localResponse(408, 'Request Timeout')), TRANSACTION_TIMEOUT);
      this.#pending.set(branch, { settle, method: msg.method });
      if (!this.#send(msg)) settle(localResponse(503, 'WebSocket closed'));
    });
  }

  #onResponse(res) {
    const entry = this.#pending.get(parseVia(header(res, 'Via')).params.branch);
    if (!entry || parseCSeq(header(res, 'CSeq')).method !== entry.method) return;
    if (res.status >= 200) entry.settle(res);
  }

  #failPending() {
    for (const { settle } of [...this.#pending.values()]) settle(localResponse(503, 'WebSocket closed'));
  }

  /**
   * Send what `build()` makes; answer a 401/407 digest challenge. `auth`
   * keeps the last challenge ({current}) so REGISTER refreshes reuse its
   * nonce with the next nc; credentials refused for a challenge we just
   * answered (and not stale) are final: the password is wrong.
   */
  async #request(build, auth = { current: null }) {
    let answeredFresh = false;
    for (let attempt = 0; ; attempt++) {
      const msg = build();
      if (auth.current) {
        const a = auth.current;
        a.nc += 1;
        msg.headers.push([a.headerName, await digestAuthorization(a.challenge, {
          username: this.user, password: this.#password, method: msg.method, uri: msg.uri, nc: a.nc,
        })]);
      }
      const res = await this.#transact(msg);
      if ((res.status !== 401 && res.status !== 407) || attempt >= 3) return res;
      const picked = pickChallenge(res);
      if (!picked) return res;
      const stale = /^true$/i.test(picked.challenge.params.stale || '');
      if (answeredFresh && !stale) return res;
      auth.current = { ...picked, nc: 0 };
      answeredFresh = true;
    }
  }

  #register(expires) {
    const r = this.#reg;
    return this.#request(() => buildRequest({
      method: 'REGISTER', uri: `sip:${this.domain}`, via: this.#via(),
      from: `${this.#aor()};tag=${r.fromTag}`, to: this.#aor(), callId: r.callId, cseq: ++r.cseq,
      headers: [['Contact', this.#contact], ['Expires', String(expires)], ['Allow', ALLOW], ['User-Agent', USER_AGENT]],
    }), r.auth);
  }

  /** REGISTER now; on success refresh at half the granted time. */
  async #registerAndRefresh() {
    clearTimeout(this.#timers.refresh);
    const ws = this.#ws;
    const res = await this.#register(this.expires);
    if (this.#stopped || this.#ws !== ws) return; // closed meanwhile: the next connection registers
    if (res.status === 423) {
      const min = Number(header(res, 'Min-Expires'));
      if (min > this.expires) {
        this.expires = min;
        this.#registerAndRefresh();
        return;
      }
    }
    if (res.status >= 200 && res.status < 300) {
      const granted = this.#grantedExpiry(res);
      this.#setRegistered(true, granted);
      this.#settleStart(null);
      this.#timers.refresh = setTimeout(() => this.#registerAndRefresh(), Math.max(5, granted / 2) * 1000);
      return;
    }
    this.#setRegistered(false);
    const final = FINAL_REGISTER_FAILURES.has(res.status);
    if (final) {
      // Wrong credentials: stop here (start() again, or a new Softphone with the right password).
      this.#stopped = true;
      this.#ws = null;
      clearInterval(this.#timers.keepalive);
      try { ws.close(1000); } catch { /* closed */ }
      this.#setConnection('closed');
    }
    this.#emit('registration_failed', { status: res.status, reason: res.reason || '', final });
    if (final) {
      this.#settleStart(Object.assign(new Error(`registration failed: ${res.status} ${res.reason || ''}`), { status: res.status }));
      return;
    }
    // Timeout or a server error: try again later on the same socket.
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, RECONNECT_MAX_MS);
    this.#timers.refresh = setTimeout(() => this.#registerAndRefresh(), delay);
  }

  /** Seconds granted: our Contact's expires in the 200, else Expires, else what we asked. */
  #grantedExpiry(res) {
    for (const c of headerAll(res, 'Contact')) {
      const na = parseNameAddr(c);
      if (parseUri(na.uri).host === this.#hostname && na.params.expires !== undefined) return Number(na.params.expires);
    }
    const e = header(res, 'Expires');
    return e !== undefined && /^\d+$/.test(e) ? Number(e) : this.expires;
  }

  // ------------------------------------------------------------ requests to us

  #reply(req, status, opts = {}) {
    this.#send(buildResponse(req, status, { toTag: randomHex(6), ...opts }));
  }

  #onRequest(req) {
    const call = this.#current;
    switch (req.method) {
      case 'INVITE':
        this.#onInvite(req);
        break;
      case 'ACK':
        // The ACK of our 200 ends its retransmissions; ACKs of error responses need nothing.
        if (call?.dialog && inDialog(req, call.dialog) && parseCSeq(header(req, 'CSeq')).seq === call.inviteSeq) {
          call.acked = true;
          clearTimeout(call.okTimer);
          clearTimeout(call.ackTimer);
        }
        break;
      case 'CANCEL':
        if (call && cancels(req, call.invite)) {
          this.#reply(req, 200, { toTag: call.toTag });
          // After our final response a CANCEL changes nothing (§9.2).
          if (call.state === 'ringing' || call.state === 'answering') {
            this.#respondInvite(call, 487);
            this.#endCall(call, 'cancelled', 487);
          }
        } else {
          this.#reply(req, 481);
        }
        break;
      case 'BYE':
        if (call?.dialog && inDialog(req, call.dialog)) {
          this.#noteRemoteSeq(call, req);
          this.#reply(req, 200);
          this.#endCall(call, 'remote_bye');
        } else {
          this.#reply(req, 481);
        }
        break;
      case 'OPTIONS':
        this.#reply(req, 200, { headers: [['Allow', ALLOW], ['Accept', 'application/sdp'], ['User-Agent', USER_AGENT]] });
        break;
      default:
        if (call?.dialog && inDialog(req, call.dialog)) {
          this.#noteRemoteSeq(call, req);
          this.#reply(req, req.method === 'INFO' || req.method === 'NOTIFY' ? 200 : 501);
        } else if (tagOf(header(req, 'To')) !== undefined) {
          this.#reply(req, 481);
        } else {
          this.#reply(req, 501, { headers: [['Allow', ALLOW]] });
        }
    }
  }

  #noteRemoteSeq(call, req) {
    const seq = parseCSeq(header(req, 'CSeq')).seq;
    if (seq > call.dialog.remoteSeq) call.dialog.remoteSeq = seq;
  }

  #onInvite(req) {
    const call = this.#current;
    if (tagOf(header(req, 'To')) !== undefined) {
      // A re-INVITE: we keep the media we agreed on.
      if (call?.dialog && inDialog(req, call.dialog)) {
        this.#noteRemoteSeq(call, req);
        this.#reply(req, 488, { headers: [['Warning', '399 hotline-desk "no renegotiation"']] });
      } else {
        this.#reply(req, 481);
      }
      return;
    }
    if (call) {
      // The same INVITE again (a retransmission): repeat our last answer.
      if (parseVia(header(req, 'Via')).params.branch === parseVia(header(call.invite, 'Via')).params.branch
        && header(req, 'Call-ID') === call.info.callId) {
        if (call.lastResponse) this.#send(call.lastResponse);
        return;
      }
      this.#reply(req, 486);
      return;
    }
    if (!req.body.trim() || !/^application\/sdp\b/i.test(header(req, 'Content-Type') || '')) {
      // The server always offers; without an offer there is nothing we could answer.
      this.#reply(req, 488, { headers: [['Warning', '399 hotline-desk "an SDP offer is required"']] });
      return;
    }
    const from = parseNameAddr(header(req, 'From'));
    const next = {
      invite: req,
      inviteSeq: parseCSeq(header(req, 'CSeq')).seq,
      toTag: randomHex(6),
      state: 'ringing',
      dialog: null,
      pc: null, stream: null, sender: null,
      lastResponse: null, okTimer: 0, ackTimer: 0, acked: false,
      info: {
        callId: header(req, 'Call-ID'),
        caller: parseUri(from.uri).user,
        display: from.display,
        hotlineCall: header(req, 'X-Hotline-Call'),
        customer: header(req, 'X-Hotline-Customer'),
      },
    };
    this.#current = next;
    this.#isMuted = false;
    this.#respondInvite(next, 180);
    this.#emit('incoming', { ...next.info });
  }

  /** A response to the call's INVITE, kept for a retransmitted INVITE. */
  #respondInvite(call, status, { body = '', contentType } = {}) {
    const headers = [['Contact', this.#contact]];
    if (status === 200) headers.push(['Allow', ALLOW], ['User-Agent', USER_AGENT]);
    const res = buildResponse(call.invite, status, { toTag: call.toTag, headers, body, contentType });
    call.lastResponse = res;
    this.#send(res);
  }

  /** RFC 3261 §13.3.1.4: repeat the 200 (T1 doubling to T2) until the ACK; none in 32 s ends the call. */
  #retransmitOk(call) {
    const waiting = () => this.#current === call && !call.acked && call.state === 'connected';
    let interval = T1;
    const repeat = () => {
      if (!waiting()) return;
      this.#send(call.lastResponse);
      interval = Math.min(interval * 2, T2);
      call.okTimer = setTimeout(repeat, interval);
    };
    call.okTimer = setTimeout(repeat, interval);
    call.ackTimer = setTimeout(() => { if (waiting()) this.#hangUpConnected('failed'); }, TRANSACTION_TIMEOUT);
  }

  #hangUpConnected(cause) {
    const call = this.#current;
    if (!call || call.state !== 'connected') return;
    // The BYE's answer does not matter to us: we are gone either way.
    this.#request(() => dialogRequest(call.dialog, 'BYE', { via: this.#via(), headers: [['User-Agent', USER_AGENT]] }))
      .catch(() => {});
    this.#endCall(call, cause);
  }

  #endCall(call, cause, status) {
    if (call.state === 'ended') return;
    call.state = 'ended';
    clearTimeout(call.okTimer);
    clearTimeout(call.ackTimer);
    try { call.pc?.close(); } catch { /* closed */ }
    stopTracks(call.stream);
    if (this.audio) this.audio.srcObject = null;
    this.remoteStream = null;
    if (this.#current === call) this.#current = null;
    this.#isMuted = false;
    const detail = { cause, callId: call.info.callId, hotlineCall: call.info.hotlineCall };
    if (status !== undefined) detail.status = status;
    this.#emit('ended', detail);
  }

  #playRemote(e) {
    this.remoteStream = e.streams[0] || new MediaStream([e.track]);
    if (!this.audio) {
      this.audio = document.createElement('audio');
      this.audio.autoplay = true;
    }
    this.audio.srcObject = this.remoteStream;
    this.audio.play?.().catch(() => { /* autoplay refused: the next user gesture plays it */ });
  }

  // ------------------------------------------------------------ state and events

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #setConnection(state) {
    if (this.#connectionState === state) return;
    this.#connectionState = state;
    this.#emit('connection', { state });
  }

  #setRegistered(registered, expires) {
    const was = this.#isRegistered;
    this.#isRegistered = registered;
    if (registered) this.#emit('registered', { expires });
    else if (was) this.#emit('unregistered', {});
  }

  #settleStart(error) {
    const w = this.#startWaiter;
    if (!w) return;
    this.#startWaiter = null;
    if (error) w.reject(error);
    else w.resolve();
  }
}
