//! `[[trunks]]` and `[campaign]`: outbound callback calls (回访).
//!
//! A trunk is where outbound calls go (`sip:PHONE@address`), with the
//! carrier's limits; the campaign names its trunk, its mode and its survey
//! dialplan, and carries the scheduling rules of `campaign::rules` (calling
//! hours, holidays, retries) so the import and the dialer plan alike.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;

use super::{Config, ConfigError, Locator};
use crate::campaign::{
    CallbackRules, CallingHours, DialMode, PacerConfig, RegionRules, RetryPolicy,
};

/// An outbound SIP trunk (`[[trunks]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// HOST:PORT of the carrier's (or test peer's) SIP server.
    pub address: String,
    /// "udp" or "tcp".
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Calls up at once on this trunk.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// New calls per second (carriers flag bursts).
    #[serde(default = "default_cps")]
    pub calls_per_second: f64,
    /// The number shown to the customer.
    #[serde(default = "default_caller_id")]
    pub caller_id: String,
}

fn default_transport() -> String {
    "udp".into()
}
fn default_max_calls() -> usize {
    30
}
fn default_cps() -> f64 {
    5.0
}
fn default_caller_id() -> String {
    "4008008000".into()
}

/// The callback campaign (`[campaign]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    /// Whether the dialer runs (the rules apply to imports either way).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// "survey" (automated IVR), "progressive" or "preview" (agents).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Agent callbacks: progressive mode reserves only ready agents with
    /// this skill (any ready agent when empty).
    #[serde(default)]
    pub agent_skill: String,
    /// After-call work following an agent callback the customer answered.
    #[serde(default = "default_callback_wrap")]
    pub wrap_up_secs: u64,
    /// Name of a `[[trunks]]` entry.
    #[serde(default)]
    pub trunk: String,
    /// The survey dialplan, relative to the config file.
    #[serde(default = "default_dialplan")]
    pub dialplan: PathBuf,
    /// Local calling hours "HH:MM-HH:MM" ("00:00-24:00": all day).
    #[serde(default = "default_hours")]
    pub calling_hours: String,
    /// IANA zone of the calling hours.
    #[serde(default = "default_zone")]
    pub timezone: String,
    /// Weekdays without calls, e.g. ["sat", "sun"].
    #[serde(default)]
    pub rest_weekdays: Vec<String>,
    /// No calls on these dates (TOML dates).
    #[serde(default)]
    pub holidays: Vec<toml::value::Datetime>,
    /// Calling days after the window until a task is given up.
    #[serde(default = "default_grace_days")]
    pub grace_days: u32,
    /// Share of orders called back, 0..1.
    #[serde(default = "default_coverage")]
    pub coverage: f64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_busy")]
    pub retry_busy_secs: i64,
    #[serde(default = "default_no_answer")]
    pub retry_no_answer_secs: i64,
    #[serde(default = "default_no_answer")]
    pub retry_incomplete_secs: i64,
    #[serde(default = "default_error")]
    pub retry_error_secs: i64,
    /// CANCEL an unanswered call after this long (counts as no answer).
    #[serde(default = "default_ring")]
    pub ring_timeout_secs: u64,
    /// Hang up a survey that runs longer than this.
    #[serde(default = "default_max_call")]
    pub max_call_secs: u64,
    /// How often the dialer looks for due tasks and new imports.
    #[serde(default = "default_poll")]
    pub poll_ms: u64,
    /// Region name (as in work orders) → its own hours and zone
    /// (`[campaign.regions."乌鲁木齐"]`).
    #[serde(default)]
    pub regions: BTreeMap<String, RegionConfig>,
}

/// One `[campaign.regions.NAME]` table; a key left out inherits the
/// campaign's own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// "HH:MM-HH:MM", like `campaign.calling_hours`.
    pub calling_hours: Option<String>,
    /// IANA zone, like `campaign.timezone` (`time_zone` is accepted too).
    #[serde(alias = "time_zone")]
    pub timezone: Option<String>,
}

fn default_callback_wrap() -> u64 {
    30
}
fn default_true() -> bool {
    true
}
fn default_mode() -> String {
    "survey".into()
}
fn default_dialplan() -> PathBuf {
    PathBuf::from("dialplans/survey.toml")
}
fn default_hours() -> String {
    "09:00-18:00".into()
}
fn default_zone() -> String {
    "Asia/Shanghai".into()
}
fn default_grace_days() -> u32 {
    2
}
fn default_coverage() -> f64 {
    1.0
}
fn default_max_attempts() -> u32 {
    3
}
fn default_busy() -> i64 {
    30 * 60
}
fn default_no_answer() -> i64 {
    60 * 60
}
fn default_error() -> i64 {
    5 * 60
}
fn default_ring() -> u64 {
    30
}
fn default_max_call() -> u64 {
    300
}
fn default_poll() -> u64 {
    1000
}

/// "HH:MM-HH:MM"; "24:00" as the end means the whole day.
pub fn parse_hours(s: &str) -> Result<CallingHours, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected \"HH:MM-HH:MM\", got {s:?}"))?;
    let time = |t: &str| -> Result<NaiveTime, String> {
        let t = t.trim();
        if t == "24:00" {
            // Hours are [start, end): the last instant of the day stands for 24:00.
            return NaiveTime::from_hms_milli_opt(23, 59, 59, 999).ok_or_else(|| t.to_string());
        }
        NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| format!("bad time {t:?}"))
    };
    let (start, end) = (time(a)?, time(b)?);
    if start >= end {
        return Err(format!("start must be before end in {s:?}"));
    }
    Ok(CallingHours { start, end })
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    s.parse().ok()
}

fn toml_date(d: &toml::value::Datetime) -> Option<NaiveDate> {
    let date = d.date?;
    if d.time.is_some() {
        return None;
    }
    NaiveDate::from_ymd_opt(
        i32::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
}

impl CampaignConfig {
    /// The scheduling rules (seed defaults for what is not configured).
    pub fn rules(&self) -> CallbackRules {
        let mut r = CallbackRules::default();
        if let Ok(h) = parse_hours(&self.calling_hours) {
            r.hours = h;
        }
        if let Ok(z) = self.timezone.parse() {
            r.zone = z;
        }
        r.rest_weekdays = self
            .rest_weekdays
            .iter()
            .filter_map(|d| parse_weekday(d))
            .collect();
        r.holidays = self
            .holidays
            .iter()
            .filter_map(toml_date)
            .collect::<BTreeSet<_>>();
        // Left as None the rules fall back to the campaign's zone and hours
        // (`zone_for`, `hours_for`), so inheritance needs no copying here.
        r.regions = self
            .regions
            .iter()
            .map(|(name, g)| {
                let rules = RegionRules {
                    zone: g.timezone.as_deref().and_then(|z| z.parse().ok()),
                    hours: g.calling_hours.as_deref().and_then(|h| parse_hours(h).ok()),
                };
                (name.clone(), rules)
            })
            .collect();
        r.grace_days = self.grace_days;
        r.coverage = self.coverage;
        r.retry = RetryPolicy {
            max_attempts: self.max_attempts,
            busy_secs: self.retry_busy_secs,
            no_answer_base_secs: self.retry_no_answer_secs,
            incomplete_secs: self.retry_incomplete_secs,
            error_secs: self.retry_error_secs,
            ..RetryPolicy::default()
        };
        r
    }

    pub fn dial_mode(&self) -> DialMode {
        match self.mode.as_str() {
            "progressive" => DialMode::Progressive,
            "preview" => DialMode::Preview,
            _ => DialMode::Survey,
        }
    }
}

impl TrunkConfig {
    pub fn pacing(&self, mode: DialMode) -> PacerConfig {
        PacerConfig {
            mode,
            max_concurrent: self.max_calls,
            calls_per_second: self.calls_per_second,
            burst: (self.calls_per_second.ceil() as u32).max(1),
        }
    }

    /// The trunk's address (validated at load).
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        self.address.to_socket_addrs().ok()?.next()
    }
}

impl Config {
    /// Callback rules for imports and the dialer: `[campaign]`'s, else the seed's.
    pub fn callback_rules(&self) -> CallbackRules {
        self.campaign
            .as_ref()
            .map(CampaignConfig::rules)
            .unwrap_or_default()
    }

    /// The campaign's trunk, when a campaign is configured and enabled.
    pub fn campaign_trunk(&self) -> Option<(&CampaignConfig, &TrunkConfig)> {
        let c = self.campaign.as_ref().filter(|c| c.enabled)?;
        let t = self.trunks.iter().find(|t| t.name == c.trunk)?;
        Some((c, t))
    }
}

/// Semantic checks of `[[trunks]]` and `[campaign]`.
pub(super) fn check(
    cfg: &Config,
    locate: &Locator<'_>,
    err: &dyn Fn(Option<usize>, String) -> ConfigError,
    errors: &mut Vec<ConfigError>,
) {
    let mut names = BTreeSet::new();
    for (i, t) in cfg.trunks.iter().enumerate() {
        let at = |f: &str| locate.array_item(&["trunks"], i, f);
        if t.name.is_empty() || !names.insert(t.name.as_str()) {
            errors.push(err(
                at("name"),
                format!(
                    "trunks[{i}].name: expected a unique, non-empty name, got {:?}",
                    t.name
                ),
            ));
        }
        if t.socket_addr().is_none() {
            errors.push(err(
                at("address"),
                format!(
                    "trunks[{i}].address: expected HOST:PORT, got {:?}",
                    t.address
                ),
            ));
        }
        if !["udp", "tcp"].contains(&t.transport.to_ascii_lowercase().as_str()) {
            errors.push(err(
                at("transport"),
                format!(
                    "trunks[{i}].transport: expected \"udp\" or \"tcp\", got {:?}",
                    t.transport
                ),
            ));
        }
        if t.max_calls == 0 {
            errors.push(err(
                at("max_calls"),
                format!("trunks[{i}].max_calls: expected at least 1"),
            ));
        }
        if !(t.calls_per_second.is_finite() && t.calls_per_second > 0.0) {
            errors.push(err(
                at("calls_per_second"),
                format!(
                    "trunks[{i}].calls_per_second: expected a positive number, got {}",
                    t.calls_per_second
                ),
            ));
        }
        if t.caller_id.is_empty() || !t.caller_id.chars().all(|c| c.is_ascii_digit() || c == '+') {
            errors.push(err(
                at("caller_id"),
                format!(
                    "trunks[{i}].caller_id: expected digits, got {:?}",
                    t.caller_id
                ),
            ));
        }
    }
    let Some(c) = &cfg.campaign else {
        return;
    };
    let at = |k: &str| locate.key(&["campaign", k]).or(locate.key(&["campaign"]));
    if !["survey", "progressive", "preview"].contains(&c.mode.as_str()) {
        errors.push(err(
            at("mode"),
            format!(
                "campaign.mode: expected \"survey\", \"progressive\" or \"preview\", got {:?}",
                c.mode
            ),
        ));
    } else if c.mode != "survey" && c.enabled && cfg.agents.is_empty() {
        errors.push(err(
            at("mode"),
            format!(
                "campaign.mode: {:?} (agent callbacks) needs [[agents]] to call with",
                c.mode
            ),
        ));
    }
    if c.enabled && !cfg.trunks.iter().any(|t| t.name == c.trunk) {
        errors.push(err(
            at("trunk"),
            format!("campaign.trunk: {:?} is not a [[trunks]] name", c.trunk),
        ));
    }
    if c.enabled && !cfg.resolve(&c.dialplan).is_file() {
        errors.push(err(
            at("dialplan"),
            format!(
                "campaign.dialplan: {} does not exist",
                cfg.resolve(&c.dialplan).display()
            ),
        ));
    }
    if let Err(m) = parse_hours(&c.calling_hours) {
        errors.push(err(
            at("calling_hours"),
            format!("campaign.calling_hours: {m}"),
        ));
    }
    if c.timezone.parse::<chrono_tz::Tz>().is_err() {
        errors.push(err(
            at("timezone"),
            format!("campaign.timezone: unknown time zone {:?}", c.timezone),
        ));
    }
    for (name, g) in &c.regions {
        let region_at = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| locate.key(&["campaign", "regions", name, k]))
                .or(locate.key(&["campaign", "regions", name]))
                .or(locate.key(&["campaign"]))
        };
        if name.trim().is_empty() {
            errors.push(err(
                region_at(&[]),
                "campaign.regions: expected a region name, got \"\"".into(),
            ));
        }
        if let Some(Err(m)) = g.calling_hours.as_deref().map(parse_hours) {
            errors.push(err(
                region_at(&["calling_hours"]),
                format!("campaign.regions.{name:?}.calling_hours: {m}"),
            ));
        }
        if let Some(z) = g
            .timezone
            .as_deref()
            .filter(|z| z.parse::<chrono_tz::Tz>().is_err())
        {
            errors.push(err(
                region_at(&["timezone", "time_zone"]),
                format!("campaign.regions.{name:?}.timezone: unknown time zone {z:?}"),
            ));
        }
    }
    for d in &c.rest_weekdays {
        if parse_weekday(d).is_none() {
            errors.push(err(
                at("rest_weekdays"),
                format!("campaign.rest_weekdays: expected mon..sun, got {d:?}"),
            ));
        }
    }
    for d in &c.holidays {
        if toml_date(d).is_none() {
            errors.push(err(
                at("holidays"),
                format!("campaign.holidays: expected a date like 2026-10-01, got {d}"),
            ));
        }
    }
    if c.max_attempts == 0 {
        errors.push(err(
            at("max_attempts"),
            "campaign.max_attempts: expected at least 1".into(),
        ));
    }
    for (k, v) in [
        ("retry_busy_secs", c.retry_busy_secs),
        ("retry_no_answer_secs", c.retry_no_answer_secs),
        ("retry_incomplete_secs", c.retry_incomplete_secs),
        ("retry_error_secs", c.retry_error_secs),
    ] {
        if v < 1 {
            errors.push(err(
                at(k),
                format!("campaign.{k}: expected at least 1, got {v}"),
            ));
        }
    }
    if c.ring_timeout_secs == 0 || c.max_call_secs == 0 || c.poll_ms == 0 {
        let k = if c.ring_timeout_secs == 0 {
            "ring_timeout_secs"
        } else if c.max_call_secs == 0 {
            "max_call_secs"
        } else {
            "poll_ms"
        };
        errors.push(err(at(k), format!("campaign.{k}: expected at least 1")));
    }
    if let Err(e) = c.rules().validate() {
        errors.push(err(at("calling_hours"), format!("campaign: {e}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"[sip]
listen = "127.0.0.1:5060"
domain = "h"
[http]
listen = "127.0.0.1:8080"
[database]
url = "sqlite://h.db"
"#;

    fn parse(extra: &str) -> Result<Config, Vec<String>> {
        let text = format!("{BASE}{extra}");
        Config::parse(&text, "h.toml", Path::new(env!("CARGO_MANIFEST_DIR")))
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn trunk_and_campaign_parse_into_rules() {
        let cfg = parse(
            r#"
[[trunks]]
name = "carrier"
address = "127.0.0.1:5080"
max_calls = 4
calls_per_second = 2

[campaign]
trunk = "carrier"
calling_hours = "00:00-24:00"
rest_weekdays = ["sun"]
holidays = [2026-10-01]
max_attempts = 5
retry_busy_secs = 3
"#,
        )
        .unwrap();
        let (c, t) = cfg.campaign_trunk().unwrap();
        assert_eq!(t.caller_id, "4008008000");
        assert_eq!(t.pacing(c.dial_mode()).max_concurrent, 4);
        let r = cfg.callback_rules();
        assert_eq!(r.retry.max_attempts, 5);
        assert_eq!(r.retry.busy_secs, 3);
        assert_eq!(r.rest_weekdays, vec![Weekday::Sun]);
        assert!(r
            .holidays
            .contains(&NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()));
        assert_eq!(r.hours.start, NaiveTime::MIN);
        assert!(r
            .hours
            .contains(NaiveTime::from_hms_opt(23, 59, 59).unwrap()));
        // No [campaign]: the seed's rules.
        assert_eq!(
            parse("").unwrap().callback_rules(),
            CallbackRules::default()
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let errs = parse(
            r#"
[[trunks]]
name = "carrier"
address = "nowhere"
transport = "sctp"
calls_per_second = 0

[campaign]
mode = "predictive"
trunk = "other"
calling_hours = "18:00-09:00"
timezone = "Mars/Base"
max_attempts = 0
retry_busy_secs = 0
"#,
        )
        .unwrap_err();
        let want = [
            "h.toml:11: trunks[0].address",
            "h.toml:12: trunks[0].transport",
            "h.toml:13: trunks[0].calls_per_second",
            "h.toml:16: campaign.mode",
            "h.toml:17: campaign.trunk",
            "h.toml:18: campaign.calling_hours",
            "h.toml:19: campaign.timezone",
            "h.toml:20: campaign.max_attempts",
            "h.toml:21: campaign.retry_busy_secs",
        ];
        for w in want {
            assert!(
                errs.iter().any(|e| e.starts_with(w)),
                "{w} not in {errs:#?}"
            );
        }
        assert!(parse_hours("09:00-18:00").is_ok());
        assert!(parse_hours("9-18").is_err());
    }

    const REGIONS: &str = r#"
[campaign]
enabled = false
calling_hours = "09:00-18:00"
timezone = "Asia/Shanghai"

[campaign.regions."乌鲁木齐"]
calling_hours = "10:00-19:00"
time_zone = "Asia/Urumqi"

[campaign.regions."拉萨"]
calling_hours = "10:00-18:30"

[campaign.regions."喀什"]
timezone = "Asia/Urumqi"
"#;

    #[test]
    fn regions_override_hours_and_zone_and_inherit_the_rest() {
        let r = parse(REGIONS).unwrap().callback_rules();
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(r.zone_for("乌鲁木齐"), chrono_tz::Asia::Urumqi);
        assert_eq!(r.hours_for("乌鲁木齐").start, hm(10, 0));
        assert_eq!(r.hours_for("乌鲁木齐").end, hm(19, 0));
        // Hours only: the campaign's zone.
        assert_eq!(r.zone_for("拉萨"), chrono_tz::Asia::Shanghai);
        assert_eq!(r.hours_for("拉萨").end, hm(18, 30));
        // Zone only (the `timezone` spelling): the campaign's hours.
        assert_eq!(r.zone_for("喀什"), chrono_tz::Asia::Urumqi);
        assert_eq!(r.hours_for("喀什"), r.hours);
        // Not listed: the campaign's own.
        assert_eq!(r.zone_for("杭州"), chrono_tz::Asia::Shanghai);
        assert_eq!(r.hours_for("杭州").start, hm(9, 0));
        assert_eq!(r.regions.len(), 3);
        assert!(r.validate().is_ok());
    }

    #[test]
    fn region_errors_name_file_and_line() {
        let errs = parse(
            r#"
[campaign]
enabled = false

[campaign.regions."乌鲁木齐"]
calling_hours = "19:00-10:00"
time_zone = "Asia/Nowhere"

[campaign.regions."拉萨"]
calling_hours = "ten to six"
timezone = "Mars/Base"
"#,
        )
        .unwrap_err();
        let want = [
            "h.toml:13: campaign.regions.\"乌鲁木齐\".calling_hours: start must be before end",
            "h.toml:14: campaign.regions.\"乌鲁木齐\".timezone: unknown time zone \"Asia/Nowhere\"",
            "h.toml:17: campaign.regions.\"拉萨\".calling_hours",
            "h.toml:18: campaign.regions.\"拉萨\".timezone: unknown time zone \"Mars/Base\"",
        ];
        for w in want {
            assert!(
                errs.iter().any(|e| e.starts_with(w)),
                "{w} not in {errs:#?}"
            );
        }
        // An unknown key in a region table is a located parse error.
        let errs = parse("\n[campaign]\n[campaign.regions.\"拉萨\"]\nhours = \"10:00-18:00\"\n")
            .unwrap_err();
        assert!(errs[0].starts_with("h.toml:11:"), "{errs:#?}");
    }

    #[test]
    fn a_region_is_dialled_only_inside_its_own_hours() {
        use crate::campaign::{Dialer, Task, TaskId, TaskKind, TaskPlan};
        use chrono::{DateTime, Duration, TimeZone, Utc};
        // Shanghai wall clock; 乌鲁木齐 (UTC+6) is two hours behind it, so its
        // 10:00-19:00 is 12:00-21:00 here.
        let sh = |h, m| -> DateTime<Utc> {
            chrono_tz::Asia::Shanghai
                .with_ymd_and_hms(2026, 11, 24, h, m, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        let rules = parse(REGIONS).unwrap().callback_rules();
        let pacing = PacerConfig {
            mode: DialMode::Survey,
            max_concurrent: 10,
            calls_per_second: 100.0,
            burst: 100,
        };
        let mut d = Dialer::new(rules, pacing).unwrap();
        let task = |due: DateTime<Utc>, region: &str| {
            let plan = TaskPlan {
                window_start: due,
                window_end: due + Duration::hours(9),
                deadline: due + Duration::days(3),
                first_due: due,
            };
            Task::new(TaskId(0), TaskKind::Install, &plan, "WO", "C", "1", region)
        };
        d.load("hz", task(sh(9, 0), "杭州"), sh(8, 0)).unwrap();
        d.load("xj", task(sh(9, 0), "乌鲁木齐"), sh(8, 0)).unwrap();
        let keys = |d: &mut Dialer, h, m| -> Vec<String> {
            d.poll(sh(h, m)).dials.into_iter().map(|x| x.key).collect()
        };
        // 09:00 in Shanghai is 07:00 in 乌鲁木齐: only 杭州 is called.
        assert_eq!(keys(&mut d, 9, 0), ["hz"]);
        assert!(keys(&mut d, 11, 59).is_empty());
        assert_eq!(keys(&mut d, 12, 0), ["xj"]);
        // After the campaign's 18:00 but before 乌鲁木齐's 19:00 local.
        d.load("late", task(sh(20, 30), "乌鲁木齐"), sh(8, 0))
            .unwrap();
        d.load("hz-late", task(sh(20, 30), "杭州"), sh(8, 0))
            .unwrap();
        assert_eq!(keys(&mut d, 20, 30), ["late"]);
        // 21:00 here is 19:00 there: the region's day is over too.
        d.load("too-late", task(sh(21, 0), "乌鲁木齐"), sh(8, 0))
            .unwrap();
        assert!(keys(&mut d, 21, 0).is_empty());
    }
}
