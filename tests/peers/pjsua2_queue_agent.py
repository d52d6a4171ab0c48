#!/usr/bin/env python3
"""pjsua2 as a call-centre agent's softphone for the queue tests: register as
an agent, auto-answer the call hotline offers, play a WAV into it, record
what is heard, and stay until hotline (or the customer) ends the call.

Prints one JSON object per line on stdout (t: seconds since the script started):
  {"event": "started", "local": "127.0.0.1:PORT", "pjsip": "2.15.1", "t": ...}
  {"event": "registered", "code": 200, "t": ...}
  {"event": "incoming", "from": URI, "x_hotline_call": ID, "x_hotline_customer": ID|null, "t": ...}
  {"event": "media_active", "codec": "PCMA", "t": ...}   # recording and playing start here
  {"event": "xfer_sent", "to": URI, "t": ...}                 # with --xfer-to
  {"event": "refer_response", "code": 202, "reason": "Accepted", "t": ...}  # the REFER's final response
  {"event": "xfer_status", "code": 100, "reason": "Accepted", "final": false, "t": ...}  # pjsua's view
  {"event": "disconnected", "code": 200, "reason": "...", "t": ...}
  {"event": "done", "ok": true, "record": PATH, "calls": N}
or {"event": "failed", "why": "..."} and exit status 1.

Settings from PEERS.md: null audio device, 8 kHz clock, G.711 only, 127.0.0.1
for SIP and media, threadCnt = 0, mainThreadOnly, a libHandleEvents loop,
every pjsua2 object released before libDestroy().

Usage: pjsua2_queue_agent.py --server 127.0.0.1:5060 --user 1001 --password PW
       --play B.wav --record HEARD.wav [--calls 1] [--limit 60]
       [--xfer-to sip:1002@HOST:PORT ... --xfer-after 3]

--xfer-to (repeatable): blind transfer of the answered call by REFER
(call.xfer()), --xfer-after seconds after media started; each further
target is tried only after the previous REFER was refused (status >= 300).
"""

import argparse
import gc
import json
import sys
import time

import pjsua2 as pj

T0 = time.monotonic()


def emit(**fields):
    fields["t"] = round(time.monotonic() - T0, 3)
    print(json.dumps(fields), flush=True)


def header(msg, name):
    """A header's value from a raw SIP message (first occurrence), or None."""
    for line in msg.splitlines():
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


class Account(pj.Account):
    def __init__(self):
        super().__init__()
        self.reg_code = None
        self.incoming = []

    def onRegState(self, prm):
        info = self.getInfo()
        self.reg_code = info.regStatus
        if info.regIsActive:
            emit(event="registered", code=info.regStatus)

    def onIncomingCall(self, prm):
        call = Call(self, prm.callId)
        raw = prm.rdata.wholeMsg
        emit(event="incoming", **{
            "from": header(raw, "From"),
            "x_hotline_call": header(raw, "X-Hotline-Call"),
            "x_hotline_customer": header(raw, "X-Hotline-Customer"),
        })
        self.incoming.append(call)


class Call(pj.Call):
    def __init__(self, acc, call_id):
        super().__init__(acc, call_id)
        self.disconnected = False
        self.media_at = None
        self.recorder = None
        self.player = None
        self.play_path = None
        self.record_path = None
        self.answered = False
        # Blind transfer (REFER): targets left to try, and the state of the last one.
        self.xfer_targets = []
        self.xfer_pending = False

    def onCallTransferStatus(self, prm):
        emit(event="xfer_status", code=prm.statusCode, reason=prm.reason,
             final=bool(prm.finalNotify))
        if prm.statusCode >= 300:
            self.xfer_pending = False  # refused: the next target may be tried

    def onCallTsxState(self, prm):
        # The final response to our REFER, as it came off the wire (pjsua reports
        # an accepted REFER to onCallTransferStatus as "100 Accepted").
        try:
            tsx = prm.e.body.tsxState.tsx
        except (AttributeError, pj.Error):
            return
        if (tsx.method == "REFER" and tsx.role == pj.PJSIP_ROLE_UAC
                and tsx.state == pj.PJSIP_TSX_STATE_COMPLETED):
            emit(event="refer_response", code=tsx.statusCode, reason=tsx.statusText)

    def onCallState(self, prm):
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            emit(event="disconnected", code=ci.lastStatusCode, reason=ci.lastReason)

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if self.media_at is not None:
                continue
            am = self.getAudioMedia(i)
            if self.record_path:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.record_path)
                am.startTransmit(self.recorder)
            if self.play_path:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(self.play_path, pj.PJMEDIA_FILE_NO_LOOP)
                self.player.startTransmit(am)
            self.media_at = time.monotonic()
            try:
                codec = self.getStreamInfo(i).codecName
            except pj.Error:
                codec = None
            emit(event="media_active", codec=codec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="hotline HOST:PORT")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--play", required=True, help="WAV played into the call from the answer")
    ap.add_argument("--record", required=True, help="WAV file for what is heard")
    ap.add_argument("--calls", type=int, default=1, help="exit after this many calls ended")
    ap.add_argument("--limit", type=float, default=60.0, help="overall deadline, s")
    ap.add_argument("--xfer-to", action="append", default=[],
                    help="blind-transfer the answered call to this URI (REFER); repeatable")
    ap.add_argument("--xfer-after", type=float, default=3.0,
                    help="seconds after media starts before each REFER")
    ap.add_argument("--log-level", type=int, default=0)
    args = ap.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    ok = False
    acc = None
    ended = 0
    try:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "pjsua2-hotline-queue-agent"
        cfg.logConfig.level = args.log_level
        cfg.logConfig.consoleLevel = args.log_level
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        for c in ep.codecEnum2():
            name = c.codecId.split("/")[0].upper()
            ep.codecSetPriority(c.codecId, 255 if name == "PCMA" else 200 if name == "PCMU" else 0)
        emit(event="started", local=ep.transportGetInfo(tid).localName,
             pjsip=ep.libVersion().full)

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{args.user}@{args.server}"
        acfg.regConfig.registrarUri = f"sip:{args.server}"
        acfg.regConfig.timeoutSec = 300
        acfg.sipConfig.transportId = tid
        acfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        acc = Account()
        acc.create(acfg)

        deadline = T0 + args.limit
        while time.monotonic() < deadline and ended < args.calls:
            ep.libHandleEvents(10)
            for call in list(acc.incoming):
                if not call.answered:
                    call.answered = True
                    call.play_path = args.play
                    call.record_path = args.record if ended == 0 else None
                    call.xfer_targets = list(args.xfer_to) if ended == 0 else []
                    prm = pj.CallOpParam()
                    prm.statusCode = 200
                    call.answer(prm)
                if (call.xfer_targets and not call.xfer_pending and not call.disconnected
                        and call.media_at is not None
                        and time.monotonic() >= call.media_at + args.xfer_after):
                    target = call.xfer_targets.pop(0)
                    call.xfer_pending = True
                    call.media_at = time.monotonic()  # the next try waits again
                    emit(event="xfer_sent", to=target)
                    call.xfer(target, pj.CallOpParam())
                if call.disconnected:
                    acc.incoming.remove(call)
                    call.recorder = None
                    call.player = None
                    ended += 1
            call = None  # no pjsua2 object may outlive libDestroy()
        if ended < args.calls:
            emit(event="failed", why=f"only {ended} call(s) ended within the limit")
            return 1
        ok = True
        return 0
    except pj.Error as e:
        emit(event="failed", why=f"pjsua2 error: {e.info()}")
        return 1
    finally:
        # Every pjsua2 object must be gone before libDestroy() or the process aborts.
        if acc is not None:
            for call in acc.incoming:
                call.recorder = None
                call.player = None
            acc.incoming = []
            try:
                acc.shutdown()
            except pj.Error:
                pass
        acc = None
        gc.collect()
        ep.libDestroy()
        del ep
        emit(event="done", ok=ok, record=args.record, calls=ended)


if __name__ == "__main__":
    sys.exit(main())
