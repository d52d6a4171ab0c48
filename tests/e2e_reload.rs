//! SIGHUP reloads dialplans: a broken file is refused (with its line in the
//! log) and the running dialplan stays; a good file is swapped in; the server
//! keeps answering calls throughout.

mod common;

use std::time::Duration;

use common::agents::hotline_dialplan;
use common::{metric_series, poll, TestServer};

fn reloads(server: &TestServer, result: &str) -> f64 {
    metric_series(&server.metrics(), "hotline_dialplan_reloads_total")
        .into_iter()
        .find(|(labels, _)| labels.contains(&format!("result=\"{result}\"")))
        .map(|(_, v)| v)
        .unwrap_or(0.0)
}

fn hup(server: &TestServer) {
    // SAFETY: kill(2) with a pid we spawned and a plain signal number.
    let rc = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0, "could not signal the server");
}

#[test]
fn sighup_refuses_a_broken_dialplan_and_loads_a_good_one() {
    let good = hotline_dialplan();
    let server = TestServer::builder()
        .dialplan("reload.toml", &good)
        .extra_toml(&common::agents::QueueSetup::default().toml())
        .start();
    let path = server.dir().join("reload.toml");

    std::fs::write(
        &path,
        good.replace("next = \"lookup\"", "next = \"no_such_node\""),
    )
    .expect("break the dialplan");
    hup(&server);
    let refused = poll(Duration::from_secs(10), || {
        (reloads(&server, "refused") >= 1.0).then_some(())
    });
    assert!(
        refused.is_some(),
        "the broken reload was not refused:\n{}",
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("dialplan reload refused") && log.contains("no_such_node"),
        "the refusal names the problem:\n{log}"
    );
    assert_eq!(reloads(&server, "ok"), 0.0);

    std::fs::write(&path, &good).expect("restore the dialplan");
    hup(&server);
    let loaded = poll(Duration::from_secs(10), || {
        (reloads(&server, "ok") >= 1.0).then_some(())
    });
    assert!(
        loaded.is_some(),
        "the good reload did not land:\n{}",
        server.log()
    );
    assert!(server.log().contains("dialplans reloaded"));
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200, "the server is still up");
}
