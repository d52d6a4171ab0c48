#!/usr/bin/env python3
"""hotline load benchmark driver (stdlib only). Called by scripts/bench.

  bench.py run    --work DIR [options]   SIP/RTP runs (a)-(d); run it on loopback
                                         only (scripts/bench uses `unshare -n`).
                                         Writes DIR/sections.json.
  bench.py report --work DIR --out DIR   adds the machine description and the
                                         `cargo bench --bench schedule` output
                                         (DIR/schedule.txt), writes
                                         OUT/<date>.json and OUT/<date>.md.

Every wait is bounded; every process started here is stopped here. The exit
status is non-zero only for harness errors, never for a missed target.
"""

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIP_PORT = 5090
HTTP = "http://127.0.0.1:18090"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# SIPp media ports: rtp_stream (SIPp 3.6) sends and receives every call's RTP
# on the one port given with -mp.
CALLER_MP = 41000
UAS_MP = 43000
SIPP_TUNING = ["-timer_resol", "1", "-max_recv_loops", "10000", "-max_sched_loops", "10000",
               "-buff_size", "4194304"]
# Sample of the server's streams for loss/late analysis: RTP from server ports
# that are multiples of 64 (1 pair in 32 of the range).
SAMPLE_BPF = "(udp[0:2] & 0x3f) = 0"
LATE_MS = 40.0


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class HarnessError(Exception):
    pass


# --------------------------------------------------------------------------- processes

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 200000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])  # utime + stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_threads_cpu(pid):
    """utime+stime per thread name (ticks)."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    s = f.read()
                name = s[s.index("(") + 1:s.rindex(")")]
                parts = s.rsplit(")", 1)[1].split()
                key = re.sub(r"\d+$", "N", name)
                out[key] = out.get(key, 0) + int(parts[11]) + int(parts[12])
            except (OSError, ValueError):
                pass
    except OSError:
        pass
    return out


class Sampler(threading.Thread):
    """Samples CPU ticks and RSS of the server (and named SIPp pids) every 0.5 s."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []  # (t, ticks, rss_kb)
        self.others = {}  # name -> pid
        self.other_samples = {}  # name -> [(t, ticks)]
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()

    def watch(self, name, pid):
        with self.lock:
            self.others[name] = pid
            self.other_samples[name] = []

    def run(self):
        while not self.stop_ev.is_set():
            t = time.monotonic()
            ticks, rss = proc_cpu_ticks(self.pid), proc_rss_kb(self.pid)
            with self.lock:
                if ticks is not None:
                    self.samples.append((t, ticks, rss))
                for name, pid in self.others.items():
                    tk = proc_cpu_ticks(pid)
                    if tk is not None:
                        self.other_samples[name].append((t, tk))
            self.stop_ev.wait(0.5)

    def window(self, t0, t1):
        """CPU % of one core and RSS stats of the server between t0 and t1."""
        with self.lock:
            s = [x for x in self.samples if t0 <= x[0] <= t1]
        if len(s) < 2:
            return {"cpu_pct": None, "rss_peak_mb": None}
        cpu = (s[-1][1] - s[0][1]) / CLK_TCK / (s[-1][0] - s[0][0]) * 100
        return {"cpu_pct": round(cpu, 1),
                "rss_peak_mb": round(max(x[2] or 0 for x in s) / 1024, 1)}

    def other_cpu(self, name, t0, t1):
        with self.lock:
            s = [x for x in self.other_samples.get(name, []) if t0 <= x[0] <= t1]
        if len(s) < 2:
            return None
        return round((s[-1][1] - s[0][1]) / CLK_TCK / (s[-1][0] - s[0][0]) * 100, 1)


def metrics():
    try:
        with urllib.request.urlopen(HTTP + "/metrics", timeout=3) as r:
            text = r.read().decode()
    except Exception:
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
        except ValueError:
            pass
    return out


def metric(m, name):
    if not m:
        return None
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


class Server:
    def __init__(self, binary, config, work, tag):
        self.binary, self.config, self.work, self.tag = binary, config, work, tag
        self.proc = None
        self.log_path = work / f"hotline-{tag}.log"

    def start(self):
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info,rsipstack=warn")
        env["NO_COLOR"] = "1"
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(self.binary), "serve", "--config", str(self.config)],
                                     cwd=self.work, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=env, preexec_fn=raise_nofile, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"hotline exited at start (see {self.log_path}):\n"
                                   + self.log_path.read_text()[-2000:])
            if metrics() is not None:
                time.sleep(1.0)
                self.sampler = Sampler(self.proc.pid)
                self.sampler.start()
                return
            time.sleep(0.25)
        raise HarnessError("hotline did not answer /metrics within 60 s")

    @property
    def pid(self):
        return self.proc.pid

    def rss_mb(self):
        kb = proc_rss_kb(self.pid)
        return round(kb / 1024, 1) if kb else None

    def alive(self):
        return self.proc.poll() is None

    def wait_drained(self, limit=30):
        """Wait until no media session is left (bounded); returns seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            n = metric(metrics(), "hotline_media_sessions")
            if n is not None and n <= 0:
                break
            time.sleep(0.5)
        return round(time.monotonic() - t0, 1)

    def stop(self):
        if self.proc is None:
            return
        if hasattr(self, "sampler"):
            self.sampler.stop_ev.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logf.close()

    def log_counts(self):
        """WARN/ERROR lines in the server log, by message (top 8)."""
        counts = {}
        try:
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
                    m = re.search(r"\b(WARN|ERROR)\s+(.*)", line)
                    if m:
                        msg = m.group(2)
                        msg = re.sub(r"[0-9a-f]{6,}|\d+", "#", msg)[:120]
                        counts[msg] = counts.get(msg, 0) + 1
        except OSError:
            pass
        return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:8])


class Sipp:
    """One SIPp process with its stat file; always bounded by `limit` seconds."""

    def __init__(self, work, name, args, limit):
        self.work, self.name, self.limit = work, name, limit
        self.stf = work / f"{name}.csv"
        self.err = work / f"{name}-errors.log"
        for p in (self.stf, self.err):
            if p.exists():
                p.unlink()
        self.args = (["sipp"] + args + ["-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin",
                                        "-trace_stat", "-stf", str(self.stf), "-fd", "1",
                                        "-trace_err", "-error_file", str(self.err)]
                     + SIPP_TUNING)
        self.out = open(work / f"{name}.out", "w")
        self.proc = subprocess.Popen(self.args, cwd=work, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=raise_nofile,
                                     start_new_session=True)
        self.t0 = time.monotonic()

    @property
    def pid(self):
        return self.proc.pid

    def wait(self, limit=None):
        try:
            rc = self.proc.wait(limit if limit is not None else self.limit)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # let calls end
            try:
                rc = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    rc = self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait()
        self.out.close()
        self.rc = rc
        return rc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.out.closed:
            self.out.close()

    def stats(self):
        try:
            rows = list(csv.reader(open(self.stf), delimiter=";"))
        except OSError:
            return {}
        if len(rows) < 2:
            return {}
        head, last = rows[0], rows[-1]
        d = dict(zip(head, last))

        def i(k):
            try:
                return int(d.get(k, "0") or 0)
            except ValueError:
                return 0

        def ms(k):
            v = d.get(k, "")
            m = re.match(r"(\d+):(\d+):(\d+):(\d+)", v)
            if not m:
                return None
            h, mi, s, us = map(int, m.groups())
            return round((h * 3600 + mi * 60 + s) * 1000 + us / 1000, 1)

        rt = [k for k in head if k.startswith("ResponseTime") and k.endswith("(C)")
              and "StDev" not in k]
        fails = {k[:-3]: i(k) for k in head if k.startswith("Failed") and k.endswith("(C)") and i(k)}
        return {
            "created": i("TotalCallCreated") or i("IncomingCall(C)"),
            "successful": i("SuccessfulCall(C)"),
            "failed": i("FailedCall(C)"),
            "retransmissions": i("Retransmissions(C)"),
            "out_of_call": i("OutOfCallMsgs(C)"),
            "dead_call_msgs": i("DeadCallMsgs(C)"),
            "failure_kinds": fails,
            "setup_avg_ms": ms(rt[0]) if rt else None,
            "call_length_avg_ms": ms("CallLength(C)"),
            "incoming": i("IncomingCall(C)"),
        }


# --------------------------------------------------------------------------- RTP analysis

class Capture:
    """dumpcap on lo with a BPF filter, bounded by duration."""

    def __init__(self, work, name, bpf, seconds):
        self.path = work / f"{name}.pcapng"
        self.proc = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-B", "64", "-f", bpf,
                                      "-w", str(self.path), "-a", f"duration:{int(seconds)}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self, extra=30):
        try:
            self.proc.wait(extra)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(10)


def analyse_rtp(pcap, ports):
    """Per-stream lost / late / short packets of a sample of server-sent streams."""
    if not Path(pcap).exists():
        return {"error": "no capture"}
    args = ["tshark", "-r", str(pcap), "-n"]
    for p in ports:
        args += ["-d", f"udp.port=={p},rtp"]
    args += ["-T", "fields", "-E", "separator=,", "-e", "frame.time_epoch", "-e", "udp.dstport",
             "-e", "rtp.ssrc", "-e", "rtp.seq", "-e", "rtp.timestamp", "-Y", "rtp"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=300).stdout
    except subprocess.TimeoutExpired:
        return {"error": "tshark timed out"}
    streams = {}
    for line in out.splitlines():
        try:
            t, dport, ssrc, seq, ts = line.split(",")
            streams.setdefault((dport, ssrc), []).append((float(t), int(seq), int(ts)))
        except ValueError:
            continue
    tot = dict(received=0, lost=0, late=0, short=0)
    worst = 0.0
    devs = []
    per_port = {}
    for (dport, _), pk in streams.items():
        if len(pk) < 50:  # a stream cut by the capture window edge
            continue
        pk.sort()
        # sequence numbers, unwrapped
        seqs, base, prev = [], 0, None
        for _, s, _ in pk:
            if prev is not None and s < prev - 30000:
                base += 65536
            prev = s
            seqs.append(base + s)
        uniq = len(set(seqs))
        expected = max(seqs) - min(seqs) + 1
        lost = max(0, expected - uniq)
        # time actually covered vs packets sent: a sender that skips ticks sends fewer
        span = pk[-1][0] - pk[0][0]
        short = max(0, int(round(span / 0.020)) + 1 - len(pk))
        # lateness: transit relative to the best transit of the previous second
        tsu, tbase, tprev = [], 0, None
        for _, _, ts in pk:
            if tprev is not None and ts < tprev - 2**31:
                tbase += 2**32
            tprev = ts
            tsu.append(tbase + ts)
        transit = [pk[i][0] - tsu[i] / 8000.0 for i in range(len(pk))]
        late = 0
        window = []
        for i, tr in enumerate(transit):
            window.append(tr)
            if len(window) > 50:
                window.pop(0)
            d = (tr - min(window)) * 1000
            devs.append(d)
            worst = max(worst, d)
            if d > LATE_MS:
                late += 1
        tot["received"] += len(pk)
        tot["lost"] += lost
        tot["late"] += late
        tot["short"] += short
        per_port[dport] = per_port.get(dport, 0) + 1
    n = sum(per_port.values())
    rec = tot["received"] or 1
    devs.sort()
    impaired = tot["lost"] + tot["late"] + tot["short"]
    return {
        "streams": n,
        "packets": tot["received"],
        "lost": tot["lost"],
        "late": tot["late"],
        "short": tot["short"],
        "impaired_pct": round(impaired / (rec + tot["lost"] + tot["short"]) * 100, 4),
        "delay_p99_ms": round(devs[int(len(devs) * 0.99)], 1) if devs else None,
        "delay_max_ms": round(worst, 1),
        "late_threshold_ms": LATE_MS,
    }


# --------------------------------------------------------------------------- setup

def prepare(work, binary, agents):
    """Work dir: config with agents, dialplan without [calendar], audio files."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = (HERE / "hotline-bench.toml").read_text()
    cfg += "\n# --- appended by bench.py: the bench agents ---\n"
    for i in range(agents):
        aid = 1001 + i
        cfg += (f'\n[[agents]]\nid = "{aid}"\nname = "bench {aid}"\n'
                f'password = "bench{aid}"\nskills = ["install"]\n')
    (work / "hotline-bench.toml").write_text(cfg)
    # Dialplan copy: [calendar] removed (always open), prompts from the repo.
    src = (ROOT / "dialplans" / "hotline.toml").read_text()
    out, skip = [], False
    for line in src.splitlines():
        if re.match(r"^\s*\[calendar\]\s*(#.*)?$", line):
            skip = True
            continue
        if skip and re.match(r"^\s*\[", line):
            skip = False
        if not skip:
            out.append(line)
    text = "\n".join(out) + "\n"
    text = re.sub(r'(?m)^prompts_dir\s*=.*$',
                  f'prompts_dir = "{(ROOT / "dialplans" / "prompts").as_posix()}"', text)
    (work / "dialplan-bench.toml").write_text(text)
    for name in ("caller.xml", "customer.xml", "uas.xml", "register.xml"):
        shutil.copy(HERE / "sipp" / name, work / name)
    prompts = ROOT / "dialplans" / "prompts"
    for wav, raw in (("order_no.wav", "caller.ulaw"), ("transfer_agent.wav", "callee.ulaw")):
        subprocess.run(["sox", str(prompts / wav), "-r", "8000", "-c", "1", "-t", "ul",
                        str(work / raw)], check=True)
    with open(work / "agents.csv", "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(agents):
            aid = 1001 + i
            f.write(f"{aid};[authentication username={aid} password=bench{aid}]\n")
    chk = subprocess.run([str(binary), "check-config", str(work / "hotline-bench.toml")],
                         capture_output=True, text=True)
    if chk.returncode != 0:
        raise HarnessError("bench config rejected:\n" + chk.stdout + chk.stderr)


def fresh_db(work):
    for p in work.glob("hotline-bench.db*"):
        p.unlink()
    rec = work / "recordings"
    if rec.exists():
        shutil.rmtree(rec)


# --------------------------------------------------------------------------- sections

def section_rate(a, work, binary, sipp_only=False):
    """(a) 3-second IVR calls at rising rates; or SIPp against a SIPp UAS."""
    tag = "sipp-ceiling" if sipp_only else "rate"
    results = []
    server = uas = None
    idle = None
    try:
        if sipp_only:
            target = ["127.0.0.1:5300"]
        else:
            fresh_db(work)
            server = Server(binary, work / "hotline-bench.toml", work, tag)
            server.start()
            idle = server.rss_mb()
            target = [f"127.0.0.1:{SIP_PORT}"]
        for rate in a.rates:
            calls = rate * a.step_secs
            if sipp_only:
                uas = Sipp(work, f"{tag}-uas-{rate}", ["-sf", "uas.xml", "-p", "5300", "-mp",
                                                       str(UAS_MP), "-m", str(calls)],
                           a.step_secs + 60)
                time.sleep(0.5)
            caller = Sipp(work, f"{tag}-{rate}", target + [
                "-sf", "caller.xml", "-s", "8000", "-p", "5400", "-mp", str(CALLER_MP),
                "-r", str(rate), "-m", str(calls), "-l", str(rate * 20), "-d", "3000",
                "-timeout", f"{a.step_secs + 40}s"], a.step_secs + 50)
            sampler = None
            if server:
                sampler = server.sampler
                sampler.watch("sipp", caller.pid)
            else:
                sampler = Sampler(caller.pid)
                sampler.watch("uas", uas.pid)
                sampler.start()
            t0 = time.monotonic()
            rc = caller.wait()
            t1 = time.monotonic()
            st = caller.stats()
            row = {"rate": rate, "seconds": a.step_secs, "calls_planned": calls, "sipp_rc": rc,
                   **{k: st.get(k) for k in ("created", "successful", "failed", "retransmissions",
                                             "failure_kinds", "setup_avg_ms",
                                             "call_length_avg_ms")}}
            row["wall_s"] = round(t1 - t0, 1)
            if server:
                w = sampler.window(t0, t1)
                row["server_cpu_pct"] = w["cpu_pct"]
                row["server_rss_peak_mb"] = w["rss_peak_mb"]
                row["sipp_cpu_pct"] = sampler.other_cpu("sipp", t0, t1)
                row["drain_s"] = server.wait_drained()
                time.sleep(2)
                row["server_rss_after_mb"] = server.rss_mb()
                row["server_alive"] = server.alive()
            else:
                row["sipp_cpu_pct"] = round(
                    (sampler.samples[-1][1] - sampler.samples[0][1]) / CLK_TCK
                    / max(0.1, sampler.samples[-1][0] - sampler.samples[0][0]) * 100, 1) \
                    if len(sampler.samples) > 1 else None
                row["uas_cpu_pct"] = sampler.other_cpu("uas", t0, t1)
                sampler.stop_ev.set()
                uas.wait(20)
                uas = None
            row["clean"] = bool(st) and st.get("failed") == 0 and st.get("retransmissions") == 0 \
                and st.get("successful") == calls
            log(f"{tag} {rate}/s: {row['successful']}/{calls} ok, failed {row['failed']}, "
                f"retrans {row['retransmissions']}, setup {row['setup_avg_ms']} ms, "
                f"server cpu {row.get('server_cpu_pct')} %, sipp cpu {row.get('sipp_cpu_pct')} %, "
                f"rss {row.get('server_rss_peak_mb')} -> {row.get('server_rss_after_mb')} MB")
            results.append(row)
            if not row["clean"]:
                break
            time.sleep(2)
        if server and server.alive():
            time.sleep(20)
            after_idle = server.rss_mb()
            # Same load again: RSS that keeps growing is a leak; a plateau is allocator retention.
            rate = a.rates[0]
            caller = Sipp(work, f"{tag}-repeat-{rate}", target + [
                "-sf", "caller.xml", "-s", "8000", "-p", "5400", "-mp", str(CALLER_MP),
                "-r", str(rate), "-m", str(rate * a.step_secs), "-l", str(rate * 20), "-d", "3000",
                "-timeout", f"{a.step_secs + 40}s"], a.step_secs + 50)
            caller.wait()
            server.wait_drained()
            time.sleep(2)
            repeat = {"rss_20s_after_ladder_mb": after_idle, "repeat_rate": rate,
                      "repeat_ok": caller.stats().get("successful"),
                      "rss_after_repeat_mb": server.rss_mb()}
            log(f"{tag}: rss 20 s after the ladder {after_idle} MB; after repeating {rate}/s: "
                f"{repeat['rss_after_repeat_mb']} MB")
    finally:
        if uas:
            uas.stop()
        if server:
            server.stop()
    clean = [r["rate"] for r in results if r["clean"]]
    out = {"steps": results, "max_clean_rate": max(clean) if clean else 0}
    if server:
        out["after"] = locals().get("repeat")
        out["idle_rss_mb"] = idle
        out["warnings"] = server.log_counts()
    return out


def section_concurrency(a, work, binary):
    """(b) N simultaneous IVR calls held a.hold_secs with RTP both ways."""
    results = []
    fresh_db(work)
    server = Server(binary, work / "hotline-bench.toml", work, "concurrency")
    server.start()
    idle = server.rss_mb()
    try:
        for n in a.conc:
            ramp = max(1, n / a.ramp_rate)
            m0 = metrics()
            caller = Sipp(work, f"conc-{n}", [
                f"127.0.0.1:{SIP_PORT}", "-sf", "caller.xml", "-s", "8000", "-p", "5400",
                "-mp", str(CALLER_MP), "-r", str(a.ramp_rate), "-m", str(n), "-l", str(n),
                "-d", str(a.hold_secs * 1000), "-timeout", f"{int(ramp + a.hold_secs + 60)}s"],
                ramp + a.hold_secs + 70)
            server.sampler.watch("sipp", caller.pid)
            t_start = time.monotonic()
            # All calls up once the ramp is over: measure the plateau.
            time.sleep(ramp + 3)
            plateau = max(5, min(a.sample_secs, a.hold_secs - 8))
            tp0 = time.monotonic()
            sessions_up = metric(metrics(), "hotline_media_sessions")
            cap = Capture(work, f"conc-{n}", f"udp and dst port {CALLER_MP} and {SAMPLE_BPF}",
                          plateau)
            cap.wait(plateau + 20)
            tp1 = time.monotonic()
            w = server.sampler.window(tp0, tp1)
            threads0 = proc_threads_cpu(server.pid)
            time.sleep(2)
            threads1 = proc_threads_cpu(server.pid)
            rc = caller.wait()
            st = caller.stats()
            m1 = metrics()
            late_ticks = (metric(m1, "hotline_media_late_ticks_total") or 0) - \
                (metric(m0, "hotline_media_late_ticks_total") or 0)
            rtp = analyse_rtp(cap.path, [CALLER_MP])
            row = {"calls": n, "hold_s": a.hold_secs, "sipp_rc": rc,
                   **{k: st.get(k) for k in ("created", "successful", "failed", "retransmissions",
                                             "failure_kinds", "setup_avg_ms")},
                   "sessions_at_plateau": sessions_up,
                   "server_cpu_pct": w["cpu_pct"], "server_rss_peak_mb": w["rss_peak_mb"],
                   "sipp_cpu_pct": server.sampler.other_cpu("sipp", tp0, tp1),
                   "thread_cpu_pct": {k: round((threads1.get(k, 0) - v) / CLK_TCK / 2 * 100, 1)
                                      for k, v in threads0.items()
                                      if threads1.get(k, 0) - v > 0},
                   "media_late_ticks": late_ticks, "rtp_sample": rtp}
            row["drain_s"] = server.wait_drained()
            time.sleep(2)
            row["server_rss_after_mb"] = server.rss_mb()
            row["server_alive"] = server.alive()
            peak = row["server_rss_peak_mb"] or 0
            row["kb_per_call"] = round((peak - (idle or 0)) * 1024 / n, 1) if n else None
            imp = rtp.get("impaired_pct")
            row["clean"] = (bool(st) and st.get("failed") == 0 and st.get("successful") == n
                            and imp is not None and imp < 0.1)
            log(f"concurrency {n}: {row['successful']}/{n} ok, failed {row['failed']}, "
                f"rtp sample {rtp}, late ticks {late_ticks}, cpu {w['cpu_pct']} %, "
                f"rss {peak} -> {row['server_rss_after_mb']} MB")
            results.append(row)
            if not row["clean"]:
                break
    finally:
        server.stop()
    clean = [r["calls"] for r in results if r["clean"]]
    return {"steps": results, "max_clean_calls": max(clean) if clean else 0,
            "idle_rss_mb": idle, "warnings": server.log_counts()}


def check_recordings(root, min_secs):
    files = sorted(Path(root).rglob("*.wav")) if Path(root).exists() else []
    valid, bad, durations = 0, [], []
    for f in files:
        try:
            with wave.open(str(f)) as w:
                ok = (w.getnchannels() == 2 and w.getframerate() == 8000 and w.getsampwidth() == 2)
                n = w.getnframes()
                secs = n / 8000
                # both channels must carry sound (customer left, agent right)
                w.setpos(int(max(0, n / 2 - 8000)))
                data = w.readframes(16000)
            import array
            s = array.array("h", data)
            left = max((abs(x) for x in s[0::2]), default=0)
            right = max((abs(x) for x in s[1::2]), default=0)
            ok = ok and secs >= min_secs and left > 500 and right > 500
            durations.append(secs)
            if ok:
                valid += 1
            elif len(bad) < 5:
                bad.append({"file": f.name, "secs": round(secs, 1), "peak_l": left,
                            "peak_r": right})
        except Exception as e:  # noqa: BLE001 - a broken file is a finding, not a crash
            if len(bad) < 5:
                bad.append({"file": f.name, "error": str(e)})
    return {"files": len(files), "valid": valid, "invalid_examples": bad,
            "avg_secs": round(statistics.mean(durations), 1) if durations else None}


def section_bridged(a, work, binary):
    """(c) customers -> IVR -> press 2 (INFO) -> queue install -> SIPp agents, recorded."""
    n = a.agents
    fresh_db(work)
    server = Server(binary, work / "hotline-bench.toml", work, "bridged")
    server.start()
    idle = server.rss_mb()
    uas = cust = None
    try:
        reg = Sipp(work, "bridged-register", [
            f"127.0.0.1:{SIP_PORT}", "-sf", "register.xml", "-inf", "agents.csv", "-p", "5300",
            "-r", "200", "-m", str(n), "-l", "400", "-timeout", "60s"], 90)
        reg.wait()
        rs = reg.stats()
        time.sleep(1)
        registered = metric(metrics(), "hotline_registrations")
        log(f"bridged: REGISTER {rs.get('successful')}/{n} ok; registrations gauge {registered}")
        if not rs.get("successful"):
            raise HarnessError("no agent could register; see " + str(reg.err))
        uas = Sipp(work, "bridged-agents", ["-sf", "uas.xml", "-p", "5300", "-mp", str(UAS_MP),
                                            "-m", str(n), "-timeout", f"{a.bridge_hold + 200}s"],
                   a.bridge_hold + 240)
        time.sleep(1)
        ramp = max(1, n / a.ramp_rate)
        m0 = metrics()
        cust = Sipp(work, "bridged-customers", [
            f"127.0.0.1:{SIP_PORT}", "-sf", "customer.xml", "-s", "8000", "-p", "5400",
            "-mp", str(CALLER_MP), "-r", str(a.ramp_rate), "-m", str(n), "-l", str(n),
            "-d", str(a.bridge_hold * 1000), "-timeout", f"{int(ramp + a.bridge_hold + 90)}s"],
            ramp + a.bridge_hold + 100)
        server.sampler.watch("customers", cust.pid)
        server.sampler.watch("agents", uas.pid)
        # Connected after the greeting type-ahead + queue (a few seconds); sample the plateau.
        time.sleep(ramp + 10)
        plateau = max(5, min(a.sample_secs, a.bridge_hold - 20))
        tp0 = time.monotonic()
        m_up = metrics()
        cap = Capture(work, "bridged", f"udp and (dst port {CALLER_MP} or dst port {UAS_MP}) "
                      f"and {SAMPLE_BPF}", plateau)
        cap.wait(plateau + 20)
        tp1 = time.monotonic()
        w = server.sampler.window(tp0, tp1)
        threads0 = proc_threads_cpu(server.pid)
        time.sleep(2)
        threads1 = proc_threads_cpu(server.pid)
        crc = cust.wait()
        cs = cust.stats()
        urc = uas.wait(30)
        us = uas.stats()
        m1 = metrics()
        drain = server.wait_drained()
        time.sleep(2)
        rss_after = server.rss_mb()
        connected = (metric(m1, "hotline_calls_connected_total") or 0) - \
            (metric(m0, "hotline_calls_connected_total") or 0)
        rtp = analyse_rtp(cap.path, [CALLER_MP, UAS_MP])
        rec = check_recordings(work / "recordings", a.bridge_hold - 15)
        peak = w["rss_peak_mb"] or 0
        row = {
            "pairs": n, "hold_s": a.bridge_hold,
            "agents_registered": rs.get("successful"),
            "customers": {k: cs.get(k) for k in ("created", "successful", "failed",
                                                 "retransmissions", "failure_kinds",
                                                 "setup_avg_ms")},
            "customers_rc": crc, "agents_rc": urc,
            "agent_calls_answered": us.get("incoming"),
            "agent_calls_completed": us.get("successful"),
            "connected": connected,
            "sessions_at_plateau": metric(m_up, "hotline_media_sessions"),
            "recordings": rec, "rtp_sample": rtp,
            "media_late_ticks": (metric(m1, "hotline_media_late_ticks_total") or 0)
            - (metric(m0, "hotline_media_late_ticks_total") or 0),
            "server_cpu_pct": w["cpu_pct"], "server_rss_peak_mb": w["rss_peak_mb"],
            "thread_cpu_pct": {k: round((threads1.get(k, 0) - v) / CLK_TCK / 2 * 100, 1)
                               for k, v in threads0.items() if threads1.get(k, 0) - v > 0},
            "sipp_cpu_pct": {"customers": server.sampler.other_cpu("customers", tp0, tp1),
                             "agents": server.sampler.other_cpu("agents", tp0, tp1)},
            "drain_s": drain, "server_rss_after_mb": rss_after, "idle_rss_mb": idle,
            "kb_per_pair": round((peak - (idle or 0)) * 1024 / n, 1),
            "server_alive": server.alive(),
        }
        imp = rtp.get("impaired_pct")
        row["clean"] = (cs.get("failed") == 0 and cs.get("successful") == n
                        and rec["valid"] == n and imp is not None and imp < 0.1)
        log(f"bridged {n}: customers {cs.get('successful')}/{n} ok (failed {cs.get('failed')}), "
            f"connected {connected}, recordings {rec['valid']}/{rec['files']} valid, rtp {rtp}, "
            f"cpu {w['cpu_pct']} %, rss {idle} / {peak} / {rss_after} MB")
        row["warnings"] = server.log_counts()
        return row
    finally:
        for p in (cust, uas):
            if p:
                p.stop()
        server.stop()


# --------------------------------------------------------------------------- main

def busy_processes():
    """What else is using the CPU right now (the machine is shared): top 6 over 2 s."""
    try:
        out = subprocess.run(["top", "-b", "-d", "2", "-n", "2", "-w", "200"], capture_output=True,
                             text=True, timeout=10).stdout
        last = out.split("PID USER")[-1].splitlines()[1:]
        rows = []
        for line in last:
            f = line.split(None, 11)
            if len(f) >= 12 and float(f[8]) >= 3.0:
                rows.append(f"{f[11][:60]} {f[8]}%")
        return rows[:6]
    except Exception:  # noqa: BLE001 - informative only
        return []


def cmd_run(a):
    work = Path(a.work).resolve()
    binary = Path(a.binary).resolve()
    prepare(work, binary, a.agents)
    sections = {"started": dt.datetime.now().isoformat(timespec="seconds"),
                "load_before": open("/proc/loadavg").read().split()[:3],
                "others_before": busy_processes(),
                "options": {k: v for k, v in vars(a).items() if k not in ("func",)}}
    path = work / "sections.json"

    def save():
        path.write_text(json.dumps(sections, indent=2))

    if "a" in a.sections:
        log("(a) call rate: hotline")
        sections["rate"] = section_rate(a, work, binary)
        save()
        if a.sipp_ceiling:
            log("(a) call rate: SIPp against a SIPp UAS (ceiling of the load generator)")
            sections["sipp_ceiling"] = section_rate(a, work, binary, sipp_only=True)
            save()
    if "b" in a.sections:
        log("(b) concurrency")
        sections["concurrency"] = section_concurrency(a, work, binary)
        save()
    if "c" in a.sections:
        log("(c) bridged and recorded calls")
        sections["bridged"] = section_bridged(a, work, binary)
        save()
    sections["load_after"] = open("/proc/loadavg").read().split()[:3]
    sections["others_after"] = busy_processes()
    sections["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    save()
    return 0


def machine():
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1])
    osr = ""
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME"):
                osr = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout
    m = re.search(r"SIPp v[\w.\-]+", sipp)
    rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src", "Cargo.toml"],
                           capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": round(mem / 1024 / 1024, 1),
            "kernel": platform.release(), "os": osr, "sipp": m.group(0) if m else sipp.strip(),
            "rustc": rustc, "git": git + (" (src modified)" if dirty else "")}


def fmt(v, unit=""):
    if v is None:
        return "–"
    if unit == " ms" and v == 0:
        return "< 1 ms"
    return f"{v}{unit}"


def markdown(res):
    m = res["machine"]
    s = res.get("sections", {})
    L = [f"# hotline benchmark {res['date']}", "",
         f"Machine: {m['nproc']} CPU ({m['cpu']}), {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
         f"{m['os']}; {m['sipp']}; {m['rustc']}; hotline {m['git']}.",
         f"Load average before/after: {' '.join(s.get('load_before', []))} / "
         f"{' '.join(s.get('load_after', []))}. {res.get('note', '')}",
         f"Other processes using CPU at the start: {', '.join(s.get('others_before', [])) or 'none'}; "
         f"at the end: {', '.join(s.get('others_after', [])) or 'none'}.", "",
         "SIPp, hotline and the capture share the same 2 cores on 127.0.0.1 (loopback-only "
         "network namespace).", ""]
    if "rate" in s:
        r = s["rate"]
        L += ["## (a) Call rate: 3 s IVR calls (INVITE/200/ACK, greeting played, caller streams "
              "PCMU, BYE)", "",
              f"Highest clean rate (0 failed, 0 retransmissions): **{r['max_clean_rate']} calls/s**."
              f" Idle RSS {fmt(r.get('idle_rss_mb'), ' MB')}.", "",
              "| calls/s | calls | ok | failed | retrans | setup avg | hotline CPU | SIPp CPU | "
              "RSS peak | RSS after drain |", "|---|---|---|---|---|---|---|---|---|---|"]
        for x in r["steps"]:
            L.append(f"| {x['rate']} | {x['calls_planned']} | {fmt(x['successful'])} | "
                     f"{fmt(x['failed'])} | {fmt(x['retransmissions'])} | "
                     f"{fmt(x['setup_avg_ms'], ' ms')} | {fmt(x.get('server_cpu_pct'), ' %')} | "
                     f"{fmt(x.get('sipp_cpu_pct'), ' %')} | {fmt(x.get('server_rss_peak_mb'), ' MB')}"
                     f" | {fmt(x.get('server_rss_after_mb'), ' MB')} |")
        aft = r.get("after") or {}
        if aft:
            L += ["", f"RSS 20 s after the ladder: {fmt(aft.get('rss_20s_after_ladder_mb'), ' MB')}; "
                  f"after running {aft.get('repeat_rate')} calls/s again ({fmt(aft.get('repeat_ok'))} ok): "
                  f"{fmt(aft.get('rss_after_repeat_mb'), ' MB')} (growth there would be a leak; "
                  "a plateau is memory the allocator keeps)."]
        if r.get("warnings"):
            L += ["", "Server warnings: " + "; ".join(f"{v}× {k}" for k, v in r["warnings"].items())]
        L.append("")
    if "sipp_ceiling" in s:
        r = s["sipp_ceiling"]
        L += ["### SIPp's own ceiling: same caller scenario against a SIPp UAS (answers, streams "
              "PCMU back)", "",
              f"Highest clean rate: **{r['max_clean_rate']} calls/s**.", "",
              "| calls/s | calls | ok | failed | retrans | setup avg | caller SIPp CPU | UAS SIPp CPU |",
              "|---|---|---|---|---|---|---|---|"]
        for x in r["steps"]:
            L.append(f"| {x['rate']} | {x['calls_planned']} | {fmt(x['successful'])} | "
                     f"{fmt(x['failed'])} | {fmt(x['retransmissions'])} | "
                     f"{fmt(x['setup_avg_ms'], ' ms')} | {fmt(x.get('sipp_cpu_pct'), ' %')} | "
                     f"{fmt(x.get('uas_cpu_pct'), ' %')} |")
        L.append("")
    if "concurrency" in s:
        r = s["concurrency"]
        L += ["## (b) Concurrency: IVR calls held with RTP both ways", "",
              f"Largest clean N (0 failed, < 0.1 % of the sampled server packets lost/late/missing): "
              f"**{r['max_clean_calls']}**. Idle RSS {fmt(r.get('idle_rss_mb'), ' MB')}.", "",
              "| N | hold | ok | failed | sampled streams | lost | late >40 ms | missing | impaired | "
              "p99 delay | late ticks | hotline CPU | RSS peak | per call | RSS after drain |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in r["steps"]:
            p = x.get("rtp_sample", {})
            L.append(f"| {x['calls']} | {x['hold_s']} s | {fmt(x['successful'])} | {fmt(x['failed'])} "
                     f"| {fmt(p.get('streams'))} | {fmt(p.get('lost'))} | {fmt(p.get('late'))} | "
                     f"{fmt(p.get('short'))} | {fmt(p.get('impaired_pct'), ' %')} | "
                     f"{fmt(p.get('delay_p99_ms'), ' ms')} | {fmt(x.get('media_late_ticks'))} | "
                     f"{fmt(x.get('server_cpu_pct'), ' %')} | {fmt(x.get('server_rss_peak_mb'), ' MB')} "
                     f"| {fmt(x.get('kb_per_call'), ' KB')} | {fmt(x.get('server_rss_after_mb'), ' MB')} |")
        L += ["", "Server-sent RTP measured on the caller side: dumpcap on lo, streams from server "
              "ports that are multiples of 64 (about 1 call in 32), during the plateau; lost = sequence "
              "gaps, late = more than 40 ms behind the best transit of the previous second, missing = "
              "packets a 20 ms sender should have sent in the stream's time span but did not. "
              "'late ticks' = hotline_media_late_ticks_total (a worker more than 100 ms behind)."]
        if r.get("warnings"):
            L += ["", "Server warnings: " + "; ".join(f"{v}× {k}" for k, v in r["warnings"].items())]
        L.append("")
    if "bridged" in s:
        x = s["bridged"]
        c = x["customers"]
        p = x.get("rtp_sample", {})
        rec = x["recordings"]
        L += ["## (c) Bridged and recorded customer ↔ agent calls", "",
              "| pairs | agents registered | customers ok | failed | connected | agent calls answered "
              "| recordings valid | sampled streams | impaired | p99 delay | hotline CPU | RSS idle / peak / "
              "after | per pair |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
              f"| {x['pairs']} | {fmt(x['agents_registered'])} | {fmt(c.get('successful'))} | "
              f"{fmt(c.get('failed'))} | {fmt(int(x['connected']) if x.get('connected') is not None else None)} | {fmt(x.get('agent_calls_answered'))} | "
              f"{rec['valid']}/{rec['files']} | {fmt(p.get('streams'))} | {fmt(p.get('impaired_pct'), ' %')} "
              f"| {fmt(p.get('delay_p99_ms'), ' ms')} | {fmt(x.get('server_cpu_pct'), ' %')} | "
              f"{fmt(x.get('idle_rss_mb'))} / {fmt(x.get('server_rss_peak_mb'))} / "
              f"{fmt(x.get('server_rss_after_mb'))} MB | {fmt(x.get('kb_per_pair'), ' KB')} |", "",
              f"Media sessions at the plateau: {fmt(x.get('sessions_at_plateau'))} (2 per connected pair); "
              f"media ticks late > 100 ms: {fmt(x.get('media_late_ticks'))}; recordings' average length "
              f"{fmt(rec.get('avg_secs'), ' s')} (valid = stereo 8 kHz 16-bit, >= hold - 15 s, sound on "
              f"both channels); examples of invalid ones: {rec.get('invalid_examples', [])[:2]}.", ""]
        if x.get("warnings"):
            L += ["Server warnings: " + "; ".join(f"{v}× {k}" for k, v in x["warnings"].items()), ""]
    if res.get("schedule"):
        L += ["## (e) `cargo bench --bench schedule`", "", "```", res["schedule"].strip(), "```", ""]
    L += ["Raw figures: the JSON file of the same name. CPU is % of one core "
          "(utime+stime from /proc/PID/stat); RSS is VmRSS.", ""]
    return "\n".join(L)


def cmd_report(a):
    work = Path(a.work)
    sec = json.loads((work / "sections.json").read_text()) if (work / "sections.json").exists() \
        else {}
    sched = (work / "schedule.txt").read_text() if (work / "schedule.txt").exists() else ""
    # Named after the start of the load runs (or now, for a schedule-only report).
    try:
        now = dt.datetime.fromisoformat(sec["started"])
    except (KeyError, ValueError):
        now = dt.datetime.now()
    res = {"date": now.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "sections": sec,
           "schedule": sched, "note": a.note or ""}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = now.strftime("%Y-%m-%d-%H%M") + ("-quick" if sec.get("options", {}).get("quick") else "")
    write_results(out, stem, res, markdown(res))
    return 0


def write_results(out, stem, res, md):
    """OUT/STEM.json and OUT/STEM.md; prints the markdown."""
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    (out / f"{stem}.md").write_text(md)
    print(md)
    log(f"results: {out / (stem + '.md')} and .json")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--work", required=True)
    r.add_argument("--binary", default=str(ROOT / "target" / "release" / "hotline"))
    r.add_argument("--quick", action="store_true")
    r.add_argument("--sections", default="abc")
    r.add_argument("--rates", default="50,100,200,400,700,1000")
    r.add_argument("--step-secs", type=int, default=20)
    r.add_argument("--conc", default="500,1000,2000,3500,5000")
    r.add_argument("--hold-secs", type=int, default=60)
    r.add_argument("--ramp-rate", type=int, default=200)
    r.add_argument("--sample-secs", type=int, default=20)
    r.add_argument("--agents", type=int, default=1000)
    r.add_argument("--bridge-hold", type=int, default=40)
    r.add_argument("--no-sipp-ceiling", dest="sipp_ceiling", action="store_false")
    r.set_defaults(func=cmd_run)
    q = sub.add_parser("report")
    q.add_argument("--work", required=True)
    q.add_argument("--out", default=str(HERE / "results"))
    q.add_argument("--note", default="")
    q.set_defaults(func=cmd_report)
    a = p.parse_args()
    if a.cmd == "run":
        a.rates = [int(x) for x in str(a.rates).split(",") if x]
        a.conc = [int(x) for x in str(a.conc).split(",") if x]
    try:
        return a.func(a)
    except HarnessError as e:
        log(f"harness error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
