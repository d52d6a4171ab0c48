//! Callback rules from the 回访方案 seed and the planning of callback windows.
//!
//! Decisions (the seed leaves these open):
//! - **Weekends are calling days by default.** The seed only says "business
//!   hours"; after-sales lines usually work weekends. A deployment that does
//!   not sets `rest_weekdays = ["Sat", "Sun"]` and lists 调休 make-up
//!   workdays in `makeup_workdays`.
//! - A date is a calling day unless it is a holiday, or a rest weekday that
//!   is not a make-up workday. Holidays win over everything.
//! - Windows are whole calling days in the region's zone: `[first day at
//!   hours.start, last day at hours.end)`. Days are counted from the local
//!   date of completion in the region's zone, not in UTC.
//! - Non-calling days inside a window shrink it; if *every* day of the window
//!   is a non-calling day, the window becomes the next calling day after it
//!   (one day, whatever the kind).
//! - The deadline is `grace_days` calling days after the window's end (at the
//!   end of calling hours). Callbacks made between window end and deadline
//!   still count as done, but not as timely; the seed wants 100 % of orders
//!   called, so a missed window should not drop the call.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::import::{OrderKind, WorkOrderRow};

/// How far ahead the calendar is searched for a calling day; a calendar with
/// none in this span is a configuration error, not a reason to loop.
const MAX_SEARCH_DAYS: i64 = 800;

/// Daily calling hours, local time, `[start, end)`; `start < end` (no
/// overnight spans: nobody is called at night).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Default for CallingHours {
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl CallingHours {
    /// Whether the local time of day is inside the hours.
    pub fn contains(&self, t: NaiveTime) -> bool {
        self.start <= t && t < self.end
    }
}

/// Days after the local completion date, inclusive: `{from: 1, to: 3}` is
/// "within days 1 to 3 after completion".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayRange {
    pub from: u32,
    pub to: u32,
}

/// Per-region overrides (a region in another zone, or with other hours).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionRules {
    #[serde(with = "opt_tz")]
    pub zone: Option<Tz>,
    pub hours: Option<CallingHours>,
}

/// Retry timing for the [`Scheduler`](super::Scheduler), in seconds (a test
/// campaign shortens them to seconds; the seed's defaults are minutes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts that reached the customer's side (all outcomes but `Error`).
    pub max_attempts: u32,
    /// Busy (486/600): try again after this many seconds.
    pub busy_secs: i64,
    /// No answer after the k-th counted attempt: retry after `base * 2^(k-1)`
    /// seconds (+1 h, +2 h, ...).
    pub no_answer_base_secs: i64,
    /// Answered but the survey was not completed (hung up, "call me later").
    pub incomplete_secs: i64,
    /// Trunk / server errors: retry soon; they do not count as attempts.
    pub error_secs: i64,
    /// Consecutive trunk errors after which the task fails rather than
    /// hammering a broken trunk until the deadline.
    pub max_errors: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            busy_secs: 30 * 60,
            no_answer_base_secs: 60 * 60,
            incomplete_secs: 60 * 60,
            error_secs: 5 * 60,
            max_errors: 10,
        }
    }
}

/// Campaign configuration; `Default` is the seed's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallbackRules {
    /// Zone of regions without an override.
    #[serde(with = "tz")]
    pub zone: Tz,
    /// Calling hours of regions without an override.
    pub hours: CallingHours,
    /// Region name → overrides.
    pub regions: BTreeMap<String, RegionRules>,
    /// Weekdays with no calls (empty by default: weekends are calling days).
    pub rest_weekdays: Vec<Weekday>,
    /// Public holidays: no calls.
    pub holidays: BTreeSet<NaiveDate>,
    /// 调休: rest weekdays that are worked (and so are calling days).
    pub makeup_workdays: BTreeSet<NaiveDate>,
    /// Share of orders called, 0.0..=1.0 (seed: 100 %, lowered in peak season).
    pub coverage: f64,
    /// Installation: the day after completion.
    pub install_days: DayRange,
    /// Repair: days 1 to 3 after completion.
    pub repair_days: DayRange,
    /// Second callback after a dissatisfied case is fixed: this many calling
    /// days starting with the next calling moment after the fix.
    pub second_days: u32,
    /// Calling days after the window's end until the task is given up.
    pub grace_days: u32,
    pub retry: RetryPolicy,
}

impl Default for CallbackRules {
    fn default() -> Self {
        Self {
            zone: chrono_tz::Asia::Shanghai,
            hours: CallingHours::default(),
            regions: BTreeMap::new(),
            rest_weekdays: Vec::new(),
            holidays: BTreeSet::new(),
            makeup_workdays: BTreeSet::new(),
            coverage: 1.0,
            install_days: DayRange { from: 1, to: 1 },
            repair_days: DayRange { from: 1, to: 3 },
            second_days: 2,
            grace_days: 2,
            retry: RetryPolicy::default(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RulesError {
    #[error("coverage must be between 0 and 1, got {0}")]
    Coverage(f64),
    #[error("calling hours{}: start {start} must be before end {end}", region.as_deref().map(|r| format!(" of region {r}")).unwrap_or_default())]
    Hours {
        region: Option<String>,
        start: NaiveTime,
        end: NaiveTime,
    },
    #[error("{what}: day range {from}..={to} is empty")]
    Days {
        what: &'static str,
        from: u32,
        to: u32,
    },
    #[error("no calling day in the next {MAX_SEARCH_DAYS} days: check holidays and rest_weekdays")]
    NoCallingDay,
    #[error("max_attempts must be at least 1")]
    MaxAttempts,
}

/// When and by when an order is called back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPlan {
    /// Start of calling hours on the window's first calling day.
    pub window_start: DateTime<Utc>,
    /// End of calling hours on the window's last calling day (exclusive).
    pub window_end: DateTime<Utc>,
    /// Given up after this (see `grace_days`).
    pub deadline: DateTime<Utc>,
    /// When the first attempt is due.
    pub first_due: DateTime<Utc>,
}

/// Why an order gets no callback task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("customer is on the do-not-call list")]
    DoNotCall,
    #[error("not in the coverage sample")]
    NotSampled,
    #[error("no calling day found after the order (calendar misconfigured)")]
    NoCallingDay,
}

impl CallbackRules {
    /// Checks the configuration; call once after loading it.
    pub fn validate(&self) -> Result<(), RulesError> {
        if !(0.0..=1.0).contains(&self.coverage) {
            return Err(RulesError::Coverage(self.coverage));
        }
        let bad_hours = |h: &CallingHours| h.start >= h.end;
        if bad_hours(&self.hours) {
            return Err(RulesError::Hours {
                region: None,
                start: self.hours.start,
                end: self.hours.end,
            });
        }
        for (name, r) in &self.regions {
            if let Some(h) = r.hours.filter(bad_hours) {
                return Err(RulesError::Hours {
                    region: Some(name.clone()),
                    start: h.start,
                    end: h.end,
                });
            }
        }
        for (what, d) in [
            ("install_days", self.install_days),
            ("repair_days", self.repair_days),
        ] {
            if d.from > d.to {
                return Err(RulesError::Days {
                    what,
                    from: d.from,
                    to: d.to,
                });
            }
        }
        if self.second_days == 0 {
            return Err(RulesError::Days {
                what: "second_days",
                from: 1,
                to: 0,
            });
        }
        if self.retry.max_attempts == 0 {
            return Err(RulesError::MaxAttempts);
        }
        let today = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or(NaiveDate::MIN);
        let has_calling_weekday = (0..7).any(|i| self.is_calling_day(today + Duration::days(i)));
        if !has_calling_weekday && self.makeup_workdays.is_empty() {
            return Err(RulesError::NoCallingDay);
        }
        Ok(())
    }

    /// Time zone of a region.
    pub fn zone_for(&self, region: &str) -> Tz {
        self.regions
            .get(region)
            .and_then(|r| r.zone)
            .unwrap_or(self.zone)
    }

    /// Calling hours of a region.
    pub fn hours_for(&self, region: &str) -> CallingHours {
        self.regions
            .get(region)
            .and_then(|r| r.hours)
            .unwrap_or(self.hours)
    }

    /// Whether calls may be made on this local date.
    pub fn is_calling_day(&self, date: NaiveDate) -> bool {
        if self.holidays.contains(&date) {
            return false;
        }
        !self.rest_weekdays.contains(&date.weekday()) || self.makeup_workdays.contains(&date)
    }

    /// Whether `t` is inside calling hours on a calling day in the region.
    pub fn is_calling_time(&self, region: &str, t: DateTime<Utc>) -> bool {
        self.is_calling_time_in(self.zone_for(region), self.hours_for(region), t)
    }

    /// Same as [`is_calling_time`](Self::is_calling_time) with the region
    /// already resolved (the scheduler caches zone and hours per region).
    pub fn is_calling_time_in(&self, tz: Tz, hours: CallingHours, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&tz);
        self.is_calling_day(local.date_naive()) && hours.contains(local.time())
    }

    /// The first moment at or after `t` that is calling time in the region.
    pub fn next_calling_time(&self, region: &str, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (tz, hours) = (self.zone_for(region), self.hours_for(region));
        let local = t.with_timezone(&tz);
        let date = local.date_naive();
        if self.is_calling_day(date) {
            if hours.contains(local.time()) {
                return Some(t);
            }
            if local.time() < hours.start {
                return Some(local_to_utc(tz, date, hours.start));
            }
        }
        let day = self.calling_day_after(date)?;
        Some(local_to_utc(tz, day, hours.start))
    }

    /// Start of calling hours on the first calling day after `t`'s local date.
    pub fn next_calling_day_start(&self, region: &str, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (tz, hours) = (self.zone_for(region), self.hours_for(region));
        let day = self.calling_day_after(t.with_timezone(&tz).date_naive())?;
        Some(local_to_utc(tz, day, hours.start))
    }

    /// The first calling day strictly after `date`.
    pub fn calling_day_after(&self, date: NaiveDate) -> Option<NaiveDate> {
        (1..=MAX_SEARCH_DAYS)
            .filter_map(|i| date.checked_add_signed(Duration::days(i)))
            .find(|d| self.is_calling_day(*d))
    }

    /// The `n`-th calling day after `date` (n = 0 gives `date` back).
    fn nth_calling_day_after(&self, mut date: NaiveDate, n: u32) -> Option<NaiveDate> {
        for _ in 0..n {
            date = self.calling_day_after(date)?;
        }
        Some(date)
    }

    /// Whether the order falls in the coverage sample. Deterministic in the
    /// order number so that a re-import picks the same orders.
    pub fn sampled(&self, order_no: &str) -> bool {
        if self.coverage >= 1.0 {
            return true;
        }
        // Top 53 bits as a uniform fraction in [0, 1).
        let u = (stable_hash(order_no) >> 11) as f64 / (1u64 << 53) as f64;
        u < self.coverage
    }
}

/// FNV-1a then a splitmix64 finaliser: fixed across builds and platforms
/// (std's hashers are not guaranteed to be), and well mixed even for order
/// numbers that differ only in their last digit.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A local wall-clock time to UTC. In a DST fold the earlier instant is
/// taken; in a DST gap the first valid time after it (China has no DST, but
/// regions abroad may).
pub fn local_to_utc(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = date.and_time(time);
    for step in 0..=16 {
        let probe = naive + Duration::minutes(15 * step);
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    // No zone has a gap longer than four hours; fall back to reading the
    // wall time as UTC rather than failing.
    naive.and_utc()
}

/// The callback plan for an order, or `None` when it gets no task
/// (do-not-call, outside the coverage sample). See [`plan_checked`].
pub fn plan(order: &WorkOrderRow, rules: &CallbackRules) -> Option<TaskPlan> {
    plan_checked(order, rules).ok()
}

/// Like [`plan`], saying why an order is skipped.
pub fn plan_checked(order: &WorkOrderRow, rules: &CallbackRules) -> Result<TaskPlan, SkipReason> {
    if order.do_not_call {
        return Err(SkipReason::DoNotCall);
    }
    if !rules.sampled(&order.order_no) {
        return Err(SkipReason::NotSampled);
    }
    let days = match order.kind {
        OrderKind::Install => rules.install_days,
        OrderKind::Repair => rules.repair_days,
    };
    let tz = rules.zone_for(&order.region);
    let hours = rules.hours_for(&order.region);
    let done = order.completed_at.with_timezone(&tz).date_naive();
    let mut first = None;
    let mut last = None;
    for k in days.from..=days.to {
        let Some(d) = done.checked_add_signed(Duration::days(i64::from(k))) else {
            break;
        };
        if rules.is_calling_day(d) {
            first = first.or(Some(d));
            last = Some(d);
        }
    }
    let (first, last) = match (first, last) {
        (Some(f), Some(l)) => (f, l),
        _ => {
            let end = done + Duration::days(i64::from(days.to));
            let d = rules
                .calling_day_after(end)
                .ok_or(SkipReason::NoCallingDay)?;
            (d, d)
        }
    };
    window(rules, tz, hours, first, last)
}

fn window(
    rules: &CallbackRules,
    tz: Tz,
    hours: CallingHours,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<TaskPlan, SkipReason> {
    let window_start = local_to_utc(tz, first, hours.start);
    let window_end = local_to_utc(tz, last, hours.end);
    let deadline_day = rules
        .nth_calling_day_after(last, rules.grace_days)
        .ok_or(SkipReason::NoCallingDay)?;
    Ok(TaskPlan {
        window_start,
        window_end,
        deadline: local_to_utc(tz, deadline_day, hours.end),
        first_due: window_start,
    })
}

/// Plan of the second callback (二次回访) once the responsible department
/// reports a dissatisfied case fixed at `fixed_at`: it starts at the next
/// calling moment and spans `second_days` calling days. Coverage sampling
/// does not apply: every fixed case is called again (闭环).
pub fn plan_second(
    region: &str,
    fixed_at: DateTime<Utc>,
    rules: &CallbackRules,
) -> Option<TaskPlan> {
    let tz = rules.zone_for(region);
    let hours = rules.hours_for(region);
    let start = rules.next_calling_time(region, fixed_at)?;
    let first = start.with_timezone(&tz).date_naive();
    let last = rules.nth_calling_day_after(first, rules.second_days.saturating_sub(1))?;
    let mut p = window(rules, tz, hours, first, last).ok()?;
    p.window_start = start;
    p.first_due = start;
    Some(p)
}

/// "Timely" (及时): the first attempt fell inside the window.
pub fn is_timely(plan: &TaskPlan, first_attempt_at: DateTime<Utc>) -> bool {
    plan.window_start <= first_attempt_at && first_attempt_at < plan.window_end
}

/// `Tz` has no serde support without chrono-tz's `serde` feature (not enabled
/// in the workspace), so zones go through their IANA names.
mod tz {
    use chrono_tz::Tz;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<Tz>()
            .map_err(|_| D::Error::custom(format!("unknown time zone {name:?}")))
    }
}

mod opt_tz {
    use chrono_tz::Tz;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Option<Tz>, s: S) -> Result<S::Ok, S::Error> {
        match tz {
            Some(tz) => s.serialize_some(tz.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tz>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|name| {
                name.parse::<Tz>()
                    .map_err(|_| D::Error::custom(format!("unknown time zone {name:?}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sh(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn order(kind: OrderKind, completed_at: DateTime<Utc>, region: &str) -> WorkOrderRow {
        WorkOrderRow {
            order_no: "WO-1".into(),
            kind,
            customer_id: None,
            customer_name: "张三".into(),
            phone: "13800000000".into(),
            address: String::new(),
            region: region.into(),
            product: String::new(),
            technician: String::new(),
            department: String::new(),
            completed_at,
            fees_cents: 0,
            do_not_call: false,
        }
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        CallbackRules::default().validate().unwrap();
    }

    #[test]
    fn install_friday_evening_is_called_saturday() {
        // 2024-03-08 is a Friday.
        let rules = CallbackRules::default();
        let p = plan(
            &order(OrderKind::Install, sh(2024, 3, 8, 17, 0), ""),
            &rules,
        )
        .unwrap();
        assert_eq!(p.window_start, sh(2024, 3, 9, 9, 0));
        assert_eq!(p.window_end, sh(2024, 3, 9, 18, 0));
        assert_eq!(p.first_due, p.window_start);
        // Two calling days of grace: Sunday and Monday.
        assert_eq!(p.deadline, sh(2024, 3, 11, 18, 0));
    }

    #[test]
    fn install_friday_with_weekends_off_is_called_monday() {
        let rules = CallbackRules {
            rest_weekdays: vec![Weekday::Sat, Weekday::Sun],
            ..Default::default()
        };
        let p = plan(
            &order(OrderKind::Install, sh(2024, 3, 8, 17, 0), ""),
            &rules,
        )
        .unwrap();
        assert_eq!(p.window_start, sh(2024, 3, 11, 9, 0));
        assert_eq!(p.window_end, sh(2024, 3, 11, 18, 0));
    }

    #[test]
    fn repair_window_uses_local_date_not_utc() {
        let rules = CallbackRules::default();
        // 23:30 Shanghai on Tue 5 March = 15:30 UTC the same day.
        let p = plan(
            &order(OrderKind::Repair, sh(2024, 3, 5, 23, 30), ""),
            &rules,
        )
        .unwrap();
        assert_eq!(p.window_start, sh(2024, 3, 6, 9, 0));
        assert_eq!(p.window_end, sh(2024, 3, 8, 18, 0));
        // 00:30 Shanghai on 6 March is still 5 March in UTC, but the local
        // date is the 6th, so days 1..3 are the 7th..9th.
        let t = sh(2024, 3, 6, 0, 30);
        assert_eq!(t.date_naive(), date(2024, 3, 5));
        let p = plan(&order(OrderKind::Repair, t, ""), &rules).unwrap();
        assert_eq!(p.window_start, sh(2024, 3, 7, 9, 0));
        assert_eq!(p.window_end, sh(2024, 3, 9, 18, 0));
    }

    #[test]
    fn region_zone_and_hours_override() {
        let mut rules = CallbackRules::default();
        rules.regions.insert(
            "新疆".into(),
            RegionRules {
                zone: Some(chrono_tz::Asia::Urumqi),
                hours: Some(CallingHours {
                    start: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                    end: NaiveTime::from_hms_opt(19, 30, 0).unwrap(),
                }),
            },
        );
        rules.validate().unwrap();
        // Completed 01:00 Shanghai on the 6th = 23:00 Urumqi (UTC+6) on the 5th.
        let p = plan(
            &order(OrderKind::Install, sh(2024, 3, 6, 1, 0), "新疆"),
            &rules,
        )
        .unwrap();
        let urumqi = |d, h, m| {
            chrono_tz::Asia::Urumqi
                .with_ymd_and_hms(2024, 3, d, h, m, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert_eq!(p.window_start, urumqi(6, 10, 0));
        assert_eq!(p.window_end, urumqi(6, 19, 30));
        assert!(rules.is_calling_time("新疆", urumqi(6, 19, 0)));
        assert!(!rules.is_calling_time("", urumqi(6, 19, 0))); // 21:00 Shanghai
    }

    #[test]
    fn holidays_shrink_or_move_the_window() {
        let mut rules = CallbackRules::default();
        // 国庆: 1..7 October 2024.
        for d in 1..=7 {
            rules.holidays.insert(date(2024, 10, d));
        }
        // Repair on 29 Sept: days 30 Sept, 1, 2 Oct; only the 30th is left.
        let p = plan(
            &order(OrderKind::Repair, sh(2024, 9, 29, 15, 0), ""),
            &rules,
        )
        .unwrap();
        assert_eq!(p.window_start, sh(2024, 9, 30, 9, 0));
        assert_eq!(p.window_end, sh(2024, 9, 30, 18, 0));
        // Grace skips the holidays: 8 and 9 October.
        assert_eq!(p.deadline, sh(2024, 10, 9, 18, 0));
        // Install on 1 Oct: the 2nd is a holiday, so the window moves to the
        // next calling day after it: the 8th.
        let p = plan(
            &order(OrderKind::Install, sh(2024, 10, 1, 10, 0), ""),
            &rules,
        )
        .unwrap();
        assert_eq!(p.window_start, sh(2024, 10, 8, 9, 0));
        assert_eq!(p.window_end, sh(2024, 10, 8, 18, 0));
        // Repair on 2 Oct: days 3..5 all holidays → the 8th.
        let p = plan(
            &order(OrderKind::Repair, sh(2024, 10, 2, 10, 0), ""),
            &rules,
        )
        .unwrap();
        assert_eq!(p.window_start, sh(2024, 10, 8, 9, 0));
    }

    #[test]
    fn makeup_workday_is_a_calling_day() {
        let mut rules = CallbackRules {
            rest_weekdays: vec![Weekday::Sat, Weekday::Sun],
            ..Default::default()
        };
        // Sunday 29 Sept 2024 was worked (调休).
        rules.makeup_workdays.insert(date(2024, 9, 29));
        let p = plan(
            &order(OrderKind::Install, sh(2024, 9, 28, 11, 0), ""),
            &rules,
        )
        .unwrap();
        assert_eq!(p.window_start, sh(2024, 9, 29, 9, 0));
        // Without it, Saturday's install waits for Monday.
        rules.makeup_workdays.clear();
        let p = plan(
            &order(OrderKind::Install, sh(2024, 9, 28, 11, 0), ""),
            &rules,
        )
        .unwrap();
        assert_eq!(p.window_start, sh(2024, 9, 30, 9, 0));
    }

    #[test]
    fn do_not_call_gets_no_task() {
        let mut o = order(OrderKind::Install, sh(2024, 3, 8, 17, 0), "");
        o.do_not_call = true;
        assert_eq!(
            plan_checked(&o, &CallbackRules::default()),
            Err(SkipReason::DoNotCall)
        );
    }

    #[test]
    fn coverage_sampling_is_deterministic_and_close_to_ratio() {
        let rules = CallbackRules {
            coverage: 0.3,
            ..Default::default()
        };
        let n = 100_000;
        let picked: Vec<bool> = (0..n)
            .map(|i| rules.sampled(&format!("WO{i:08}")))
            .collect();
        let again: Vec<bool> = (0..n)
            .map(|i| rules.sampled(&format!("WO{i:08}")))
            .collect();
        assert_eq!(picked, again);
        let share = picked.iter().filter(|p| **p).count() as f64 / n as f64;
        assert!((share - 0.3).abs() < 0.01, "share {share}");
        // A lower ratio picks a subset of a higher one.
        let lower = CallbackRules {
            coverage: 0.1,
            ..Default::default()
        };
        for i in 0..n {
            let o = format!("WO{i:08}");
            if lower.sampled(&o) {
                assert!(rules.sampled(&o));
            }
        }
        let none = CallbackRules {
            coverage: 0.0,
            ..Default::default()
        };
        assert!(!none.sampled("WO1"));
    }

    #[test]
    fn timeliness() {
        let rules = CallbackRules::default();
        let p = plan(
            &order(OrderKind::Install, sh(2024, 3, 8, 17, 0), ""),
            &rules,
        )
        .unwrap();
        assert!(is_timely(&p, sh(2024, 3, 9, 9, 0)));
        assert!(is_timely(&p, sh(2024, 3, 9, 17, 59)));
        assert!(!is_timely(&p, sh(2024, 3, 9, 18, 0)));
        assert!(!is_timely(&p, sh(2024, 3, 8, 17, 30)));
        assert!(!is_timely(&p, sh(2024, 3, 10, 10, 0)));
    }

    #[test]
    fn next_calling_time_and_second_plan() {
        let rules = CallbackRules::default();
        assert_eq!(
            rules.next_calling_time("", sh(2024, 3, 8, 7, 0)),
            Some(sh(2024, 3, 8, 9, 0))
        );
        assert_eq!(
            rules.next_calling_time("", sh(2024, 3, 8, 12, 0)),
            Some(sh(2024, 3, 8, 12, 0))
        );
        assert_eq!(
            rules.next_calling_time("", sh(2024, 3, 8, 18, 0)),
            Some(sh(2024, 3, 9, 9, 0))
        );
        let p = plan_second("", sh(2024, 3, 8, 20, 0), &rules).unwrap();
        assert_eq!(p.window_start, sh(2024, 3, 9, 9, 0));
        assert_eq!(p.window_end, sh(2024, 3, 10, 18, 0));
        let p = plan_second("", sh(2024, 3, 8, 11, 0), &rules).unwrap();
        assert_eq!(p.window_start, sh(2024, 3, 8, 11, 0));
        assert_eq!(p.window_end, sh(2024, 3, 9, 18, 0));
    }

    #[test]
    fn bad_config_is_rejected() {
        let r = CallbackRules {
            coverage: 1.5,
            ..Default::default()
        };
        assert!(matches!(r.validate(), Err(RulesError::Coverage(_))));
        let r = CallbackRules {
            hours: CallingHours {
                start: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            },
            ..Default::default()
        };
        assert!(matches!(r.validate(), Err(RulesError::Hours { .. })));
        let r = CallbackRules {
            rest_weekdays: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ],
            ..Default::default()
        };
        assert_eq!(r.validate(), Err(RulesError::NoCallingDay));
    }

    #[test]
    fn rules_deserialize_with_zone_names() {
        let json = r#"{"zone":"Asia/Shanghai","coverage":0.8,
            "regions":{"乌鲁木齐":{"zone":"Asia/Urumqi","hours":{"start":"10:00:00","end":"19:00:00"}}},
            "holidays":["2024-10-01"],"rest_weekdays":["Sun"]}"#;
        let r: CallbackRules = serde_json::from_str(json).unwrap();
        assert_eq!(r.zone_for("乌鲁木齐"), chrono_tz::Asia::Urumqi);
        assert_eq!(r.zone_for("杭州"), chrono_tz::Asia::Shanghai);
        assert_eq!(r.coverage, 0.8);
        assert!(!r.is_calling_day(date(2024, 10, 1)));
        assert!(!r.is_calling_day(date(2024, 10, 6)));
        assert_eq!(r.retry.max_attempts, 3);
        let bad = r#"{"zone":"Mars/Olympus"}"#;
        assert!(serde_json::from_str::<CallbackRules>(bad).is_err());
    }
}
