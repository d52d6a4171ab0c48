//! Storage of the callback dialer (`store::campaign`): the same test body on
//! a SQLite file and on PostgreSQL in a fresh schema (as `tests/storage.rs`:
//! `HOTLINE_TEST_POSTGRES_URL`, default `postgres://root@127.0.0.1:5432/test`;
//! an unreachable PostgreSQL fails, `HOTLINE_SKIP_POSTGRES=1` skips it).

mod pg;

use pg::{drop_schema, postgres_url};

use hotline::store::*;
use sqlx::Row;

const T0: i64 = 1_750_000_000_000;

async fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/c.db", dir.path().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    campaign_round_trip(&sqlite_url(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some((url, base, schema)) = postgres_url("c").await else {
        return;
    };
    campaign_round_trip(&url).await;
    drop_schema(&base, &schema).await;
}

fn progress(id: &str, state: &str, attempts: i64, outcome: Option<&str>, at: i64) -> TaskProgress {
    TaskProgress {
        id: id.into(),
        state: state.into(),
        attempts,
        errors: 0,
        errors_in_row: 0,
        declined: false,
        due_at: at,
        first_attempt_at: Some(T0),
        last_outcome: outcome.map(Into::into),
        fail_reason: None,
        updated_at: at,
    }
}

fn arrival(id: &str, task: &str, at: i64) -> CallArrival {
    CallArrival {
        id: id.into(),
        direction: Direction::Out,
        from_number: "4008008000".into(),
        to_number: "13800000001".into(),
        customer_id: Some("C1".into()),
        work_order: Some("WO1".into()),
        task_id: Some(task.into()),
        queue: None,
        arrived_at: at,
    }
}

async fn count(s: &Store, sql: &str, arg: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(arg.to_string())
        .fetch_one(s.pool())
        .await
        .expect("count")
        .try_get::<i64, _>(0)
        .expect("an integer")
}

async fn campaign_round_trip(url: &str) {
    let s = Store::connect(url).await.expect("connect");
    s.upsert_customer(
        &Customer {
            id: "C1".into(),
            name: "张一".into(),
            address: String::new(),
            region: "杭州".into(),
            do_not_call: false,
            phone_status: "unverified".into(),
            created_at: T0,
            updated_at: T0,
        },
        &["13800000001"],
    )
    .await
    .expect("customer");
    s.upsert_work_order(&WorkOrder {
        order_no: "WO1".into(),
        kind: WorkOrderKind::Install,
        customer_id: "C1".into(),
        product: "空调".into(),
        technician: "李师傅".into(),
        department: "安装一部".into(),
        region: "宁波".into(),
        completed_at: Some(T0),
        fees_cents: 100,
        created_at: T0,
        updated_at: T0,
    })
    .await
    .expect("order");
    let task = CallbackTaskRow {
        id: "wo-WO1".into(),
        work_order: "WO1".into(),
        customer_id: "C1".into(),
        kind: "install".into(),
        window_start: T0,
        window_end: T0 + 1000,
        deadline: T0 + 2000,
        due_at: T0,
        created_at: T0,
    };
    assert!(s.insert_callback_task_once(&task).await.expect("task"));

    // Loaded with phone and the order's region; `since` filters by creation.
    let active = s.active_campaign_tasks(i64::MIN).await.expect("active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].phone, "13800000001");
    assert_eq!(active[0].region, "宁波");
    assert_eq!(active[0].state, "pending");
    assert!(s
        .active_campaign_tasks(T0 + 1)
        .await
        .expect("since")
        .is_empty());

    // Attempt 1 before the dial: task, attempt and call together, once.
    let start = AttemptStart {
        task: progress("wo-WO1", "dialing", 1, None, T0 + 10),
        attempt: 1,
        call: arrival("call-1", "wo-WO1", T0 + 10),
    };
    s.start_attempt(&start).await.expect("attempt 1");
    assert!(
        s.start_attempt(&start).await.is_err(),
        "attempt 1 exists once"
    );
    assert_eq!(
        s.active_campaign_tasks(i64::MIN).await.expect("active")[0].state,
        "dialing"
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM calls WHERE task_id = $1",
            "wo-WO1"
        )
        .await,
        1
    );

    // The server died: attempt 1 is closed as interrupted, its call ended.
    s.interrupt_attempt(
        &progress("wo-WO1", "pending", 1, Some("error"), T0 + 20),
        1,
        T0 + 20,
    )
    .await
    .expect("interrupt");
    let outcome: Option<String> =
        sqlx::query("SELECT outcome FROM callback_attempts WHERE id = $1")
            .bind(attempt_id("wo-WO1", 1))
            .fetch_one(s.pool())
            .await
            .expect("attempt")
            .try_get(0)
            .expect("outcome");
    assert_eq!(outcome.as_deref(), Some("interrupted"));
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM calls WHERE hangup_cause = $1",
            "server_restart"
        )
        .await,
        1
    );

    // Attempt 2 answered, dissatisfied: survey + case + phone ok together.
    s.start_attempt(&AttemptStart {
        task: progress("wo-WO1", "dialing", 2, Some("error"), T0 + 30),
        attempt: 2,
        call: arrival("call-2", "wo-WO1", T0 + 30),
    })
    .await
    .expect("attempt 2");
    let case = CaseRow {
        id: "dis-call-2".into(),
        customer_id: "C1".into(),
        kind: "dissatisfied".into(),
        department: "安装一部".into(),
        deadline: T0 + 5000,
        state: "open".into(),
        description: "被访人 张一: 很不满意".into(),
        created_at: T0 + 40,
        closed_at: None,
        work_order: Some("WO1".into()),
        region: "宁波".into(),
        interviewee: "张一".into(),
        source_call: Some("call-2".into()),
        fixed_at: None,
    };
    s.finish_attempt(&FinishAttempt {
        task: progress("wo-WO1", "done", 2, Some("answered"), T0 + 40),
        attempt: 2,
        outcome: "answered".into(),
        sip_status: None,
        ended_at: T0 + 40,
        survey: Some(SurveyRow {
            call_id: "call-2".into(),
            task_id: "wo-WO1".into(),
            customer_id: "C1".into(),
            work_order: Some("WO1".into()),
            attitude: Some(5),
            cleaned: Some(false),
            fees_ok: Some(true),
            satisfaction: Some(1),
            remarks: "很不满意".into(),
            completed: true,
            answered_at: T0 + 40,
        }),
        case: Some(CaseUpdate::Open(Box::new(case.clone()))),
        phone_status: Some(("C1".into(), "ok".into())),
    })
    .await
    .expect("finish");
    assert!(s
        .active_campaign_tasks(i64::MIN)
        .await
        .expect("active")
        .is_empty());
    assert_eq!(
        s.get_customer("C1")
            .await
            .expect("c")
            .expect("c")
            .phone_status,
        "ok"
    );
    let open = s
        .list_cases(Some("dissatisfied"), Some("open"), 10)
        .await
        .expect("cases");
    assert_eq!(open, vec![case.clone()]);
    assert_eq!(
        s.list_cases(None, Some("closed"), 10)
            .await
            .expect("c")
            .len(),
        0
    );

    // The fix: case resolved + second task, once.
    let second = CallbackTaskRow {
        id: "second-1".into(),
        kind: "second".into(),
        created_at: T0 + 50,
        due_at: T0 + 50,
        ..task.clone()
    };
    assert!(s
        .record_case_fix(&case.id, "s1", "整改: 已清理", T0 + 50, &second)
        .await
        .expect("fix"));
    assert!(!s
        .record_case_fix(&case.id, "s1", "again", T0 + 51, &second)
        .await
        .expect("second fix refused"));
    let fixed = s.get_case_row(&case.id).await.expect("case").expect("case");
    assert_eq!(
        (fixed.state.as_str(), fixed.fixed_at),
        ("resolved", Some(T0 + 50))
    );
    let active = s.active_campaign_tasks(T0 + 50).await.expect("active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].case_id.as_deref(), Some(case.id.as_str()));
    assert_eq!(active[0].kind, "second");

    // The weekly summary sees it opened and fixed in range.
    let ex = s.exception_cases(T0, T0 + 100).await.expect("exceptions");
    assert_eq!(ex.len(), 1);
    assert_eq!(
        (ex[0].region.as_str(), ex[0].fixed_at),
        ("宁波", Some(T0 + 50))
    );
    assert!(s
        .exception_cases(T0 + 60, T0 + 100)
        .await
        .expect("e")
        .is_empty());

    // Second callback satisfied: the case closes.
    s.start_attempt(&AttemptStart {
        task: progress("second-1", "dialing", 1, None, T0 + 60),
        attempt: 1,
        call: arrival("call-3", "second-1", T0 + 60),
    })
    .await
    .expect("attempt");
    s.finish_attempt(&FinishAttempt {
        task: progress("second-1", "done", 1, Some("answered"), T0 + 70),
        attempt: 1,
        outcome: "answered".into(),
        sip_status: None,
        ended_at: T0 + 70,
        survey: None,
        case: Some(CaseUpdate::Close {
            case_id: case.id.clone(),
            text: "满意".into(),
        }),
        phone_status: None,
    })
    .await
    .expect("finish");
    let closed = s.get_case_row(&case.id).await.expect("case").expect("case");
    assert_eq!(
        (closed.state.as_str(), closed.closed_at),
        ("closed", Some(T0 + 70))
    );
    let events = s.case_events(&case.id).await.expect("events");
    assert_eq!(
        events.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
        ["dialer", "s1", "dialer"]
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_list_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    desk_task_list(&sqlite_url(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_list_postgres() {
    let Some((url, base, schema)) = postgres_url("c").await else {
        return;
    };
    desk_task_list(&url).await;
    drop_schema(&base, &schema).await;
}

/// `list_callback_tasks` (the agent desk's list): customer, order, last
/// outcome; open tasks or all, soonest due first, at most `limit`.
async fn desk_task_list(url: &str) {
    let s = Store::connect(url).await.expect("connect");
    s.upsert_customer(
        &Customer {
            id: "C1".into(),
            name: "张一".into(),
            address: "杭州市西湖区文三路 1 号".into(),
            region: "杭州".into(),
            do_not_call: false,
            phone_status: "unverified".into(),
            created_at: T0,
            updated_at: T0,
        },
        &["138 0000 0001"],
    )
    .await
    .expect("customer");
    s.upsert_work_order(&WorkOrder {
        order_no: "WO1".into(),
        kind: WorkOrderKind::Repair,
        customer_id: "C1".into(),
        product: "BCD-256 冰箱".into(),
        technician: "赵师傅".into(),
        department: "维修部".into(),
        region: "宁波".into(),
        completed_at: Some(T0 - 1000),
        fees_cents: 0,
        created_at: T0,
        updated_at: T0,
    })
    .await
    .expect("order");
    let task = |id: &str, order: &str, customer: &str, kind: &str, due: i64| CallbackTaskRow {
        id: id.into(),
        work_order: order.into(),
        customer_id: customer.into(),
        kind: kind.into(),
        window_start: due,
        window_end: due + 1000,
        deadline: due + 2000,
        due_at: due,
        created_at: T0,
    };
    // Inserted out of due order; one without an order on record, one whose
    // customer is not on record.
    for t in [
        task("t-late", "WO1", "C1", "repair", T0 + 300),
        task("t-early", "", "C1", "second", T0 + 100),
        task("t-ghost", "WO-none", "ghost", "install", T0 + 200),
        task("t-done", "WO1", "C1", "repair", T0 + 50),
    ] {
        assert!(s.insert_callback_task_once(&t).await.expect("task"));
    }
    s.save_task_progress(&progress("t-done", "done", 1, Some("answered"), T0 + 50))
        .await
        .expect("done");
    s.save_task_progress(&progress("t-late", "pending", 1, Some("busy"), T0 + 300))
        .await
        .expect("busy");

    let open = s.list_callback_tasks(true, 100).await.expect("open");
    let ids: Vec<&str> = open.iter().map(|v| v.task.id.as_str()).collect();
    assert_eq!(ids, ["t-early", "t-ghost", "t-late"], "open, by due_at");
    let late = &open[2];
    assert_eq!(late.task.state, "pending");
    assert_eq!(late.task.attempts, 1);
    assert_eq!(late.last_outcome.as_deref(), Some("busy"));
    assert_eq!(late.customer_name, "张一");
    assert_eq!(late.customer_address, "杭州市西湖区文三路 1 号");
    assert_eq!(late.task.phone, "13800000001");
    assert_eq!(late.task.region, "宁波", "the order's region first");
    assert_eq!(
        late.order,
        Some(TaskOrder {
            order_no: "WO1".into(),
            product: "BCD-256 冰箱".into(),
            technician: "赵师傅".into(),
            department: "维修部".into(),
            completed_at: Some(T0 - 1000),
        })
    );
    let early = &open[0];
    assert_eq!(early.order, None, "no order on record");
    assert_eq!(early.task.region, "杭州", "the customer's region");
    assert_eq!(early.last_outcome, None);
    let ghost = &open[1];
    assert_eq!(
        (ghost.customer_name.as_str(), ghost.task.phone.as_str()),
        ("", "")
    );
    assert_eq!(ghost.order, None);

    let all = s.list_callback_tasks(false, 100).await.expect("all");
    let ids: Vec<&str> = all.iter().map(|v| v.task.id.as_str()).collect();
    assert_eq!(ids, ["t-done", "t-early", "t-ghost", "t-late"]);
    assert_eq!(all[0].task.state, "done");
    assert_eq!(all[0].last_outcome.as_deref(), Some("answered"));
    let two = s.list_callback_tasks(false, 2).await.expect("limit");
    assert_eq!(two.len(), 2);
    assert_eq!(two[1].task.id, "t-early");
    s.close().await;
}
