//! Campaign scale check: 1,000,000 synthetic completed work orders through
//! CSV import, planning, a loaded Scheduler and the due list.
//!
//! `cargo bench --bench schedule` (plain `fn main`, `harness = false`).
//! Prints the time of each phase and the peak RSS (VmHWM) at the end.
//! `HOTLINE_BENCH_ORDERS` overrides the count.

use std::fmt::Write as _;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use hotline::campaign::{
    parse_csv, plan, CallbackRules, OrderKind, Outcome, RegionRules, Scheduler, Task, TaskId,
    TaskKind,
};

/// Small deterministic generator (xorshift64*): the bench must not depend
/// on a random-number crate or give different data each run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn shanghai(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2024, 3, d, h, m, 0)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// A `/proc/self/status` figure in KiB (`VmHWM`: peak RSS, `VmRSS`: now).
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn phase<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = f();
    let dt = t0.elapsed();
    let rss = status_kib("VmRSS:").unwrap_or(0) as f64 / 1024.0;
    println!(
        "{name:<40} {:>10.1} ms   RSS {rss:>7.1} MiB",
        dt.as_secs_f64() * 1e3
    );
    out
}

const REGIONS: [&str; 12] = [
    "杭州",
    "宁波",
    "温州",
    "绍兴",
    "嘉兴",
    "湖州",
    "金华",
    "台州",
    "上海",
    "南京",
    "乌鲁木齐",
    "拉萨",
];

fn main() {
    let n: usize = std::env::var("HOTLINE_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("campaign bench: {n} work orders");

    let mut rules = CallbackRules::default();
    // Two regions in another zone with their own hours, one holiday, so the
    // calendar code is on the path.
    for r in ["乌鲁木齐", "拉萨"] {
        rules.regions.insert(
            r.to_string(),
            RegionRules {
                zone: Some(chrono_tz::Asia::Urumqi),
                hours: None,
            },
        );
    }
    rules
        .holidays
        .insert(chrono::NaiveDate::from_ymd_opt(2024, 3, 10).unwrap_or_default());

    let csv = phase("generate CSV", || {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut s = String::with_capacity(n * 160);
        s.push_str("order_no,type,customer_id,customer_name,phone,address,region,product,technician,department,completed_at,fees\r\n");
        for i in 0..n {
            let kind = if rng.below(2) == 0 {
                "安装"
            } else {
                "维修"
            };
            let region = REGIONS[rng.below(REGIONS.len() as u64) as usize];
            // Completed over the first week of March, 08:00–21:59 local.
            let day = 1 + rng.below(7);
            let (h, m) = (8 + rng.below(14), rng.below(60));
            let fee = rng.below(50_000);
            let _ = write!(
                s,
                "WO{i:08},{kind},C{c:07},\"客户 {i}\",1{p:010},\"{region}市 某路{a}号, {b}单元\",{region},空调,师傅{t},售后{region},2024-03-{day:02} {h:02}:{m:02},{y}.{f:02}\r\n",
                c = rng.below(800_000),
                p = rng.below(10_000_000_000),
                a = rng.below(999),
                b = rng.below(9),
                t = rng.below(500),
                y = fee / 100,
                f = fee % 100,
            );
        }
        s
    });
    println!("  CSV size {:.1} MiB", csv.len() as f64 / (1024.0 * 1024.0));

    let report = phase("parse CSV", || parse_csv(&csv, |r| rules.zone_for(r)));
    drop(csv);
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("import failed: {e}");
            return;
        }
    };
    println!(
        "  rows {} errors {}",
        report.rows.len(),
        report.errors.len()
    );

    let plans = phase("plan all tasks", || {
        report
            .rows
            .iter()
            .map(|o| plan(o, &rules))
            .collect::<Vec<_>>()
    });
    println!("  planned {}", plans.iter().flatten().count());

    let mut sched = match Scheduler::new(rules.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bad rules: {e}");
            return;
        }
    };
    phase("load Scheduler", || {
        sched.reserve(plans.len());
        for (i, (o, p)) in report.rows.into_iter().zip(&plans).enumerate() {
            let Some(p) = p else { continue };
            let kind = match o.kind {
                OrderKind::Install => TaskKind::Install,
                OrderKind::Repair => TaskKind::Repair,
            };
            let task = Task::new(
                TaskId(i as u64),
                kind,
                p,
                o.order_no,
                o.customer_id.unwrap_or_default(),
                o.phone,
                o.region,
            );
            let _ = sched.insert(task);
        }
    });
    drop(plans);
    println!("  tasks {}", sched.len());

    // Friday 8 March 2024, 10:00 Shanghai (08:00 Urumqi: those regions are
    // still closed).
    let now = shanghai(8, 10, 0);
    let due = phase("due(now, 500), first call", || sched.due(now, 500));
    println!("  due {}", due.len());
    let rounds = 200;
    let t0 = Instant::now();
    let mut dialed = 0usize;
    for k in 0..rounds {
        let at = now + Duration::seconds(k);
        for id in sched.due(at, 50) {
            if sched.start_attempt(id, at).is_ok() {
                dialed += 1;
                let o = if id.0 % 3 == 0 {
                    Outcome::NoAnswer
                } else {
                    Outcome::Answered { completed: true }
                };
                let _ = sched.on_outcome(id, o, at + Duration::seconds(1));
            }
        }
    }
    let dt = t0.elapsed();
    println!(
        "{:<40} {:>10.1} ms  ({rounds} rounds, {dialed} attempts, {:.1} µs per due(50) + 50 transitions)",
        "steady state: due(50) + start + outcome",
        dt.as_secs_f64() * 1e3,
        dt.as_secs_f64() * 1e6 / rounds as f64
    );
    let later = shanghai(8, 14, 0);
    let due = phase("due(14:00, 500), Urumqi open too", || sched.due(later, 500));
    println!("  due {}", due.len());
    let expired = phase("expire_overdue(Tue 12th 18:00)", || {
        sched.expire_overdue(shanghai(12, 18, 0)).len()
    });
    println!("  expired {expired}");

    match status_kib("VmHWM:") {
        Some(k) => println!("peak RSS (VmHWM) {:.1} MiB", k as f64 / 1024.0),
        None => println!("peak RSS unavailable"),
    }
}
