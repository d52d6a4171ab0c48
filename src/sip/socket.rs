//! The UDP socket the SIP stack reads from: every datagram passes
//! [`wire::inspect_datagram`] first, and broken requests are answered here.

use std::net::SocketAddr;

use async_trait::async_trait;
use tracing::{debug, warn};

use super::wire::{self, Verdict};

pub struct InspectingUdpSocket {
    inner: tokio::net::UdpSocket,
}

impl InspectingUdpSocket {
    pub fn new(inner: tokio::net::UdpSocket) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl rsipstack::platform::net::UdpSocket for InspectingUdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, src) = self.inner.recv_from(buf).await?;
            let Some(datagram) = buf.get(..len) else {
                continue;
            };
            match wire::inspect_datagram(datagram) {
                Verdict::Pass => return Ok((len, src)),
                Verdict::Reply {
                    status,
                    reason,
                    bytes,
                } => {
                    warn!(%src, status, %reason, "malformed request answered");
                    metrics::counter!("hotline_sip_malformed_total", "action" => "answered")
                        .increment(1);
                    super::count_response(status);
                    if let Err(e) = self.inner.send_to(&bytes, src).await {
                        debug!(%src, error = %e, "could not send error reply");
                    }
                }
                Verdict::Drop(why) => {
                    debug!(%src, why, len, "datagram dropped");
                    metrics::counter!("hotline_sip_malformed_total", "action" => "dropped")
                        .increment(1);
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.inner.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.inner.local_addr()?)
    }
}
