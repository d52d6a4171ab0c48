//! What one browser leg costs, and that closing gives it all back: the
//! numbers behind the port decision in DESIGN.md, and a small leak check in
//! the spirit of issue 7's 200-call soak (no browser: legs are offered and
//! cancelled, which binds and releases everything but DTLS state).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use webrtc_leg::{BrowserMedia, LegConfig, PortPolicy, WebRtcMedia};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legs_cost_one_socket_each_and_give_everything_back() {
    const LEGS: usize = 40;
    let mut cfg = LegConfig::new(Ipv4Addr::LOCALHOST.into());
    cfg.ports = PortPolicy::Range {
        first: 47200,
        last: 47299,
    };
    let media = WebRtcMedia::new(cfg).expect("media");

    // Warm up allocator pools and lazily built statics first.
    let warm = media.offer().await.expect("warm-up offer");
    warm.cancel().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (fds0, rss0) = (open_fds(), rss_kib());
    let start = Instant::now();
    let mut legs = Vec::new();
    for _ in 0..LEGS {
        legs.push(media.offer().await.expect("offer"));
    }
    let per_leg_ms = start.elapsed().as_secs_f64() * 1000.0 / LEGS as f64;
    let (fds1, rss1) = (open_fds(), rss_kib());
    assert_eq!(media.ports_in_use(), LEGS);
    for leg in legs {
        leg.cancel().await;
    }
    // Closing is asynchronous inside webrtc (driver tasks wind down).
    let mut fds2 = open_fds();
    for _ in 0..50 {
        if fds2 <= fds0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        fds2 = open_fds();
    }
    let rss2 = rss_kib();
    println!(
        "{LEGS} legs: {:.1} fds/leg, {:.0} KiB RSS/leg, {per_leg_ms:.1} ms per offer \
         (debug build); after close: fds {fds0}->{fds2}, RSS {rss0}->{rss2} KiB",
        (fds1 - fds0) as f64 / LEGS as f64,
        rss1.saturating_sub(rss0) as f64 / LEGS as f64,
    );
    assert!(fds1 - fds0 >= LEGS, "one socket per leg");
    assert!(fds2 <= fds0, "sockets leaked: {fds0} -> {fds2}");
    assert_eq!(media.ports_in_use(), 0);
}
