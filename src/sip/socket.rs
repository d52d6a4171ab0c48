//! The UDP socket the SIP stack reads from: every datagram passes
//! [`wire::inspect_datagram`] first, and broken requests are answered here.

use std::net::SocketAddr;

use async_trait::async_trait;
use tracing::{debug, warn};

use super::wire::{self, Verdict};

/// Largest UDP payload; we read whole datagrams so none is judged on a cut copy.
const MAX_DATAGRAM: usize = 65_535;

pub struct InspectingUdpSocket {
    inner: tokio::net::UdpSocket,
    /// Only the stack's one receive loop reads, so this lock is never contended.
    scratch: std::sync::Mutex<Vec<u8>>,
}

impl InspectingUdpSocket {
    pub fn new(inner: tokio::net::UdpSocket) -> Self {
        Self {
            inner,
            scratch: std::sync::Mutex::new(vec![0; MAX_DATAGRAM]),
        }
    }

    /// Receive one datagram; if it does not fit the stack's buffer, say what to do instead.
    async fn recv_whole(
        &self,
        buf: &mut [u8],
    ) -> std::io::Result<(usize, SocketAddr, Option<Verdict>)> {
        loop {
            self.inner.readable().await?;
            let mut scratch = match self.scratch.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            match self.inner.try_recv_from(&mut scratch) {
                Ok((len, src)) => {
                    if len > buf.len() {
                        let head = scratch.get(..len).unwrap_or_default();
                        return Ok((0, src, Some(wire::inspect_oversized(head))));
                    }
                    buf[..len].copy_from_slice(&scratch[..len]);
                    return Ok((len, src, None));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl rsipstack::platform::net::UdpSocket for InspectingUdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, src, oversized) = self.recv_whole(buf).await?;
            let verdict = match oversized {
                Some(v) => v,
                None => match buf.get(..len) {
                    Some(datagram) => wire::inspect_datagram(datagram),
                    None => continue,
                },
            };
            match verdict {
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
