//! The media engine: a few worker threads, each moving RTP for many calls
//! from one 20 ms tick.
//!
//! Per tick a worker reads what arrived on each session's socket (RFC 4733
//! events, in-band tones, symmetric-RTP address learning, media timeout),
//! then sends exactly one 20 ms packet per session (prompt audio or silence).
//! No task or timer per packet, no allocation per packet: buffers live in the
//! worker and are reused. Call tasks steer sessions through a channel the
//! worker drains at the start of each tick, and hear back through their own
//! event channel; nothing here waits on SIP, HTTP or the database.
//!
//! A browser softphone's session has no socket here: its WebRTC leg
//! (`crate::browser`) hands over 20 ms G.711 frames on bounded channels,
//! which the worker polls and fills on the same tick as RTP, so bridging,
//! recording, hold music and listen-in work the same for it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

use super::dtmf::DtmfReceiver;
use super::goertzel::DtmfDetector;
use super::jitter::{JitterBuffer, Playout};
use super::prompt::Prompt;
use super::recorder::Recorder;
use super::rtcp::{ntp_from_unix, RtcpStats};
use super::rtp::{RtpPacket, RtpSender};
use crate::browser::MediaEnds;
use crate::sip::sdp::Codec;

/// One 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
const TICK: Duration = Duration::from_millis(20);
/// Reads per session per tick: bounds the work a flood can cause.
const MAX_READS_PER_TICK: usize = 16;
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// At most this much skipped time (5 s) is padded into a recording at once.
const MAX_PAD_FRAMES: usize = 250;
/// Read the RTCP socket every this many ticks (0.5 s).
const RTCP_READ_EVERY: u32 = 25;
/// Most sessions one session hears at once: the agent, a barging supervisor
/// and one more (a consulted agent). Fixed, so mixing never allocates.
pub const MAX_SOURCES: usize = 3;

/// The sessions whose audio one session hears, mixed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sources {
    ids: [u64; MAX_SOURCES],
    len: usize,
}

impl Sources {
    fn of(ids: &[u64]) -> Self {
        let mut s = Sources::default();
        for &id in ids.iter().take(MAX_SOURCES) {
            s.ids[s.len] = id;
            s.len += 1;
        }
        s
    }

    fn as_slice(&self) -> &[u64] {
        &self.ids[..self.len]
    }

    fn remove(&mut self, id: u64) {
        let mut kept = Sources::default();
        for &x in self.as_slice() {
            if x != id {
                kept.ids[kept.len] = x;
                kept.len += 1;
            }
        }
        *self = kept;
    }
}

/// How a digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfMethod {
    Rfc4733,
    Inband,
    SipInfo,
}

impl DtmfMethod {
    pub fn name(self) -> &'static str {
        match self {
            DtmfMethod::Rfc4733 => "rfc4733",
            DtmfMethod::Inband => "inband",
            DtmfMethod::SipInfo => "info",
        }
    }
}

/// What a session tells its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The prompt started with this token played to its end.
    PromptFinished {
        token: u64,
    },
    Digit {
        digit: char,
        method: DtmfMethod,
    },
    /// No RTP from the remote side for the configured time.
    Timeout,
    /// Symmetric RTP: the remote's packets come from somewhere else than its SDP said.
    RemoteLearned {
        addr: SocketAddr,
    },
    /// The recording could not be written (disk full, permissions): the call goes on.
    RecordingFailed {
        reason: String,
    },
}

/// Where and how to send, from SDP negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    pub remote: SocketAddr,
    pub codec: Codec,
    pub dtmf_pt: Option<u8>,
    /// False while the remote side holds the call (sendonly/inactive from them).
    pub send: bool,
}

enum Control {
    Add(Box<Session>),
    /// A browser session's WebRTC leg is up: its frames flow from now on.
    AttachBrowser(u64, Box<MediaEnds>),
    Configure(u64, StreamParams),
    Play(u64, Arc<Prompt>, u64),
    StopPlaying(u64),
    /// Join two sessions (customer, agent); record both when a recorder is given.
    Bridge(u64, u64, Option<Box<Recorder>>),
    /// What one session hears from now on (mixed); empty: nothing.
    Hear(u64, Sources),
    Unbridge(u64),
    StopRecording(u64),
    Remove(u64),
}

/// Hands out RTP/RTCP port pairs from the configured range, round the range
/// from a random first pair: a port is reused as late as possible, so RTP a
/// peer still sends to an ended call (or to a restarted server's old port)
/// does not reach the next call there. The OS is the judge of what is free:
/// a pair that fails to bind is skipped.
struct PortPool {
    first: u16,
    pairs: u32,
    cursor: AtomicU32,
}

impl PortPool {
    fn new(first: u16, last: u16) -> Self {
        let first = first + (first % 2); // RTP on even ports (RFC 3550 §11)
        let pairs = u32::from(last.saturating_sub(first)) / 2 + 1;
        Self {
            first,
            pairs: pairs.max(1),
            cursor: AtomicU32::new(rand::random::<u32>() % pairs.max(1)),
        }
    }

    fn bind(&self, ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
        for _ in 0..self.pairs {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.pairs;
            let port = u32::from(self.first) + 2 * i;
            let (Ok(rtp_port), Ok(rtcp_port)) = (u16::try_from(port), u16::try_from(port + 1))
            else {
                continue;
            };
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(ip, rtp_port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, rtcp_port)) else {
                continue;
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            return Ok((rtp, rtcp));
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free RTP port pair in the configured range",
        ))
    }
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub address: IpAddr,
    pub ports: (u16, u16),
    pub workers: usize,
    /// Hang up when nothing arrives for this long (0 = never).
    pub timeout: Duration,
}

/// Handle to the media workers; cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    workers: Arc<Vec<Sender<Control>>>,
    ports: Arc<PortPool>,
    next_id: Arc<AtomicU64>,
    settings: Arc<EngineSettings>,
}

impl MediaEngine {
    pub fn start(settings: EngineSettings) -> io::Result<Self> {
        let mut workers = Vec::new();
        for i in 0..settings.workers.max(1) {
            let (tx, rx) = mpsc::channel();
            let timeout = settings.timeout;
            std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || Worker::new(rx, timeout).run())?;
            workers.push(tx);
        }
        Ok(Self {
            workers: Arc::new(workers),
            ports: Arc::new(PortPool::new(settings.ports.0, settings.ports.1)),
            next_id: Arc::new(AtomicU64::new(1)),
            settings: Arc::new(settings),
        })
    }

    /// Open a session: binds its ports now (the SDP needs them) and hands the
    /// sockets to a worker. Events for the call arrive on `events`.
    pub fn open(&self, events: UnboundedSender<MediaEvent>) -> io::Result<MediaSession> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open_on(id, (id as usize) % self.workers.len(), events, true)
    }

    /// Open a session on the same worker as `peer`, so the two can be bridged
    /// without crossing threads.
    pub fn open_near(
        &self,
        peer: &MediaSession,
        events: UnboundedSender<MediaEvent>,
    ) -> io::Result<MediaSession> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open_on(id, peer.worker_index, events, false)
    }

    /// Open a session for a browser softphone, beside `near` (the customer,
    /// to be bridged) or on the next worker. It carries no audio until
    /// [`MediaSession::attach_browser`] hands it the WebRTC leg's frames,
    /// once the browser has answered.
    pub fn open_browser(
        &self,
        near: Option<&MediaSession>,
        events: UnboundedSender<MediaEvent>,
    ) -> io::Result<MediaSession> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let index = near.map_or((id as usize) % self.workers.len(), |p| p.worker_index);
        let worker = self.worker(index)?;
        let mut session = Session::new(id, SessionIo::Browser(None), events);
        session.inband_enabled = false;
        self.add(id, index, worker, session, NO_ADDRESS)
    }

    fn worker(&self, index: usize) -> io::Result<Sender<Control>> {
        self.workers
            .get(index)
            .cloned()
            .ok_or_else(|| io::Error::other("no such media worker"))
    }

    fn open_on(
        &self,
        id: u64,
        worker_index: usize,
        events: UnboundedSender<MediaEvent>,
        inband: bool,
    ) -> io::Result<MediaSession> {
        let (rtp, rtcp) = self.ports.bind(self.settings.address)?;
        let local = rtp.local_addr()?;
        let worker = self.worker(worker_index)?;
        let mut session = Session::new(id, SessionIo::Rtp { rtp, rtcp }, events);
        session.inband_enabled = inband;
        self.add(id, worker_index, worker, session, local)
    }

    fn add(
        &self,
        id: u64,
        worker_index: usize,
        worker: Sender<Control>,
        session: Session,
        local: SocketAddr,
    ) -> io::Result<MediaSession> {
        worker
            .send(Control::Add(Box::new(session)))
            .map_err(|_| io::Error::other("media worker stopped"))?;
        metrics::gauge!("hotline_media_sessions").increment(1.0);
        Ok(MediaSession {
            id,
            local,
            worker,
            worker_index,
            law: AtomicU8::new(0),
        })
    }
}

/// Where a browser session "is" for code that asks: it has no socket of ours.
const NO_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// A call's handle on its media session; dropping it closes the session.
pub struct MediaSession {
    id: u64,
    local: SocketAddr,
    worker: Sender<Control>,
    worker_index: usize,
    /// The law last configured (0: none yet), so a party rung for this
    /// session can be offered the same law and bridged by a copy.
    law: AtomicU8,
}

impl MediaSession {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The law this session sends and receives, once negotiated.
    pub fn law(&self) -> Option<Codec> {
        match self.law.load(Ordering::Relaxed) {
            1 => Some(Codec::Pcmu),
            2 => Some(Codec::Pcma),
            _ => None,
        }
    }

    fn set_law(&self, codec: Codec) {
        let v = match codec {
            Codec::Pcmu => 1,
            Codec::Pcma => 2,
        };
        self.law.store(v, Ordering::Relaxed);
    }

    /// Start or change sending and receiving (after SDP negotiation or re-INVITE).
    pub fn configure(&self, params: StreamParams) {
        self.set_law(params.codec);
        let _ = self.worker.send(Control::Configure(self.id, params));
    }

    /// Hand a browser session (from [`MediaEngine::open_browser`]) its
    /// WebRTC leg's frames: it sends and receives in `ends.codec` from now on.
    pub fn attach_browser(&self, ends: MediaEnds) {
        self.set_law(Codec::from(ends.codec));
        let _ = self
            .worker
            .send(Control::AttachBrowser(self.id, Box::new(ends)));
    }

    /// Play a prompt from its start; replaces whatever was playing.
    pub fn play(&self, prompt: Arc<Prompt>, token: u64) {
        let _ = self.worker.send(Control::Play(self.id, prompt, token));
    }

    pub fn stop_playing(&self) {
        let _ = self.worker.send(Control::StopPlaying(self.id));
    }

    /// Connect this (customer) session with an agent session opened with
    /// [`MediaEngine::open_near`]: each hears only the other, transcoded when
    /// the codecs differ. A `recorder` starts the recording: this session's
    /// audio left, what it hears right, every tick until
    /// [`stop_recording`](Self::stop_recording) or the session ends (one file
    /// across holds and transfers); `None` keeps the one running. A playing
    /// prompt (hold music) takes the place of the peer's audio.
    pub fn bridge(&self, agent: &MediaSession, recorder: Option<Recorder>) -> bool {
        if agent.worker_index != self.worker_index {
            return false;
        }
        self.worker
            .send(Control::Bridge(self.id, agent.id, recorder.map(Box::new)))
            .is_ok()
    }

    /// From now on this session hears `sources` mixed (up to [`MAX_SOURCES`];
    /// all opened on this worker), and nothing else: listen, whisper, barge
    /// and consultation are made of this. Others keep what they hear.
    pub fn hear(&self, sources: &[&MediaSession]) -> bool {
        if sources.len() > MAX_SOURCES
            || sources.iter().any(|s| s.worker_index != self.worker_index)
        {
            return false;
        }
        let mut ids = Sources::default();
        for s in sources {
            ids.ids[ids.len] = s.id;
            ids.len += 1;
        }
        self.worker.send(Control::Hear(self.id, ids)).is_ok()
    }

    /// Stop hearing anyone and stop being heard; a recording goes on.
    pub fn unbridge(&self) {
        let _ = self.worker.send(Control::Unbridge(self.id));
    }

    /// Finish the recording (the file is complete and valid afterwards).
    pub fn stop_recording(&self) {
        let _ = self.worker.send(Control::StopRecording(self.id));
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        let _ = self.worker.send(Control::Remove(self.id));
        metrics::gauge!("hotline_media_sessions").decrement(1.0);
    }
}

struct Playback {
    prompt: Arc<Prompt>,
    token: u64,
    frame: usize,
}

/// How a session's packets travel.
enum SessionIo {
    /// RTP and RTCP on our own UDP ports (SIP phones, trunks, SIPp).
    Rtp { rtp: UdpSocket, rtcp: UdpSocket },
    /// A browser softphone's WebRTC leg: frames on channels; `None` until
    /// the browser has answered.
    Browser(Option<MediaEnds>),
}

struct Session {
    id: u64,
    io: SessionIo,
    /// Frames counted from a browser leg (its reframer may give two frames
    /// one RTP sequence number): the jitter buffer's sequence.
    browser_seq: u16,
    events: UnboundedSender<MediaEvent>,
    params: Option<StreamParams>,
    /// Where packets go: the SDP address until the remote's packets show otherwise.
    remote: Option<SocketAddr>,
    learned: bool,
    sender: RtpSender,
    rtcp_stats: RtcpStats,
    playback: Option<Playback>,
    dtmf: DtmfReceiver,
    inband: DtmfDetector,
    /// Once the remote sends RFC 4733 events, in-band detection is off (no doubles).
    seen_rfc4733: bool,
    last_rx: Instant,
    timed_out: bool,
    last_rtcp: Instant,
    pcm: [i16; FRAME_SAMPLES],
    /// Whose audio this session hears (mixed) and sends to its remote.
    hears: Sources,
    /// Someone hears this session (or it records): decode what arrives.
    listened: bool,
    jitter: JitterBuffer,
    /// What the remote said this tick (after the jitter buffer), as PCM.
    heard: [i16; FRAME_SAMPLES],
    recorder: Option<Box<Recorder>>,
    /// Listen for in-band DTMF (callers; agent legs never).
    inband_enabled: bool,
    ticks: u32,
}

impl Session {
    fn new(id: u64, io: SessionIo, events: UnboundedSender<MediaEvent>) -> Self {
        let now = Instant::now();
        let ssrc: u32 = rand::random();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            id,
            io,
            browser_seq: 0,
            events,
            params: None,
            remote: None,
            learned: false,
            sender: RtpSender::new(ssrc),
            rtcp_stats: RtcpStats::new(ssrc, "hotline", 8000, now, ntp_from_unix(wall)),
            playback: None,
            dtmf: DtmfReceiver::new(),
            inband: DtmfDetector::new(),
            seen_rfc4733: false,
            last_rx: now,
            timed_out: false,
            last_rtcp: now,
            pcm: [0; FRAME_SAMPLES],
            hears: Sources::default(),
            listened: false,
            jitter: JitterBuffer::new(60),
            heard: [0; FRAME_SAMPLES],
            recorder: None,
            inband_enabled: true,
            ticks: 0,
        }
    }

    fn configure(&mut self, p: StreamParams, now: Instant) {
        if self.params.is_none() {
            self.last_rx = now;
        }
        if !self.learned || self.params.map(|old| old.remote) != Some(p.remote) {
            self.remote = Some(p.remote);
            self.learned = false;
        }
        if !p.send {
            // Held: the remote may stop sending too; do not count it as dead.
            self.last_rx = now;
        }
        self.params = Some(p);
    }

    /// Write `frames` of silence to the recording (time the worker skipped).
    fn pad_recording(&mut self, frames: usize) {
        const SILENCE: [i16; FRAME_SAMPLES] = [0; FRAME_SAMPLES];
        if let Some(rec) = self.recorder.as_mut() {
            for _ in 0..frames {
                if rec.push(&SILENCE, &SILENCE).is_err() {
                    break;
                }
            }
        }
    }

    /// Phase 1 of a tick: read what arrived.
    fn receive_phase(&mut self, now: Instant, buf: &mut [u8]) {
        self.receive(now, buf);
        // RTCP comes every few seconds: looking twice a second spares a
        // syscall per session per tick.
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(RTCP_READ_EVERY) {
            self.drain_rtcp(now, buf);
        }
    }

    fn finish_recording(&mut self) {
        if let Some(rec) = self.recorder.take() {
            if let Err(e) = rec.finish() {
                let _ = self.events.send(MediaEvent::RecordingFailed {
                    reason: e.to_string(),
                });
            }
        }
    }

    /// Whether what arrives must be decoded: someone hears it or it is recorded.
    fn wants_audio(&self) -> bool {
        self.listened || self.recorder.is_some()
    }

    /// Phase 2 (bridged sessions): take this tick's frame out of the jitter
    /// buffer as PCM; silence for a lost or missing frame.
    fn pull_heard(&mut self) {
        let codec = self.params.map(|p| p.codec);
        match (self.jitter.pop(), codec) {
            (Playout::Frame { payload, .. }, Some(c)) => {
                let n = payload.len().min(FRAME_SAMPLES);
                let g: super::g711::G711 = c.into();
                g.decode_slice(&payload[..n], &mut self.heard[..n]);
                self.heard[n..].fill(0);
            }
            _ => self.heard.fill(0),
        }
    }

    /// Phase 3: send one frame; `peer_audio` is what the bridged peer heard.
    fn send_phase(
        &mut self,
        now: Instant,
        timeout: Duration,
        peer_audio: Option<&[i16; FRAME_SAMPLES]>,
        out: &mut [u8],
    ) {
        if let Some(rec) = self.recorder.as_mut() {
            const SILENCE: [i16; FRAME_SAMPLES] = [0; FRAME_SAMPLES];
            if let Err(e) = rec.push(&self.heard, peer_audio.unwrap_or(&SILENCE)) {
                let _ = self.events.send(MediaEvent::RecordingFailed {
                    reason: e.to_string(),
                });
                self.recorder = None;
            }
        }
        let Some(p) = self.params else {
            return;
        };
        if p.send {
            self.send_frame(p, peer_audio, out);
        } else {
            self.last_rx = now;
        }
        if !timeout.is_zero() && !self.timed_out && now.duration_since(self.last_rx) > timeout {
            self.timed_out = true;
            let _ = self.events.send(MediaEvent::Timeout);
        }
        if now.duration_since(self.last_rtcp) >= RTCP_INTERVAL {
            self.last_rtcp = now;
            self.send_rtcp(now);
        }
    }

    fn receive(&mut self, now: Instant, buf: &mut [u8]) {
        if let SessionIo::Browser(_) = self.io {
            return self.receive_browser(now);
        }
        for _ in 0..MAX_READS_PER_TICK {
            let received = match &self.io {
                SessionIo::Rtp { rtp, .. } => rtp.recv_from(buf),
                SessionIo::Browser(_) => return,
            };
            let (len, src) = match received {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(session = self.id, error = %e, "RTP receive error");
                    return;
                }
            };
            let Some(p) = self.params else {
                continue;
            };
            let Some(data) = buf.get(..len) else {
                continue;
            };
            let Ok(pkt) = RtpPacket::parse(data) else {
                continue;
            };
            let pt = pkt.payload_type();
            if Some(pt) == p.dtmf_pt {
                self.last_rx = now;
                self.seen_rfc4733 = true;
                if let Some(digit) = self.dtmf.push(pkt.timestamp(), pkt.payload()) {
                    let _ = self.events.send(MediaEvent::Digit {
                        digit,
                        method: DtmfMethod::Rfc4733,
                    });
                }
                self.latch(src);
            } else if pt == p.codec.payload_type() {
                self.last_rx = now;
                self.latch(src);
                self.rtcp_stats
                    .on_received(pkt.ssrc(), pkt.sequence(), pkt.timestamp(), now);
                if self.wants_audio() {
                    let _ = self.jitter.push(
                        pkt.ssrc(),
                        pkt.sequence(),
                        pkt.timestamp(),
                        pkt.payload(),
                    );
                }
                // In-band detection costs 8 Goertzel filters per packet: only
                // for a caller the IVR may be listening to (never an agent
                // leg, never while bridged), and not once RFC 4733 is in use.
                if self.inband_enabled && self.hears.len == 0 && !self.seen_rfc4733 {
                    let payload = pkt.payload();
                    let n = payload.len().min(FRAME_SAMPLES);
                    match p.codec {
                        Codec::Pcmu => super::g711::decode_ulaw(&payload[..n], &mut self.pcm[..n]),
                        Codec::Pcma => super::g711::decode_alaw(&payload[..n], &mut self.pcm[..n]),
                    }
                    if let Some(digit) = self.inband.push(&self.pcm[..n]) {
                        let _ = self.events.send(MediaEvent::Digit {
                            digit,
                            method: DtmfMethod::Inband,
                        });
                    }
                }
            }
            // Any other payload type (comfort noise, SIPp's filler) is ignored.
        }
    }

    /// A browser leg's frames (already reframed to 20 ms, digits taken out by
    /// the leg): into the jitter buffer like RTP payloads, in the session's law.
    fn receive_browser(&mut self, now: Instant) {
        let wants_audio = self.wants_audio();
        let SessionIo::Browser(Some(ends)) = &mut self.io else {
            return;
        };
        let Some(p) = self.params else {
            return;
        };
        let law: super::g711::G711 = p.codec.into();
        for _ in 0..MAX_READS_PER_TICK {
            let Ok(mut frame) = ends.from_browser.try_recv() else {
                return;
            };
            self.last_rx = now;
            if !wants_audio {
                continue;
            }
            if frame.law != law {
                // The browser switched to the other accepted law: one table lookup per byte.
                for b in frame.payload.iter_mut() {
                    *b = law.encode(frame.law.decode(*b));
                }
            }
            self.browser_seq = self.browser_seq.wrapping_add(1);
            let _ = self
                .jitter
                .push(0, self.browser_seq, frame.timestamp, &frame.payload);
        }
    }

    /// Symmetric RTP (RFC 4961): answer to where the audio really comes from.
    fn latch(&mut self, src: SocketAddr) {
        if self.remote != Some(src) {
            self.remote = Some(src);
            self.learned = true;
            let _ = self.events.send(MediaEvent::RemoteLearned { addr: src });
        }
    }

    fn send_frame(
        &mut self,
        p: StreamParams,
        peer_audio: Option<&[i16; FRAME_SAMPLES]>,
        out: &mut [u8],
    ) {
        let mut finished = None;
        let mut bridged = [0u8; FRAME_SAMPLES];
        let payload: &[u8] = match &mut self.playback {
            Some(pb) => match pb.prompt.frame(p.codec.into(), pb.frame) {
                Some(f) => {
                    pb.frame += 1;
                    f
                }
                None => {
                    finished = Some(pb.token);
                    silence(p.codec)
                }
            },
            None => match peer_audio {
                Some(pcm) => {
                    let g: super::g711::G711 = p.codec.into();
                    g.encode_slice(pcm, &mut bridged);
                    &bridged
                }
                None => silence(p.codec),
            },
        };
        match &self.io {
            SessionIo::Rtp { rtp, .. } => {
                if let Some(remote) = self.remote {
                    let written = self.sender.write(
                        out,
                        p.codec.payload_type(),
                        payload,
                        FRAME_SAMPLES as u32,
                    );
                    if let Some(pkt) = written.ok().and_then(|len| out.get(..len)) {
                        if let Err(e) = rtp.send_to(pkt, remote) {
                            if e.kind() != io::ErrorKind::WouldBlock {
                                debug!(session = self.id, error = %e, "RTP send error");
                            }
                        }
                    }
                }
            }
            SessionIo::Browser(Some(ends)) => {
                let mut frame = [silence(p.codec)[0]; FRAME_SAMPLES];
                let n = payload.len().min(FRAME_SAMPLES);
                frame[..n].copy_from_slice(&payload[..n]);
                // Full means the leg is not connected yet or stalls: drop
                // this frame rather than wait (the leg's clock runs on).
                let _ = ends.to_browser.try_send(frame);
            }
            SessionIo::Browser(None) => {}
        }
        if let Some(token) = finished {
            self.playback = None;
            let _ = self.events.send(MediaEvent::PromptFinished { token });
        }
    }

    fn drain_rtcp(&mut self, now: Instant, buf: &mut [u8]) {
        // A browser leg's RTCP is the WebRTC stack's business.
        let SessionIo::Rtp { rtcp, .. } = &self.io else {
            return;
        };
        for _ in 0..MAX_READS_PER_TICK {
            let Ok((len, _)) = rtcp.recv_from(buf) else {
                return;
            };
            if let Some(data) = buf.get(..len) {
                // Reports from the peer give us round-trip time; bad ones are ignored.
                let _ = self.rtcp_stats.on_rtcp(data, now);
            }
        }
    }

    /// A sender report every few seconds (RFC 3550 §6.4); allocating here is
    /// fine, it is not per packet.
    fn send_rtcp(&mut self, now: Instant) {
        let (SessionIo::Rtp { rtcp, .. }, Some(remote)) = (&self.io, self.remote) else {
            return;
        };
        let stats = self.sender.stats();
        if let Ok(report) = self.rtcp_stats.build_report(now, Some(&stats)) {
            let rtcp_remote = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
            let _ = rtcp.send_to(&report, rtcp_remote);
        }
    }
}

/// After a busy spell, hand freed heap back to the OS so resident memory
/// returns near idle (glibc keeps it otherwise; the bench saw 132 MB stay).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Media threads run ahead of everything else on the machine where the OS
/// lets us (root or CAP_SYS_NICE): a late packet is heard, a late HTTP reply
/// is not. Without the permission the thread keeps its normal priority.
fn raise_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory
    // of ours; on failure they only return -1.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10)
    };
    if result != 0 {
        debug!("media thread keeps normal priority (no permission to raise it)");
    }
}

fn silence(codec: Codec) -> &'static [u8] {
    const ULAW: [u8; FRAME_SAMPLES] = [0xFF; FRAME_SAMPLES];
    const ALAW: [u8; FRAME_SAMPLES] = [0xD5; FRAME_SAMPLES];
    match codec {
        Codec::Pcmu => &ULAW,
        Codec::Pcma => &ALAW,
    }
}

struct Worker {
    control: Receiver<Control>,
    sessions: HashMap<u64, Session>,
    /// Session ids in a stable order, to visit sessions while reading peers.
    order: Vec<u64>,
    timeout: Duration,
}

impl Worker {
    fn new(control: Receiver<Control>, timeout: Duration) -> Self {
        Self {
            control,
            sessions: HashMap::new(),
            order: Vec::new(),
            timeout,
        }
    }

    fn apply(&mut self, c: Control, now: Instant) {
        match c {
            Control::Add(s) => {
                self.order.push(s.id);
                self.sessions.insert(s.id, *s);
            }
            Control::AttachBrowser(id, ends) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    let params = StreamParams {
                        remote: NO_ADDRESS,
                        codec: Codec::from(ends.codec),
                        dtmf_pt: None,
                        send: true,
                    };
                    s.io = SessionIo::Browser(Some(*ends));
                    s.configure(params, now);
                }
            }
            Control::Configure(id, p) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.configure(p, now);
                }
            }
            Control::Play(id, prompt, token) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.playback = Some(Playback {
                        prompt,
                        token,
                        frame: 0,
                    });
                }
            }
            Control::StopPlaying(id) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.playback = None;
                }
            }
            Control::Bridge(customer, agent, recorder) => {
                if !self.sessions.contains_key(&customer) || !self.sessions.contains_key(&agent) {
                    return;
                }
                if let Some(s) = self.sessions.get_mut(&customer) {
                    s.hears = Sources::of(&[agent]);
                    if let Some(r) = recorder {
                        s.finish_recording();
                        s.recorder = Some(r);
                    }
                }
                if let Some(s) = self.sessions.get_mut(&agent) {
                    s.hears = Sources::of(&[customer]);
                }
                self.relink();
            }
            Control::Hear(id, sources) => {
                let known = sources
                    .as_slice()
                    .iter()
                    .all(|x| *x != id && self.sessions.contains_key(x));
                if let (true, Some(s)) = (known, self.sessions.get_mut(&id)) {
                    s.hears = sources;
                    self.relink();
                }
            }
            Control::Unbridge(id) => self.unbridge(id),
            Control::StopRecording(id) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.finish_recording();
                }
            }
            Control::Remove(id) => {
                self.unbridge(id);
                if let Some(mut s) = self.sessions.remove(&id) {
                    s.finish_recording();
                }
                self.order.retain(|x| *x != id);
            }
        }
    }

    /// `id` hears no one and no one hears it.
    fn unbridge(&mut self, id: u64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.hears = Sources::default();
        }
        for s in self.sessions.values_mut() {
            if s.hears.as_slice().contains(&id) {
                s.hears.remove(id);
            }
        }
        self.relink();
    }

    /// Recompute who is heard by someone (on relation changes, never per tick).
    fn relink(&mut self) {
        let mut heard = std::collections::HashSet::new();
        for s in self.sessions.values() {
            heard.extend(s.hears.as_slice().iter().copied());
        }
        for s in self.sessions.values_mut() {
            s.listened = heard.contains(&s.id);
        }
    }

    fn tick(&mut self, buf: &mut [u8], out: &mut [u8]) {
        let now = Instant::now();
        for s in self.sessions.values_mut() {
            s.receive_phase(now, buf);
        }
        for s in self.sessions.values_mut() {
            if s.wants_audio() {
                s.pull_heard();
            }
        }
        let mut mix = [0i16; FRAME_SAMPLES];
        for i in 0..self.order.len() {
            let id = self.order[i];
            let sources = self.sessions.get(&id).map(|s| s.hears).unwrap_or_default();
            let mut any = false;
            for src in sources.as_slice() {
                let Some(p) = self.sessions.get(src) else {
                    continue;
                };
                if !any {
                    mix = p.heard;
                    any = true;
                } else {
                    for (m, h) in mix.iter_mut().zip(p.heard.iter()) {
                        *m = m.saturating_add(*h);
                    }
                }
            }
            if let Some(s) = self.sessions.get_mut(&id) {
                s.send_phase(now, self.timeout, any.then_some(&mix), out);
            }
        }
    }

    fn run(mut self) {
        raise_priority();
        let mut buf = vec![0u8; 2048];
        let mut out = vec![0u8; 1500];
        let mut next = Instant::now() + TICK;
        let mut trimmed = true;
        loop {
            if self.sessions.is_empty() {
                // Idle: sleep until a call arrives.
                match self.control.recv_timeout(Duration::from_secs(1)) {
                    Ok(c) => self.apply(c, Instant::now()),
                    Err(RecvTimeoutError::Timeout) => {
                        if !trimmed {
                            release_free_memory();
                            trimmed = true;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                trimmed = false;
                next = Instant::now() + TICK;
            }
            loop {
                match self.control.try_recv() {
                    Ok(c) => self.apply(c, Instant::now()),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            self.tick(&mut buf, &mut out);
            let after = Instant::now();
            if after > next + Duration::from_millis(100) {
                warn!(
                    sessions = self.sessions.len(),
                    late_ms = (after - next).as_millis() as u64,
                    "media worker fell behind; resynchronising"
                );
                metrics::counter!("hotline_media_late_ticks_total").increment(1);
                // Keep recordings in step with the wall clock: the skipped
                // time is written as silence rather than lost.
                let skipped = ((after - next).as_millis() / TICK.as_millis()) as usize;
                for s in self.sessions.values_mut() {
                    s.pad_recording(skipped.min(MAX_PAD_FRAMES));
                }
                next = after + TICK;
            } else {
                if next > after {
                    std::thread::sleep(next - after);
                }
                next += TICK;
            }
        }
    }
}
