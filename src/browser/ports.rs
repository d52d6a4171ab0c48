//! Which UDP port a browser leg's ICE/DTLS/SRTP runs on.
//!
//! `webrtc` 0.21 binds one UDP socket per peer connection (its
//! `SettingEngine::with_udp_network`, the UDP mux, is still a commented-out
//! TODO in `rtc` 0.21.1), so "one port for all agents" is not available
//! without writing our own demultiplexer. hotline therefore gives every
//! browser leg its own port from a configured range, exactly like its RTP
//! legs (`media.rtp_ports`), so a firewall opens one range for both. See
//! `DESIGN.md` for the measurements and the mux alternative.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use crate::browser::error::LegError;

/// Where browser legs bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPolicy {
    /// Any free port the kernel picks (tests, or a host with no firewall).
    Ephemeral,
    /// Ports `first..=last`, one per live leg.
    Range {
        /// First port of the range.
        first: u16,
        /// Last port of the range (inclusive).
        last: u16,
    },
}

/// Hands out ports of a [`PortPolicy`]; a port comes back when its
/// [`PortLease`] is dropped, i.e. when the leg is gone.
#[derive(Debug, Clone)]
pub struct PortPool {
    ip: IpAddr,
    policy: PortPolicy,
    state: Arc<Mutex<PoolState>>,
}

#[derive(Debug, Default)]
struct PoolState {
    /// Where the next search starts: rotating spreads reuse of a port over
    /// time, so a late packet of an old leg rarely reaches a new one.
    next: u16,
    in_use: BTreeSet<u16>,
}

/// A port held by one leg.
#[derive(Debug)]
pub struct PortLease {
    addr: SocketAddr,
    pool: Option<Arc<Mutex<PoolState>>>,
}

impl PortLease {
    /// The address to bind (port 0 under [`PortPolicy::Ephemeral`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Live browser legs (each holds one lease), for `/metrics` and the soak.
const LEGS_GAUGE: &str = "hotline_browser_legs";

impl Drop for PortLease {
    fn drop(&mut self) {
        metrics::gauge!(LEGS_GAUGE).decrement(1.0);
        if let Some(pool) = &self.pool {
            if let Ok(mut st) = pool.lock() {
                st.in_use.remove(&self.addr.port());
            }
        }
    }
}

impl PortPool {
    /// A pool for legs bound to `ip`.
    pub fn new(ip: IpAddr, policy: PortPolicy) -> Result<Self, LegError> {
        if let PortPolicy::Range { first, last } = policy {
            if first == 0 || first > last {
                return Err(LegError::Config(format!(
                    "port range {first}-{last} is empty or starts at 0"
                )));
            }
        }
        let next = match policy {
            PortPolicy::Range { first, .. } => first,
            PortPolicy::Ephemeral => 0,
        };
        Ok(Self {
            ip,
            policy,
            state: Arc::new(Mutex::new(PoolState {
                next,
                in_use: BTreeSet::new(),
            })),
        })
    }

    /// The address legs bind to.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Takes a free port. Each candidate is test-bound once, so a port held
    /// by another process is skipped here rather than failing the answer.
    pub fn lease(&self) -> Result<PortLease, LegError> {
        let (first, last) = match self.policy {
            PortPolicy::Ephemeral => {
                metrics::gauge!(LEGS_GAUGE).increment(1.0);
                return Ok(PortLease {
                    addr: SocketAddr::new(self.ip, 0),
                    pool: None,
                });
            }
            PortPolicy::Range { first, last } => (first, last),
        };
        let mut st = self
            .state
            .lock()
            .map_err(|_| LegError::Config("port pool lock poisoned".into()))?;
        let size = u32::from(last - first) + 1;
        for _ in 0..size {
            let port = st.next;
            st.next = if port >= last { first } else { port + 1 };
            if st.in_use.contains(&port) {
                continue;
            }
            let addr = SocketAddr::new(self.ip, port);
            if UdpSocket::bind(addr).is_err() {
                continue;
            }
            st.in_use.insert(port);
            metrics::gauge!(LEGS_GAUGE).increment(1.0);
            return Ok(PortLease {
                addr,
                pool: Some(self.state.clone()),
            });
        }
        Err(LegError::NoFreePort { first, last })
    }

    /// Ports currently held by live legs.
    pub fn in_use(&self) -> usize {
        self.state.lock().map(|s| s.in_use.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn range_hands_out_distinct_ports_and_takes_them_back() {
        // A high, narrow range that nothing else on the test machine uses.
        let pool = PortPool::new(
            LO,
            PortPolicy::Range {
                first: 47010,
                last: 47012,
            },
        )
        .expect("pool");
        let a = pool.lease().expect("a");
        let b = pool.lease().expect("b");
        let c = pool.lease().expect("c");
        let mut ports = [a.addr().port(), b.addr().port(), c.addr().port()];
        ports.sort_unstable();
        assert_eq!(ports, [47010, 47011, 47012]);
        assert!(matches!(pool.lease(), Err(LegError::NoFreePort { .. })));
        drop(b);
        assert_eq!(pool.in_use(), 2);
        assert!(pool.lease().is_ok());
    }

    #[test]
    fn a_port_taken_by_someone_else_is_skipped() {
        let pool = PortPool::new(
            LO,
            PortPolicy::Range {
                first: 47020,
                last: 47021,
            },
        )
        .expect("pool");
        let _squatter = UdpSocket::bind((LO, 47020)).expect("squat");
        assert_eq!(pool.lease().expect("lease").addr().port(), 47021);
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(PortPool::new(LO, PortPolicy::Range { first: 10, last: 9 }).is_err());
        assert!(PortPool::new(LO, PortPolicy::Range { first: 0, last: 9 }).is_err());
    }
}
