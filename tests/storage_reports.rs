//! Report queries on SQLite and PostgreSQL: seeded rows, known numbers.
//!
//! Each test body runs twice (SQLite file in a temp dir; PostgreSQL in a
//! fresh schema of `HOTLINE_TEST_POSTGRES_URL`, default
//! `postgres://root@127.0.0.1:5432/test`). An unreachable PostgreSQL fails
//! the PostgreSQL variants; `HOTLINE_SKIP_POSTGRES=1` skips them on purpose.

use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use hotline::api::reports::{self, REPORT_TZ};
use hotline::store::*;
use sqlx::{Connection, Executor};

const PG_DEFAULT: &str = "postgres://root@127.0.0.1:5432/test";

enum Kind {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { base: String, schema: String },
}

struct TestDb {
    kind: Kind,
    url: String,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/hotline.db", dir.path().display());
        TestDb {
            kind: Kind::Sqlite { _dir: dir },
            url,
        }
    }

    async fn postgres() -> Option<TestDb> {
        if std::env::var("HOTLINE_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("HOTLINE_SKIP_POSTGRES=1: skipping the PostgreSQL variant");
            return None;
        }
        let base =
            std::env::var("HOTLINE_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_DEFAULT.to_string());
        let mut conn =
            match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&base))
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => panic!(
                    "PostgreSQL at {} is unreachable ({e}). Start it, point \
                     HOTLINE_TEST_POSTGRES_URL at a server, or set HOTLINE_SKIP_POSTGRES=1.",
                    redact_url(&base)
                ),
                Err(_) => panic!(
                "PostgreSQL at {} did not answer within 5 s. Set HOTLINE_SKIP_POSTGRES=1 to skip.",
                redact_url(&base)
            ),
            };
        let schema = format!("r_{:016x}", rand::random::<u64>());
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .await
            .expect("create test schema");
        conn.close().await.ok();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
        Some(TestDb {
            kind: Kind::Postgres { base, schema },
            url,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Kind::Postgres { base, schema } = &self.kind {
            let (base, schema) = (base.clone(), schema.clone());
            // A thread of its own: we may be inside the test's runtime.
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
    inbound_kpis,
    callback_reports,
    complaints_on_time_and_overdue
);

// ------------------------------------------------------------------ seeding

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

/// Local (Asia/Shanghai) midnight of a date, epoch ms.
fn midnight(y: i32, m: u32, d: u32) -> i64 {
    let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
    hotline::campaign::rules::local_to_utc(REPORT_TZ, date, NaiveTime::MIN).timestamp_millis()
}

/// The day under test: Tuesday 2025-06-10, ISO week 2025-W24.
fn d0() -> i64 {
    midnight(2025, 6, 10)
}

async fn customer(store: &Store, id: &str, region: &str) {
    store
        .upsert_customer(
            &Customer {
                id: id.into(),
                name: format!("客户{id}"),
                address: String::new(),
                region: region.into(),
                do_not_call: false,
                phone_status: "ok".into(),
                created_at: d0(),
                updated_at: d0(),
            },
            &[format!("1380000{id}")],
        )
        .await
        .unwrap();
}

async fn order(store: &Store, no: &str, customer_id: &str, region: &str) {
    store
        .upsert_work_order(&WorkOrder {
            order_no: no.into(),
            kind: WorkOrderKind::Install,
            customer_id: customer_id.into(),
            product: String::new(),
            technician: String::new(),
            department: String::new(),
            region: region.into(),
            completed_at: Some(d0() - DAY),
            fees_cents: 0,
            created_at: d0(),
            updated_at: d0(),
        })
        .await
        .unwrap();
}

#[allow(clippy::too_many_arguments)]
async fn task(
    store: &Store,
    id: &str,
    order: &str,
    customer: &str,
    owner: &str,
    state: &str,
    window_start: i64,
    window_end: i64,
) {
    sqlx::query(
        "INSERT INTO callback_tasks (id, work_order, customer_id, kind, window_start, window_end, \
         deadline, attempts, state, owner, due_at, created_at) \
         VALUES ($1, $2, $3, 'install', $4, $5, $5, 0, $6, $7, $4, $4)",
    )
    .bind(id)
    .bind(order)
    .bind(customer)
    .bind(window_start)
    .bind(window_end)
    .bind(state)
    .bind(owner)
    .execute(store.pool())
    .await
    .unwrap();
}

struct Call<'a> {
    id: &'a str,
    direction: &'a str,
    task: Option<&'a str>,
    queue: Option<&'a str>,
    agent: Option<&'a str>,
    at: i64,
    ended: bool,
    wait_ms: i64,
    talk_ms: i64,
}

impl Default for Call<'_> {
    fn default() -> Self {
        Call {
            id: "",
            direction: "in",
            task: None,
            queue: None,
            agent: None,
            at: 0,
            ended: true,
            wait_ms: 0,
            talk_ms: 0,
        }
    }
}

async fn call(store: &Store, c: Call<'_>) {
    sqlx::query(
        "INSERT INTO calls (id, direction, from_number, to_number, task_id, queue, agent_id, \
         arrived_at, answered_at, ended_at, wait_ms, talk_ms) \
         VALUES ($1, $2, '13800000000', '4008008000', $3, $4, $5, $6, $6, $7, $8, $9)",
    )
    .bind(c.id)
    .bind(c.direction)
    .bind(c.task)
    .bind(c.queue)
    .bind(c.agent)
    .bind(c.at)
    .bind(c.ended.then_some(c.at + c.wait_ms + c.talk_ms + 1000))
    .bind(c.wait_ms)
    .bind(c.talk_ms)
    .execute(store.pool())
    .await
    .unwrap();
}

async fn survey(store: &Store, call_id: &str, attitude: i64, ok: i64, sat: i64, remarks: &str) {
    sqlx::query(
        "INSERT INTO surveys (call_id, attitude, cleaned, fees_ok, satisfaction, remarks) \
         VALUES ($1, $2, $3, $3, $4, $5)",
    )
    .bind(call_id)
    .bind(attitude)
    .bind(ok)
    .bind(sat)
    .bind(remarks)
    .execute(store.pool())
    .await
    .unwrap();
}

// ------------------------------------------------------------------ bodies

async fn inbound_kpis(db: &TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let t = d0() + 10 * H;
    let inbound = |id, queue, agent, at, wait_ms, talk_ms| Call {
        id,
        queue: Some(queue),
        agent,
        at,
        wait_ms,
        talk_ms,
        ..Call::default()
    };
    call(
        &store,
        inbound("i1", "repair", Some("1001"), t, 5_000, 60_000),
    )
    .await;
    call(
        &store,
        inbound("i2", "repair", Some("1002"), t + H, 30_000, 120_000),
    )
    .await;
    call(&store, inbound("i3", "repair", None, t + 2 * H, 40_000, 0)).await;
    call(
        &store,
        inbound("i4", "complaint", Some("1001"), t + 3 * H, 20_000, 30_000),
    )
    .await;
    // Not counted: still going on, the day before, outbound, never queued.
    call(
        &store,
        Call {
            ended: false,
            ..inbound("i5", "repair", None, t + 4 * H, 0, 0)
        },
    )
    .await;
    call(
        &store,
        inbound("i6", "repair", Some("1001"), d0() - H, 1_000, 1_000),
    )
    .await;
    call(
        &store,
        Call {
            direction: "out",
            ..inbound("o1", "repair", Some("1001"), t, 0, 5_000)
        },
    )
    .await;
    call(
        &store,
        Call {
            id: "i7",
            at: t,
            ..Call::default()
        },
    )
    .await;

    let (from, to) = (d0(), d0() + DAY);
    let q = store.inbound_by_queue(from, to, 20_000).await.unwrap();
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!(
        q[0],
        InboundCounts {
            name: "complaint".into(),
            offered: 1,
            answered: 1,
            abandoned: 0,
            answered_within_sl: 1, // exactly 20 s counts as within
            wait_total_ms: 20_000,
            talk_total_ms: 30_000,
        }
    );
    assert_eq!(
        q[1],
        InboundCounts {
            name: "repair".into(),
            offered: 3,
            answered: 2,
            abandoned: 1,
            answered_within_sl: 1,
            wait_total_ms: 35_000,
            talk_total_ms: 180_000,
        }
    );
    let a = store.inbound_by_agent(from, to, 20_000).await.unwrap();
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(
        (a[0].name.as_str(), a[0].answered, a[0].answered_within_sl),
        ("1001", 2, 2)
    );
    assert_eq!((a[0].wait_total_ms, a[0].talk_total_ms), (25_000, 90_000));
    assert_eq!(
        (a[1].name.as_str(), a[1].answered, a[1].answered_within_sl),
        ("1002", 1, 0)
    );
    // A stricter service level moves the 20 s answer out.
    let q = store.inbound_by_queue(from, to, 10_000).await.unwrap();
    assert_eq!(q[0].answered_within_sl, 0);
    // An empty range is empty, not an error.
    assert!(store
        .inbound_by_queue(to, to + DAY, 20_000)
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

async fn callback_reports(db: &TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    customer(&store, "c1", "华南").await;
    customer(&store, "c2", "华北").await;
    order(&store, "WO1", "c1", "华南").await;
    order(&store, "WO2", "c2", "华北").await;
    order(&store, "WO3", "c1", "").await; // region from the customer
    let (ws, we) = (d0() + 9 * H, d0() + 18 * H);
    task(&store, "t1", "WO1", "c1", "1001", "done", ws, we).await;
    task(&store, "t2", "WO2", "c2", "1002", "done", ws, we).await;
    task(&store, "t3", "WO3", "c1", "1001", "pending", ws, we).await;
    let later = midnight(2025, 6, 20);
    task(
        &store,
        "t4",
        "WO1",
        "c1",
        "1001",
        "done",
        later + 9 * H,
        later + 18 * H,
    )
    .await;
    let out = |id, task, agent, at| Call {
        id,
        direction: "out",
        task: Some(task),
        agent: Some(agent),
        at,
        talk_ms: 90_000,
        ..Call::default()
    };
    call(&store, out("k1", "t1", "1001", d0() + 10 * H)).await;
    call(&store, out("k2", "t2", "1002", d0() + 11 * H)).await;
    call(&store, out("k4", "t4", "1001", later + 20 * H)).await; // after its window
    survey(&store, "k1", 5, 1, 5, "").await;
    survey(&store, "k2", 2, 0, 1, "师傅迟到").await;
    survey(&store, "k4", 4, 1, 4, "").await;
    // A survey broken off before the satisfaction question: not completed.
    task(&store, "t5", "WO2", "c2", "1002", "pending", ws, we).await;
    call(&store, out("k5", "t5", "1002", d0() + 12 * H)).await;
    sqlx::query("INSERT INTO surveys (call_id, attitude, remarks) VALUES ('k5', 3, '')")
        .execute(store.pool())
        .await
        .unwrap();

    // Daily, 2025-06-10.
    let (from, to) = (d0(), d0() + DAY);
    let tasks = store.callback_tasks_opening(from, to).await.unwrap();
    assert_eq!(tasks.len(), 4);
    let t1 = &tasks[0];
    assert_eq!((t1.id.as_str(), t1.region.as_str()), ("t1", "华南"));
    assert_eq!((t1.first_attempt_at, t1.surveys), (Some(d0() + 10 * H), 1));
    assert_eq!(tasks[2].region, "华南", "WO3 has no region: the customer's");
    assert_eq!(tasks[2].first_attempt_at, None);
    assert_eq!(
        (tasks[3].id.as_str(), tasks[3].surveys),
        ("t5", 0),
        "partial survey"
    );
    let calls = store.callback_calls(from, to).await.unwrap();
    assert_eq!(calls.len(), 3);
    assert!(calls[0].surveyed && calls[0].satisfaction == Some(5));
    assert!(calls[2].surveyed && calls[2].satisfaction.is_none());
    let date = NaiveDate::from_ymd_opt(2025, 6, 10).unwrap();
    let daily = reports::daily(date, from, to, &tasks, &calls);
    assert_eq!(daily.agents.len(), 2);
    let (a, b) = (&daily.agents[0], &daily.agents[1]);
    assert_eq!((a.agent.as_str(), a.assigned, a.completed), ("1001", 2, 1));
    assert_eq!(
        (a.attitude_avg, a.cleaned_yes, a.fees_ok_yes),
        (Some(5.0), 1, 1)
    );
    assert_eq!((b.agent.as_str(), b.assigned, b.completed), ("1002", 2, 1));
    assert_eq!((b.calls, b.surveys, b.attitude_avg), (2, 2, Some(2.5)));
    assert_eq!((b.cleaned_no, b.fees_ok_no), (1, 1));
    assert_eq!(b.remarks, vec!["师傅迟到".to_string()]);

    // Weekly, 2025-W24 (9-15 June): k4 is in the next week.
    let monday = reports::parse_week("2025-W24").unwrap();
    let (wf, wt) = (midnight(2025, 6, 9), midnight(2025, 6, 9) + 7 * DAY);
    assert_eq!(monday, NaiveDate::from_ymd_opt(2025, 6, 9).unwrap());
    let calls = store.callback_calls(wf, wt).await.unwrap();
    let weekly = reports::weekly("2025-W24".into(), wf, wt, &calls);
    assert_eq!(weekly.lines.len(), 2);
    assert_eq!(
        (
            weekly.lines[0].agent.as_str(),
            weekly.lines[0].region.as_str()
        ),
        ("1001", "华南")
    );
    assert_eq!(weekly.lines[0].satisfaction, [1, 0, 0, 0, 0]);
    assert_eq!(weekly.lines[1].satisfaction, [0, 0, 0, 0, 1]);

    // Monthly, 2025-06.
    let (mf, mt) = (midnight(2025, 6, 1), midnight(2025, 7, 1));
    let tasks = store.callback_tasks_opening(mf, mt).await.unwrap();
    let calls = store.callback_calls(mf, mt).await.unwrap();
    assert_eq!((tasks.len(), calls.len()), (5, 4));
    let monthly = reports::monthly("2025-06".into(), mf, mt, &tasks, &calls);
    let north = &monthly.regions[0];
    let south = &monthly.regions[1];
    assert_eq!(north.region, "华北");
    assert_eq!((north.tasks, north.completed, north.timely), (2, 1, 2));
    assert_eq!(north.completion_rate, Some(0.5));
    assert_eq!(north.satisfied_share, Some(0.0));
    assert_eq!(south.region, "华南");
    assert_eq!((south.tasks, south.completed, south.timely), (3, 2, 1));
    assert_eq!(south.satisfaction, [1, 1, 0, 0, 0]);
    assert_eq!(south.satisfied_share, Some(1.0));
    assert_eq!(monthly.worst_regions, vec!["华北".to_string()]);
    store.close().await;
}

async fn complaints_on_time_and_overdue(db: &TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    customer(&store, "c1", "华南").await;
    let case = |id: &str, kind, dept: &str, deadline, closed: Option<i64>| Case {
        id: id.into(),
        customer_id: "c1".into(),
        kind,
        department: dept.into(),
        deadline,
        state: if closed.is_some() { "closed" } else { "open" }.into(),
        owner: Some("1002".into()),
        description: "空调漏水".into(),
        created_at: d0() + H,
        closed_at: closed,
    };
    let t = d0();
    for c in [
        case(
            "a",
            CaseKind::Complaint,
            "售后一部",
            t + 5 * DAY,
            Some(t + DAY),
        ),
        case(
            "b",
            CaseKind::Complaint,
            "售后一部",
            t + 2 * H,
            Some(t + 3 * H),
        ),
        case("c", CaseKind::Complaint, "安装部", t + 30 * DAY, None),
        case("d", CaseKind::Complaint, "安装部", t + 2 * H, None),
        case("e", CaseKind::Dissatisfied, "安装部", t + 2 * H, None),
    ] {
        store.insert_case(&c).await.unwrap();
    }
    store
        .insert_case_event("a-1", "a", t + H, "1002", "registered")
        .await
        .unwrap();
    let rows = store.complaint_cases(t, t + DAY).await.unwrap();
    assert_eq!(rows.len(), 4, "dissatisfied cases are not complaints");
    let r = reports::complaints(t, t + DAY, t + 10 * DAY, rows);
    assert_eq!((r.on_time, r.overdue), (2, 2));
    assert_eq!(r.departments.len(), 2);
    let dept = |name: &str| {
        r.departments
            .iter()
            .find(|d| d.department == name)
            .unwrap_or_else(|| panic!("no department {name}"))
    };
    let install = dept("安装部");
    assert_eq!((install.open_on_time, install.open_overdue), (1, 1));
    let after = dept("售后一部");
    assert_eq!((after.closed_on_time, after.closed_late), (1, 1));
    assert_eq!(r.overdue_open.len(), 1);
    assert_eq!(r.overdue_open[0].id, "d");
    store.close().await;
}
