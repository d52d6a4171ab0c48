#!/usr/bin/env python3
"""hotline browser soak (issue 7; stdlib only). Called by `scripts/bench --browser-soak`.

  browser_soak.py --work DIR [--out DIR] [--calls 200] [--agent-hangup-every 10]
                  [--talk-ms 2000] [--answer-allowance-ms 1000] [--sample-every 20]
                  [--settle-secs 10] [--max-minutes 30] [--note TEXT]

One hotline (release binary, bench/soak/hotline-soak.toml: agent 1001, queue
`install`, every call recorded, no wrap-up; bench/soak/dialplan-soak.toml: 8000
goes straight to the queue) and ONE Chromium desk page (bench/browser_soak.mjs:
agent 1001, ?phone=1&autoanswer=1, fake microphone) kept for the whole run.
Then N consecutive customer calls, one at a time: a SIPp UAC dials 8000 and
streams PCMU, the page answers over WebRTC, they talk ~talk-ms, the customer
hangs up (bench/soak/customer-bye.xml); every agent-hangup-every'th call the
agent hangs up from the page instead (customer-wait-bye.xml answers the BYE).

The server's VmRSS, open fds and threads (/proc/PID), and /metrics
(hotline_media_sessions, hotline_registrations), are sampled after the page
registered, after every sample-every calls (once the call's media sessions are
gone) and settle-secs after the last call. At the end the `calls` table is
read: N rows with agent 1001 and a recording file on disk. Writes
OUT/<date>-browser-soak.json and .md.

Run it in a network namespace with loopback plus a veth address (Chromium
offers no loopback ICE candidate); scripts/bench does that. Every wait is
bounded; every process started here is stopped here. Exit status: 0 when the
results were written (a failed call or memory growth is a finding in them),
2 for harness errors.
"""

import argparse
import datetime as dt
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (bench/bench.py: Server, Sipp, metrics, machine, ...)
from bench import HarnessError, log, metric, metrics  # noqa: E402

ROOT = HERE.parent
SOAK = HERE / "soak"
AGENT_ID, AGENT_PW = "1001", "pw-1001"
DESK = f"{bench.HTTP}/desk?phone=1&autoanswer=1"


# --------------------------------------------------------------------------- the server

def fd_kinds(pid):
    """Open fds by kind: socket, anon_inode:[eventpoll], a file path, ..."""
    kinds = {}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            k = re.sub(r":\[\d+\]$", "", t)  # socket:[1234] -> socket
            kinds[k] = kinds.get(k, 0) + 1
    except OSError:
        pass
    return dict(sorted(kinds.items()))


def thread_names(pid):
    """Threads by name (trailing digits folded: tokio-runtime-w, media-N, ...)."""
    names = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    n = re.sub(r"\d+$", "N", f.read().strip())
            except OSError:
                continue
            names[n] = names.get(n, 0) + 1
    except OSError:
        pass
    return dict(sorted(names.items()))


def proc_sample(pid):
    """VmRSS / VmHWM (KB), open fds and threads of a process."""
    out = {"rss_kb": None, "hwm_kb": None, "threads": None, "fds": None}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "VmRSS":
                    out["rss_kb"] = int(v.split()[0])
                elif k == "VmHWM":
                    out["hwm_kb"] = int(v.split()[0])
                elif k == "Threads":
                    out["threads"] = int(v)
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        pass
    out["fd_kinds"] = fd_kinds(pid)
    out["thread_names"] = thread_names(pid)
    return out


def metric_opt(m, name):
    """A metric's value, or None when the server does not export it."""
    if not m or not any(k == name or k.startswith(name + "{") for k in m):
        return None
    return metric(m, name)


def sample(server, label, calls_done, t0):
    m = metrics()
    row = {"label": label, "calls": calls_done, "t_s": round(time.monotonic() - t0, 1),
           **proc_sample(server.pid),
           "media_sessions": metric(m, "hotline_media_sessions"),
           "registrations": metric(m, "hotline_registrations"),
           "event_clients": metric(m, "hotline_event_clients"),
           "calls_connected_total": metric(m, "hotline_calls_connected_total"),
           "browser_legs": metric_opt(m, "hotline_browser_legs"),
           "load": open("/proc/loadavg").read().split()[:3]}
    log(f"sample {label}: rss {row['rss_kb']} KB, fds {row['fds']}, threads {row['threads']}, "
        f"media sessions {row['media_sessions']}, registrations {row['registrations']}, "
        f"load {' '.join(row['load'])}")
    return row


def wait_no_media(limit=15):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        n = metric(metrics(), "hotline_media_sessions")
        if n is not None and n <= 0:
            return True
        time.sleep(0.1)
    return False


# --------------------------------------------------------------------------- the browser

class Desk:
    """node bench/browser_soak.mjs: one Chromium page; JSON lines both ways."""

    def __init__(self, work, mic):
        self.art = work / "artifacts"
        self.art.mkdir(exist_ok=True)
        self.err = open(work / "browser.stderr.log", "w")
        env = dict(os.environ, ARTIFACTS=str(self.art), CHROMIUM="/usr/bin/chromium",
                   HOTLINE_URL=bench.HTTP, AGENT_ID=AGENT_ID, AGENT_PW=AGENT_PW,
                   MIC_WAV=str(mic), STEP_TIMEOUT_MS="30000", SOAK_STEP_MS="30000")
        self.proc = subprocess.Popen(["node", str(HERE / "browser_soak.mjs")], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, bufsize=1,
                                     start_new_session=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"event": "noise", "line": line})
        self.lines.put({"event": "eof"})

    def send(self, **cmd):
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise HarnessError("the browser script is gone (see browser.stderr.log)")

    def expect(self, kinds, limit):
        """The next event among `kinds` (others are kept in self.seen); None after `limit`."""
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ev = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            ev["_t"] = time.monotonic()
            self.seen.append(ev)
            if ev["event"] in ("error", "eof"):
                raise HarnessError(f"browser script ended: {ev.get('message', ev)}")
            if ev["event"] in kinds:
                return ev

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
                self.proc.stdin.close()
            except (HarnessError, OSError):
                pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        # Chromium's helpers, if node left any behind (same process group).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.err.close()


# --------------------------------------------------------------------------- setup

def prepare(work, binary):
    work.mkdir(parents=True, exist_ok=True)
    for name in ("hotline-soak.toml", "dialplan-soak.toml", "customer-bye.xml",
                 "customer-wait-bye.xml"):
        shutil.copy(SOAK / name, work / name)
    (work / "recordings").mkdir(exist_ok=True)
    prompts = work / "prompts"
    if not prompts.exists():
        prompts.symlink_to(ROOT / "dialplans" / "prompts")
    # The customer's voice (PCMU, looped by rtp_stream) and the agent's
    # microphone (Chromium's fake capture device runs at 48 kHz).
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(work / "caller.ulaw"),
                    "synth", "10", "sine", "1600", "gain", "-8"], check=True)
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(work / "agent-mic.wav"),
                    "synth", "60", "sine", "1000", "gain", "-8"], check=True)
    for args in (["check-config", str(work / "hotline-soak.toml")],
                 ["check-dialplan", str(work / "dialplan-soak.toml")]):
        chk = subprocess.run([str(binary)] + args, cwd=work, capture_output=True, text=True)
        if chk.returncode != 0:
            raise HarnessError(f"hotline {args[0]} rejected the soak files:\n{chk.stdout}{chk.stderr}")
    ips = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    if not ips.strip():
        raise HarnessError("no non-loopback IPv4 address: Chromium would have no ICE candidate "
                           "(run through scripts/bench --browser-soak, which adds a veth pair)")


def chromium_version():
    try:
        out = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True,
                             timeout=30).stdout
        return next((ln.strip() for ln in out.splitlines() if ln.startswith("Chromium")), out.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions():
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    try:
        pw = json.loads((ROOT / "node_modules/playwright-core/package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        pw = None
    return {"chromium": chromium_version(), "node": node, "playwright_core": pw}


# --------------------------------------------------------------------------- the calls

def one_call(a, work, desk, n):
    mode = "agent" if a.agent_hangup_every and n % a.agent_hangup_every == 0 else "customer"
    caller = f"139{n:08d}"
    rec = {"n": n, "hangup": mode, "caller": caller}
    desk.send(cmd="call", n=n, hangup=mode, talk_ms=a.talk_ms)
    if not desk.expect({"armed"}, 15):
        raise HarnessError(f"the browser script did not arm for call {n}")
    scen = "customer-bye.xml" if mode == "customer" else "customer-wait-bye.xml"
    args = [f"127.0.0.1:{bench.SIP_PORT}", "-sf", scen, "-s", "8000", "-p", "5400",
            "-mp", str(bench.CALLER_MP), "-m", "1", "-l", "1", "-key", "caller", caller,
            "-timeout", "60s"]
    if mode == "customer":
        args += ["-d", str(a.answer_allowance_ms + a.talk_ms)]
    t0 = time.monotonic()
    sipp = bench.Sipp(work, f"call-{n:03d}", args, 70)
    try:
        ev = desk.expect({"in_call", "call_failed"}, 45)
        if ev and ev["event"] == "in_call":
            rec["answer_ms"] = round((ev["_t"] - t0) * 1000)
            t_in = ev["at"]
            ev = desk.expect({"ended", "call_failed"}, 45)
            if ev and ev["event"] == "ended":
                rec["page_talk_ms"] = ev["at"] - t_in
                rec["page_ended"] = ev.get("text")
        if not ev or ev["event"] != "ended":
            rec["page_failed"] = ev or {"stage": "timeout"}
        rc = sipp.wait(70)
    finally:
        sipp.stop()
    st = sipp.stats()
    rec["sipp_rc"] = rc
    rec["sipp_ok"] = st.get("successful") == 1 and rc == 0
    rec["wall_ms"] = round((time.monotonic() - t0) * 1000)
    if not rec["sipp_ok"]:
        try:
            rec["sipp_errors"] = sipp.err.read_text()[-600:] if sipp.err.exists() else ""
        except OSError:
            pass
    rec["drained"] = wait_no_media()
    if not (rec["sipp_ok"] and "page_talk_ms" in rec):
        log(f"call {n} ({mode} hangs up) FAILED: {rec}")
    return rec


def read_calls(work, expect, limit=20):
    """The calls table once it holds `expect` rows (the writer batches), bounded."""
    db = work / "hotline-soak.db"
    deadline = time.monotonic() + limit
    rows = []
    while time.monotonic() < deadline:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute(
                "SELECT id, from_number, agent_id, queue, arrived_at, answered_at, ended_at, "
                "wait_ms, talk_ms, hangup_side, hangup_cause, recording FROM calls "
                "WHERE direction = 'in' ORDER BY arrived_at")]
            con.close()
        except sqlite3.Error:
            rows = []
        if len(rows) >= expect:
            break
        time.sleep(0.5)
    return rows


def check_rows(rows, work, plan):
    """200 rows with agent 1001 and a recording on disk; hang-up sides as planned."""
    by_caller = {r["from_number"]: r for r in rows}
    out = {"rows": len(rows), "agent_1001": 0, "recording_exists": 0, "recording_stereo": 0,
           "hangup_side_as_planned": 0, "problems": []}
    rec_secs, talk, dur, wait = [], [], [], []
    for p in plan:
        r = by_caller.get(p["caller"])
        if not r:
            out["problems"].append(f"call {p['n']}: no row")
            continue
        ok = True
        if r["agent_id"] == AGENT_ID:
            out["agent_1001"] += 1
        else:
            ok = False
        side = "agent" if p["hangup"] == "agent" else "caller"
        if r["hangup_side"] == side:
            out["hangup_side_as_planned"] += 1
        else:
            ok = False
        path = Path(r["recording"]) if r["recording"] else None
        if path and not path.is_absolute():
            path = work / path
        if path and path.is_file():
            out["recording_exists"] += 1
            try:
                with wave.open(str(path)) as w:
                    if w.getnchannels() == 2 and w.getframerate() == 8000:
                        out["recording_stereo"] += 1
                    rec_secs.append(w.getnframes() / w.getframerate())
            except (wave.Error, EOFError, OSError):
                ok = False
        else:
            ok = False
        talk.append(r["talk_ms"] or 0)
        wait.append(r["wait_ms"] or 0)
        if r["ended_at"] and r["arrived_at"]:
            dur.append(r["ended_at"] - r["arrived_at"])
        if not ok and len(out["problems"]) < 10:
            out["problems"].append(f"call {p['n']}: agent {r['agent_id']}, side {r['hangup_side']}"
                                   f" (planned {side}), recording {r['recording']}")

    def avg(x):
        return round(statistics.mean(x)) if x else None

    out.update(avg_talk_ms=avg(talk), avg_wait_ms=avg(wait), avg_call_ms=avg(dur),
               avg_recording_s=round(statistics.mean(rec_secs), 2) if rec_secs else None)
    return out


def verdict(samples, every):
    """RSS after all calls vs after the first `every`; slope over the later samples."""
    by = {s["label"]: s for s in samples}
    first = by.get(f"after {every}")
    periodic = [s for s in samples if s["label"].startswith("after ") and s["rss_kb"]]
    last = periodic[-1] if periodic else None
    final = by.get("settled")
    before = by.get("before")
    if not (first and last and last is not first):
        return {"text": "not enough samples for a verdict"}
    d_calls = last["calls"] - first["calls"]
    growth_kb = last["rss_kb"] - first["rss_kb"]
    per_call = growth_kb / d_calls if d_calls else None
    # least-squares slope over the periodic samples from the first on (KB per call)
    xs = [s["calls"] for s in periodic]
    ys = [s["rss_kb"] for s in periodic]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else None
    out = {"rss_after_first_kb": first["rss_kb"], "rss_after_last_kb": last["rss_kb"],
           "calls_between": d_calls, "growth_kb": growth_kb,
           "growth_per_call_kb": round(per_call, 2) if per_call is not None else None,
           "slope_kb_per_call": round(slope, 2) if slope is not None else None,
           "rss_before_kb": before["rss_kb"] if before else None,
           "rss_settled_kb": final["rss_kb"] if final else None,
           "fds_before": before["fds"] if before else None,
           "fds_settled": final["fds"] if final else None,
           "threads_before": before["threads"] if before else None,
           "threads_settled": final["threads"] if final else None}
    # No growth: less than 1 MB over the measured calls (5 KB per call over 180
    # calls would be 0.9 MB). fds and threads: a leak of one per call would add
    # tens between samples; a pool that opens one more connection or thread
    # once (lazily) adds one and stays. Flat = the periodic samples and the
    # settled one span at most 3.
    flat = growth_kb < 1024 and (slope is None or slope < 5)

    def steady(key):
        xs = [x[key] for x in periodic if x.get(key) is not None]
        if not xs or not final or final.get(key) is None:
            return False, "–"
        ok = max(xs + [final[key]]) - min(xs + [final[key]]) <= 3
        return ok, (f"{before[key] if before else '–'} before, {min(xs)}–{max(xs)} during, "
                    f"{final[key]} settled")

    # The second half alone (warm-up excluded): the sample nearest half-way.
    mid = min(periodic, key=lambda x: abs(x["calls"] - last["calls"] / 2))
    half_kb = last["rss_kb"] - mid["rss_kb"]
    half_calls = last["calls"] - mid["calls"]
    out.update(rss_mid_kb=mid["rss_kb"], mid_calls=mid["calls"], second_half_growth_kb=half_kb,
               second_half_per_call_kb=round(half_kb / half_calls, 2) if half_calls else None)
    fds_ok, fds_txt = steady("fds")
    thr_ok, thr_txt = steady("threads")
    out["no_growth"] = bool(flat)
    out["fds_flat"] = fds_ok
    out["threads_flat"] = thr_ok
    out["text"] = (
        f"RSS after {first['calls']} calls {first['rss_kb'] / 1024:.1f} MB, after "
        f"{last['calls']} calls {last['rss_kb'] / 1024:.1f} MB: {growth_kb:+d} KB over "
        f"{d_calls} calls = {per_call:+.2f} KB per call (least-squares slope "
        f"{slope:+.2f} KB/call; calls {mid['calls']}→{last['calls']} alone: {half_kb:+d} KB)"
        f": " + ("no memory growth" if flat else "memory GROWS")
        + f". Open fds {fds_txt} ({'flat' if fds_ok else 'NOT flat'}); threads {thr_txt} "
        f"({'flat' if thr_ok else 'NOT flat'}).")
    return out


# --------------------------------------------------------------------------- report

def markdown(res):
    m, v, c, s = res["machine"], res["verdict"], res["calls"], res["samples"]
    db = res["db"]
    L = [f"# hotline browser soak {res['date']}", "",
         f"Machine: {m['nproc']} CPU ({m['cpu']}), {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
         f"{m['os']}; {m['sipp']}; {res['versions']['chromium']}; node {res['versions']['node']}, "
         f"playwright-core {res['versions']['playwright_core']}; {m['rustc']}; hotline {m['git']}, "
         f"binary `{res['binary']['path']}` (built {res['binary']['mtime']}"
         + (f"; uncommitted at the start: {', '.join(x.strip() for x in res['git_changes'])}"
            if res.get("git_changes") else "") + ").",
         f"Load average of the whole machine before / after: {' '.join(res['load_before'])} / "
         f"{' '.join(res['load_after'])} (and at every sample below). {res.get('note', '')}", "",
         f"One Chromium desk page (agent 1001, `?phone=1&autoanswer=1`, fake microphone), "
         f"registered once over `/sip` and kept for the whole run; {c['planned']} consecutive "
         f"calls, one at a time: a SIPp customer dials 8000 (straight to queue `install`, "
         f"recorded) and streams PCMU, the page answers over WebRTC, ~{res['options']['talk_ms']} ms "
         f"of talk, then the customer hangs up (BYE), except calls number "
         f"{res['options']['agent_hangup_every']}, {2 * res['options']['agent_hangup_every']}, "
         f"..., hung up by the agent from the page (`#phone-hangup`). Everything on one 2-core machine inside a network namespace "
         f"(loopback + a veth pair for Chromium's ICE candidate).", "",
         "## Verdict", "", f"**{v.get('text')}**", "",
         "## Calls", "",
         f"- completed: **{c['ok']}/{c['planned']}** (SIPp call successful and the page saw "
         f"`incall` then `ended`); failed: {c['failed']}"
         + (f" (calls {', '.join(str(x) for x in c['failed_calls'][:20])})" if c['failed_calls'] else ""),
         f"- SIPp successes: {c['sipp_ok']}/{c['planned']}; page incall→ended: {c['page_ok']}/{c['planned']}",
         f"- `calls` table: {db['rows']} rows, {db['agent_1001']} with agent_id 1001, "
         f"{db['recording_exists']} with the recording file on disk ({db['recording_stereo']} "
         f"stereo 8 kHz WAV, average {db['avg_recording_s']} s), {db['hangup_side_as_planned']} "
         f"hung up by the planned side",
         f"- average per call: answer (SIPp started → page `incall`) {c['avg_answer_ms']} ms, "
         f"talk on the page {c['avg_page_talk_ms']} ms, talk_ms on the record {db['avg_talk_ms']} ms, "
         f"call on the record (arrival → end) {db['avg_call_ms']} ms, wall time per call incl. "
         f"SIPp start and drain {c['avg_wall_ms']} ms; whole soak {res['soak_minutes']} min",
         f"- page: {res['page'].get('pcs')} RTCPeerConnections made; console errors: "
         f"{res['page'].get('console_errors') or 'none'}"]
    if c["placed"] < c["planned"]:
        L.append(f"- **only {c['placed']} of {c['planned']} calls placed**: --max-minutes "
                 f"{res['options']['max_minutes']} reached (the rest count as failed)")
    if db["problems"]:
        L.append(f"- row problems: {'; '.join(db['problems'])}")
    legs = any(x.get("browser_legs") is not None for x in s)
    L += ["", "## Server samples", "",
          "| when | calls | VmRSS | VmHWM | open fds | threads | media sessions | "
          + ("browser legs | " if legs else "") + "registrations | event clients | load |",
          "|---|---|---|---|---|---|---|" + ("---|" if legs else "") + "---|---|---|"]
    for x in s:
        L.append(f"| {x['label']} | {x['calls']} | {x['rss_kb'] / 1024:.1f} MB ({x['rss_kb']} KB) | "
                 f"{(x['hwm_kb'] or 0) / 1024:.1f} MB | {x['fds']} | {x['threads']} | "
                 f"{bench.fmt(x['media_sessions'])} | "
                 + (f"{bench.fmt(x.get('browser_legs'))} | " if legs else "")
                 + f"{bench.fmt(x['registrations'])} | "
                 f"{bench.fmt(x['event_clients'])} | {' '.join(x['load'])} |")
    L += ["", "Samples after every " + str(res["options"]["sample_every"]) + " calls are taken "
          "once the last call's media sessions are gone; `settled` is "
          f"{res['options']['settle_secs']} s after the last call. No growth = less than 1 MB "
          "between the first periodic sample and the last one and a least-squares slope under "
          "5 KB per call; fds and threads flat = the periodic samples and the settled one span "
          "at most 3 (a leak per call would add tens).", ""]
    b0, b1 = s[0], s[-1]
    if b0.get("thread_names") and b1.get("thread_names"):
        L += [f"Threads {b0['label']}: {b0['thread_names']}; {b1['label']}: {b1['thread_names']}. "
              f"Open fds {b0['label']}: {b0['fd_kinds']}; {b1['label']}: {b1['fd_kinds']}.", ""]
    if res.get("warnings"):
        L += ["Server warnings: " + "; ".join(f"{k2}× {k}" for k, k2 in res["warnings"].items()), ""]
    L += ["Raw figures (every call, every sample): the JSON file of the same name. "
          "Command: `scripts/bench --browser-soak`.", ""]
    return "\n".join(L)


# --------------------------------------------------------------------------- main

def run(a):
    work = Path(a.work).resolve()
    binary = Path(a.binary).resolve()
    started = dt.datetime.now()
    prepare(work, binary)
    res = {"date": started.strftime("%Y-%m-%d %H:%M"), "options": {
        k: v for k, v in vars(a).items() if k not in ("func",)},
        "load_before": open("/proc/loadavg").read().split()[:3],
        "versions": versions(),
        "git_changes": subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "src", "Cargo.toml", "Cargo.lock"],
            capture_output=True, text=True).stdout.splitlines()[:20],
        "binary": {"path": os.path.relpath(binary, ROOT) if binary.is_relative_to(ROOT)
                   else str(binary),
                   "mtime": dt.datetime.fromtimestamp(binary.stat().st_mtime)
                   .isoformat(timespec="seconds")}}
    server = bench.Server(binary, work / "hotline-soak.toml", work, "soak")
    desk = None
    samples, calls = [], []
    try:
        server.start()
        desk = Desk(work, work / "agent-mic.wav")
        if not desk.expect({"registered"}, 90):
            raise HarnessError("the desk page did not register within 90 s "
                               f"(see {work}/browser.stderr.log, {work}/artifacts)")
        t_reg = time.monotonic()
        while time.monotonic() - t_reg < 15 and metric(metrics(), "hotline_registrations") != 1:
            time.sleep(0.2)
        time.sleep(3)
        t0 = time.monotonic()
        samples.append(sample(server, "before", 0, t0))
        for n in range(1, a.calls + 1):
            if time.monotonic() - t0 > a.max_minutes * 60:
                log(f"stopping after {n - 1} calls: --max-minutes {a.max_minutes} reached")
                break
            if not server.alive():
                raise HarnessError(f"hotline exited during call {n} (see {server.log_path})")
            rec = one_call(a, work, desk, n)
            calls.append(rec)
            if n % a.sample_every == 0 or n == a.calls:
                samples.append(sample(server, f"after {n}", n, t0))
            elif n % 5 == 0:
                ok = sum(1 for c in calls if c["sipp_ok"] and "page_talk_ms" in c)
                log(f"{n} calls, {ok} ok; last: answer {rec.get('answer_ms')} ms, "
                    f"talk {rec.get('page_talk_ms')} ms")
        soak_s = time.monotonic() - t0
        time.sleep(a.settle_secs)
        samples.append(sample(server, "settled", len(calls), t0))
        desk.send(cmd="quit")
        done = desk.expect({"done"}, 30) or {}
        res["page"] = {"pcs": done.get("pcs"), "console_errors": done.get("console_errors")}
        rows = read_calls(work, len(calls))
    finally:
        if desk:
            desk.stop()
        server.stop()
    res["warnings"] = server.log_counts()
    ok_calls = [c for c in calls if c["sipp_ok"] and "page_talk_ms" in c]

    def avg(key):
        xs = [c[key] for c in calls if c.get(key) is not None]
        return round(statistics.mean(xs)) if xs else None

    res["calls"] = {"planned": a.calls, "placed": len(calls), "ok": len(ok_calls),
                    "failed": len(calls) - len(ok_calls) + (a.calls - len(calls)),
                    "failed_calls": [c["n"] for c in calls if c not in ok_calls],
                    "sipp_ok": sum(1 for c in calls if c["sipp_ok"]),
                    "page_ok": sum(1 for c in calls if "page_talk_ms" in c),
                    "avg_answer_ms": avg("answer_ms"), "avg_page_talk_ms": avg("page_talk_ms"),
                    "avg_wall_ms": avg("wall_ms")}
    res["db"] = check_rows(rows, work, calls)
    res["samples"] = samples
    res["verdict"] = verdict(samples, a.sample_every)
    res["soak_minutes"] = round(soak_s / 60, 1)
    res["per_call"] = calls
    res["load_after"] = open("/proc/loadavg").read().split()[:3]
    res["machine"] = bench.machine()
    res["note"] = a.note or ""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d-%H%M") + "-browser-soak"
    bench.write_results(out, stem, res, markdown(res))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "hotline"))
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--agent-hangup-every", type=int, default=10)
    p.add_argument("--talk-ms", type=int, default=2000)
    p.add_argument("--answer-allowance-ms", type=int, default=1000,
                   help="added to --talk-ms for the customer's pause after ACK (queue + answer)")
    p.add_argument("--sample-every", type=int, default=20)
    p.add_argument("--settle-secs", type=int, default=10)
    p.add_argument("--max-minutes", type=float, default=30,
                   help="stop placing calls after this long (the results say so)")
    p.add_argument("--note", default="")
    a = p.parse_args()
    try:
        return run(a)
    except HarnessError as e:
        log(f"harness error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
