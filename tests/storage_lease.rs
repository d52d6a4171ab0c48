//! The dialer lease (`store::lease`): the same test body on a SQLite file
//! and on PostgreSQL in a fresh schema (as `tests/storage_campaign.rs`:
//! `HOTLINE_TEST_POSTGRES_URL`, default `postgres://root@127.0.0.1:5432/test`;
//! an unreachable PostgreSQL fails, `HOTLINE_SKIP_POSTGRES=1` skips it).

mod pg;

use pg::{drop_schema, postgres_url};

use std::sync::Arc;

use hotline::store::*;

const T0: i64 = 1_750_000_000_000;
const TTL: i64 = 15_000;
const L: &str = "callback_dialer";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/l.db", dir.path().display());
    lease_rules(&url).await;
    lease_race(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some((url, base, schema)) = postgres_url("l").await else {
        return;
    };
    lease_rules(&url).await;
    lease_race(&url).await;
    drop_schema(&base, &schema).await;
}

async fn take(s: &Store, holder: &str, now: i64) -> bool {
    s.acquire_lease(L, holder, now, TTL).await.expect("acquire")
}

/// Two holders: taken when free, refused while live, renewed by its holder,
/// taken over once lapsed, released.
async fn lease_rules(url: &str) {
    let s = Store::connect(url).await.expect("connect");
    assert_eq!(s.lease_holder(L).await.expect("read"), None);
    assert!(take(&s, "a", T0).await, "a free lease is taken");
    assert_eq!(
        s.lease_holder(L).await.expect("read"),
        Some(("a".into(), T0 + TTL))
    );
    assert!(!take(&s, "b", T0 + 1).await, "a live lease is refused");
    // `until_ms` itself is still a's (lapsed means strictly after).
    assert!(!take(&s, "b", T0 + TTL).await);
    assert_eq!(
        s.lease_holder(L).await.expect("read").map(|h| h.0),
        Some("a".into())
    );

    // Renewal moves the end; without it b would have taken over at T0+TTL+1.
    assert!(take(&s, "a", T0 + 10_000).await, "the holder renews");
    assert_eq!(
        s.lease_holder(L).await.expect("read"),
        Some(("a".into(), T0 + 10_000 + TTL))
    );
    assert!(!take(&s, "b", T0 + TTL + 1).await);

    // a stops renewing: b takes over once the lease has lapsed, and a's late
    // renewal is refused.
    let lapsed = T0 + 10_000 + TTL + 1;
    assert!(take(&s, "b", lapsed).await, "a lapsed lease is taken over");
    assert_eq!(
        s.lease_holder(L).await.expect("read"),
        Some(("b".into(), lapsed + TTL))
    );
    assert!(!take(&s, "a", lapsed + 1).await, "the old holder lost it");

    // Only the holder releases; then anyone takes it at once.
    assert!(!s.release_lease(L, "a").await.expect("release"));
    assert_eq!(
        s.lease_holder(L).await.expect("read").map(|h| h.0),
        Some("b".into())
    );
    assert!(s.release_lease(L, "b").await.expect("release"));
    assert_eq!(s.lease_holder(L).await.expect("read"), None);
    assert!(take(&s, "a", lapsed + 2).await, "a released lease is free");

    // Leases are independent of each other.
    assert!(s
        .acquire_lease("other", "b", lapsed + 2, TTL)
        .await
        .expect("acquire"));
    assert_eq!(
        s.lease_holder(L).await.expect("read").map(|h| h.0),
        Some("a".into())
    );
    s.close().await;
}

/// Many contenders at the same instant, through two pools (two "nodes"):
/// exactly one wins, first for a lease never taken (insert race), then for
/// a lapsed one (update race).
async fn lease_race(url: &str) {
    const N: usize = 16;
    let nodes = [
        Store::connect(url).await.expect("connect"),
        Store::connect(url).await.expect("connect"),
    ];
    let name = "race";
    for round in 0..4_i64 {
        // Each round starts after the previous winner's lease lapsed.
        let now = T0 + (round + 1) * 10 * TTL;
        let barrier = Arc::new(tokio::sync::Barrier::new(N));
        let mut tasks = Vec::new();
        for i in 0..N {
            let s = nodes[i % 2].clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let holder = format!("n{round}-{i}");
                barrier.wait().await;
                let won = s
                    .acquire_lease(name, &holder, now, TTL)
                    .await
                    .expect("acquire");
                (holder, won)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (holder, won) = t.await.expect("join");
            if won {
                winners.push(holder);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(
            nodes[0].lease_holder(name).await.expect("read"),
            Some((winners[0].clone(), now + TTL)),
            "round {round}"
        );
    }
    for s in nodes {
        s.close().await;
    }
}
