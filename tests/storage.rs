//! Storage tests. Every test body in the `both!` list runs twice: against a
//! SQLite file in a temp dir and against PostgreSQL in a fresh schema.
//!
//! PostgreSQL: `HOTLINE_TEST_POSTGRES_URL` (default
//! `postgres://root@127.0.0.1:5432/test`). If it cannot be reached the
//! PostgreSQL variants FAIL; set `HOTLINE_SKIP_POSTGRES=1` to skip them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hotline::store::*;
use sqlx::{Connection, Executor};

const PG_DEFAULT: &str = "postgres://root@127.0.0.1:5432/test";

// ------------------------------------------------------------------ harness

enum Kind {
    Sqlite { dir: tempfile::TempDir },
    Postgres { base: String, schema: String },
}

struct TestDb {
    kind: Kind,
    url: String,
}

fn pg_base_url() -> String {
    std::env::var("HOTLINE_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_DEFAULT.to_string())
}

fn with_param(url: &str, kv: &str) -> String {
    format!("{url}{}{kv}", if url.contains('?') { '&' } else { '?' })
}

/// (host:port) of a postgres URL, and the URL with that part replaced.
fn pg_retarget(url: &str, new_hostport: &str) -> (String, String) {
    let start = url.find("://").unwrap() + 3;
    let end = url[start..]
        .find(['/', '?'])
        .map(|i| start + i)
        .unwrap_or(url.len());
    let host_start = url[start..end]
        .rfind('@')
        .map(|i| start + i + 1)
        .unwrap_or(start);
    let mut target = url[host_start..end].to_string();
    if !target.contains(':') {
        target.push_str(":5432");
    }
    let new_url = format!("{}{}{}", &url[..host_start], new_hostport, &url[end..]);
    (target, new_url)
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("live")).unwrap();
        let url = format!("sqlite://{}/live/hotline.db", dir.path().display());
        TestDb {
            kind: Kind::Sqlite { dir },
            url,
        }
    }

    async fn postgres() -> Option<TestDb> {
        if std::env::var("HOTLINE_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("HOTLINE_SKIP_POSTGRES=1: skipping the PostgreSQL variant");
            return None;
        }
        let base = pg_base_url();
        let mut conn =
            match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&base))
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => panic!(
                "PostgreSQL at {} is unreachable ({e}). Start it, point HOTLINE_TEST_POSTGRES_URL \
                 at a server, or set HOTLINE_SKIP_POSTGRES=1 to skip the PostgreSQL variants.",
                redact_url(&base)
            ),
                Err(_) => panic!(
                "PostgreSQL at {} did not answer within 5 s. Set HOTLINE_SKIP_POSTGRES=1 to skip.",
                redact_url(&base)
            ),
            };
        let schema = format!("t_{:016x}", rand::random::<u64>());
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .await
            .expect("create test schema");
        conn.close().await.ok();
        let url = with_param(&base, &format!("options=-csearch_path%3D{schema}"));
        Some(TestDb {
            kind: Kind::Postgres { base, schema },
            url,
        })
    }

    async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("connect")
    }

    /// A URL to this database that is unreachable until `Outage::restore`.
    /// SQLite: the database's directory is renamed away. PostgreSQL: the URL
    /// points at a local port where a TCP proxy to the server starts later.
    async fn outage(&self) -> Outage {
        match &self.kind {
            Kind::Sqlite { dir } => {
                let live = dir.path().join("live");
                let away = dir.path().join("away");
                std::fs::rename(&live, &away).unwrap();
                Outage::Sqlite {
                    url: self.url.clone(),
                    live,
                    away,
                }
            }
            Kind::Postgres { .. } => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let port = l.local_addr().unwrap().port();
                drop(l);
                let (target, url) = pg_retarget(&self.url, &format!("127.0.0.1:{port}"));
                Outage::Postgres { url, port, target }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Kind::Postgres { base, schema } = &self.kind {
            let (base, schema) = (base.clone(), schema.clone());
            // Runs on panic too; a thread of its own because we may be inside
            // the test's runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                        let _ = c
                            .execute(sqlx::AssertSqlSafe(format!(
                                "DROP SCHEMA IF EXISTS {schema} CASCADE"
                            )))
                            .await;
                        let _ = c.close().await;
                    }
                });
            })
            .join();
        }
    }
}

enum Outage {
    Sqlite {
        url: String,
        live: PathBuf,
        away: PathBuf,
    },
    Postgres {
        url: String,
        port: u16,
        target: String,
    },
}

impl Outage {
    fn url(&self) -> &str {
        match self {
            Outage::Sqlite { url, .. } | Outage::Postgres { url, .. } => url,
        }
    }

    async fn restore(&self) {
        match self {
            Outage::Sqlite { live, away, .. } => std::fs::rename(away, live).unwrap(),
            Outage::Postgres { port, target, .. } => {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", *port))
                    .await
                    .expect("bind proxy port");
                let target = target.clone();
                tokio::spawn(async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        let target = target.clone();
                        tokio::spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        });
                    }
                });
            }
        }
    }
}

/// Run a test body on SQLite and on PostgreSQL.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::TestDb::sqlite();
                super::$name(&db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::TestDb::postgres().await {
                    super::$name(&db).await;
                }
            }
        }
    )*};
}

both!(
    migrations_apply_twice,
    params_bind_by_number,
    customers_and_phone_lookup,
    work_orders_idempotent,
    call_round_trip,
    call_legs_in_order_once,
    recent_owner_from_tasks_then_calls,
    registrations_save_load_expire,
    customer_record_aggregates,
    writer_batches_in_order,
    writer_survives_outage_with_backpressure,
);

// ------------------------------------------------------------------ fixtures

const T0: i64 = 1_750_000_000_000;

fn customer(id: &str, name: &str, at: i64) -> Customer {
    Customer {
        id: id.into(),
        name: name.into(),
        address: "深圳市南山区科技园 1 号".into(),
        region: "华南".into(),
        do_not_call: false,
        phone_status: "unverified".into(),
        created_at: at,
        updated_at: at,
    }
}

fn order(no: &str, customer_id: &str, kind: WorkOrderKind, completed_at: Option<i64>) -> WorkOrder {
    WorkOrder {
        order_no: no.into(),
        kind,
        customer_id: customer_id.into(),
        product: "KFR-35GW 空调".into(),
        technician: "张师傅".into(),
        department: "售后一部".into(),
        region: "华南".into(),
        completed_at,
        fees_cents: 12_000,
        created_at: T0,
        updated_at: T0,
    }
}

fn arrival(id: &str, customer_id: Option<&str>, at: i64) -> CallArrival {
    CallArrival {
        id: id.into(),
        direction: Direction::In,
        from_number: "+86 138 1234 5678".into(),
        to_number: "4008001234".into(),
        customer_id: customer_id.map(Into::into),
        work_order: None,
        task_id: None,
        queue: Some("service".into()),
        arrived_at: at,
    }
}

fn completion(id: &str, at: i64) -> CallCompletion {
    CallCompletion {
        id: id.into(),
        customer_id: None,
        work_order: Some("WO-1".into()),
        queue: Some("complaints".into()),
        agent_id: Some("1001".into()),
        answered_at: Some(at + 12_000),
        ended_at: at + 200_000,
        wait_ms: 12_000,
        talk_ms: 180_000,
        hold_ms: 8_000,
        ivr_path: vec!["main".into(), "2".into(), "repair".into()],
        hangup_cause: "200 BYE".into(),
        hangup_side: "caller".into(),
        disposition: "resolved".into(),
        notes: "客户反映空调不制冷，已安排上门".into(),
        recording: Some("2025/06/15/call.wav".into()),
        transfer_chain: vec![TransferHop {
            at: at + 60_000,
            from_agent: "1002".into(),
            to: "1001".into(),
            note: "已核实型号".into(),
        }],
    }
}

fn registration(agent: &str, contact: &str, expires_at: i64, cseq: i64) -> Registration {
    Registration {
        agent_id: agent.into(),
        contact_uri: contact.into(),
        source: "udp:127.0.0.1:5070".into(),
        transport: "udp".into(),
        expires_at,
        call_id: format!("reg-{agent}"),
        cseq,
        user_agent: "Linphone/5.2".into(),
    }
}

// ------------------------------------------------------------------ bodies

async fn migrations_apply_twice(db: &TestDb) {
    let a = db.store().await;
    a.migrate().await.expect("migrate again on the same pool");
    let b = db.store().await; // a second connect migrates again
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(applied, MIGRATIONS.len() as i64);
    // The schema is usable from both.
    a.upsert_customer(&customer("C1", "王先生", T0), &["13812345678"])
        .await
        .unwrap();
    assert!(b.get_customer("C1").await.unwrap().is_some());
    a.close().await;
    b.close().await;
}

async fn params_bind_by_number(db: &TestDb) {
    let s = db.store().await;
    // Out of order and repeated placeholders.
    sqlx::query("INSERT INTO agents (id, name, skills, department) VALUES ($2, $1, $3, $2)")
        .bind("Name One")
        .bind("a1")
        .bind("[]")
        .execute(s.pool())
        .await
        .unwrap();
    let agents = s.list_agents().await.unwrap();
    assert_eq!(
        agents,
        vec![Agent {
            id: "a1".into(),
            name: "Name One".into(),
            skills: vec![],
            department: "a1".into()
        }]
    );
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM agents WHERE name = $2 AND (id = $1 OR department = $1)",
    )
    .bind("a1")
    .bind("Name One")
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!(n, 1);
    s.upsert_agent(&Agent {
        id: "a1".into(),
        name: "李四".into(),
        skills: vec!["repair".into(), "complaint".into()],
        department: "热线".into(),
    })
    .await
    .unwrap();
    let agents = s.list_agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].skills, vec!["repair", "complaint"]);
    assert_eq!(agents[0].name, "李四");
    s.close().await;
}

async fn customers_and_phone_lookup(db: &TestDb) {
    let s = db.store().await;
    let mut c = customer("C1", "王先生", T0);
    s.upsert_customer(&c, &["+86 138-1234-5678", "0755-12345678", "n/a"])
        .await
        .unwrap();
    for number in [
        "13812345678",
        "008613812345678",
        "sip:+8613812345678@trunk",
        "+86 755 1234 5678",
        "075512345678",
    ] {
        let found = s.find_by_phone(number).await.unwrap();
        assert_eq!(
            found.as_ref().map(|c| c.id.as_str()),
            Some("C1"),
            "{number}"
        );
    }
    assert_eq!(s.find_by_phone("13900000000").await.unwrap(), None);
    assert_eq!(s.find_by_phone("anonymous").await.unwrap(), None);
    let phones = s.customer_phones("C1").await.unwrap();
    assert_eq!(
        phones,
        vec![
            CustomerPhone {
                phone: "13812345678".into(),
                raw: "+86 138-1234-5678".into()
            },
            CustomerPhone {
                phone: "75512345678".into(),
                raw: "0755-12345678".into()
            },
        ]
    );

    // Update: fields change, created_at stays, phone set is replaced.
    c.name = "王建国".into();
    c.do_not_call = true;
    c.phone_status = "ok".into();
    c.created_at = T0 + 999;
    c.updated_at = T0 + 1000;
    s.upsert_customer(&c, &["13812345678", "13900001111"])
        .await
        .unwrap();
    let got = s.get_customer("C1").await.unwrap().unwrap();
    assert_eq!(got.name, "王建国");
    assert!(got.do_not_call);
    assert_eq!(got.phone_status, "ok");
    assert_eq!(got.created_at, T0);
    assert_eq!(got.updated_at, T0 + 1000);
    assert_eq!(s.find_by_phone("0755 12345678").await.unwrap(), None);
    assert_eq!(
        s.find_by_phone("139-0000-1111")
            .await
            .unwrap()
            .map(|c| c.id),
        Some("C1".to_string())
    );

    // A number moves to the customer that claims it last.
    s.upsert_customer(&customer("C2", "李女士", T0), &["+8613900001111"])
        .await
        .unwrap();
    assert_eq!(
        s.find_by_phone("13900001111").await.unwrap().map(|c| c.id),
        Some("C2".to_string())
    );
    assert_eq!(s.customer_phones("C1").await.unwrap().len(), 1);
    assert_eq!(s.get_customer("nope").await.unwrap(), None);
    s.close().await;
}

async fn work_orders_idempotent(db: &TestDb) {
    let s = db.store().await;
    s.upsert_customer(&customer("C1", "王先生", T0), &["13812345678"])
        .await
        .unwrap();
    let mut w = order("WO-1", "C1", WorkOrderKind::Install, Some(T0 + 10));
    s.upsert_work_order(&w).await.unwrap();
    s.upsert_work_order(&w).await.unwrap();
    w.technician = "李师傅".into();
    w.fees_cents = 15_050;
    w.created_at = T0 + 5_000;
    w.updated_at = T0 + 5_000;
    s.upsert_work_order(&w).await.unwrap();
    let got = s.get_work_order("WO-1").await.unwrap().unwrap();
    assert_eq!(got.technician, "李师傅");
    assert_eq!(got.fees_cents, 15_050);
    assert_eq!(got.created_at, T0, "created_at kept");
    assert_eq!(got.updated_at, T0 + 5_000);
    assert_eq!(got.kind, WorkOrderKind::Install);

    s.upsert_work_order(&order("WO-2", "C1", WorkOrderKind::Repair, Some(T0 + 20)))
        .await
        .unwrap();
    s.upsert_work_order(&order("WO-3", "C1", WorkOrderKind::Repair, None))
        .await
        .unwrap();
    let list = s.list_work_orders_for_customer("C1").await.unwrap();
    let nos: Vec<_> = list.iter().map(|w| w.order_no.as_str()).collect();
    assert_eq!(
        nos,
        ["WO-3", "WO-2", "WO-1"],
        "open first, then newest completed"
    );
    assert_eq!(list[0].completed_at, None);
    assert_eq!(list[1].kind, WorkOrderKind::Repair);
    // Unknown customer is refused (foreign key).
    assert!(s
        .upsert_work_order(&order("WO-9", "nobody", WorkOrderKind::Repair, None))
        .await
        .is_err());
    s.close().await;
}

async fn recent_owner_from_tasks_then_calls(db: &TestDb) {
    let s = db.store().await;
    assert_eq!(s.recent_owner("C9", 0).await.unwrap(), None);
    // An old answered call (agent 1001), a recent one (1002), a recent
    // unanswered one (no agent).
    for (id, at, agent) in [
        ("o-1", T0 - 10 * 86_400_000, Some("1001")),
        ("o-2", T0 - 86_400_000, Some("1002")),
        ("o-3", T0 - 1000, None),
    ] {
        s.insert_call_arrival(&arrival(id, Some("C9"), at))
            .await
            .unwrap();
        let mut c = completion(id, at);
        c.agent_id = agent.map(Into::into);
        c.answered_at = agent.map(|_| at + 5000);
        s.complete_call(&c).await.unwrap();
    }
    let week_ago = T0 - 7 * 86_400_000;
    assert_eq!(
        s.recent_owner("C9", week_ago).await.unwrap().as_deref(),
        Some("1002")
    );
    assert_eq!(s.recent_owner("C9", T0 - 3_600_000).await.unwrap(), None);
    assert_eq!(s.recent_owner("other", week_ago).await.unwrap(), None);
}

async fn call_legs_in_order_once(db: &TestDb) {
    let s = db.store().await;
    let leg = |seq: i64, party: &str, role: &str, answered: Option<i64>, outcome: &str| CallLeg {
        call_id: "call-legs".into(),
        seq,
        party: party.into(),
        role: role.into(),
        offered_at: T0 + seq * 1000,
        answered_at: answered,
        ended_at: T0 + 60_000,
        outcome: outcome.into(),
    };
    let legs = vec![
        leg(1, "1001", "offer", None, "no_answer"),
        leg(2, "1002", "offer", Some(T0 + 5000), "transferred"),
        leg(3, "1003", "consult", Some(T0 + 20_000), "connected"),
        leg(4, "tel:4001234567", "transfer", None, "busy"),
    ];
    // Written out of order, one of them twice (a replayed batch).
    for l in [&legs[2], &legs[0], &legs[3], &legs[1], &legs[2]] {
        s.insert_call_leg(l).await.unwrap();
    }
    assert_eq!(s.call_legs("call-legs").await.unwrap(), legs);
    assert_eq!(s.call_legs("no-such-call").await.unwrap(), vec![]);
}

async fn call_round_trip(db: &TestDb) {
    let s = db.store().await;
    let a = arrival("call-1", Some("C1"), T0);
    s.insert_call_arrival(&a).await.unwrap();
    s.insert_call_arrival(&a).await.unwrap(); // idempotent
    let live = s.get_call("call-1").await.unwrap().unwrap();
    assert_eq!(live.ended_at, None);
    assert_eq!(live.answered_at, None);
    assert_eq!(live.ivr_path, Vec::<String>::new());
    assert_eq!(live.transfer_chain, vec![]);
    assert_eq!(live.queue.as_deref(), Some("service"));

    let c = completion("call-1", T0);
    s.complete_call(&c).await.unwrap();
    let got = s.get_call("call-1").await.unwrap().unwrap();
    let want = CallRecord {
        id: "call-1".into(),
        direction: Direction::In,
        from_number: a.from_number.clone(),
        to_number: a.to_number.clone(),
        customer_id: Some("C1".into()), // kept: completion said None
        work_order: Some("WO-1".into()),
        task_id: None,
        queue: Some("complaints".into()),
        agent_id: Some("1001".into()),
        arrived_at: T0,
        answered_at: Some(T0 + 12_000),
        ended_at: Some(T0 + 200_000),
        wait_ms: 12_000,
        talk_ms: 180_000,
        hold_ms: 8_000,
        ivr_path: c.ivr_path.clone(),
        hangup_cause: "200 BYE".into(),
        hangup_side: "caller".into(),
        disposition: "resolved".into(),
        notes: c.notes.clone(),
        recording: c.recording.clone(),
        transfer_chain: c.transfer_chain.clone(),
    };
    assert_eq!(got, want);

    // Outbound call with task and no customer, unanswered.
    let out = CallArrival {
        id: "call-2".into(),
        direction: Direction::Out,
        from_number: "4008001234".into(),
        to_number: "13812345678".into(),
        customer_id: Some("C1".into()),
        work_order: Some("WO-1".into()),
        task_id: Some("task-1".into()),
        queue: None,
        arrived_at: T0 + 1,
    };
    s.insert_call_arrival(&out).await.unwrap();
    let mut c2 = completion("call-2", T0 + 1);
    c2.answered_at = None;
    c2.recording = None;
    c2.queue = None;
    c2.transfer_chain = vec![];
    s.complete_call(&c2).await.unwrap();
    let got2 = s.get_call("call-2").await.unwrap().unwrap();
    assert_eq!(got2.direction, Direction::Out);
    assert_eq!(got2.task_id.as_deref(), Some("task-1"));
    assert_eq!(got2.queue, None);
    assert_eq!(got2.answered_at, None);
    assert_eq!(got2.recording, None);

    let err = s.complete_call(&completion("ghost", T0)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "call", .. }),
        "{err}"
    );
    assert_eq!(s.get_call("ghost").await.unwrap(), None);

    let calls = s.list_calls_for_customer("C1").await.unwrap();
    let ids: Vec<_> = calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["call-2", "call-1"]);
    s.close().await;
}

async fn registrations_save_load_expire(db: &TestDb) {
    let s = db.store().await;
    let now = T0;
    s.save_registration(&registration(
        "1001",
        "sip:1001@10.0.0.5:5060",
        now + 3_600_000,
        1,
    ))
    .await
    .unwrap();
    s.save_registration(&registration("1002", "sip:1002@10.0.0.6:5060", now - 1, 7))
        .await
        .unwrap();
    s.save_registration(&registration(
        "1001",
        "sip:1001@10.0.0.9;transport=ws",
        now + 60_000,
        3,
    ))
    .await
    .unwrap();
    // Re-REGISTER refreshes the same binding.
    let mut refreshed = registration("1001", "sip:1001@10.0.0.5:5060", now + 7_200_000, 2);
    refreshed.source = "udp:10.0.0.5:5062".into();
    s.save_registration(&refreshed).await.unwrap();

    let live = s.load_live_registrations(now).await.unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(live[0], refreshed);
    assert_eq!(live[1].contact_uri, "sip:1001@10.0.0.9;transport=ws");
    // At exactly expires_at a binding is dead.
    assert_eq!(
        s.load_live_registrations(now + 60_000).await.unwrap().len(),
        1
    );

    assert_eq!(s.purge_expired(now).await.unwrap(), 1);
    assert_eq!(s.purge_expired(now).await.unwrap(), 0);
    assert!(s
        .delete_registration("1001", "sip:1001@10.0.0.9;transport=ws")
        .await
        .unwrap());
    assert!(!s
        .delete_registration("1001", "sip:1001@10.0.0.9;transport=ws")
        .await
        .unwrap());
    assert_eq!(
        s.load_live_registrations(now).await.unwrap(),
        vec![refreshed]
    );
    s.close().await;
}

async fn customer_record_aggregates(db: &TestDb) {
    let s = db.store().await;
    s.upsert_customer(
        &customer("C1", "王先生", T0),
        &["13812345678", "0755-12345678"],
    )
    .await
    .unwrap();
    s.upsert_customer(&customer("C2", "李女士", T0), &["13900001111"])
        .await
        .unwrap();
    s.upsert_work_order(&order("WO-1", "C1", WorkOrderKind::Install, Some(T0)))
        .await
        .unwrap();
    s.upsert_work_order(&order("WO-2", "C1", WorkOrderKind::Repair, Some(T0 + 5)))
        .await
        .unwrap();
    s.upsert_work_order(&order("WO-X", "C2", WorkOrderKind::Repair, Some(T0)))
        .await
        .unwrap();
    for i in 0..3 {
        s.insert_call_arrival(&arrival(&format!("c1-{i}"), Some("C1"), T0 + i))
            .await
            .unwrap();
    }
    s.insert_call_arrival(&arrival("c2-0", Some("C2"), T0))
        .await
        .unwrap();
    s.insert_call_arrival(&arrival("anon", None, T0))
        .await
        .unwrap();
    s.complete_call(&completion("c1-1", T0 + 1)).await.unwrap();
    let case = |id: &str, customer: &str, kind, at| Case {
        id: id.into(),
        customer_id: customer.into(),
        kind,
        department: "售后一部".into(),
        deadline: at + 5 * 86_400_000,
        state: "open".into(),
        owner: Some("1001".into()),
        description: "安装师傅未清理现场".into(),
        created_at: at,
        closed_at: None,
    };
    s.insert_case(&case("K1", "C1", CaseKind::Complaint, T0))
        .await
        .unwrap();
    s.insert_case(&case("K2", "C1", CaseKind::Dissatisfied, T0 + 1))
        .await
        .unwrap();
    s.insert_case(&case("K3", "C1", CaseKind::Complaint, T0 + 2))
        .await
        .unwrap();
    s.insert_case(&case("K4", "C2", CaseKind::Complaint, T0))
        .await
        .unwrap();
    s.close_case("K1", "closed", T0 + 100).await.unwrap();
    assert!(matches!(
        s.close_case("nope", "closed", T0).await,
        Err(StoreError::NotFound { .. })
    ));

    let rec = s.customer_record("C1").await.unwrap().unwrap();
    assert_eq!(rec.customer.name, "王先生");
    assert_eq!(rec.phones.len(), 2);
    let orders: Vec<_> = rec
        .work_orders
        .iter()
        .map(|w| w.order_no.as_str())
        .collect();
    assert_eq!(orders, ["WO-2", "WO-1"]);
    let calls: Vec<_> = rec.calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(calls, ["c1-2", "c1-1", "c1-0"]);
    assert_eq!(rec.calls[1].agent_id.as_deref(), Some("1001"));
    let cases: Vec<_> = rec
        .open_cases
        .iter()
        .map(|c| (c.id.as_str(), c.kind))
        .collect();
    assert_eq!(
        cases,
        [("K2", CaseKind::Dissatisfied), ("K3", CaseKind::Complaint)]
    );
    assert_eq!(rec.open_cases[0].owner.as_deref(), Some("1001"));

    // The record of the caller, found from the number.
    let who = s.find_by_phone("+86 755 12345678").await.unwrap().unwrap();
    assert_eq!(s.customer_record(&who.id).await.unwrap().unwrap(), rec);
    assert_eq!(s.customer_record("nobody").await.unwrap(), None);
    s.close().await;
}

async fn writer_batches_in_order(db: &TestDb) {
    let s = db.store().await;
    let (w, handle) = StoreWriter::spawn(s.clone(), WriterConfig::default());
    let started = Instant::now();
    for i in 0..250 {
        let id = format!("w-{i:03}");
        w.try_send(WriteOp::CallArrival(arrival(&id, Some("C9"), T0 + i)))
            .unwrap();
        w.try_send(WriteOp::CallCompletion(completion(&id, T0 + i)))
            .unwrap();
        if i == 100 {
            // An invalid op is dropped alone; the batch around it lands.
            w.try_send(WriteOp::CallCompletion(completion("ghost", T0)))
                .unwrap();
        }
    }
    w.try_send(WriteOp::SaveRegistration(registration(
        "1001",
        "sip:a",
        T0 + 10,
        1,
    )))
    .unwrap();
    w.try_send(WriteOp::DeleteRegistration {
        agent_id: "1001".into(),
        contact_uri: "sip:a".into(),
    })
    .unwrap();
    w.try_send(WriteOp::SaveRegistration(registration(
        "1001",
        "sip:a",
        T0 + 20,
        2,
    )))
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "try_send must not wait"
    );
    tokio::time::timeout(Duration::from_secs(10), w.flush())
        .await
        .expect("flush in time")
        .unwrap();

    let stats = w.stats();
    assert_eq!(stats.accepted, 504);
    assert_eq!(stats.written, 503);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.dropped, 0);
    assert!(stats.batches >= 6, "{stats:?}");
    assert!(stats.batches <= 120, "ops were not batched: {stats:?}");

    let calls = s.list_calls_for_customer("C9").await.unwrap();
    assert_eq!(calls.len(), 250);
    assert!(calls
        .iter()
        .all(|c| c.ended_at.is_some() && c.talk_ms == 180_000));
    let regs = s.load_live_registrations(T0).await.unwrap();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].cseq, 2, "ops applied in order");

    drop(w);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("writer ends when its senders are gone")
        .unwrap();
    s.close().await;
}

async fn writer_survives_outage_with_backpressure(db: &TestDb) {
    // Schema in place first, then the database goes away.
    let setup = db.store().await;
    setup.close().await;
    let outage = db.outage().await;
    let opts = StoreOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_millis(300),
        sqlite_busy_timeout: Duration::from_secs(1),
    };
    let lazy = Store::connect_lazy(outage.url(), opts).unwrap();
    let cfg = WriterConfig {
        queue_capacity: 16,
        max_batch: 10,
        max_delay: Duration::from_millis(10),
        max_pending: 32,
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
    };
    let (w, handle) = StoreWriter::spawn(lazy.clone(), cfg.clone());

    // Order matters across the outage: save, delete, save again.
    w.try_send(WriteOp::SaveRegistration(registration(
        "1001",
        "sip:a",
        T0 + 10,
        1,
    )))
    .unwrap();
    w.try_send(WriteOp::DeleteRegistration {
        agent_id: "1001".into(),
        contact_uri: "sip:a".into(),
    })
    .unwrap();
    w.try_send(WriteOp::SaveRegistration(registration(
        "1001",
        "sip:a",
        T0 + 20,
        3,
    )))
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Flood: never blocks, the excess is refused and counted.
    let started = Instant::now();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        let id = format!("o-{i:03}");
        match w.try_send(WriteOp::CallArrival(arrival(&id, Some("C7"), T0 + i))) {
            Ok(()) => accepted.push(id),
            Err(StoreError::QueueFull) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "try_send waited: {took:?}"
    );
    let bound = cfg.queue_capacity + cfg.max_pending;
    assert!(
        accepted.len() >= cfg.queue_capacity && accepted.len() + 3 <= bound,
        "accepted {} of 200 (bound {bound})",
        accepted.len()
    );
    // FIFO: what got in is a prefix of what was sent.
    let prefix: Vec<_> = (0..accepted.len()).map(|i| format!("o-{i:03}")).collect();
    assert_eq!(accepted, prefix);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let st = w.stats();
    assert_eq!(
        st.written, 0,
        "nothing can be written during the outage: {st:?}"
    );
    assert!(st.retries >= 1, "{st:?}");
    assert_eq!(st.dropped, refused);

    outage.restore().await;
    tokio::time::timeout(Duration::from_secs(15), w.flush())
        .await
        .expect("writer catches up after the database is back")
        .unwrap();
    let st = w.stats();
    assert_eq!(st.written, accepted.len() as u64 + 3, "{st:?}");
    assert_eq!(st.failed, 0);

    let check = db.store().await;
    let mut got: Vec<_> = check
        .list_calls_for_customer("C7")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    got.sort();
    assert_eq!(got, accepted);
    let regs = check.load_live_registrations(T0).await.unwrap();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].cseq, 3);

    drop(w);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
    lazy.close().await;
    check.close().await;
}

// ------------------------------------------------------------------ single-backend tests

#[tokio::test]
async fn sqlite_in_memory_works() {
    let s = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(s.backend(), Backend::Sqlite);
    s.upsert_customer(&customer("C1", "王先生", T0), &["13812345678"])
        .await
        .unwrap();
    // The pool keeps its one connection: data stays.
    for _ in 0..3 {
        assert!(s.find_by_phone("+8613812345678").await.unwrap().is_some());
    }
    s.migrate().await.unwrap();
}

#[tokio::test]
async fn sqlite_file_is_wal_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let s = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists(), "file created");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(busy, 5000);
}

#[tokio::test]
async fn connect_errors_are_clear() {
    let opts = StoreOptions {
        acquire_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let err = Store::connect_with("postgres://bob:s3cret@127.0.0.1:1/x", opts.clone())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{msg}");
    assert!(msg.contains("postgres://bob:***@127.0.0.1:1/x"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");

    let err = Store::connect_with("sqlite:///nonexistent-dir-hotline/x/y.db", opts)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent-dir-hotline/x/y.db"),
        "{err}"
    );

    let err = Store::connect("mysql://root@localhost/x")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err}");
}

#[test]
fn embedded_migrations_match_directory() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        MIGRATIONS.len(),
        "every file in migrations/ must be listed in store::MIGRATIONS"
    );
    for (path, (version, _, sql)) in files.iter().zip(MIGRATIONS) {
        let name = path.file_name().unwrap().to_string_lossy();
        let file_version: i64 = name.split('_').next().unwrap().parse().unwrap();
        assert_eq!(file_version, *version, "{name}");
        assert_eq!(std::fs::read_to_string(path).unwrap(), *sql, "{name}");
    }
}
