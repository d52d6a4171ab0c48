//! `hotline import work-orders FILE.csv` against a real SQLite file: good rows
//! land with their callback tasks, bad rows are reported with their line and
//! exit code 2, and a re-import updates without duplicating anything.

use std::process::Command;

use hotline::store::Store;

const CSV: &str = "order_no,type,customer_name,phone,address,region,product,technician,department,completed_at,fees\n\
WO-1,install,张三,13800138000,杭州市西湖区1号,杭州,空调,李师傅,安装一部,2026-11-20 15:30,120.00\n\
WO-2,维修,李四,+86 139 0013 9000,杭州市滨江区2号,杭州,冰箱,王师傅,维修二部,2026-11-21 10:00,\"85.50\"\n\
WO-3,repair,王五,13700137000,宁波市1号,宁波,洗衣机,赵师傅,维修一部,not-a-date,0\n";

fn run(dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["import", "work-orders"])
        .arg(dir.join("orders.csv"))
        .arg("--config")
        .arg(dir.join("hotline.toml"))
        .output()
        .expect("run hotline import");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn csv_import_creates_orders_and_callback_tasks_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("h.db");
    std::fs::write(dir.path().join("orders.csv"), CSV).expect("write csv");
    std::fs::write(
        dir.path().join("hotline.toml"),
        format!(
            "[sip]\nlisten = \"127.0.0.1:5999\"\ndomain = \"d\"\n[http]\nlisten = \"127.0.0.1:8999\"\n[database]\nurl = \"sqlite://{}\"\n",
            db.display()
        ),
    )
    .expect("write config");

    let (code, stdout, stderr) = run(dir.path());
    assert_eq!(
        code, 2,
        "a refused row makes exit code 2\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("2 orders created") && stdout.contains("1 refused"),
        "{stdout}"
    );
    assert!(stdout.contains("2 callback tasks created"), "{stdout}");
    assert!(
        stderr.contains("orders.csv:4: completed_at"),
        "row error names its line: {stderr}"
    );

    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open db");
    let install = store
        .get_work_order("WO-1")
        .await
        .expect("query")
        .expect("WO-1 stored");
    assert_eq!(install.fees_cents, 12000);
    let repair = store
        .get_work_order("WO-2")
        .await
        .expect("query")
        .expect("WO-2 stored");
    assert_eq!(repair.fees_cents, 8550);
    assert!(store.get_work_order("WO-3").await.expect("query").is_none());
    let customer = store.find_by_phone("13900139000").await.expect("query");
    assert_eq!(customer.map(|c| c.name), Some("李四".to_string()));

    let tasks = store
        .callback_tasks_by_state("pending")
        .await
        .expect("tasks");
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    // Install completed 2026-11-20 → called the next day, 09:00-18:00 Shanghai (01:00-10:00 UTC).
    let t1 = tasks
        .iter()
        .find(|t| t.work_order == "WO-1")
        .expect("task for WO-1");
    assert_eq!(t1.kind, "install");
    assert_eq!(t1.window_start, 1_795_222_800_000, "2026-11-21T01:00Z");
    assert_eq!(t1.window_end, 1_795_255_200_000, "2026-11-21T10:00Z");
    // Repair completed 2026-11-21 → days 1 to 3 after: 22nd 09:00 to 24th 18:00 Shanghai.
    let t2 = tasks
        .iter()
        .find(|t| t.work_order == "WO-2")
        .expect("task for WO-2");
    assert_eq!(t2.kind, "repair");
    assert_eq!(t2.window_start, 1_795_309_200_000, "2026-11-22T01:00Z");
    assert_eq!(t2.window_end, 1_795_514_400_000, "2026-11-24T10:00Z");

    // Re-import: orders updated, no second task.
    let (code, stdout, _) = run(dir.path());
    assert_eq!(code, 2);
    assert!(stdout.contains("0 orders created, 2 updated"), "{stdout}");
    assert!(stdout.contains("0 callback tasks created"), "{stdout}");
    assert_eq!(
        store
            .callback_tasks_by_state("pending")
            .await
            .expect("tasks")
            .len(),
        2
    );
}
