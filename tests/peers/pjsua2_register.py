#!/usr/bin/env python3
"""pjsua2 softphone: register with digest, stay registered across N refreshes,
then unregister.

Prints one JSON object per line on stdout:
  {"event": "started", "transport": "udp", "local": "127.0.0.1:PORT", ...}
  {"event": "reg_state", "code": 200, "reason": "OK", "active": true, "expires": 5, "t": 0.01}
  {"event": "registered", "count": 1, "expires": 5, "t": ...}    # 1st 200
  {"event": "registered", "count": 2, ...}                       # each refresh
  {"event": "holding", "file": PATH}          # with --hold-until-file: waits for PATH
  {"event": "unregistered", "code": 200, "t": ...}
  {"event": "done", "ok": true}
or {"event": "failed", "why": "..."} and exit status 1.

Settings from PEERS.md: null audio device, 127.0.0.1 only, threadCnt = 0,
mainThreadOnly, a libHandleEvents loop, every pjsua2 object released before
libDestroy().

Usage: pjsua2_register.py --server 127.0.0.1:5060 --user 1001 --password P
       [--transport udp|tcp] [--expires 5] [--refresh-before 2] [--refreshes 1]
       [--hold-until-file PATH] [--limit 30]
"""

import argparse
import gc
import json
import os
import sys
import time

import pjsua2 as pj

T0 = time.monotonic()


def emit(**fields):
    fields["t"] = round(time.monotonic() - T0, 3)
    print(json.dumps(fields), flush=True)


class Account(pj.Account):
    def __init__(self):
        super().__init__()
        self.states = []  # (code, reason, active, expires)

    def onRegState(self, prm):
        info = self.getInfo()
        state = (prm.code, prm.reason, bool(info.regIsActive), info.regExpiresSec)
        self.states.append(state)
        emit(
            event="reg_state",
            code=prm.code,
            reason=prm.reason,
            active=bool(info.regIsActive),
            expires=info.regExpiresSec,
            status=prm.status,
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="registrar HOST:PORT")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--domain", default=None, help="AOR domain (default: server)")
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--expires", type=int, default=5, help="regConfig.timeoutSec")
    ap.add_argument("--refresh-before", type=int, default=2,
                    help="regConfig.delayBeforeRefreshSec")
    ap.add_argument("--refreshes", type=int, default=1,
                    help="successful re-registrations to wait for")
    ap.add_argument("--hold-until-file", default=None,
                    help="stay registered until this file exists (the test's go-ahead)")
    ap.add_argument("--limit", type=float, default=30.0, help="overall deadline, s")
    ap.add_argument("--log-level", type=int, default=0, help="pjsip console log level")
    args = ap.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    ok = False
    acc = None
    try:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "pjsua2-hotline-test"
        cfg.logConfig.level = args.log_level
        cfg.logConfig.consoleLevel = args.log_level
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        kind = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        tid = ep.transportCreate(kind, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        tinfo = ep.transportGetInfo(tid)
        emit(event="started", transport=args.transport, local=tinfo.localName,
             pjsip=ep.libVersion().full)

        domain = args.domain or args.server
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{args.user}@{domain}"
        acfg.regConfig.registrarUri = f"sip:{args.server};transport={args.transport}"
        acfg.regConfig.timeoutSec = args.expires
        acfg.regConfig.delayBeforeRefreshSec = args.refresh_before
        acfg.regConfig.retryIntervalSec = 0  # a failure is final: the test reports it
        acfg.regConfig.unregWaitMsec = 2000
        acfg.sipConfig.transportId = tid
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        acfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", args.user, 0, args.password))

        acc = Account()
        acc.create(acfg)
        deadline = T0 + args.limit

        def pump_until(pred):
            while time.monotonic() < deadline:
                ep.libHandleEvents(20)
                if pred():
                    return True
            return False

        def last_failure():
            for code, reason, _active, _exp in acc.states:
                if code >= 300 or code < 200:
                    return f"{code} {reason}"
            return None

        # Registration, then each refresh: a 200 while active.
        want = 1 + args.refreshes
        n_after_reg = 0
        seen = 0
        while seen < want:
            n = len(acc.states)
            if not pump_until(lambda: len(acc.states) > n):
                emit(event="failed", why=f"timeout waiting for registration #{seen + 1}")
                return 1
            code, reason, active, expires = acc.states[-1]
            if code == 200 and active and expires > 0:
                seen += 1
                emit(event="registered", count=seen, expires=expires)
                n_after_reg = len(acc.states)
            else:
                emit(event="failed", why=f"registration answered {code} {reason}")
                return 1

        if args.hold_until_file:
            emit(event="holding", file=args.hold_until_file)
            if not pump_until(lambda: os.path.exists(args.hold_until_file)):
                emit(event="failed", why="timeout waiting for the go-ahead file")
                return 1
            if len(acc.states) != n_after_reg:
                code, reason, active, _exp = acc.states[-1]
                if not (code == 200 and active):
                    emit(event="failed", why=f"registration lost while holding: {code} {reason}")
                    return 1

        # Unregister: pjsua sends REGISTER with Expires: 0.
        n = len(acc.states)
        acc.setRegistration(False)
        if not pump_until(lambda: len(acc.states) > n):
            emit(event="failed", why="timeout waiting for the unregistration")
            return 1
        code, reason, active, _exp = acc.states[-1]
        if code == 200 and not active:
            emit(event="unregistered", code=code)
        else:
            emit(event="failed", why=f"unregistration answered {code} {reason} active={active}")
            return 1
        failure = last_failure()
        if failure:
            emit(event="failed", why=f"unexpected state {failure}")
            return 1
        ok = True
        return 0
    except pj.Error as e:
        emit(event="failed", why=f"pjsua2 error: {e.info()}")
        return 1
    finally:
        # Every pjsua2 object must be gone before libDestroy() or the process aborts.
        if acc is not None:
            try:
                acc.shutdown()
            except pj.Error:
                pass
            del acc
        gc.collect()
        ep.libDestroy()
        del ep
        emit(event="done", ok=ok)


if __name__ == "__main__":
    sys.exit(main())
