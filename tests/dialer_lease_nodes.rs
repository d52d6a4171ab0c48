//! Two `hotline serve` processes on one database (a SQLite file shared
//! through a symbolic link): only one runs the callback dialer; a clean stop
//! hands the lease over at once, a killed holder's lease is taken over once
//! it lapses. No calls are placed (there are no callback tasks); the log
//! lines of the dialer's lease show who holds it.

mod common;

use std::time::{Duration, Instant};

use common::{poll, TestServer, REPO};

const GAINED: &str = "dialer lease gained";

fn campaign_toml() -> String {
    format!(
        "[[trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1:9\"\n\n\
         [campaign]\ntrunk = \"carrier\"\ndialplan = \"{REPO}/dialplans/survey.toml\"\npoll_ms = 200\n"
    )
}

/// A node on `db` (another node's SQLite file), or on its own new one.
fn node(db: Option<&TestServer>) -> TestServer {
    let mut b = TestServer::builder().extra_toml(&campaign_toml());
    if let Some(first) = db {
        b = b.link("h.db", &first.db_path());
    }
    b.start()
}

fn gained(s: &TestServer) -> usize {
    s.log().matches(GAINED).count()
}

fn wait_gained(s: &TestServer, limit: Duration) -> bool {
    poll(limit, || (gained(s) > 0).then_some(())).is_some()
}

fn signal(s: &TestServer, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we spawned and a plain signal number.
    let rc = unsafe { libc::kill(s.pid() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "could not signal the server");
}

fn wait_exit(s: &mut TestServer) {
    assert!(
        poll(Duration::from_secs(10), || (!s.is_alive()).then_some(())).is_some(),
        "the server did not stop\n{}",
        s.log()
    );
}

#[test]
fn one_node_dials_and_the_lease_moves_on_stop_and_on_crash() {
    let mut a = node(None);
    assert!(wait_gained(&a, Duration::from_secs(10)), "{}", a.log());

    // b shares a's database: it waits (ten polls) without the lease.
    let mut b = node(Some(&a));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gained(&b), 0, "two holders\n{}", b.log());

    // A clean stop releases the lease: b takes it well before the 15 s TTL.
    let stopped = Instant::now();
    signal(&a, libc::SIGTERM);
    wait_exit(&mut a);
    assert!(wait_gained(&b, Duration::from_secs(8)), "{}", b.log());
    assert!(stopped.elapsed() < Duration::from_secs(10));

    // c joins; b is killed (no release): c takes over once the lease lapsed.
    let c = node(Some(&a));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gained(&c), 0, "two holders\n{}", c.log());
    let killed = Instant::now();
    signal(&b, libc::SIGKILL);
    wait_exit(&mut b);
    assert!(wait_gained(&c, Duration::from_secs(30)), "{}", c.log());
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(10),
        "taken over after {took:?}, before the lease lapsed"
    );
}
