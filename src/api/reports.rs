//! Reports in the forms of seed 003 (daily, weekly, monthly callback
//! reports), inbound KPIs and complaints; JSON by default, CSV with
//! `?format=csv`. Supervisor and admin only.
//!
//! Days, ISO weeks and months are local to [`REPORT_TZ`]: a period is turned
//! into a UTC `[from, to)` range here and the store only filters on BIGINT
//! epoch ms, so the SQL stays the same on SQLite and PostgreSQL.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::auth::{Principal, Role};
use super::calls::parse_time;
use super::error::{ApiError, ApiResult, Q};
use super::ApiState;
use crate::campaign::rules::local_to_utc;
use crate::store::{CallbackCallRow, CallbackTaskReportRow, ComplaintRow, InboundCounts};

/// The zone report periods are counted in (the seeds' business is in China).
pub const REPORT_TZ: Tz = chrono_tz::Asia::Shanghai;
/// Default service-level time of the inbound report, seconds.
pub const DEFAULT_SL_SECS: i64 = 20;
/// How many regions the monthly report names as the worst.
pub const WORST_REGIONS: usize = 3;
/// The longest range the inbound and complaints reports accept.
pub const MAX_RANGE_MS: i64 = 366 * 24 * 3600 * 1000;

/// The five satisfaction levels, 5 first (survey value 5 = 非常满意).
pub const SATISFACTION_LABELS: [&str; 5] = ["非常满意", "满意", "一般", "不太满意", "很不满意"];

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    date: Option<String>,
    week: Option<String>,
    month: Option<String>,
    from: Option<String>,
    to: Option<String>,
    sl: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

fn format_of(q: &ReportQuery) -> ApiResult<Format> {
    match q.format.as_deref().map(str::trim) {
        None | Some("") | Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format: expected json or csv, got {other:?}"
        ))),
    }
}

fn allowed(who: &Principal) -> ApiResult<()> {
    who.require(&[Role::Supervisor, Role::Admin])
}

// ------------------------------------------------------------------ periods

fn day_start(d: NaiveDate) -> i64 {
    local_to_utc(REPORT_TZ, d, NaiveTime::MIN).timestamp_millis()
}

/// `YYYY-MM-DD`.
pub fn parse_date(name: &str, v: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::BadRequest(format!("{name}: expected a date YYYY-MM-DD, got {v:?}")))
}

/// `YYYY-Www` (ISO week, e.g. `2025-W23`) → its Monday.
pub fn parse_week(v: &str) -> ApiResult<NaiveDate> {
    let bad = || ApiError::BadRequest(format!("week: expected YYYY-Www (ISO week), got {v:?}"));
    let (y, w) = v.trim().split_once("-W").ok_or_else(bad)?;
    let year: i32 = y.parse().map_err(|_| bad())?;
    let week: u32 = w.parse().map_err(|_| bad())?;
    if w.len() != 2 {
        return Err(bad());
    }
    NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).ok_or_else(bad)
}

/// `YYYY-MM` → its first day.
pub fn parse_month(v: &str) -> ApiResult<NaiveDate> {
    let bad = || ApiError::BadRequest(format!("month: expected YYYY-MM, got {v:?}"));
    let (y, m) = v.trim().split_once('-').ok_or_else(bad)?;
    if m.len() != 2 {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u32 = m.parse().map_err(|_| bad())?;
    NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)
}

fn next_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d)
}

fn today(state: &ApiState) -> NaiveDate {
    Utc.timestamp_millis_opt(state.now_ms())
        .single()
        .unwrap_or_default()
        .with_timezone(&REPORT_TZ)
        .date_naive()
}

/// A range bound: a date (local midnight; `to` as a date includes that day),
/// RFC 3339 or epoch ms.
fn parse_bound(name: &str, v: &str, is_end: bool) -> ApiResult<i64> {
    if let Ok(d) = NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d") {
        let d = if is_end { d.succ_opt().unwrap_or(d) } else { d };
        return Ok(day_start(d));
    }
    parse_time(name, v)
}

/// `from`/`to` of the inbound and complaints reports; default today.
fn range(state: &ApiState, q: &ReportQuery) -> ApiResult<(i64, i64)> {
    let t = today(state);
    let from = match q.from.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(v) => parse_bound("from", v, false)?,
        None => day_start(t),
    };
    let to = match q.to.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(v) => parse_bound("to", v, true)?,
        None => day_start(t.succ_opt().unwrap_or(t)),
    };
    if to <= from {
        return Err(ApiError::BadRequest("`to` must be after `from`".into()));
    }
    if to - from > MAX_RANGE_MS {
        return Err(ApiError::BadRequest(
            "the range is longer than 366 days".into(),
        ));
    }
    Ok((from, to))
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn avg(total: i64, n: i64) -> Option<i64> {
    (n > 0).then(|| total / n)
}

// ------------------------------------------------------------------ CSV

/// A CSV document: UTF-8 with a byte-order mark (so spreadsheet programs
/// read the Chinese labels), CRLF lines, RFC 4180 quoting.
struct Csv(String);

impl Csv {
    fn new(header: &[&str]) -> Csv {
        let mut c = Csv(String::from("\u{feff}"));
        c.row(header.iter().map(|s| s.to_string()));
        c
    }

    fn row<I: IntoIterator<Item = String>>(&mut self, cells: I) {
        let mut first = true;
        for cell in cells {
            if !first {
                self.0.push(',');
            }
            first = false;
            // Free text (remarks, names) must not run as a spreadsheet formula.
            let cell = if cell.starts_with(['=', '+', '-', '@', '\t']) {
                format!("'{cell}")
            } else {
                cell
            };
            if cell.contains([',', '"', '\n', '\r']) {
                self.0.push('"');
                self.0.push_str(&cell.replace('"', "\"\""));
                self.0.push('"');
            } else {
                self.0.push_str(&cell);
            }
        }
        self.0.push_str("\r\n");
    }

    fn into_response(self, filename: &str) -> Response {
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            self.0,
        )
            .into_response()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}", v * 100.0)).unwrap_or_default()
}

fn respond<T: Serialize>(
    fmt: Format,
    json: T,
    csv: impl FnOnce(&T) -> Csv,
    name: &str,
) -> Response {
    match fmt {
        Format::Json => Json(json).into_response(),
        Format::Csv => csv(&json).into_response(name),
    }
}

// ------------------------------------------------------------------ daily

/// One agent's line of the daily report.
#[derive(Debug, Default, Serialize)]
pub struct DailyAgent {
    /// Agent id; empty for tasks nobody owns yet.
    pub agent: String,
    /// Tasks owned by the agent whose window opens this day.
    pub assigned: i64,
    /// Tasks the agent completed this day (a survey answered to the last
    /// question, satisfaction, or the task marked done).
    pub completed: i64,
    /// Callback calls made this day.
    pub calls: i64,
    /// Surveys answered this day.
    pub surveys: i64,
    /// Mean service-attitude score (1-5) of the answered surveys.
    pub attitude_avg: Option<f64>,
    pub cleaned_yes: i64,
    pub cleaned_no: i64,
    pub fees_ok_yes: i64,
    pub fees_ok_no: i64,
    /// Non-empty survey remarks.
    pub remarks: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DailyReport {
    pub date: String,
    pub from: i64,
    pub to: i64,
    pub agents: Vec<DailyAgent>,
}

/// Build the daily report from the rows of one day.
pub fn daily(
    date: NaiveDate,
    from: i64,
    to: i64,
    tasks: &[CallbackTaskReportRow],
    calls: &[CallbackCallRow],
) -> DailyReport {
    let mut by: BTreeMap<String, DailyAgent> = BTreeMap::new();
    let mut attitude: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for t in tasks {
        let a = t.owner.clone().unwrap_or_default();
        by.entry(a).or_default().assigned += 1;
    }
    let mut completed: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for c in calls {
        let a = c.agent_id.clone().unwrap_or_default();
        let line = by.entry(a.clone()).or_default();
        line.calls += 1;
        // A survey is complete once its last question (satisfaction) is
        // answered; a partial one is called again and does not count.
        if c.satisfaction.is_some() || c.task_state.as_deref() == Some("done") {
            completed
                .entry(a.clone())
                .or_default()
                .insert(c.task_id.clone());
        }
        if c.surveyed {
            line.surveys += 1;
            if let Some(v) = c.attitude {
                let e = attitude.entry(a.clone()).or_default();
                e.0 += v;
                e.1 += 1;
            }
            match c.cleaned {
                Some(0) => line.cleaned_no += 1,
                Some(_) => line.cleaned_yes += 1,
                None => {}
            }
            match c.fees_ok {
                Some(0) => line.fees_ok_no += 1,
                Some(_) => line.fees_ok_yes += 1,
                None => {}
            }
            if !c.remarks.trim().is_empty() {
                line.remarks.push(c.remarks.trim().to_string());
            }
        }
    }
    let agents = by
        .into_iter()
        .map(|(agent, mut line)| {
            line.completed = completed.get(&agent).map_or(0, |s| s.len() as i64);
            line.attitude_avg = attitude
                .get(&agent)
                .and_then(|(sum, n)| ratio(*sum, *n))
                .map(|v| (v * 100.0).round() / 100.0);
            line.agent = agent;
            line
        })
        .collect();
    DailyReport {
        date: date.to_string(),
        from,
        to,
        agents,
    }
}

/// `GET /api/reports/daily?date=YYYY-MM-DD` (default today).
pub async fn daily_report(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<ReportQuery>,
) -> ApiResult<Response> {
    allowed(&who)?;
    let fmt = format_of(&q)?;
    let date = match q.date.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(v) => parse_date("date", v)?,
        None => today(&state),
    };
    let (from, to) = (day_start(date), day_start(date.succ_opt().unwrap_or(date)));
    let tasks = state.store.callback_tasks_opening(from, to).await?;
    let calls = state.store.callback_calls(from, to).await?;
    let report = daily(date, from, to, &tasks, &calls);
    let name = format!("daily-{date}.csv");
    Ok(respond(fmt, report, daily_csv, &name))
}

fn daily_csv(r: &DailyReport) -> Csv {
    let mut c = Csv::new(&[
        "日期 date",
        "回访员 agent",
        "分配订单 assigned",
        "完成 completed",
        "回访电话 calls",
        "服务态度 attitude_avg",
        "清理现场 cleaned_yes",
        "未清理 cleaned_no",
        "收费相符 fees_ok_yes",
        "收费不符 fees_ok_no",
        "备注 remarks",
    ]);
    for a in &r.agents {
        c.row([
            r.date.clone(),
            a.agent.clone(),
            a.assigned.to_string(),
            a.completed.to_string(),
            a.calls.to_string(),
            opt(a.attitude_avg),
            a.cleaned_yes.to_string(),
            a.cleaned_no.to_string(),
            a.fees_ok_yes.to_string(),
            a.fees_ok_no.to_string(),
            a.remarks.join("; "),
        ]);
    }
    c
}

// ------------------------------------------------------------------ weekly

/// One (agent, region) line of the weekly report.
#[derive(Debug, Default, Serialize)]
pub struct WeeklyLine {
    pub agent: String,
    pub region: String,
    /// Distinct tasks with a complete survey (satisfaction answered) this week.
    pub completed: i64,
    /// Counts of satisfaction 5 (非常满意) down to 1 (很不满意).
    pub satisfaction: [i64; 5],
}

#[derive(Debug, Serialize)]
pub struct WeeklyReport {
    pub week: String,
    pub from: i64,
    pub to: i64,
    pub levels: [&'static str; 5],
    pub lines: Vec<WeeklyLine>,
}

/// Build the weekly report from the callback calls of one week.
pub fn weekly(week: String, from: i64, to: i64, calls: &[CallbackCallRow]) -> WeeklyReport {
    let mut by: BTreeMap<(String, String), (WeeklyLine, std::collections::BTreeSet<String>)> =
        BTreeMap::new();
    for c in calls.iter().filter(|c| c.surveyed) {
        let key = (c.agent_id.clone().unwrap_or_default(), c.region.clone());
        let (line, tasks) = by.entry(key).or_default();
        if c.satisfaction.is_some() {
            tasks.insert(c.task_id.clone());
        }
        if let Some(s @ 1..=5) = c.satisfaction {
            line.satisfaction[(5 - s) as usize] += 1;
        }
    }
    let lines = by
        .into_iter()
        .map(|((agent, region), (mut line, tasks))| {
            line.agent = agent;
            line.region = region;
            line.completed = tasks.len() as i64;
            line
        })
        .collect();
    WeeklyReport {
        week,
        from,
        to,
        levels: SATISFACTION_LABELS,
        lines,
    }
}

/// `GET /api/reports/weekly?week=YYYY-Www` (default this week).
pub async fn weekly_report(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<ReportQuery>,
) -> ApiResult<Response> {
    allowed(&who)?;
    let fmt = format_of(&q)?;
    let monday = match q.week.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(v) => parse_week(v)?,
        None => {
            let t = today(&state);
            t - chrono::Duration::days(i64::from(t.weekday().num_days_from_monday()))
        }
    };
    let iso = monday.iso_week();
    let label = format!("{}-W{:02}", iso.year(), iso.week());
    let (from, to) = (
        day_start(monday),
        day_start(monday + chrono::Duration::days(7)),
    );
    let calls = state.store.callback_calls(from, to).await?;
    let report = weekly(label.clone(), from, to, &calls);
    Ok(respond(
        fmt,
        report,
        weekly_csv,
        &format!("weekly-{label}.csv"),
    ))
}

fn weekly_csv(r: &WeeklyReport) -> Csv {
    let mut header = vec![
        "周 week".to_string(),
        "回访员 agent".into(),
        "区域 region".into(),
        "完成 completed".into(),
    ];
    header.extend(SATISFACTION_LABELS.iter().map(|s| s.to_string()));
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut c = Csv::new(&h);
    for l in &r.lines {
        let mut row = vec![
            r.week.clone(),
            l.agent.clone(),
            l.region.clone(),
            l.completed.to_string(),
        ];
        row.extend(l.satisfaction.iter().map(|n| n.to_string()));
        c.row(row);
    }
    c
}

// ------------------------------------------------------------------ monthly

/// One region's line of the monthly report.
#[derive(Debug, Default, Serialize)]
pub struct MonthlyRegion {
    pub region: String,
    /// Callback tasks whose window opened this month.
    pub tasks: i64,
    /// ...completed (survey answered or task done).
    pub completed: i64,
    /// ...first attempted inside their window.
    pub timely: i64,
    pub completion_rate: Option<f64>,
    pub timeliness_rate: Option<f64>,
    /// Surveys answered this month in the region.
    pub surveys: i64,
    /// Counts of satisfaction 5 down to 1.
    pub satisfaction: [i64; 5],
    /// (非常满意 + 满意) / surveys with a satisfaction answer.
    pub satisfied_share: Option<f64>,
    /// Named among the worst regions this month.
    pub worst: bool,
}

#[derive(Debug, Serialize)]
pub struct MonthlyReport {
    pub month: String,
    pub from: i64,
    pub to: i64,
    pub levels: [&'static str; 5],
    pub regions: Vec<MonthlyRegion>,
    /// Up to [`WORST_REGIONS`], worst first: lowest satisfied share, then
    /// lowest completion rate, then lowest timeliness.
    pub worst_regions: Vec<String>,
}

/// Build the monthly report.
pub fn monthly(
    month: String,
    from: i64,
    to: i64,
    tasks: &[CallbackTaskReportRow],
    calls: &[CallbackCallRow],
) -> MonthlyReport {
    let mut by: BTreeMap<String, MonthlyRegion> = BTreeMap::new();
    for t in tasks {
        let r = by.entry(t.region.clone()).or_default();
        r.tasks += 1;
        if t.surveys > 0 || t.state == "done" {
            r.completed += 1;
        }
        if t.first_attempt_at
            .is_some_and(|a| a >= t.window_start && a <= t.window_end)
        {
            r.timely += 1;
        }
    }
    for c in calls.iter().filter(|c| c.surveyed) {
        let r = by.entry(c.region.clone()).or_default();
        r.surveys += 1;
        if let Some(s @ 1..=5) = c.satisfaction {
            r.satisfaction[(5 - s) as usize] += 1;
        }
    }
    let mut regions: Vec<MonthlyRegion> = by
        .into_iter()
        .map(|(region, mut r)| {
            r.region = region;
            r.completion_rate = ratio(r.completed, r.tasks);
            r.timeliness_rate = ratio(r.timely, r.tasks);
            let answered: i64 = r.satisfaction.iter().sum();
            r.satisfied_share = ratio(r.satisfaction[0] + r.satisfaction[1], answered);
            r
        })
        .collect();
    // Regions with nothing measured are not ranked.
    let key = |r: &MonthlyRegion| {
        (
            r.satisfied_share.unwrap_or(1.0),
            r.completion_rate.unwrap_or(1.0),
            r.timeliness_rate.unwrap_or(1.0),
        )
    };
    let mut ranked: Vec<usize> = (0..regions.len())
        .filter(|&i| regions[i].satisfied_share.is_some() || regions[i].completion_rate.is_some())
        .collect();
    // Naming every region "worst" says nothing: at least one stays unnamed.
    let named = WORST_REGIONS.min(ranked.len().saturating_sub(1));
    ranked.sort_by(|&a, &b| {
        key(&regions[a])
            .partial_cmp(&key(&regions[b]))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| regions[a].region.cmp(&regions[b].region))
    });
    ranked.truncate(named);
    let worst_regions = ranked
        .iter()
        .map(|&i| {
            regions[i].worst = true;
            regions[i].region.clone()
        })
        .collect();
    MonthlyReport {
        month,
        from,
        to,
        levels: SATISFACTION_LABELS,
        regions,
        worst_regions,
    }
}

/// `GET /api/reports/monthly?month=YYYY-MM` (default this month).
pub async fn monthly_report(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<ReportQuery>,
) -> ApiResult<Response> {
    allowed(&who)?;
    let fmt = format_of(&q)?;
    let first = match q.month.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(v) => parse_month(v)?,
        None => today(&state).with_day(1).unwrap_or_default(),
    };
    let label = format!("{}-{:02}", first.year(), first.month());
    let (from, to) = (day_start(first), day_start(next_month(first)));
    let tasks = state.store.callback_tasks_opening(from, to).await?;
    let calls = state.store.callback_calls(from, to).await?;
    let report = monthly(label.clone(), from, to, &tasks, &calls);
    Ok(respond(
        fmt,
        report,
        monthly_csv,
        &format!("monthly-{label}.csv"),
    ))
}

fn monthly_csv(r: &MonthlyReport) -> Csv {
    let mut header = vec![
        "月 month".to_string(),
        "区域 region".into(),
        "回访任务 tasks".into(),
        "完成 completed".into(),
        "完成率% completion_rate".into(),
        "及时率% timeliness_rate".into(),
        "满意率% satisfied_share".into(),
    ];
    header.extend(SATISFACTION_LABELS.iter().map(|s| s.to_string()));
    header.push("最差 worst".into());
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut c = Csv::new(&h);
    for g in &r.regions {
        let mut row = vec![
            r.month.clone(),
            g.region.clone(),
            g.tasks.to_string(),
            g.completed.to_string(),
            pct(g.completion_rate),
            pct(g.timeliness_rate),
            pct(g.satisfied_share),
        ];
        row.extend(g.satisfaction.iter().map(|n| n.to_string()));
        row.push(if g.worst { "是".into() } else { String::new() });
        c.row(row);
    }
    c
}

// ------------------------------------------------------------------ inbound

/// KPIs of one queue or agent.
#[derive(Debug, Serialize)]
pub struct InboundLine {
    pub name: String,
    pub offered: i64,
    pub answered: i64,
    pub abandoned: i64,
    pub answered_within_sl: i64,
    /// answered within the SL time / offered.
    pub service_level: Option<f64>,
    /// abandoned / offered.
    pub abandon_rate: Option<f64>,
    pub avg_wait_ms: Option<i64>,
    pub avg_talk_ms: Option<i64>,
}

impl From<InboundCounts> for InboundLine {
    fn from(c: InboundCounts) -> Self {
        InboundLine {
            service_level: ratio(c.answered_within_sl, c.offered),
            abandon_rate: ratio(c.abandoned, c.offered),
            avg_wait_ms: avg(c.wait_total_ms, c.answered),
            avg_talk_ms: avg(c.talk_total_ms, c.answered),
            name: c.name,
            offered: c.offered,
            answered: c.answered,
            abandoned: c.abandoned,
            answered_within_sl: c.answered_within_sl,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct InboundReport {
    pub from: i64,
    pub to: i64,
    pub sl_secs: i64,
    pub queues: Vec<InboundLine>,
    pub agents: Vec<InboundLine>,
    /// All queues together.
    pub total: InboundLine,
}

/// `GET /api/reports/inbound?from=&to=&sl=` (default today, 20 s).
pub async fn inbound_report(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<ReportQuery>,
) -> ApiResult<Response> {
    allowed(&who)?;
    let fmt = format_of(&q)?;
    let (from, to) = range(&state, &q)?;
    let sl_secs = match q.sl.as_deref().filter(|s| !s.trim().is_empty()) {
        None => DEFAULT_SL_SECS,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (1..=3600).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "sl: expected seconds from 1 to 3600, got {v:?}"
                )))
            }
        },
    };
    let queues = state
        .store
        .inbound_by_queue(from, to, sl_secs * 1000)
        .await?;
    let agents = state
        .store
        .inbound_by_agent(from, to, sl_secs * 1000)
        .await?;
    let mut total = InboundCounts {
        name: "全部 all".into(),
        ..InboundCounts::default()
    };
    for q in &queues {
        total.offered += q.offered;
        total.answered += q.answered;
        total.abandoned += q.abandoned;
        total.answered_within_sl += q.answered_within_sl;
        total.wait_total_ms += q.wait_total_ms;
        total.talk_total_ms += q.talk_total_ms;
    }
    let report = InboundReport {
        from,
        to,
        sl_secs,
        queues: queues.into_iter().map(Into::into).collect(),
        agents: agents.into_iter().map(Into::into).collect(),
        total: total.into(),
    };
    Ok(respond(fmt, report, inbound_csv, "inbound.csv"))
}

fn inbound_csv(r: &InboundReport) -> Csv {
    let mut c = Csv::new(&[
        "scope",
        "name",
        "offered",
        "answered",
        "abandoned",
        "answered_within_sl",
        "service_level_pct",
        "abandon_rate_pct",
        "avg_wait_s",
        "avg_talk_s",
    ]);
    let secs = |ms: Option<i64>| {
        ms.map(|m| format!("{:.1}", m as f64 / 1000.0))
            .unwrap_or_default()
    };
    let lines = r
        .queues
        .iter()
        .map(|l| ("queue", l))
        .chain(r.agents.iter().map(|l| ("agent", l)))
        .chain(std::iter::once(("total", &r.total)));
    for (scope, l) in lines {
        c.row([
            scope.to_string(),
            l.name.clone(),
            l.offered.to_string(),
            l.answered.to_string(),
            l.abandoned.to_string(),
            l.answered_within_sl.to_string(),
            pct(l.service_level),
            pct(l.abandon_rate),
            secs(l.avg_wait_ms),
            secs(l.avg_talk_ms),
        ]);
    }
    c
}

// ------------------------------------------------------------------ complaints

#[derive(Debug, Default, Serialize)]
pub struct ComplaintCounts {
    pub department: String,
    pub total: i64,
    /// Closed by the deadline.
    pub closed_on_time: i64,
    /// Closed after the deadline.
    pub closed_late: i64,
    /// Open, deadline not passed.
    pub open_on_time: i64,
    /// Open past the deadline.
    pub open_overdue: i64,
}

#[derive(Debug, Serialize)]
pub struct ComplaintsReport {
    pub from: i64,
    pub to: i64,
    pub now: i64,
    pub on_time: i64,
    pub overdue: i64,
    pub departments: Vec<ComplaintCounts>,
    /// Open cases past their deadline, oldest first.
    pub overdue_open: Vec<ComplaintRow>,
}

/// Build the complaints report at `now`.
pub fn complaints(from: i64, to: i64, now: i64, rows: Vec<ComplaintRow>) -> ComplaintsReport {
    let mut by: BTreeMap<String, ComplaintCounts> = BTreeMap::new();
    let mut overdue_open = Vec::new();
    for r in rows {
        let d = by.entry(r.department.clone()).or_default();
        d.total += 1;
        match r.closed_at {
            Some(c) if c <= r.deadline => d.closed_on_time += 1,
            Some(_) => d.closed_late += 1,
            None if now <= r.deadline => d.open_on_time += 1,
            None => {
                d.open_overdue += 1;
                overdue_open.push(r);
            }
        }
    }
    let departments: Vec<ComplaintCounts> = by
        .into_iter()
        .map(|(department, mut c)| {
            c.department = department;
            c
        })
        .collect();
    let on_time = departments
        .iter()
        .map(|d| d.closed_on_time + d.open_on_time)
        .sum();
    let overdue = departments
        .iter()
        .map(|d| d.closed_late + d.open_overdue)
        .sum();
    ComplaintsReport {
        from,
        to,
        now,
        on_time,
        overdue,
        departments,
        overdue_open,
    }
}

/// `GET /api/reports/complaints?from=&to=` (cases created in the range;
/// default: the last 366 days).
pub async fn complaints_report(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<ReportQuery>,
) -> ApiResult<Response> {
    allowed(&who)?;
    let fmt = format_of(&q)?;
    let now = state.now_ms();
    let (from, to) = if q.from.is_none() && q.to.is_none() {
        let t = today(&state);
        let end = day_start(t.succ_opt().unwrap_or(t));
        (end - MAX_RANGE_MS, end)
    } else {
        range(&state, &q)?
    };
    let rows = state.store.complaint_cases(from, to).await?;
    let report = complaints(from, to, now, rows);
    Ok(respond(fmt, report, complaints_csv, "complaints.csv"))
}

fn complaints_csv(r: &ComplaintsReport) -> Csv {
    let mut c = Csv::new(&[
        "部门 department",
        "投诉 total",
        "按时办结 closed_on_time",
        "超时办结 closed_late",
        "处理中 open_on_time",
        "已超时 open_overdue",
    ]);
    for d in &r.departments {
        c.row([
            d.department.clone(),
            d.total.to_string(),
            d.closed_on_time.to_string(),
            d.closed_late.to_string(),
            d.open_on_time.to_string(),
            d.open_overdue.to_string(),
        ]);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_refuse() {
        assert_eq!(
            parse_week("2025-W01").unwrap(),
            NaiveDate::from_ymd_opt(2024, 12, 30).unwrap()
        );
        assert!(parse_week("2025-W54").is_err());
        assert!(parse_week("2025-1").is_err());
        assert!(parse_week("2025-W1").is_err());
        assert_eq!(
            parse_month("2025-02").unwrap(),
            NaiveDate::from_ymd_opt(2025, 2, 1).unwrap()
        );
        assert!(parse_month("2025-13").is_err());
        assert!(parse_month("2025-2").is_err());
        assert!(parse_date("date", "2025-02-30").is_err());
        let d = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
        // Shanghai midnight is 16:00 UTC the day before.
        assert_eq!(day_start(d), 1_748_707_200_000);
        assert_eq!(
            next_month(NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()),
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
        );
    }

    #[test]
    fn csv_quotes_and_marks_utf8() {
        let mut c = Csv::new(&["a", "b"]);
        c.row(["x,y".to_string(), "say \"hi\"".to_string()]);
        c.row(["=1+1".to_string(), "@x".to_string()]);
        assert_eq!(
            c.0,
            "\u{feff}a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n'=1+1,'@x\r\n"
        );
    }

    fn call(agent: &str, task: &str, region: &str, sat: Option<i64>) -> CallbackCallRow {
        CallbackCallRow {
            call_id: format!("c-{task}-{agent}"),
            agent_id: Some(agent.into()),
            task_id: task.into(),
            arrived_at: 0,
            task_state: Some("done".into()),
            region: region.into(),
            surveyed: sat.is_some(),
            attitude: sat,
            cleaned: sat.map(|_| 1),
            fees_ok: sat.map(|s| i64::from(s > 2)),
            satisfaction: sat,
            remarks: if sat == Some(1) {
                "很差".into()
            } else {
                String::new()
            },
        }
    }

    fn task(id: &str, region: &str, first: Option<i64>, surveys: i64) -> CallbackTaskReportRow {
        CallbackTaskReportRow {
            id: id.into(),
            owner: Some("1001".into()),
            kind: "install".into(),
            state: if surveys > 0 {
                "done".into()
            } else {
                "pending".into()
            },
            window_start: 100,
            window_end: 200,
            region: region.into(),
            first_attempt_at: first,
            surveys,
        }
    }

    #[test]
    fn daily_weekly_monthly_numbers() {
        let calls = vec![
            call("1001", "t1", "north", Some(5)),
            call("1001", "t2", "north", Some(1)),
            call("1002", "t3", "south", Some(4)),
            call("1002", "t4", "south", None),
        ];
        let tasks = vec![
            task("t1", "north", Some(150), 1),
            task("t2", "north", Some(250), 1),
            task("t3", "south", Some(120), 1),
            task("t5", "south", None, 0),
        ];
        let d = daily(NaiveDate::default(), 0, 1, &tasks, &calls);
        assert_eq!(d.agents.len(), 2);
        assert_eq!(d.agents[0].agent, "1001");
        assert_eq!(d.agents[0].assigned, 4);
        assert_eq!(d.agents[0].completed, 2);
        assert_eq!(d.agents[0].attitude_avg, Some(3.0));
        assert_eq!(d.agents[0].fees_ok_no, 1);
        assert_eq!(d.agents[0].remarks, vec!["很差".to_string()]);
        // t4: task done without a survey still counts as completed.
        assert_eq!(d.agents[1].completed, 2);

        let w = weekly("2025-W01".into(), 0, 1, &calls);
        assert_eq!(w.lines.len(), 2);
        assert_eq!(w.lines[0].satisfaction, [1, 0, 0, 0, 1]);
        assert_eq!(w.lines[1].satisfaction, [0, 1, 0, 0, 0]);

        let m = monthly("2025-01".into(), 0, 1, &tasks, &calls);
        let north = &m.regions[0];
        assert_eq!((north.tasks, north.completed, north.timely), (2, 2, 1));
        assert_eq!(north.satisfied_share, Some(0.5));
        let south = &m.regions[1];
        assert_eq!(south.completion_rate, Some(0.5));
        assert_eq!(m.worst_regions, vec!["north".to_string()]);
        assert!(m.regions[0].worst && !m.regions[1].worst);
    }

    #[test]
    fn complaints_on_time_and_overdue() {
        let row = |id: &str, deadline: i64, closed: Option<i64>| ComplaintRow {
            id: id.into(),
            customer_id: "c".into(),
            department: "售后".into(),
            owner: None,
            state: "open".into(),
            deadline,
            created_at: 0,
            closed_at: closed,
            description: String::new(),
        };
        let r = complaints(
            0,
            1,
            100,
            vec![
                row("a", 50, Some(40)),
                row("b", 50, Some(60)),
                row("c", 150, None),
                row("d", 90, None),
            ],
        );
        assert_eq!((r.on_time, r.overdue), (2, 2));
        assert_eq!(r.overdue_open.len(), 1);
        assert_eq!(r.overdue_open[0].id, "d");
    }
}
