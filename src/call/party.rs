//! The media of a party the call rings (an agent, a consulted colleague, a
//! supervisor): a session on the customer's media worker, and for a browser
//! softphone also its WebRTC leg. Call code treats both kinds alike: make
//! the offer, ring, complete the exchange on answer.

use std::ops::Deref;
use std::sync::Arc;

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
        })
    }

    /// A browser leg beside `near` (or on any worker): the WebRTC offer for
    /// the INVITE and the media that will carry it once answered.
    pub async fn browser(
        browsers: &Arc<dyn BrowserMedia>,
        media: &MediaEngine,
        near: Option<&MediaSession>,
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
                tokio::spawn(watch_browser(live.events, leg.clone()));
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
/// and when ICE or DTLS gives up (network gone) the SIP leg is hung up so
/// the call does not hold a dead agent. (A page that closes or crashes is
/// noticed sooner, by its WebSocket: `sip::leg::outbound`.)
async fn watch_browser(mut events: tokio::sync::mpsc::Receiver<BrowserEvent>, leg: Leg) {
    while let Some(event) = events.recv().await {
        match event {
            BrowserEvent::Connected => debug!("browser media connected"),
            BrowserEvent::Digit(digit) => info!(%digit, "browser agent pressed a key"),
            BrowserEvent::Closed => {
                info!("browser media closed; hanging up its leg");
                leg.hangup().await;
                return;
            }
        }
    }
}
