//! The media of a party the call rings (an agent, a consulted colleague, a
//! supervisor): a session on the customer's media worker, and for a browser
//! softphone also its WebRTC leg. Call code treats both kinds alike: make
//! the offer, ring, complete the exchange on answer.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info};

use crate::browser::{BrowserLeg, BrowserMedia, LegEvent as BrowserEvent, OfferedLeg};
use crate::media::engine::{MediaEngine, MediaEvent, MediaSession};
use crate::sip::leg::Leg;

/// Where the party's audio is exchanged.
enum Kind {
    /// SIP phone or gateway: RTP on the session's own ports.
    Rtp,
    /// Browser softphone, ringing: our offer waits for its answer.
    Offered(OfferedLeg),
    /// Browser softphone, answered: dropping the leg closes it.
    Live(Box<dyn BrowserLeg>),
    /// Browser whose offer was used up by an answer that failed.
    Spent,
}

pub(super) struct PartyMedia {
    session: MediaSession,
    kind: Kind,
    flow: Option<Flow>,
}

/// The WebSocket a browser party's SIP runs over. When it closes the page
/// is gone (closed, crashed, offline) and its media with it: the party is
/// hung up at once rather than when ICE gives up, half a minute later.
pub(super) struct Flow {
    /// The connection's remote address (the binding's destination).
    pub addr: SocketAddr,
    /// Addresses of WebSocket connections as they close.
    pub closed: broadcast::Receiver<SocketAddr>,
}

impl Deref for PartyMedia {
    type Target = MediaSession;

    fn deref(&self) -> &MediaSession {
        &self.session
    }
}

impl PartyMedia {
    /// An RTP session beside `near` (the customer it will be bridged to), or
    /// on any worker; the SDP offer names its port.
    pub fn rtp(
        media: &MediaEngine,
        near: Option<&MediaSession>,
        events: UnboundedSender<MediaEvent>,
    ) -> std::io::Result<Self> {
        let session = match near {
            Some(customer) => media.open_near(customer, events)?,
            None => media.open(events)?,
        };
        Ok(Self {
            session,
            kind: Kind::Rtp,
            flow: None,
        })
    }

    /// A browser leg beside `near` (or on any worker), whose SIP runs over
    /// `flow`: the WebRTC offer for the INVITE and the media that will carry
    /// it once answered.
    pub async fn browser(
        browsers: &Arc<dyn BrowserMedia>,
        media: &MediaEngine,
        near: Option<&MediaSession>,
        flow: Flow,
        events: UnboundedSender<MediaEvent>,
    ) -> Result<(Self, String), String> {
        // The customer's law first: Chromium takes it and the bridge copies.
        let first = near.and_then(MediaSession::law).map(Into::into);
        let offered = browsers
            .offer(first)
            .await
            .map_err(|e| format!("no browser leg: {e}"))?;
        let sdp = offered.sdp.clone();
        let session = media
            .open_browser(near, events)
            .map_err(|e| format!("no media session: {e}"))?;
        Ok((
            Self {
                session,
                kind: Kind::Offered(offered),
                flow: Some(flow),
            },
            sdp,
        ))
    }

    pub fn is_browser(&self) -> bool {
        !matches!(self.kind, Kind::Rtp)
    }

    /// The party answered with `answer` (SDP of its 200): media flows both
    /// ways from now on. A browser leg that fails or closes later hangs up
    /// `leg`, as a phone would send BYE.
    pub async fn answered(&mut self, answer: Option<&str>, leg: &Leg) -> Result<(), String> {
        let answer = answer.ok_or("answer without SDP")?;
        match std::mem::replace(&mut self.kind, Kind::Spent) {
            Kind::Rtp => {
                self.kind = Kind::Rtp;
                let n = super::negotiate(answer).map_err(|e| e.to_string())?;
                self.session.configure(super::params(&n));
                Ok(())
            }
            Kind::Offered(offered) => {
                let live = offered
                    .accept(answer)
                    .await
                    .map_err(|e| format!("browser answer: {e}"))?;
                self.session.attach_browser(live.media);
                tokio::spawn(watch_browser(live.events, self.flow.take(), leg.clone()));
                self.kind = Kind::Live(live.leg);
                Ok(())
            }
            Kind::Live(l) => {
                self.kind = Kind::Live(l);
                Err("already answered".into())
            }
            Kind::Spent => Err("already answered".into()),
        }
    }
}

/// Follows a browser leg: its key presses are logged (the agent's keypad),
/// and when its WebSocket closes, or ICE or DTLS gives up (network gone),
/// the SIP leg is hung up so the call does not hold a dead agent.
async fn watch_browser(
    mut events: tokio::sync::mpsc::Receiver<BrowserEvent>,
    mut flow: Option<Flow>,
    leg: Leg,
) {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(BrowserEvent::Connected) => debug!("browser media connected"),
                Some(BrowserEvent::Digit(digit)) => info!(%digit, "browser agent pressed a key"),
                Some(BrowserEvent::Closed) => {
                    info!("browser media closed; hanging up its leg");
                    leg.hangup().await;
                    return;
                }
                None => return,
            },
            gone = flow_closed(&mut flow) => {
                info!(flow = %gone, "the browser's WebSocket closed; its party is gone");
                leg.abandon();
                return;
            }
        }
    }
}

/// Resolves when `flow`'s own connection closes; never without a flow.
async fn flow_closed(flow: &mut Option<Flow>) -> SocketAddr {
    loop {
        let Some(f) = flow.as_mut() else {
            return std::future::pending().await;
        };
        match f.closed.recv().await {
            Ok(addr) if addr == f.addr => return addr,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            // The SIP server stopped: only ICE can tell from now on.
            Err(RecvError::Closed) => *flow = None,
        }
    }
}
