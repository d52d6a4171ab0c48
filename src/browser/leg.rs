//! The browser media leg: the narrow traits hotline's call code uses, and
//! their implementation on `webrtc` 0.21.
//!
//! Two directions, one result:
//! * hotline calls a browser agent: [`BrowserMedia::offer`] gives the SDP for
//!   the INVITE, and [`OfferedLeg::accept`] takes the browser's answer from
//!   the 200 OK;
//! * a browser calls in: [`BrowserMedia::answer`] answers the SDP of its
//!   INVITE.
//!
//! Either way the call task gets an [`AnsweredLeg`]: it gives the
//! [`MediaEnds`] to the media worker that owns the customer's RTP session and
//! keeps the events and the [`BrowserLeg`] handle. From then on the worker
//! moves 160-byte frames between the two legs on its 20 ms tick; nothing in
//! the call path names a `webrtc` type.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

use crate::browser::error::LegError;
use crate::browser::frame::{G711Frame, InboundFrame, Reframer, CLOCK_RATE, FRAME_SAMPLES, G711};
use crate::browser::ports::{PortPolicy, PortPool};
use crate::browser::sdp::{negotiated, reachable_candidates, restrict_offer, Negotiated};
use crate::media::dtmf::DtmfReceiver;

/// The payload type we offer for 8 kHz telephone-event when we are the
/// offerer; as answerer the browser's number is reused (see [`crate::browser::sdp`]).
const TELEPHONE_EVENT_PT: u8 = 101;

/// How browser legs are set up. One value per hotline process.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// Address legs bind to and announce in ICE: the media address of the
    /// host (127.0.0.1 in tests).
    pub ip: std::net::IpAddr,
    /// Which UDP ports legs use.
    pub ports: PortPolicy,
    /// G.711 laws in order of preference. Put the customer leg's law first
    /// and the bridge needs no transcoding.
    pub codecs: Vec<G711>,
    /// Frames buffered from the browser before the worker takes them
    /// (50 = 1 s). When full, new frames are dropped and counted: a stalled
    /// worker must not grow memory.
    pub inbound_frames: usize,
    /// Frames buffered towards the browser (10 = 200 ms of added latency at
    /// most). `try_send` fails when full; the worker drops that frame.
    pub outbound_frames: usize,
    /// How long to wait for our host candidate to be gathered.
    pub gather_timeout: Duration,
}

impl LegConfig {
    /// Defaults for a leg on `ip` with ephemeral ports and PCMU first.
    pub fn new(ip: std::net::IpAddr) -> Self {
        Self {
            ip,
            ports: PortPolicy::Ephemeral,
            codecs: vec![G711::Pcmu, G711::Pcma],
            inbound_frames: 50,
            outbound_frames: 10,
            gather_timeout: Duration::from_secs(5),
        }
    }
}

/// Something the leg tells the call task. Sent with `try_send` on a bounded
/// channel: the WebRTC driver never waits on hotline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// ICE and DTLS are up: media flows from now on.
    Connected,
    /// The browser sent an RFC 4733 key press.
    Digit(char),
    /// The connection failed or was closed; the leg is finished.
    Closed,
}

/// Both directions of one leg's media, handed to the media worker.
#[derive(Debug)]
pub struct MediaEnds {
    /// The law of every frame sent to the browser, and of inbound frames
    /// unless the browser switches (each [`InboundFrame`] names its law).
    pub codec: G711,
    /// Frames from the browser, 20 ms each, in arrival order. The worker
    /// polls with `try_recv` on its tick.
    pub from_browser: mpsc::Receiver<InboundFrame>,
    /// Frames to the browser. The worker pushes one per tick with
    /// `try_send`; the leg stamps RTP sequence and timestamp.
    pub to_browser: mpsc::Sender<G711Frame>,
}

/// What [`BrowserMedia::answer`] returns.
pub struct AnsweredLeg {
    /// The SDP answer for the browser (complete: ICE-lite, host candidate,
    /// DTLS fingerprint; no trickle needed).
    pub sdp: String,
    /// Payload types in the answer.
    pub negotiated: Negotiated,
    /// Media for the worker.
    pub media: MediaEnds,
    /// Connection, digit and close events for the call task.
    pub events: mpsc::Receiver<LegEvent>,
    /// Owns the connection: close it, or drop it to close in the background.
    pub leg: Box<dyn BrowserLeg>,
}

/// A live browser leg, as the call task holds it.
#[async_trait::async_trait]
pub trait BrowserLeg: Send + Sync {
    /// The UDP address the browser reaches us on.
    fn local_addr(&self) -> SocketAddr;
    /// Counters for `/metrics` and tests.
    fn stats(&self) -> LegStats;
    /// Ends the connection (DTLS close_notify, sockets released).
    async fn close(&self);
}

/// Makes browser legs. The call code depends on this trait only, so its
/// tests use a fake that hands back channels without any WebRTC.
#[async_trait::async_trait]
pub trait BrowserMedia: Send + Sync {
    /// Answers a browser's SDP offer (from its INVITE, or from the 200 OK of
    /// an INVITE we sent without SDP).
    async fn answer(&self, offer_sdp: &str) -> Result<AnsweredLeg, LegError>;

    /// Makes an offer for an INVITE to a browser agent; the browser's answer
    /// (from the 200 OK) completes it with [`OfferedLeg::accept`]. `first`:
    /// the law to prefer (the customer's, so the bridge is a copy).
    async fn offer(&self, first: Option<G711>) -> Result<OfferedLeg, LegError>;
}

/// Per-leg counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Frames handed to the worker.
    pub frames_in: u64,
    /// Frames dropped because the worker's queue was full.
    pub frames_in_dropped: u64,
    /// Frames sent to the browser.
    pub frames_out: u64,
    /// Digits received.
    pub digits: u64,
}

#[derive(Debug, Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_in_dropped: AtomicU64,
    frames_out: AtomicU64,
    digits: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> LegStats {
        LegStats {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_in_dropped: self.frames_in_dropped.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            digits: self.digits.load(Ordering::Relaxed),
        }
    }
}

/// [`BrowserMedia`] on `webrtc` 0.21: ICE-lite, DTLS-SRTP, G.711 only.
pub struct WebRtcMedia {
    config: LegConfig,
    pool: PortPool,
}

impl WebRtcMedia {
    /// Checks the configuration once, at start-up.
    pub fn new(config: LegConfig) -> Result<Self, LegError> {
        if config.codecs.is_empty() {
            return Err(LegError::Config("no G.711 law configured".into()));
        }
        if config.inbound_frames == 0 || config.outbound_frames == 0 {
            return Err(LegError::Config(
                "frame queues must hold at least one frame".into(),
            ));
        }
        let pool = PortPool::new(config.ip, config.ports)?;
        Ok(Self { config, pool })
    }

    /// Ports held by live legs (for `/metrics`).
    pub fn ports_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// The configured laws, `first` moved to the front when it is one of them.
    fn laws(&self, first: Option<G711>) -> Vec<G711> {
        let mut laws = self.config.codecs.clone();
        if let Some(i) = first.and_then(|f| laws.iter().position(|&l| l == f)) {
            let law = laws.remove(i);
            laws.insert(0, law);
        }
        laws
    }

    /// `laws` in preference order, then telephone-event/8000.
    fn codec_parameters(laws: &[G711]) -> Vec<RTCRtpCodecParameters> {
        let laws = laws.iter().map(|law| RTCRtpCodecParameters {
            rtp_codec: audio_codec(
                match law {
                    G711::Pcmu => MIME_TYPE_PCMU,
                    G711::Pcma => MIME_TYPE_PCMA,
                },
                "",
            ),
            payload_type: law.payload_type(),
        });
        let events = RTCRtpCodecParameters {
            rtp_codec: audio_codec(MIME_TYPE_TELEPHONE_EVENT, "0-15"),
            payload_type: TELEPHONE_EVENT_PT,
        };
        laws.chain(std::iter::once(events)).collect()
    }

    fn media_engine(laws: &[G711]) -> Result<MediaEngine, LegError> {
        let mut engine = MediaEngine::default();
        for codec in Self::codec_parameters(laws) {
            engine.register_codec(codec, RtpCodecKind::Audio)?;
        }
        Ok(engine)
    }
}

fn audio_codec(mime: &str, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate: CLOCK_RATE,
        channels: 1,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Receives the driver's callbacks. Everything it does is non-blocking:
/// `try_send` to bounded channels, and spawning the track reader.
struct Handler {
    events: mpsc::Sender<LegEvent>,
    frames: mpsc::Sender<InboundFrame>,
    negotiated: Arc<OnceLock<Negotiated>>,
    gathered: watch::Sender<bool>,
    connected: watch::Sender<bool>,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(?state, "browser leg connection state");
        match state {
            RTCPeerConnectionState::Connected => {
                self.connected.send_replace(true);
                let _ = self.events.try_send(LegEvent::Connected);
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                self.connected.send_replace(false);
                let _ = self.events.try_send(LegEvent::Closed);
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let reader = TrackReader {
            events: self.events.clone(),
            frames: self.frames.clone(),
            negotiated: self.negotiated.clone(),
            counters: self.counters.clone(),
        };
        tokio::spawn(reader.run(track));
    }
}

/// Turns the browser's RTP into frames and digits.
struct TrackReader {
    events: mpsc::Sender<LegEvent>,
    frames: mpsc::Sender<InboundFrame>,
    negotiated: Arc<OnceLock<Negotiated>>,
    counters: Arc<Counters>,
}

impl TrackReader {
    async fn run(self, track: Arc<dyn TrackRemote>) {
        let mut reframer = Reframer::default();
        let mut digits = DtmfReceiver::new();
        while let Some(event) = track.poll().await {
            let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                continue;
            };
            // RTP only flows after DTLS, which needs our answer, so this is
            // set; a packet racing it is dropped like any unknown type.
            let Some(neg) = self.negotiated.get() else {
                continue;
            };
            let pt = packet.header.payload_type;
            let ts = packet.header.timestamp;
            if Some(pt) == neg.telephone_event {
                if let Some(digit) = digits.push(ts, &packet.payload) {
                    self.counters.digits.fetch_add(1, Ordering::Relaxed);
                    let _ = self.events.try_send(LegEvent::Digit(digit));
                }
                continue;
            }
            // Unknown types (comfort noise, a codec we did not accept) are
            // ignored rather than fatal, as for RTP legs.
            let Some(law) = neg.law_of(pt) else { continue };
            let sequence = packet.header.sequence_number;
            let (frames, counters) = (&self.frames, &self.counters);
            reframer.push(ts, &packet.payload, |timestamp, payload| {
                let frame = InboundFrame {
                    timestamp,
                    sequence,
                    law,
                    payload: *payload,
                };
                match frames.try_send(frame) {
                    Ok(()) => counters.frames_in.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counters.frames_in_dropped.fetch_add(1, Ordering::Relaxed),
                };
            });
        }
        tracing::debug!("browser track ended");
    }
}

/// Stamps the worker's frames as RTP and hands them to the track.
struct Sender {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
    connected: watch::Receiver<bool>,
    counters: Arc<Counters>,
}

impl Sender {
    async fn run(mut self, mut frames: mpsc::Receiver<G711Frame>) {
        let mut sequence: u16 = rand::random();
        let mut timestamp: u32 = rand::random();
        let mut first = true;
        while let Some(frame) = frames.recv().await {
            // The RTP clock runs whether or not a frame can be sent, so the
            // browser's jitter buffer sees real time across a gap.
            timestamp = timestamp.wrapping_add(FRAME_SAMPLES as u32);
            if !*self.connected.borrow_and_update() {
                continue;
            }
            sequence = sequence.wrapping_add(1);
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    // Marks the start of the talk spurt (RFC 3551 §4.1).
                    marker: first,
                    payload_type: self.payload_type,
                    sequence_number: sequence,
                    timestamp,
                    ssrc: self.ssrc,
                    ..Default::default()
                },
                // `webrtc` takes an owned `Bytes` per packet; this is the one
                // allocation per frame, and it is theirs to make.
                payload: Bytes::copy_from_slice(&frame),
            };
            first = false;
            match self.track.write_rtp(packet).await {
                Ok(()) => {
                    self.counters.frames_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "browser leg: RTP write failed");
                }
            }
        }
    }
}

struct WebRtcLeg {
    pc: Arc<dyn PeerConnection>,
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    // Held for the leg's lifetime: the port returns to the pool on drop.
    _lease: crate::browser::ports::PortLease,
}

#[async_trait::async_trait]
impl BrowserLeg for WebRtcLeg {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn stats(&self) -> LegStats {
        self.counters.snapshot()
    }

    async fn close(&self) {
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "browser leg close");
        }
    }
}

impl Drop for WebRtcLeg {
    fn drop(&mut self) {
        // A call task that forgets to close must not leak a connection (and
        // its socket and driver task): close in the background.
        let pc = self.pc.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// A connection built but not yet negotiated: everything [`AnsweredLeg`]
/// needs, waiting for the SDP exchange to finish.
struct Setup {
    pc: Arc<dyn PeerConnection>,
    lease: crate::browser::ports::PortLease,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    events: mpsc::Receiver<LegEvent>,
    frames_in: mpsc::Receiver<InboundFrame>,
    frames_out_tx: mpsc::Sender<G711Frame>,
    frames_out_rx: mpsc::Receiver<G711Frame>,
    gathered: watch::Receiver<bool>,
    connected: watch::Receiver<bool>,
    negotiated: Arc<OnceLock<Negotiated>>,
    counters: Arc<Counters>,
    gather_timeout: Duration,
}

impl WebRtcMedia {
    /// Builds the connection (socket bound, driver running) with our send
    /// track attached.
    ///
    /// `lite`: ICE-lite when we answer (the browser's credentials are known
    /// before it can send a check). When we offer, the browser starts
    /// checking as soon as it has our offer, before its answer reaches us
    /// through SIP; `webrtc` 0.21.1 drops checks that arrive before the
    /// remote credentials ("password is empty"), and a lite agent never
    /// checks by itself, so the call stayed unconnected (seen with JsSIP).
    /// A full agent runs its own checks once the answer is applied.
    async fn setup(&self, lite: bool, laws: &[G711]) -> Result<Setup, LegError> {
        let lease = self.pool.lease()?;
        let mut media_engine = Self::media_engine(laws)?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let settings = SettingEngineBuilder::new()
            // A server with a reachable address answers checks and never
            // starts its own (RFC 8445 §2.5): no STUN, no candidate pairs.
            .with_lite(lite)
            // No multicast socket per leg; we announce our IP as is.
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            // Tests and single-host set-ups run on 127.0.0.1.
            .with_include_loopback_candidate(true)
            .build();

        let (events_tx, events) = mpsc::channel(32);
        let (frames_in_tx, frames_in) = mpsc::channel(self.config.inbound_frames);
        let (frames_out_tx, frames_out_rx) = mpsc::channel(self.config.outbound_frames);
        let (gathered_tx, gathered) = watch::channel(false);
        let (connected_tx, connected) = watch::channel(false);
        let negotiated = Arc::new(OnceLock::new());
        let counters = Arc::new(Counters::default());

        let handler = Arc::new(Handler {
            events: events_tx,
            frames: frames_in_tx,
            negotiated: negotiated.clone(),
            gathered: gathered_tx,
            connected: connected_tx,
            counters: counters.clone(),
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(vec![lease.addr()])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let ssrc: u32 = rand::random();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "hotline".to_owned(),
            "hotline-audio".to_owned(),
            "hotline".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: audio_codec(
                    match laws.first().copied().unwrap_or(G711::Pcmu) {
                        G711::Pcmu => MIME_TYPE_PCMU,
                        G711::Pcma => MIME_TYPE_PCMA,
                    },
                    "",
                ),
                ..Default::default()
            }],
        )));
        if let Err(e) = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await {
            let _ = pc.close().await;
            return Err(e.into());
        }
        Ok(Setup {
            pc,
            lease,
            track,
            ssrc,
            events,
            frames_in,
            frames_out_tx,
            frames_out_rx,
            gathered,
            connected,
            negotiated,
            counters,
            gather_timeout: self.config.gather_timeout,
        })
    }
}

impl Setup {
    /// Sets our description and waits for our host candidate, so the SDP
    /// we return is complete (one exchange, no trickle).
    async fn set_local(&mut self, desc: RTCSessionDescription) -> Result<String, LegError> {
        self.pc.set_local_description(desc).await?;
        let timeout = self.gather_timeout;
        tokio::time::timeout(timeout, self.gathered.wait_for(|done| *done))
            .await
            .map_err(|_| LegError::GatherTimeout(timeout))?
            .map_err(|_| LegError::GatherTimeout(timeout))?;
        Ok(self
            .pc
            .local_description()
            .await
            .ok_or_else(|| LegError::Config("no local description".into()))?
            .sdp)
    }

    /// The exchange is done: `neg` says what flows. Starts the sender.
    fn finish(self, sdp: String, neg: Negotiated) -> AnsweredLeg {
        let _ = self.negotiated.set(neg);
        let local_addr = candidate_addr(&sdp).unwrap_or_else(|| self.lease.addr());
        tokio::spawn(
            Sender {
                track: self.track,
                ssrc: self.ssrc,
                payload_type: neg.payload_type,
                connected: self.connected,
                counters: self.counters.clone(),
            }
            .run(self.frames_out_rx),
        );
        AnsweredLeg {
            sdp,
            negotiated: neg,
            media: MediaEnds {
                codec: neg.codec,
                from_browser: self.frames_in,
                to_browser: self.frames_out_tx,
            },
            events: self.events,
            leg: Box::new(WebRtcLeg {
                pc: self.pc,
                local_addr,
                counters: self.counters,
                _lease: self.lease,
            }),
        }
    }

    async fn fail<T>(self, e: LegError) -> Result<T, LegError> {
        let _ = self.pc.close().await;
        Err(e)
    }
}

/// Our offer, waiting for the browser's answer: the shape for hotline
/// calling a browser agent (INVITE with this SDP, the answer comes in the
/// 200 OK).
pub struct OfferedLeg {
    /// The SDP offer to send (full ICE, see `WebRtcMedia::setup`; host
    /// candidate, fingerprint, our laws in preference order and
    /// telephone-event/8000).
    pub sdp: String,
    /// Taken by `accept` or `cancel`; still here on drop means nobody
    /// answered (the offer went to another agent, the caller left).
    pending: Option<Box<dyn PendingOffer>>,
}

impl OfferedLeg {
    /// Wraps an implementation's pending state (fakes in call tests make
    /// their own).
    pub fn new(sdp: String, pending: Box<dyn PendingOffer>) -> Self {
        Self {
            sdp,
            pending: Some(pending),
        }
    }

    /// Applies the browser's answer; media starts once ICE and DTLS are up
    /// ([`LegEvent::Connected`]).
    pub async fn accept(mut self, answer_sdp: &str) -> Result<AnsweredLeg, LegError> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| LegError::Config("offer already used".into()))?;
        pending
            .accept(std::mem::take(&mut self.sdp), answer_sdp)
            .await
    }

    /// Gives up (the INVITE failed or was cancelled): releases everything.
    pub async fn cancel(mut self) {
        if let Some(p) = self.pending.take() {
            p.cancel().await;
        }
    }
}

impl Drop for OfferedLeg {
    fn drop(&mut self) {
        // An offer nobody answered still holds a connection (socket, driver
        // task): close it in the background rather than leak it.
        if let (Some(p), Ok(rt)) = (self.pending.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(p.cancel());
        }
    }
}

/// The implementation side of [`OfferedLeg`].
#[async_trait::async_trait]
pub trait PendingOffer: Send {
    /// Completes the exchange with the browser's answer to `offer_sdp`.
    async fn accept(
        self: Box<Self>,
        offer_sdp: String,
        answer_sdp: &str,
    ) -> Result<AnsweredLeg, LegError>;
    /// Abandons the offer.
    async fn cancel(self: Box<Self>);
}

#[async_trait::async_trait]
impl PendingOffer for Setup {
    async fn accept(
        self: Box<Self>,
        offer_sdp: String,
        answer_sdp: &str,
    ) -> Result<AnsweredLeg, LegError> {
        let setup = *self;
        let neg = match negotiated(answer_sdp) {
            Some(n) => n,
            None => return setup.fail(LegError::NoG711).await,
        };
        let answer_sdp = reachable_candidates(answer_sdp, setup.lease.addr().ip());
        let answer = match RTCSessionDescription::answer(answer_sdp) {
            Ok(a) => a,
            Err(e) => return setup.fail(LegError::BadOffer(e.to_string())).await,
        };
        if let Err(e) = setup.pc.set_remote_description(answer).await {
            return setup.fail(LegError::BadOffer(e.to_string())).await;
        }
        Ok(setup.finish(offer_sdp, neg))
    }

    async fn cancel(self: Box<Self>) {
        let _ = self.pc.close().await;
    }
}

#[async_trait::async_trait]
impl BrowserMedia for WebRtcMedia {
    async fn answer(&self, offer_sdp: &str) -> Result<AnsweredLeg, LegError> {
        let Some(offer_sdp) = restrict_offer(offer_sdp, &self.config.codecs) else {
            return Err(LegError::NoG711);
        };
        let offer = RTCSessionDescription::offer(offer_sdp)
            .map_err(|e| LegError::BadOffer(e.to_string()))?;
        let mut setup = self.setup(true, &self.config.codecs).await?;
        if let Err(e) = setup.pc.set_remote_description(offer).await {
            return setup.fail(LegError::BadOffer(e.to_string())).await;
        }
        let answer = match setup.pc.create_answer(None).await {
            Ok(a) => a,
            Err(e) => return setup.fail(e.into()).await,
        };
        let sdp = match setup.set_local(answer).await {
            Ok(s) => s,
            Err(e) => return setup.fail(e).await,
        };
        match negotiated(&sdp) {
            Some(neg) => Ok(setup.finish(sdp, neg)),
            None => setup.fail(LegError::NoG711).await,
        }
    }

    async fn offer(&self, first: Option<G711>) -> Result<OfferedLeg, LegError> {
        let laws = self.laws(first);
        let mut setup = self.setup(false, &laws).await?;
        // Left alone, `webrtc` 0.21.1 offers only the send track's codec:
        // no second law and no telephone-event, so the browser could not
        // send keys. Offer every law we take, in order, and the events.
        let preferences = Self::codec_parameters(&laws);
        let transceivers = setup.pc.get_transceivers().await;
        for t in transceivers {
            if let Err(e) = t.set_codec_preferences(preferences.clone()).await {
                return setup.fail(e.into()).await;
            }
        }
        let offer = match setup.pc.create_offer(None).await {
            Ok(o) => o,
            Err(e) => return setup.fail(e.into()).await,
        };
        match setup.set_local(offer).await {
            Ok(sdp) => Ok(OfferedLeg::new(sdp, Box::new(setup))),
            Err(e) => setup.fail(e).await,
        }
    }
}

/// The address of the first host candidate in `sdp` (`a=candidate:... udp
/// PRIO IP PORT typ host`).
fn candidate_addr(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|l| {
        let rest = l.trim_end().strip_prefix("a=candidate:")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 8 || !f[2].eq_ignore_ascii_case("udp") || f[7] != "host" {
            return None;
        }
        Some(SocketAddr::new(f[4].parse().ok()?, f[5].parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_candidate_address_is_read() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n";
        assert_eq!(
            candidate_addr(sdp),
            Some("127.0.0.1:40000".parse().expect("addr"))
        );
        assert_eq!(candidate_addr("v=0\r\n"), None);
    }

    #[test]
    fn config_without_codecs_is_refused() {
        let mut c = LegConfig::new(std::net::Ipv4Addr::LOCALHOST.into());
        c.codecs.clear();
        assert!(matches!(WebRtcMedia::new(c), Err(LegError::Config(_))));
    }

    #[test]
    fn the_customers_law_is_offered_first_when_configured() {
        let mut c = LegConfig::new(std::net::Ipv4Addr::LOCALHOST.into());
        let media = WebRtcMedia::new(c.clone()).expect("config");
        assert_eq!(media.laws(None), [G711::Pcmu, G711::Pcma]);
        assert_eq!(media.laws(Some(G711::Pcma)), [G711::Pcma, G711::Pcmu]);
        assert_eq!(media.laws(Some(G711::Pcmu)), [G711::Pcmu, G711::Pcma]);
        // A law the operator did not allow is not added.
        c.codecs = vec![G711::Pcmu];
        let media = WebRtcMedia::new(c).expect("config");
        assert_eq!(media.laws(Some(G711::Pcma)), [G711::Pcmu]);
    }
}
