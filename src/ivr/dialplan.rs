//! Dialplan files: TOML, one file per service line, parsed and validated with
//! every problem reported at once (file, line, what was expected).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::calendar::{Calendar, TimeRange};
use super::error::{DialplanError, DialplanErrorKind as K};

/// Keys a caller can press, in the order of a phone keypad.
pub const DTMF_KEYS: &str = "0123456789*#";

const NODE_TYPES: &str =
    "play, menu, collect, hours, lookup_customer, set, branch, queue, callback, hangup";

/// A validated dialplan. Built only by [`Dialplan::load`] / [`Dialplan::parse`],
/// so every node reference in it exists and every prompt file was present.
#[derive(Debug, Clone)]
pub struct Dialplan {
    pub path: PathBuf,
    pub name: String,
    /// Request-URI users that enter this dialplan.
    pub numbers: Vec<String>,
    pub start: String,
    pub timezone: Tz,
    /// Absolute or relative to the working directory (already joined with the
    /// dialplan file's directory).
    pub prompts_dir: PathBuf,
    pub calendar: Calendar,
    pub nodes: BTreeMap<String, Node>,
    number_lines: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Line of the node's table in the file, for runtime diagnostics.
    pub line: usize,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Play(Play),
    Menu(Menu),
    Collect(Collect),
    Hours {
        open: String,
        closed: String,
    },
    LookupCustomer {
        next: String,
        /// Give up waiting for the shell after this long and continue as "not found".
        timeout_secs: u32,
    },
    Set {
        vars: BTreeMap<String, String>,
        next: String,
    },
    Branch {
        var: String,
        cases: BTreeMap<String, String>,
        default: String,
    },
    Queue(Queue),
    Callback(Callback),
    Hangup {
        prompt: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    pub prompt: String,
    pub barge_in: bool,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub prompt: String,
    pub choices: BTreeMap<char, String>,
    pub timeout_secs: u32,
    /// How many times the menu is offered again after a bad key or a timeout;
    /// one more failure goes to `fallback`.
    pub max_retries: u32,
    pub invalid_prompt: Option<String>,
    pub timeout_prompt: Option<String>,
    pub fallback: String,
    pub barge_in: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Collect {
    pub prompt: String,
    pub min_digits: u32,
    pub max_digits: u32,
    /// Ends input early; never stored in the variable. `None`: only
    /// `max_digits` or the inter-digit timeout end input.
    pub terminator: Option<char>,
    /// Wait for the first digit after the prompt.
    pub timeout_secs: u32,
    /// Wait between digits; on expiry the digits so far are accepted if long enough.
    pub inter_digit_timeout_secs: u32,
    pub var: String,
    pub next: String,
    /// A lone terminator means "I have none": continue to `next` with `var`
    /// unset, even though `min_digits` is not met.
    pub allow_empty: bool,
    pub max_retries: u32,
    pub invalid_prompt: Option<String>,
    pub timeout_prompt: Option<String>,
    /// After the last retry. `None`: continue to `next` with `var` unset, so
    /// the caller is never stranded (the agent asks instead).
    pub fallback: Option<String>,
    pub barge_in: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub queue: String,
    pub skill: Option<String>,
    /// Higher is served first.
    pub priority: i32,
    /// Played before the caller is handed to the queue (e.g. "please hold").
    pub prompt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountFrom {
    /// Due `within_minutes` after the call.
    Now,
    /// Due `within_minutes` after the line next opens (now, if open).
    Opening,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub within_minutes: u32,
    pub count_from: CountFrom,
    pub prompt: Option<String>,
    pub next: String,
}

impl NodeKind {
    /// Nodes this one can continue to.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            NodeKind::Play(p) => vec![&p.next],
            NodeKind::Menu(m) => {
                let mut t: Vec<&str> = m.choices.values().map(String::as_str).collect();
                t.push(&m.fallback);
                t
            }
            NodeKind::Collect(c) => {
                let mut t = vec![c.next.as_str()];
                t.extend(c.fallback.as_deref());
                t
            }
            NodeKind::Hours { open, closed } => vec![open, closed],
            NodeKind::LookupCustomer { next, .. } => vec![next],
            NodeKind::Set { next, .. } => vec![next],
            NodeKind::Branch { cases, default, .. } => {
                let mut t: Vec<&str> = cases.values().map(String::as_str).collect();
                t.push(default);
                t
            }
            NodeKind::Callback(c) => vec![&c.next],
            NodeKind::Queue(_) | NodeKind::Hangup { .. } => vec![],
        }
    }

    /// Does passing through this node wait for the caller to press keys?
    /// Loops are only safe through such nodes.
    pub fn waits_for_input(&self) -> bool {
        matches!(self, NodeKind::Menu(_) | NodeKind::Collect(_))
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Play(_) => "play",
            NodeKind::Menu(_) => "menu",
            NodeKind::Collect(_) => "collect",
            NodeKind::Hours { .. } => "hours",
            NodeKind::LookupCustomer { .. } => "lookup_customer",
            NodeKind::Set { .. } => "set",
            NodeKind::Branch { .. } => "branch",
            NodeKind::Queue(_) => "queue",
            NodeKind::Callback(_) => "callback",
            NodeKind::Hangup { .. } => "hangup",
        }
    }
}

impl Dialplan {
    /// Reads and validates one dialplan file.
    pub fn load(path: &Path) -> Result<Dialplan, Vec<DialplanError>> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| vec![DialplanError::new(path, 1, K::Io(e.to_string()))])?;
        Dialplan::parse(path, &src)
    }

    /// Validates `src` as if read from `path` (prompts are looked up relative to
    /// `path`'s directory).
    pub fn parse(path: &Path, src: &str) -> Result<Dialplan, Vec<DialplanError>> {
        let mut p = Parser::new(path, src);
        let plan = p.parse();
        match plan {
            Some(plan) if p.errors.is_empty() => Ok(plan),
            _ => {
                p.errors.sort_by_key(|e| e.line);
                Err(p.errors)
            }
        }
    }

    /// Where the media module finds a prompt named in this dialplan.
    pub fn prompt_path(&self, prompt: &str) -> PathBuf {
        self.prompts_dir.join(prompt)
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// Is the line open at `now`, in this dialplan's time zone?
    pub fn is_open(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.calendar.is_open(now, self.timezone)
    }
}

/// Several dialplans with their numbers; a number belongs to one plan only.
#[derive(Debug, Clone, Default)]
pub struct DialplanSet {
    plans: Vec<Arc<Dialplan>>,
    by_number: BTreeMap<String, usize>,
}

impl DialplanSet {
    /// Loads every file; reports the problems of all files together,
    /// including numbers claimed by two dialplans.
    pub fn load(paths: &[PathBuf]) -> Result<DialplanSet, Vec<DialplanError>> {
        let mut errors = Vec::new();
        let mut set = DialplanSet::default();
        for path in paths {
            match Dialplan::load(path) {
                Ok(plan) => {
                    let idx = set.plans.len();
                    for number in &plan.numbers {
                        if let Some(&other) = set.by_number.get(number) {
                            let other = &set.plans[other];
                            let other_line = other.number_lines.get(number).copied().unwrap_or(1);
                            errors.push(DialplanError::new(
                                path,
                                plan.number_lines.get(number).copied().unwrap_or(1),
                                K::DuplicateNumber {
                                    number: number.clone(),
                                    other: format!("{}:{}", other.path.display(), other_line),
                                },
                            ));
                        } else {
                            set.by_number.insert(number.clone(), idx);
                        }
                    }
                    set.plans.push(Arc::new(plan));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The dialplan entered by a call to `number` (the Request-URI user).
    pub fn for_number(&self, number: &str) -> Option<&Arc<Dialplan>> {
        self.by_number.get(number).map(|&i| &self.plans[i])
    }

    pub fn plans(&self) -> &[Arc<Dialplan>] {
        &self.plans
    }
}

/// Validates dialplan files for `hotline check-dialplan`; empty means all good.
pub fn check_files(paths: &[PathBuf]) -> Vec<DialplanError> {
    match DialplanSet::load(paths) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

// ---------------------------------------------------------------------------
// Raw shapes, as written in the file. Spanned where a line is worth reporting.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    numbers: Vec<Spanned<String>>,
    start: Spanned<String>,
    timezone: Option<Spanned<String>>,
    prompts_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    mon: Option<Vec<Spanned<String>>>,
    tue: Option<Vec<Spanned<String>>>,
    wed: Option<Vec<Spanned<String>>>,
    thu: Option<Vec<Spanned<String>>>,
    fri: Option<Vec<Spanned<String>>>,
    sat: Option<Vec<Spanned<String>>>,
    sun: Option<Vec<Spanned<String>>>,
    holidays: Option<Vec<Spanned<toml::value::Date>>>,
    workdays: Option<Vec<Spanned<toml::value::Date>>>,
    workday_hours: Option<Vec<Spanned<String>>>,
}

type Ref = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlay {
    prompt: Ref,
    next: Ref,
    barge_in: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMenu {
    prompt: Ref,
    choices: BTreeMap<Spanned<String>, Ref>,
    fallback: Ref,
    timeout_secs: Option<Spanned<u32>>,
    max_retries: Option<Spanned<u32>>,
    invalid_prompt: Option<Ref>,
    timeout_prompt: Option<Ref>,
    barge_in: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollect {
    prompt: Ref,
    max_digits: Spanned<u32>,
    var: Spanned<String>,
    next: Ref,
    min_digits: Option<Spanned<u32>>,
    terminator: Option<Spanned<String>>,
    timeout_secs: Option<Spanned<u32>>,
    inter_digit_timeout_secs: Option<Spanned<u32>>,
    max_retries: Option<Spanned<u32>>,
    invalid_prompt: Option<Ref>,
    timeout_prompt: Option<Ref>,
    fallback: Option<Ref>,
    barge_in: Option<bool>,
    allow_empty: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    open: Ref,
    closed: Ref,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLookup {
    next: Ref,
    timeout_secs: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    vars: BTreeMap<Spanned<String>, String>,
    next: Ref,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBranch {
    var: Spanned<String>,
    cases: BTreeMap<String, Ref>,
    default: Ref,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    queue: Spanned<String>,
    skill: Option<String>,
    priority: Option<i32>,
    prompt: Option<Ref>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCallback {
    within_minutes: Spanned<u32>,
    next: Ref,
    count_from: Option<Spanned<String>>,
    prompt: Option<Ref>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHangup {
    prompt: Option<Ref>,
}

// ---------------------------------------------------------------------------

/// A place in the file that names a node or a prompt, checked once all nodes are known.
struct Mention {
    node: String,
    field: String,
    name: String,
    line: usize,
}

struct Parser<'a> {
    path: &'a Path,
    src: &'a str,
    line_starts: Vec<usize>,
    errors: Vec<DialplanError>,
    node_refs: Vec<Mention>,
    prompts: Vec<Mention>,
    /// Declared nodes whose fields did not parse: they exist for reference
    /// checks, so one mistake is reported once, not again at every mention.
    broken: BTreeSet<String>,
}

impl<'a> Parser<'a> {
    fn new(path: &'a Path, src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Parser {
            path,
            src,
            line_starts,
            errors: Vec::new(),
            node_refs: Vec::new(),
            prompts: Vec::new(),
            broken: BTreeSet::new(),
        }
    }

    fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    fn err(&mut self, offset: usize, kind: K) {
        let line = self.line(offset);
        self.errors.push(DialplanError::new(self.path, line, kind));
    }

    fn bad(&mut self, offset: usize, context: &str, message: impl Into<String>) {
        self.err(
            offset,
            K::BadValue {
                context: context.to_string(),
                message: message.into(),
            },
        );
    }

    /// Deserializes one table on its own so that one bad node does not hide
    /// the problems of the others.
    fn de<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        context: &str,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let at = e.span().map_or(value.span().start, |s| s.start);
                self.err(
                    at,
                    K::Schema {
                        context: context.to_string(),
                        message: e.message().to_string(),
                    },
                );
                None
            }
        }
    }

    fn node_ref(&mut self, node: &str, field: &str, r: Ref) -> String {
        let line = self.line(r.span().start);
        let name = r.into_inner();
        self.node_refs.push(Mention {
            node: node.to_string(),
            field: field.to_string(),
            name: name.clone(),
            line,
        });
        name
    }

    fn prompt(&mut self, node: &str, field: &str, r: Ref) -> String {
        let line = self.line(r.span().start);
        let name = r.into_inner();
        self.prompts.push(Mention {
            node: node.to_string(),
            field: field.to_string(),
            name: name.clone(),
            line,
        });
        name
    }

    fn opt_prompt(&mut self, node: &str, field: &str, r: Option<Ref>) -> Option<String> {
        r.map(|r| self.prompt(node, field, r))
    }

    fn parse(&mut self) -> Option<Dialplan> {
        let root = match DeTable::parse(self.src) {
            Ok(root) => root,
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                let msg = e.message().trim().to_string();
                self.err(at, K::Syntax(msg));
                return None;
            }
        };
        let root = root.into_inner();
        for key in root.keys() {
            if !matches!(key.get_ref().as_ref(), "dialplan" | "calendar" | "nodes") {
                self.err(
                    key.span().start,
                    K::UnknownSection(key.get_ref().to_string()),
                );
            }
        }

        let header: Option<RawHeader> = match root.get("dialplan") {
            Some(v) => self.de(v, "[dialplan]"),
            None => {
                self.err(0, K::MissingSection("dialplan"));
                None
            }
        };
        let calendar = match root.get("calendar") {
            Some(v) => self.calendar(v),
            None => Some(Calendar::always_open()),
        };
        let nodes = match root.get("nodes") {
            Some(v) => self.nodes(v),
            None => {
                self.err(0, K::MissingSection("nodes"));
                BTreeMap::new()
            }
        };

        let header = header?;
        let base = self.path.parent().unwrap_or(Path::new(""));
        let prompts_dir = match &header.prompts_dir {
            Some(d) => base.join(d.get_ref()),
            None => base.join("prompts"),
        };
        let timezone = match &header.timezone {
            Some(tz) => match tz.get_ref().parse::<Tz>() {
                Ok(t) => t,
                Err(_) => {
                    self.err(tz.span().start, K::BadTimezone(tz.get_ref().clone()));
                    chrono_tz::Asia::Shanghai
                }
            },
            None => chrono_tz::Asia::Shanghai,
        };

        let mut number_lines = BTreeMap::new();
        let mut numbers = Vec::new();
        if header.numbers.is_empty() {
            self.bad(
                0,
                "[dialplan] numbers",
                "empty list; expected at least one number such as \"8000\"",
            );
        }
        for n in &header.numbers {
            let line = self.line(n.span().start);
            let s = n.get_ref();
            let ok = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+*#._-".contains(c));
            if !ok {
                self.bad(
                    n.span().start,
                    "[dialplan] numbers",
                    format!("bad number `{s}`; expected digits (and + * # . _ -) without spaces"),
                );
            } else if let Some(first) = number_lines.get(s) {
                self.err(
                    n.span().start,
                    K::DuplicateNumber {
                        number: s.clone(),
                        other: format!("line {first} of this dialplan"),
                    },
                );
            } else {
                number_lines.insert(s.clone(), line);
                numbers.push(s.clone());
            }
        }

        let start_line = self.line(header.start.span().start);
        let start = header.start.get_ref().clone();
        self.node_refs.push(Mention {
            node: String::new(),
            field: "[dialplan] start".to_string(),
            name: start.clone(),
            line: start_line,
        });

        self.check_refs(&nodes);
        self.check_prompts(&prompts_dir, header.prompts_dir.as_ref());
        self.check_reachable(&start, &nodes);
        self.check_loops(&nodes);

        let plan = Dialplan {
            path: self.path.to_path_buf(),
            name: header.name,
            numbers,
            start,
            timezone,
            prompts_dir,
            calendar: calendar?,
            nodes,
            number_lines,
        };
        Some(plan)
    }

    fn calendar(&mut self, value: &Spanned<DeValue<'_>>) -> Option<Calendar> {
        let raw: RawCalendar = self.de(value, "[calendar]")?;
        let mut ok = true;
        let mut ranges = |p: &mut Self, field: &str, list: Option<Vec<Spanned<String>>>| {
            let mut out = Vec::new();
            for r in list.unwrap_or_default() {
                match TimeRange::parse(r.get_ref()) {
                    Ok(t) => out.push(t),
                    Err(msg) => {
                        p.bad(r.span().start, &format!("[calendar] {field}"), msg);
                        ok = false;
                    }
                }
            }
            out
        };
        let weekly = [
            ranges(self, "mon", raw.mon),
            ranges(self, "tue", raw.tue),
            ranges(self, "wed", raw.wed),
            ranges(self, "thu", raw.thu),
            ranges(self, "fri", raw.fri),
            ranges(self, "sat", raw.sat),
            ranges(self, "sun", raw.sun),
        ];
        let workday_hours = match raw.workday_hours {
            Some(list) => ranges(self, "workday_hours", Some(list)),
            // Make-up days normally follow a Monday's timetable.
            None => weekly[0].clone(),
        };
        let mut dates =
            |p: &mut Self, field: &str, list: Option<Vec<Spanned<toml::value::Date>>>| {
                let mut out = BTreeMap::new();
                for d in list.unwrap_or_default() {
                    let v = d.get_ref();
                    match NaiveDate::from_ymd_opt(v.year.into(), v.month.into(), v.day.into()) {
                        Some(date) => {
                            out.insert(date, d.span().start);
                        }
                        None => {
                            p.bad(
                                d.span().start,
                                &format!("[calendar] {field}"),
                                format!("`{v}` is not a calendar date"),
                            );
                            ok = false;
                        }
                    }
                }
                out
            };
        let holidays = dates(self, "holidays", raw.holidays);
        let workdays = dates(self, "workdays", raw.workdays);
        for (date, at) in &workdays {
            if holidays.contains_key(date) {
                self.bad(
                    *at,
                    "[calendar] workdays",
                    format!("{date} is also listed in holidays; expected it in only one list"),
                );
                ok = false;
            }
        }
        ok.then(|| Calendar {
            weekly,
            holidays: holidays.into_keys().collect(),
            workdays: workdays.into_keys().collect(),
            workday_hours,
        })
    }

    fn nodes(&mut self, value: &Spanned<DeValue<'_>>) -> BTreeMap<String, Node> {
        let mut out = BTreeMap::new();
        let Some(table) = value.get_ref().as_table() else {
            self.err(
                value.span().start,
                K::Schema {
                    context: "nodes".into(),
                    message: "expected tables such as [nodes.greeting]".into(),
                },
            );
            return out;
        };
        for (key, val) in table.iter() {
            let id = key.get_ref().to_string();
            let at = key.span().start;
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.bad(
                    at,
                    &format!("node `{id}`"),
                    "bad node name; expected letters, digits, _ or -",
                );
            }
            if let Some(kind) = self.node(&id, val) {
                let line = self.line(at);
                out.insert(id, Node { line, kind });
            } else {
                self.broken.insert(id);
            }
        }
        out
    }

    fn node(&mut self, id: &str, val: &Spanned<DeValue<'_>>) -> Option<NodeKind> {
        let ctx = format!("node `{id}`");
        let Some(table) = val.get_ref().as_table() else {
            self.err(
                val.span().start,
                K::Schema {
                    context: ctx,
                    message: "expected a table such as [nodes.NAME] with a `type`".into(),
                },
            );
            return None;
        };
        let ty = match table.get("type") {
            Some(t) => match t.get_ref().as_str() {
                Some(s) => s.to_string(),
                None => {
                    self.err(
                        t.span().start,
                        K::MissingNodeType {
                            node: id.to_string(),
                        },
                    );
                    return None;
                }
            },
            None => {
                self.err(
                    val.span().start,
                    K::MissingNodeType {
                        node: id.to_string(),
                    },
                );
                return None;
            }
        };
        let mut fields = table.clone();
        fields.remove("type");
        let v = Spanned::new(val.span(), DeValue::Table(fields));
        let kind = match ty.as_str() {
            "play" => {
                let r: RawPlay = self.de(&v, &ctx)?;
                NodeKind::Play(Play {
                    prompt: self.prompt(id, "prompt", r.prompt),
                    barge_in: r.barge_in.unwrap_or(false),
                    next: self.node_ref(id, "next", r.next),
                })
            }
            "menu" => {
                let r: RawMenu = self.de(&v, &ctx)?;
                NodeKind::Menu(self.menu(id, &ctx, r))
            }
            "collect" => {
                let r: RawCollect = self.de(&v, &ctx)?;
                NodeKind::Collect(self.collect(id, &ctx, r))
            }
            "hours" => {
                let r: RawHours = self.de(&v, &ctx)?;
                NodeKind::Hours {
                    open: self.node_ref(id, "open", r.open),
                    closed: self.node_ref(id, "closed", r.closed),
                }
            }
            "lookup_customer" => {
                let r: RawLookup = self.de(&v, &ctx)?;
                NodeKind::LookupCustomer {
                    next: self.node_ref(id, "next", r.next),
                    timeout_secs: self.secs(&ctx, "timeout_secs", r.timeout_secs, 3),
                }
            }
            "set" => {
                let r: RawSet = self.de(&v, &ctx)?;
                let mut vars = BTreeMap::new();
                for (k, val) in r.vars {
                    self.var_name(&ctx, &k);
                    vars.insert(k.into_inner(), val);
                }
                NodeKind::Set {
                    vars,
                    next: self.node_ref(id, "next", r.next),
                }
            }
            "branch" => {
                let r: RawBranch = self.de(&v, &ctx)?;
                self.var_name(&ctx, &r.var);
                let mut cases = BTreeMap::new();
                for (value, target) in r.cases {
                    let field = format!("cases.{value}");
                    cases.insert(value, self.node_ref(id, &field, target));
                }
                NodeKind::Branch {
                    var: r.var.into_inner(),
                    cases,
                    default: self.node_ref(id, "default", r.default),
                }
            }
            "queue" => {
                let r: RawQueue = self.de(&v, &ctx)?;
                if r.queue.get_ref().trim().is_empty() {
                    self.bad(
                        r.queue.span().start,
                        &ctx,
                        "empty queue name; expected e.g. queue = \"repair\"",
                    );
                }
                NodeKind::Queue(Queue {
                    queue: r.queue.into_inner(),
                    skill: r.skill,
                    priority: r.priority.unwrap_or(0),
                    prompt: self.opt_prompt(id, "prompt", r.prompt),
                })
            }
            "callback" => {
                let r: RawCallback = self.de(&v, &ctx)?;
                let within = self.secs(&ctx, "within_minutes", Some(r.within_minutes), 60);
                let count_from = match r.count_from {
                    None => CountFrom::Now,
                    Some(c) => match c.get_ref().as_str() {
                        "now" => CountFrom::Now,
                        "opening" => CountFrom::Opening,
                        other => {
                            self.bad(
                                c.span().start,
                                &ctx,
                                format!(
                                    "count_from = \"{other}\"; expected \"now\" or \"opening\""
                                ),
                            );
                            CountFrom::Now
                        }
                    },
                };
                NodeKind::Callback(Callback {
                    within_minutes: within,
                    count_from,
                    prompt: self.opt_prompt(id, "prompt", r.prompt),
                    next: self.node_ref(id, "next", r.next),
                })
            }
            "hangup" => {
                let r: RawHangup = self.de(&v, &ctx)?;
                NodeKind::Hangup {
                    prompt: self.opt_prompt(id, "prompt", r.prompt),
                }
            }
            other => {
                let at = table
                    .get("type")
                    .map_or(val.span().start, |t| t.span().start);
                self.err(
                    at,
                    K::UnknownNodeType {
                        node: id.to_string(),
                        found: other.to_string(),
                        expected: NODE_TYPES,
                    },
                );
                return None;
            }
        };
        Some(kind)
    }

    /// A positive duration or count, with a default when absent (or, after
    /// reporting, when zero).
    fn secs(&mut self, ctx: &str, field: &str, v: Option<Spanned<u32>>, default: u32) -> u32 {
        match v {
            None => default,
            Some(s) if *s.get_ref() == 0 => {
                self.bad(
                    s.span().start,
                    ctx,
                    format!("{field} = 0; expected a whole number of at least 1"),
                );
                default
            }
            Some(s) => *s.get_ref(),
        }
    }

    fn var_name(&mut self, ctx: &str, name: &Spanned<String>) {
        let n = name.get_ref();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.bad(
                name.span().start,
                ctx,
                format!("bad variable name `{n}`; expected letters, digits and _"),
            );
        }
    }

    /// Problems inside a menu are reported; the node is still returned so
    /// references to it do not cascade into more errors.
    fn menu(&mut self, id: &str, ctx: &str, r: RawMenu) -> Menu {
        let mut choices = BTreeMap::new();
        if r.choices.is_empty() {
            self.bad(
                r.prompt.span().start,
                ctx,
                "no choices; expected e.g. choices = { \"1\" = \"repair\" }",
            );
        }
        for (key, target) in r.choices {
            let k = key.get_ref();
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if DTMF_KEYS.contains(c) => {
                    let target = self.node_ref(id, &format!("choices.{c}"), target);
                    choices.insert(c, target);
                }
                _ => self.err(
                    key.span().start,
                    K::BadDigitKey {
                        context: format!("{ctx} choices"),
                        key: k.clone(),
                    },
                ),
            }
        }
        Menu {
            timeout_secs: self.secs(ctx, "timeout_secs", r.timeout_secs, 5),
            prompt: self.prompt(id, "prompt", r.prompt),
            choices,
            max_retries: r.max_retries.map_or(2, |m| m.into_inner()),
            invalid_prompt: self.opt_prompt(id, "invalid_prompt", r.invalid_prompt),
            timeout_prompt: self.opt_prompt(id, "timeout_prompt", r.timeout_prompt),
            fallback: self.node_ref(id, "fallback", r.fallback),
            barge_in: r.barge_in.unwrap_or(true),
        }
    }

    fn collect(&mut self, id: &str, ctx: &str, r: RawCollect) -> Collect {
        let max = *r.max_digits.get_ref();
        let min = r.min_digits.as_ref().map_or(1, |m| *m.get_ref());
        if !(1..=64).contains(&max) {
            self.bad(
                r.max_digits.span().start,
                ctx,
                format!("max_digits = {max}; expected 1 to 64"),
            );
        }
        if min > max {
            let at = r
                .min_digits
                .as_ref()
                .map_or(r.max_digits.span().start, |m| m.span().start);
            self.bad(
                at,
                ctx,
                format!("min_digits = {min} is more than max_digits = {max}"),
            );
        }
        let terminator = match &r.terminator {
            None => Some('#'),
            Some(t) => match t.get_ref().as_str() {
                "" => None,
                "#" => Some('#'),
                "*" => Some('*'),
                other => {
                    self.err(
                        t.span().start,
                        K::BadDigitKey {
                            context: format!("{ctx} terminator (\"#\", \"*\" or \"\" for none)"),
                            key: other.to_string(),
                        },
                    );
                    None
                }
            },
        };
        self.var_name(ctx, &r.var);
        Collect {
            timeout_secs: self.secs(ctx, "timeout_secs", r.timeout_secs, 8),
            inter_digit_timeout_secs: self.secs(
                ctx,
                "inter_digit_timeout_secs",
                r.inter_digit_timeout_secs,
                4,
            ),
            prompt: self.prompt(id, "prompt", r.prompt),
            min_digits: min,
            max_digits: max,
            terminator,
            var: r.var.into_inner(),
            next: self.node_ref(id, "next", r.next),
            allow_empty: r.allow_empty.unwrap_or(false),
            max_retries: r.max_retries.map_or(2, |m| m.into_inner()),
            invalid_prompt: self.opt_prompt(id, "invalid_prompt", r.invalid_prompt),
            timeout_prompt: self.opt_prompt(id, "timeout_prompt", r.timeout_prompt),
            fallback: r.fallback.map(|f| self.node_ref(id, "fallback", f)),
            barge_in: r.barge_in.unwrap_or(true),
        }
    }

    fn check_refs(&mut self, nodes: &BTreeMap<String, Node>) {
        let missing: Vec<(usize, K)> = self
            .node_refs
            .iter()
            .filter(|m| !nodes.contains_key(&m.name) && !self.broken.contains(&m.name))
            .map(|m| {
                let from = if m.node.is_empty() {
                    m.field.clone()
                } else {
                    format!("node `{}` {}", m.node, m.field)
                };
                (
                    m.line,
                    K::UnknownNode {
                        from,
                        target: m.name.clone(),
                    },
                )
            })
            .collect();
        for (line, kind) in missing {
            self.errors.push(DialplanError::new(self.path, line, kind));
        }
    }

    fn check_prompts(&mut self, dir: &Path, declared: Option<&Spanned<String>>) {
        if !dir.is_dir() {
            let line = declared.map_or(1, |d| self.line(d.span().start));
            self.errors.push(DialplanError::new(
                self.path,
                line,
                K::MissingPromptsDir(dir.display().to_string()),
            ));
            return;
        }
        let mut found = Vec::new();
        for m in &self.prompts {
            let p = Path::new(&m.name);
            // Prompts stay inside prompts_dir: a dialplan must not name arbitrary files.
            let inside =
                !m.name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
            let kind = if !inside {
                K::BadValue {
                    context: format!("node `{}` {}", m.node, m.field),
                    message: format!("`{}`: expected a file name inside prompts_dir", m.name),
                }
            } else if dir.join(p).is_file() {
                continue;
            } else {
                K::MissingPrompt {
                    node: m.node.clone(),
                    prompt: m.name.clone(),
                    looked_at: dir.join(p).display().to_string(),
                }
            };
            found.push(DialplanError::new(self.path, m.line, kind));
        }
        self.errors.append(&mut found);
    }

    fn check_reachable(&mut self, start: &str, nodes: &BTreeMap<String, Node>) {
        if !nodes.contains_key(start) || !self.broken.is_empty() {
            // Missing start is reported as a reference; with broken nodes the
            // graph is incomplete and "unreachable" would be noise.
            return;
        }
        let mut seen = BTreeSet::new();
        let mut todo = VecDeque::from([start]);
        while let Some(id) = todo.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(n) = nodes.get(id) {
                todo.extend(n.kind.targets());
            }
        }
        for (id, node) in nodes {
            if !seen.contains(id.as_str()) {
                self.errors.push(DialplanError::new(
                    self.path,
                    node.line,
                    K::Unreachable(id.clone()),
                ));
            }
        }
    }

    /// Finds cycles among nodes that pass control on without waiting for a key:
    /// such a call would spin (or replay prompts) forever.
    fn check_loops(&mut self, nodes: &BTreeMap<String, Node>) {
        fn visit<'n>(
            id: &'n str,
            nodes: &'n BTreeMap<String, Node>,
            stack: &mut Vec<&'n str>,
            done: &mut BTreeSet<&'n str>,
            cycles: &mut BTreeMap<BTreeSet<&'n str>, Vec<&'n str>>,
        ) {
            if let Some(pos) = stack.iter().position(|s| *s == id) {
                let cycle = stack[pos..].to_vec();
                cycles
                    .entry(cycle.iter().copied().collect())
                    .or_insert(cycle);
                return;
            }
            if done.contains(id) {
                return;
            }
            let Some(node) = nodes.get(id) else { return };
            if node.kind.waits_for_input() {
                return;
            }
            stack.push(id);
            for t in node.kind.targets() {
                visit(t, nodes, stack, done, cycles);
            }
            stack.pop();
            done.insert(id);
        }
        let mut cycles = BTreeMap::new();
        let mut done = BTreeSet::new();
        for id in nodes.keys() {
            visit(id, nodes, &mut Vec::new(), &mut done, &mut cycles);
        }
        for cycle in cycles.into_values() {
            let line = cycle
                .iter()
                .filter_map(|id| nodes.get(*id).map(|n| n.line))
                .min()
                .unwrap_or(1);
            let mut names: Vec<String> = cycle.iter().map(|s| format!("`{s}`")).collect();
            names.push(names[0].clone());
            self.errors.push(DialplanError::new(
                self.path,
                line,
                K::InputlessLoop(names.join(" -> ")),
            ));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// Writes `toml` as `plan.toml` with the given prompt files beside it.
    pub(crate) fn write_plan(dir: &Path, toml: &str, prompts: &[&str]) -> PathBuf {
        let pd = dir.join("prompts");
        fs::create_dir_all(&pd).expect("create prompts dir");
        for p in prompts {
            fs::write(pd.join(p), b"RIFF").expect("write prompt");
        }
        let path = dir.join("plan.toml");
        fs::write(&path, toml).expect("write plan");
        path
    }

    const GOOD: &str = r##"
[dialplan]
name = "test"
numbers = ["8000", "4008008000"]
start = "hours"

[calendar]
mon = ["08:00-20:00"]
holidays = [2026-10-01]
workdays = [2026-10-10]

[nodes.hours]
type = "hours"
open = "menu"
closed = "bye"

[nodes.menu]
type = "menu"
prompt = "menu.wav"
choices = { "1" = "order", "#" = "bye" }
fallback = "bye"

[nodes.order]
type = "collect"
prompt = "order.wav"
max_digits = 8
var = "work_order"
next = "q"

[nodes.q]
type = "queue"
queue = "repair"
skill = "repair"
priority = 5

[nodes.bye]
type = "hangup"
prompt = "bye.wav"
"##;

    #[test]
    fn loads_good_plan_with_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_plan(dir.path(), GOOD, &["menu.wav", "order.wav", "bye.wav"]);
        let plan = Dialplan::load(&path).expect("valid plan");
        assert_eq!(plan.name, "test");
        assert_eq!(plan.numbers, vec!["8000", "4008008000"]);
        assert_eq!(plan.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(plan.prompts_dir, dir.path().join("prompts"));
        assert_eq!(plan.nodes["hours"].line, 12);
        let NodeKind::Menu(m) = &plan.nodes["menu"].kind else {
            panic!("menu expected")
        };
        assert_eq!(m.choices[&'1'], "order");
        assert_eq!(m.choices[&'#'], "bye");
        assert_eq!((m.timeout_secs, m.max_retries, m.barge_in), (5, 2, true));
        let NodeKind::Collect(c) = &plan.nodes["order"].kind else {
            panic!("collect expected")
        };
        assert_eq!(
            (c.min_digits, c.max_digits, c.terminator),
            (1, 8, Some('#'))
        );
        assert_eq!((c.timeout_secs, c.inter_digit_timeout_secs), (8, 4));
        let NodeKind::Queue(q) = &plan.nodes["q"].kind else {
            panic!("queue expected")
        };
        assert_eq!(
            (q.queue.as_str(), q.skill.as_deref(), q.priority),
            ("repair", Some("repair"), 5)
        );
        assert!(plan
            .calendar
            .holidays
            .contains(&NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()));
        assert_eq!(plan.calendar.workday_hours, plan.calendar.weekly[0]);
    }

    fn errors_of(toml: &str, prompts: &[&str]) -> Vec<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_plan(dir.path(), toml, prompts);
        let errs = Dialplan::load(&path).expect_err("plan must be rejected");
        errs.iter()
            .map(|e| {
                let s = e.to_string();
                // Strip the temp dir so assertions are stable.
                s.strip_prefix(&format!("{}:", path.display()))
                    .unwrap_or(&s)
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn collects_all_errors_with_lines() {
        let src = r##"[dialplan]
name = "bad"
numbers = ["8000", "8000"]
start = "greeting"
timezone = "Asia/Shang_hai"

[nodes.greeting]
type = "play"
prompt = "hello.wav"
next = "menu"

[nodes.menu]
type = "menu"
prompt = "menu.wav"
choices = { "1" = "repair", "12" = "greeting", "x" = "greeting" }
fallback = "greeting"

[nodes.orphan]
type = "dance"

[nodes.lonely]
type = "hangup"

[nodes.noprompt]
type = "play"
next = "greeting"
"##;
        let errs = errors_of(src, &["menu.wav"]);
        let expect = [
            "3: number `8000` is already used by line 3 of this dialplan; expected each number in one dialplan only",
            "5: unknown time zone `Asia/Shang_hai`; expected an IANA name such as \"Asia/Shanghai\"",
            "9: node `greeting`: prompt file `hello.wav` not found",
            "15: node `menu` choices: bad key `12`; expected a single phone key 0-9, * or #",
            "15: node `menu` choices: bad key `x`",
            "15: node `menu` choices.1: refers to node `repair`, which does not exist",
            "19: node `orphan`: unknown type `dance`; expected one of: play, menu,",
            "24: node `noprompt`: missing field `prompt`",
        ];
        for e in expect {
            assert!(
                errs.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in {errs:#?}"
            );
        }
        // Broken nodes (orphan, noprompt) make the graph incomplete, so the
        // unreachable `lonely` is not reported until they are fixed.
        assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    }

    #[test]
    fn wrong_types_and_unknown_fields() {
        let src = r##"[dialplan]
name = "t"
numbers = ["1"]
start = "c"
colour = "blue"

[nodes.c]
type = "collect"
prompt = "p.wav"
max_digits = "six"
var = "x"
next = "c"

[nodes.m]
type = "menu"
prompt = "p.wav"
choices = { "1" = "c" }
fallback = "c"
timout_secs = 5
"##;
        let errs = errors_of(src, &["p.wav"]);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("5: [dialplan]: unknown field `colour`")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("10: node `c`: invalid type: string \"six\", expected u32")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("19: node `m`: unknown field `timout_secs`")),
            "{errs:#?}"
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let errs = errors_of("[dialplan]\nname = \"x\"\nnumbers = [\"1\"\n", &[]);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("3: TOML syntax error")
                || errs[0].starts_with("4: TOML syntax error"),
            "{errs:?}"
        );
    }

    #[test]
    fn inputless_loop_detected_but_menu_loop_allowed() {
        let src = r##"[dialplan]
name = "loop"
numbers = ["1"]
start = "a"

[nodes.a]
type = "play"
prompt = "p.wav"
next = "b"

[nodes.b]
type = "set"
vars = { reason = "x" }
next = "a"

[nodes.m]
type = "menu"
prompt = "p.wav"
choices = { "1" = "m2" }
fallback = "m"

[nodes.m2]
type = "play"
prompt = "p.wav"
next = "m"
"##;
        let errs = errors_of(src, &["p.wav"]);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("6: nodes `a` -> `b` -> `a` form a loop")),
            "{errs:#?}"
        );
        // m and m2 loop only through a menu: not a loop error, but unreachable.
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(errs
            .iter()
            .all(|e| !e.contains("`m` ->") && !e.contains("`m2` ->")));
    }

    #[test]
    fn collect_and_calendar_values_checked() {
        let src = r##"[dialplan]
name = "c"
numbers = ["1 2"]
start = "c"
prompts_dir = "prompts"

[calendar]
mon = ["8:00-17"]
holidays = [2026-10-01]
workdays = [2026-10-01]

[nodes.c]
type = "collect"
prompt = "../secret.wav"
min_digits = 9
max_digits = 4
terminator = "0"
timeout_secs = 0
var = "work order"
next = "h"

[nodes.h]
type = "callback"
within_minutes = 60
count_from = "tomorrow"
next = "c"
"##;
        let errs = errors_of(src, &[]);
        let expect = [
            "3: [dialplan] numbers: bad number `1 2`",
            "8: [calendar] mon: bad end time `17`",
            "10: [calendar] workdays: 2026-10-01 is also listed in holidays",
            "14: node `c` prompt: `../secret.wav`: expected a file name inside prompts_dir",
            "15: node `c`: min_digits = 9 is more than max_digits = 4",
            "17: node `c` terminator",
            "18: node `c`: timeout_secs = 0",
            "19: node `c`: bad variable name `work order`",
            "25: node `h`: count_from = \"tomorrow\"; expected \"now\" or \"opening\"",
        ];
        for e in expect {
            assert!(
                errs.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in {errs:#?}"
            );
        }
    }

    #[test]
    fn set_detects_duplicate_numbers_across_files() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let pa = write_plan(a.path(), GOOD, &["menu.wav", "order.wav", "bye.wav"]);
        let other = GOOD.replace("[\"8000\", \"4008008000\"]", "[\"9000\",\n  \"8000\"]");
        let pb = write_plan(b.path(), &other, &["menu.wav", "order.wav", "bye.wav"]);
        let errs = check_files(&[pa.clone(), pb.clone()]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            format!(
                "{}:5: number `8000` is already used by {}:4; expected each number in one dialplan only",
                pb.display(),
                pa.display()
            )
        );
        let set = DialplanSet::load(&[pa]).expect("one file is fine");
        assert_eq!(
            set.for_number("4008008000").map(|p| p.name.as_str()),
            Some("test")
        );
        assert!(set.for_number("9000").is_none());
    }

    #[test]
    fn missing_file_reported() {
        let errs = check_files(&[PathBuf::from("/nonexistent/plan.toml")]);
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .to_string()
            .starts_with("/nonexistent/plan.toml:1: cannot read file"));
    }
}
