#!/usr/bin/env python3
"""pjsua2 caller for the IVR tests: call a number, record what is heard to a
WAV file, press keys at given times, optionally play a WAV into the call,
hang up.

Prints one JSON object per line on stdout (t: seconds since the script started):
  {"event": "started", "local": "127.0.0.1:PORT", "pjsip": "2.15.1", "t": ...}
  {"event": "call_state", "state": "EARLY", "code": 180, "t": ...}
  {"event": "media_active", "codec": "PCMA", "t": ...}   # the recording starts here
  {"event": "dtmf_sent", "digit": "2", "method": "rfc2833", "at": 15.5, "t": ...}
  {"event": "play_started", "file": PATH, "at": 10.0, "t": ...}
  {"event": "hangup_sent", "at": 24.0, "t": ...}
  {"event": "disconnected", "code": 200, "reason": "Normal call clearing", "t": ...}
  {"event": "done", "ok": true, "record": PATH, "rec_start": T}
or {"event": "failed", "why": "..."} and exit status 1.
"at" values are seconds since media became active, i.e. positions in the
recording.

Settings from PEERS.md: null audio device, 8 kHz clock, G.711 only, 127.0.0.1
for SIP and media, threadCnt = 0, mainThreadOnly, a libHandleEvents loop,
every pjsua2 object released before libDestroy().

Usage: pjsua2_ivr.py --server 127.0.0.1:5060 --to 8000 --record OUT.wav
       [--caller 13800138000] [--codec PCMA|PCMU] [--hangup-after 8]
       [--dtmf 2@15.5 ...] [--dtmf-method rfc2833|info] [--play WAV@SECONDS]
       [--limit 60]
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


class Call(pj.Call):
    def __init__(self, acc):
        super().__init__(acc)
        self.state = None
        self.code = 0
        self.reason = ""
        self.media_at = None
        self.disconnected = False
        self.recorder = None
        self.record_path = None
        self.codec = None

    def onCallState(self, prm):
        ci = self.getInfo()
        self.state = ci.stateText
        self.code = ci.lastStatusCode
        self.reason = ci.lastReason
        emit(event="call_state", state=ci.stateText, code=ci.lastStatusCode)
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            emit(event="disconnected", code=ci.lastStatusCode, reason=ci.lastReason)

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if self.recorder is None and self.record_path:
                am = self.getAudioMedia(i)
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.record_path)
                am.startTransmit(self.recorder)
                self.media_at = time.monotonic()
                try:
                    self.codec = self.getStreamInfo(i).codecName
                except pj.Error:
                    self.codec = None
                emit(event="media_active", codec=self.codec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="hotline HOST:PORT")
    ap.add_argument("--to", required=True, help="number to call")
    ap.add_argument("--caller", default="13800138000")
    ap.add_argument("--record", required=True, help="WAV file for what is heard")
    ap.add_argument("--codec", choices=["PCMA", "PCMU"], default="PCMA")
    ap.add_argument("--hangup-after", type=float, default=8.0,
                    help="seconds after media is active")
    ap.add_argument("--dtmf", action="append", default=[],
                    help="KEYS@SECONDS after media is active (repeatable)")
    ap.add_argument("--dtmf-method", choices=["rfc2833", "info"], default="rfc2833")
    ap.add_argument("--play", default=None, help="WAV@SECONDS: play a file into the call")
    ap.add_argument("--limit", type=float, default=60.0, help="overall deadline, s")
    ap.add_argument("--log-level", type=int, default=0)
    args = ap.parse_args()

    dtmf = []
    for spec in args.dtmf:
        keys, at = spec.split("@")
        dtmf.append((float(at), keys))
    dtmf.sort()
    play = None
    if args.play:
        f, at = args.play.rsplit("@", 1)
        play = (float(at), f)

    ep = pj.Endpoint()
    ep.libCreate()
    ok = False
    acc = None
    call = None
    player = None
    try:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "pjsua2-hotline-ivr-test"
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
            prio = 0
            if name == args.codec:
                prio = 255
            elif name in ("PCMA", "PCMU"):
                prio = 200
            ep.codecSetPriority(c.codecId, prio)
        emit(event="started", local=ep.transportGetInfo(tid).localName,
             pjsip=ep.libVersion().full)

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{args.caller}@127.0.0.1"
        acfg.sipConfig.transportId = tid
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        acc = pj.Account()
        acc.create(acfg)

        call = Call(acc)
        call.record_path = args.record
        prm = pj.CallOpParam(True)
        call.makeCall(f"sip:{args.to}@{args.server}", prm)
        deadline = T0 + args.limit

        def pump_until(pred):
            while time.monotonic() < deadline:
                ep.libHandleEvents(10)
                if pred():
                    return True
            return False

        if not pump_until(lambda: call.media_at is not None or call.disconnected):
            emit(event="failed", why="no media within the limit")
            return 1
        if call.media_at is None:
            emit(event="failed", why=f"call ended before media: {call.code} {call.reason}")
            return 1

        def since_media():
            return time.monotonic() - call.media_at

        while since_media() < args.hangup_after:
            if call.disconnected:
                emit(event="failed", why=f"call ended early at {since_media():.2f}s: "
                                         f"{call.code} {call.reason}")
                return 1
            if time.monotonic() > deadline:
                emit(event="failed", why="overall limit reached")
                return 1
            if dtmf and since_media() >= dtmf[0][0]:
                _, keys = dtmf.pop(0)
                p = pj.CallSendDtmfParam()
                p.digits = keys
                p.method = (pj.PJSUA_DTMF_METHOD_RFC2833 if args.dtmf_method == "rfc2833"
                            else pj.PJSUA_DTMF_METHOD_SIP_INFO)
                call.sendDtmf(p)
                emit(event="dtmf_sent", digit=keys, method=args.dtmf_method,
                     at=round(since_media(), 3))
            if play and since_media() >= play[0]:
                player = pj.AudioMediaPlayer()
                player.createPlayer(play[1], pj.PJMEDIA_FILE_NO_LOOP)
                player.startTransmit(call.getAudioMedia(-1))
                emit(event="play_started", file=play[1], at=round(since_media(), 3))
                play = None
            ep.libHandleEvents(5)

        emit(event="hangup_sent", at=round(since_media(), 3))
        call.hangup(pj.CallOpParam(True))
        if not pump_until(lambda: call.disconnected):
            emit(event="failed", why="no end of call after our BYE")
            return 1
        ok = True
        return 0
    except pj.Error as e:
        emit(event="failed", why=f"pjsua2 error: {e.info()}")
        return 1
    finally:
        # Every pjsua2 object must be gone before libDestroy() or the process aborts.
        rec_start = None
        if call is not None:
            rec_start = None if call.media_at is None else round(call.media_at - T0, 3)
            call.recorder = None
        player = None
        call = None
        if acc is not None:
            try:
                acc.shutdown()
            except pj.Error:
                pass
        acc = None
        gc.collect()
        ep.libDestroy()
        del ep
        emit(event="done", ok=ok, record=args.record, rec_start=rec_start)


if __name__ == "__main__":
    sys.exit(main())
