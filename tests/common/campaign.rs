//! Callback campaigns in e2e tests: pjsua2 as the trunk and every customer
//! phone behind it (`tests/peers/pjsua2_customers.py`), work-order imports,
//! and reading the campaign's rows back from the server's SQLite file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{poll, venv_python, TestServer, REPO};

/// Supervisor s1 (password `hotline-s1`), for the campaign and case APIs.
pub const SUPERVISOR_S1: &str = r#"
[[users]]
id = "s1"
name = "Supervisor One"
password = "hotline-s1"
role = "supervisor"
"#;

/// The `[[trunks]]` entry "carrier": pjsua2 customers on 127.0.0.1:`port`.
pub fn trunk_toml(port: u16) -> String {
    format!(
        "[[trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1:{port}\"\nmax_calls = 4\n\
         calls_per_second = 5\ncaller_id = \"4008008000\"\n"
    )
}

/// The pjsua2 customers process, its JSON lines collected by a thread.
pub struct Customers {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Customers {
    pub fn start(port: u16, plan: &Value, record_dir: &std::path::Path) -> Self {
        Self::start_playing(port, plan, record_dir, None)
    }

    /// As [`Self::start`], every answered customer sending `voice` (a WAV, looped).
    pub fn start_playing(
        port: u16,
        plan: &Value,
        record_dir: &std::path::Path,
        voice: Option<&std::path::Path>,
    ) -> Self {
        let mut cmd = Command::new(venv_python());
        cmd.arg(format!("{REPO}/tests/peers/pjsua2_customers.py"))
            .args(["--port", &port.to_string(), "--plan", &plan.to_string()])
            .arg("--record-dir")
            .arg(record_dir)
            .args(["--limit", "240"]);
        if let Some(v) = voice {
            cmd.arg("--play").arg(v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pjsua2_customers.py");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                }
            }
        });
        let c = Self { child, lines };
        assert!(
            poll(Duration::from_secs(15), || c
                .events("started")
                .first()
                .cloned())
            .is_some(),
            "pjsua2 customers did not start: {:?}",
            c.all()
        );
        c
    }

    pub fn all(&self) -> Vec<Value> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|v| v["event"] == kind)
            .collect()
    }

    /// INVITEs that reached this phone.
    pub fn calls_to(&self, phone: &str) -> usize {
        self.events("incoming")
            .iter()
            .filter(|v| v["phone"] == phone)
            .count()
    }
}

impl Drop for Customers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- pjsua2 customers ---");
            for l in self.all() {
                eprintln!("{l}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The database

pub fn db<T>(server: &TestServer, f: impl AsyncFnOnce(hotline::store::Store) -> T) -> T {
    let url = format!("sqlite://{}", server.db_path().display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = hotline::store::Store::connect(&url).await.expect("open db");
        let out = f(store.clone()).await;
        store.close().await;
        out
    })
}

/// One row's text columns by query (first row), all as strings.
pub fn rows(server: &TestServer, sql: &str, arg: &str) -> Vec<Vec<Option<String>>> {
    let sql = sql.to_string();
    let arg = arg.to_string();
    db(server, async move |s| {
        use sqlx::Row;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(arg)
            .fetch_all(s.pool())
            .await
            .expect("query");
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<Option<String>, _>(i)
                            .ok()
                            .flatten()
                            .or_else(|| {
                                r.try_get::<Option<i64>, _>(i)
                                    .ok()
                                    .flatten()
                                    .map(|n| n.to_string())
                            })
                    })
                    .collect()
            })
            .collect()
    })
}

pub fn task_state(server: &TestServer, id: &str) -> Option<String> {
    rows(server, "SELECT state FROM callback_tasks WHERE id = $1", id)
        .first()
        .and_then(|r| r[0].clone())
}

pub fn wait_state(server: &TestServer, id: &str, want: &str, limit: Duration) {
    let got = poll(limit, || {
        (task_state(server, id).as_deref() == Some(want)).then_some(())
    });
    if got.is_none() {
        panic!(
            "task {id} not {want} within {limit:?} (now {:?}); attempts {:?}",
            task_state(server, id),
            attempts(server, id)
        );
    }
}

/// (attempt, outcome, sip_status, call_id) of a task, in order.
pub fn attempts(server: &TestServer, task: &str) -> Vec<(String, String, String, String)> {
    rows(
        server,
        "SELECT CAST(attempt AS TEXT), outcome, CAST(sip_status AS TEXT), call_id \
         FROM callback_attempts WHERE task_id = $1 ORDER BY attempt",
        task,
    )
    .into_iter()
    .map(|r| {
        let s = |i: usize| r[i].clone().unwrap_or_default();
        (s(0), s(1), s(2), s(3))
    })
    .collect()
}

pub fn outcomes(server: &TestServer, task: &str) -> Vec<String> {
    attempts(server, task).into_iter().map(|a| a.1).collect()
}

/// (direction, customer_id, work_order, to_number, hangup_cause) of the
/// task's calls, once every one has its completion (the call record is
/// written by the batching writer, after the task's outcome: 5 s at most).
pub fn calls(server: &TestServer, task: &str) -> Vec<Vec<Option<String>>> {
    let read = || {
        rows(
            server,
            "SELECT direction, customer_id, work_order, to_number, hangup_cause FROM calls \
             WHERE task_id = $1 ORDER BY arrived_at",
            task,
        )
    };
    poll(Duration::from_secs(5), || {
        let all = read();
        all.iter()
            .all(|r| r[4].as_deref().is_some_and(|c| !c.is_empty()))
            .then_some(all)
    })
    .unwrap_or_else(read)
}

/// (attitude, cleaned, fees_ok, satisfaction, completed) of the task's surveys.
pub fn surveys(server: &TestServer, task: &str) -> Vec<Vec<Option<String>>> {
    rows(
        server,
        "SELECT CAST(attitude AS TEXT), CAST(cleaned AS TEXT), CAST(fees_ok AS TEXT), \
         CAST(satisfaction AS TEXT), CAST(completed AS TEXT), s.call_id FROM surveys s \
         WHERE task_id = $1 ORDER BY answered_at",
        task,
    )
}

pub fn phone_status(server: &TestServer, customer: &str) -> String {
    rows(
        server,
        "SELECT phone_status FROM customers WHERE id = $1",
        customer,
    )[0][0]
        .clone()
        .unwrap_or_default()
}

pub fn customer_of(server: &TestServer, order: &str) -> String {
    rows(
        server,
        "SELECT customer_id FROM work_orders WHERE order_no = $1",
        order,
    )[0][0]
        .clone()
        .unwrap_or_default()
}

pub fn import(server: &TestServer, name: &str, csv: &str) {
    let path = server.dir().join(name);
    std::fs::write(&path, csv).expect("write csv");
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["import", "work-orders"])
        .arg(&path)
        .arg("--config")
        .arg(server.config_path())
        .output()
        .expect("run hotline import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub const HEADER: &str =
    "order_no,type,customer_name,phone,address,region,product,technician,department,completed_at,fees\n";

pub fn order(no: &str, name: &str, phone: &str, region: &str, completed: &str) -> String {
    format!("{no},install,{name},{phone},{region}市1号,{region},空调,李师傅,安装一部,{completed},120.00\n")
}
