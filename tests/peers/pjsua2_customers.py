#!/usr/bin/env python3
"""pjsua2 as the far side of an outbound trunk: every customer phone the
callback dialer calls (INVITE sip:PHONE@127.0.0.1:PORT) is played here, each
number following its own script, call after call.

--plan is JSON: {"PHONE": ["ACTION", ...], ...}; the n-th call to PHONE does
the n-th action (the last one repeats). Actions:
  answer:KEYS         answer, then press KEYS one by one (RFC 4733), starting
                      2 s after media is up, 1.3 s apart; hang up 2 s after
                      the last key unless hotline hung up first
  answer:KEYS:stay    the same, but stay on the line until hotline hangs up
  ring:SECS:KEYS      180 Ringing for SECS seconds, then as answer:KEYS
  reject:CODE         final response CODE (486 busy, 404 not found, 603 ...)

Prints one JSON object per line on stdout (t: seconds since start):
  {"event": "started", "local": "127.0.0.1:PORT"}
  {"event": "incoming", "phone": P, "n": N, "action": A, "call_id": SIP-CALL-ID}
  {"event": "answered", "phone": P, "n": N}
  {"event": "dtmf_sent", "phone": P, "n": N, "digit": D}
  {"event": "disconnected", "phone": P, "n": N, "code": C, "reason": R}
Runs until --limit seconds pass (or it is killed).

Settings from PEERS.md: null audio device, 8 kHz, G.711 only, 127.0.0.1 for
SIP and media, threadCnt = 0, mainThreadOnly, a libHandleEvents loop.

With --record-dir DIR, what each answered call hears is recorded to
DIR/PHONE-N.wav (closed when the call ends). With --play WAV, every
answered call sends that file (looped) as the customer's voice.

Usage: pjsua2_customers.py --port PORT --plan JSON [--limit 170] [--record-dir DIR] [--play WAV]
"""

import argparse
import gc
import json
import re
import sys
import time

import pjsua2 as pj

T0 = time.monotonic()


def emit(**fields):
    fields["t"] = round(time.monotonic() - T0, 3)
    print(json.dumps(fields), flush=True)


class Account(pj.Account):
    def __init__(self, plan, record_dir, play=None):
        super().__init__()
        self.plan = plan
        self.record_dir = record_dir
        self.play = play
        self.counts = {}
        self.calls = []
        self.ended = []

    def onIncomingCall(self, prm):
        raw = prm.rdata.wholeMsg
        m = re.match(r"INVITE sip:([^@;>]+)@", raw)
        phone = m.group(1) if m else "?"
        n = self.counts.get(phone, 0) + 1
        self.counts[phone] = n
        actions = self.plan.get(phone) or ["reject:404"]
        action = actions[min(n, len(actions)) - 1]
        cid = None
        for line in raw.splitlines():
            if line.lower().startswith("call-id:"):
                cid = line.split(":", 1)[1].strip()
        emit(event="incoming", phone=phone, n=n, action=action, call_id=cid)
        call = Call(self, prm.callId, phone, n, action)
        if self.record_dir:
            call.record_path = f"{self.record_dir}/{phone}-{n}.wav"
        call.play_path = self.play
        self.calls.append(call)


class Call(pj.Call):
    def __init__(self, acc, call_id, phone, n, action):
        super().__init__(acc, call_id)
        self.phone = phone
        self.n = n
        self.action = action
        self.started = time.monotonic()
        self.state = "new"
        self.media_at = None
        self.keys = ""
        self.next_key_at = None
        self.hangup_at = None
        self.disconnected = False
        self.record_path = None
        self.recorder = None
        self.play_path = None
        self.player = None
        parts = action.split(":")
        self.stay = parts[-1] == "stay"
        self.kind = parts[0]
        if self.kind == "answer":
            self.ring_secs = 0.0
            self.keys = parts[1] if len(parts) > 1 else ""
        elif self.kind == "ring":
            self.ring_secs = float(parts[1])
            self.keys = parts[2] if len(parts) > 2 else ""
        else:
            self.ring_secs = 0.0

    def onCallState(self, prm):
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            emit(event="disconnected", phone=self.phone, n=self.n,
                 code=ci.lastStatusCode, reason=ci.lastReason)

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.media_at is None:
                    self.media_at = time.monotonic()
                    self.next_key_at = self.media_at + 2.0
                    # What the customer hears goes to the (null) speaker,
                    # which keeps the bridge running for this call.
                    am = self.getAudioMedia(i)
                    am.startTransmit(
                        pj.Endpoint.instance().audDevManager().getPlaybackDevMedia())
                    if self.play_path:
                        self.player = pj.AudioMediaPlayer()
                        self.player.createPlayer(self.play_path)
                        self.player.startTransmit(am)
                    if self.record_path:
                        self.recorder = pj.AudioMediaRecorder()
                        self.recorder.createRecorder(self.record_path)
                        am.startTransmit(self.recorder)
                    try:
                        si = self.getStreamInfo(i)
                        emit(event="media_active", phone=self.phone, n=self.n,
                             codec=si.codecName, remote=si.remoteRtpAddress)
                    except pj.Error:
                        pass

    def step(self):
        """Advance this call's script; called from the main loop."""
        now = time.monotonic()
        if self.disconnected:
            return
        if self.state == "new":
            if self.kind == "reject":
                code = int(self.action.split(":")[1])
                prm = pj.CallOpParam()
                prm.statusCode = code
                self.hangup(prm)
                self.state = "rejected"
                return
            prm = pj.CallOpParam()
            prm.statusCode = 180
            self.answer(prm)
            self.state = "ringing"
        if self.state == "ringing" and now - self.started >= self.ring_secs:
            prm = pj.CallOpParam()
            prm.statusCode = 200
            self.answer(prm)
            self.state = "answered"
            emit(event="answered", phone=self.phone, n=self.n)
        if self.state == "answered" and self.media_at is not None:
            if self.keys and now >= self.next_key_at:
                d, self.keys = self.keys[0], self.keys[1:]
                p = pj.CallSendDtmfParam()
                p.digits = d
                p.method = pj.PJSUA_DTMF_METHOD_RFC2833
                try:
                    self.sendDtmf(p)
                    emit(event="dtmf_sent", phone=self.phone, n=self.n, digit=d)
                except pj.Error as e:
                    emit(event="dtmf_failed", phone=self.phone, n=self.n, why=e.info())
                self.next_key_at = now + 1.3
                if not self.keys and not self.stay:
                    self.hangup_at = now + 2.0
            if self.hangup_at is not None and now >= self.hangup_at:
                self.hangup_at = None
                try:
                    self.hangup(pj.CallOpParam(True))
                except pj.Error:
                    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--limit", type=float, default=170.0)
    ap.add_argument("--record-dir", default=None)
    ap.add_argument("--play", default=None)
    ap.add_argument("--log-level", type=int, default=0)
    args = ap.parse_args()
    plan = json.loads(args.plan)

    ep = pj.Endpoint()
    ep.libCreate()
    acc = None
    try:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 32
        cfg.uaConfig.userAgent = "pjsua2-hotline-customers"
        cfg.logConfig.level = args.log_level
        cfg.logConfig.consoleLevel = args.log_level
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        # The (null) sound device clocks the conference bridge, and with it
        # every call's RTP and RFC 4733 keys; by default it closes 1 s after
        # the last call and calls made later would send nothing.
        cfg.medConfig.sndAutoCloseTime = -1
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = args.port
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        for c in ep.codecEnum2():
            name = c.codecId.split("/")[0].upper()
            ep.codecSetPriority(c.codecId, 255 if name == "PCMA" else 200 if name == "PCMU" else 0)

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:customers@127.0.0.1:{args.port}"
        acfg.sipConfig.transportId = tid
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        acc = Account(plan, args.record_dir, args.play)
        acc.create(acfg, True)
        emit(event="started", local=ep.transportGetInfo(tid).localName)

        deadline = T0 + args.limit
        while time.monotonic() < deadline:
            ep.libHandleEvents(10)
            for call in list(acc.calls):
                if call in acc.ended:
                    continue
                try:
                    call.step()
                except pj.Error as e:
                    emit(event="call_error", phone=call.phone, n=call.n, why=e.info())
                    call.disconnected = True
                if call.disconnected and call not in acc.ended:
                    if call.recorder is not None:
                        # Destroying the recorder writes the WAV header.
                        call.recorder = None
                        emit(event="recorded", phone=call.phone, n=call.n, path=call.record_path)
                    call.player = None
                    # Kept until the end: deleting a pjsua2 Call while the
                    # library still holds its media can disturb later calls.
                    acc.ended.append(call)
            call = None  # no pjsua2 object may outlive libDestroy()
        return 0
    except pj.Error as e:
        emit(event="failed", why=f"pjsua2 error: {e.info()}")
        return 1
    finally:
        if acc is not None:
            acc.calls = []
            acc.ended = []
            try:
                acc.shutdown()
            except pj.Error:
                pass
        acc = None
        gc.collect()
        ep.libDestroy()
        del ep


if __name__ == "__main__":
    sys.exit(main())
