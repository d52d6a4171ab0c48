//! Server configuration: one TOML file, parsed into typed structs and validated
//! with file and line for every error.
//!
//! The shipped `hotline.toml` is compiled in and is the default, so "no config
//! file" and "the example config" can never drift apart.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod campaign;
pub use campaign::{parse_hours, CampaignConfig, RegionConfig, TrunkConfig};

/// The example configuration shipped at the repository root.
pub const EXAMPLE_CONFIG: &str = include_str!("../hotline.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub dialplans: DialplansConfig,
    #[serde(default)]
    pub recordings: RecordingsConfig,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    #[serde(default)]
    pub acd: AcdConfig,
    #[serde(default)]
    pub queues: Vec<crate::acd::QueueConfig>,
    /// HTTP API users who are not agents: supervisors and administrators.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub api: ApiConfig,
    /// Outbound SIP trunks (callback campaigns).
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// The callback campaign: rules, trunk, survey dialplan.
    #[serde(default)]
    pub campaign: Option<CampaignConfig>,
    /// Directory that relative paths in this config are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    pub listen: SocketAddr,
    pub domain: String,
    #[serde(default = "default_min_expires")]
    pub min_expires: u32,
    #[serde(default = "default_max_expires")]
    pub max_expires: u32,
    #[serde(default = "default_nonce_ttl")]
    pub nonce_ttl_secs: u64,
    #[serde(default = "default_auth_max_failures")]
    pub auth_max_failures: u32,
    #[serde(default = "default_auth_window")]
    pub auth_window_secs: u64,
    #[serde(default = "default_auth_block")]
    pub auth_block_secs: u64,
    /// Ring (180) this long before answering an inbound call; 0 answers at once.
    #[serde(default)]
    pub answer_delay_ms: u64,
    /// Digest algorithms offered, most preferred first ("MD5", "SHA-256").
    #[serde(default = "default_digest_algorithms")]
    pub digest_algorithms: Vec<String>,
    /// A browser's `/sip` WebSocket is pinged this often; one silent for
    /// three periods is closed, and its registration and calls end with it
    /// (a laptop gone to sleep, a dropped network). 0: no pings.
    #[serde(default = "default_ws_keepalive")]
    pub ws_keepalive_secs: u64,
}

fn default_ws_keepalive() -> u64 {
    15
}

/// MD5 alone by default: baresip 1.0 gives up when a 401 carries any SHA-256
/// challenge (even beside an MD5 one) and SIPp 3.6 answers only the first
/// challenge with MD5. pjsua2 2.15 handles SHA-256: offer it where all phones do.
fn default_digest_algorithms() -> Vec<String> {
    vec!["MD5".to_string()]
}

fn default_min_expires() -> u32 {
    60
}
fn default_max_expires() -> u32 {
    3600
}
fn default_nonce_ttl() -> u64 {
    300
}
fn default_auth_max_failures() -> u32 {
    5
}
fn default_auth_window() -> u64 {
    60
}
fn default_auth_block() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: HTTPS on `listen` (and `wss:`
    /// for browser phones; browsers give a page on another host the
    /// microphone only over HTTPS). Both or neither.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
}

/// This process among the nodes sharing one database (`[server]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The node's name in leases (who runs the callback dialer); default
    /// `HOSTNAME-PID`, see [`Config::node_name`].
    pub node: Option<String>,
}

/// The host's name from the kernel, else `$HOSTNAME`, else "hotline".
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "hotline".to_string())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    #[serde(default = "default_rtp_ports")]
    pub rtp_ports: String,
    /// Address RTP binds to and puts in SDP; default: the SIP listen address.
    #[serde(default)]
    pub address: Option<std::net::IpAddr>,
    /// Hang up when no RTP arrives for this long (0 = never).
    #[serde(default = "default_media_timeout")]
    pub timeout_secs: u64,
    /// Media worker threads; default: one per CPU core.
    #[serde(default)]
    pub workers: Option<usize>,
    /// UDP ports of browser softphones' WebRTC legs, one per agent in a
    /// call (ICE, DTLS and SRTP share it); "0" lets the OS pick (tests).
    #[serde(default = "default_webrtc_ports")]
    pub webrtc_ports: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_ports: default_rtp_ports(),
            address: None,
            timeout_secs: default_media_timeout(),
            workers: None,
            webrtc_ports: default_webrtc_ports(),
        }
    }
}

fn default_webrtc_ports() -> String {
    "30002-30999".to_string()
}

fn default_media_timeout() -> u64 {
    30
}

fn default_rtp_ports() -> String {
    "20000-30000".to_string()
}

impl MediaConfig {
    /// The configured RTP port range as (first, last), inclusive.
    pub fn port_range(&self) -> Result<(u16, u16), String> {
        parse_port_range(&self.rtp_ports)
    }

    /// Where browser legs bind: a range, or any free port for "0".
    pub fn webrtc_port_policy(&self) -> Result<crate::browser::PortPolicy, String> {
        if self.webrtc_ports.trim() == "0" {
            return Ok(crate::browser::PortPolicy::Ephemeral);
        }
        let (first, last) = parse_port_range(&self.webrtc_ports)?;
        Ok(crate::browser::PortPolicy::Range { first, last })
    }
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected \"FIRST-LAST\", got {s:?}"))?;
    let first: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a port number"))?;
    let last: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a port number"))?;
    if first == 0 || first > last {
        return Err(format!("expected 1 <= FIRST <= LAST, got {first}-{last}"));
    }
    if last - first < 3 {
        return Err("the range must hold at least 4 ports".to_string());
    }
    Ok((first, last))
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DialplansConfig {
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    #[serde(default = "default_recordings_dir")]
    pub dir: PathBuf,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self {
            dir: default_recordings_dir(),
        }
    }
}

fn default_recordings_dir() -> PathBuf {
    PathBuf::from("recordings")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcdConfig {
    /// An agent whose phone registers becomes ready unless they chose a state.
    #[serde(default = "default_true")]
    pub ready_on_register: bool,
    /// Missed offers in a row before an agent is set not ready.
    #[serde(default = "default_max_missed")]
    pub max_missed_offers: u32,
    /// Record bridged calls.
    #[serde(default = "default_true")]
    pub record: bool,
    /// Music a caller hears while queued or held (relative to the config
    /// file). Unset: the shipped `dialplans/prompts/hold_music.wav` if present.
    #[serde(default)]
    pub hold_music: Option<PathBuf>,
    /// First-contact ownership (首问负责制): a caller whose last answered
    /// call is at most this many days old goes first to that agent (as does
    /// one with an open case or callback task). 0: cases and tasks only.
    #[serde(default = "default_ownership_days")]
    pub ownership_days: u32,
    /// Outside numbers a call may be transferred to: exact digits, or a
    /// prefix ending in `*` (`"400*"`). Empty: agents and queues only.
    #[serde(default)]
    pub transfer_numbers: Vec<String>,
    /// Where transfers to outside numbers are sent (`host:port` of the
    /// gateway or trunk), as `sip:NUMBER@host:port`.
    #[serde(default)]
    pub transfer_gateway: Option<SocketAddr>,
}

impl Default for AcdConfig {
    fn default() -> Self {
        Self {
            ready_on_register: true,
            max_missed_offers: default_max_missed(),
            record: true,
            hold_music: None,
            transfer_numbers: Vec::new(),
            transfer_gateway: None,
            ownership_days: default_ownership_days(),
        }
    }
}

fn default_ownership_days() -> u32 {
    7
}

/// Whether `number` matches one of the allow-list `patterns` (exact, or a
/// prefix ending in `*`).
pub fn number_allowed(patterns: &[String], number: &str) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s.char_indices()
                .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+'))
    };
    plain(number)
        && patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => number.starts_with(prefix),
            None => p == number,
        })
}

fn default_true() -> bool {
    true
}
fn default_max_missed() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: String,
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub skills: Vec<String>,
}

/// A supervisor or administrator of the HTTP API (`[[users]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub id: String,
    pub name: String,
    pub password: String,
    /// `supervisor` or `admin`.
    pub role: String,
}

/// The HTTP API (`[api]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer tokens expire this long after login.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
    /// Largest request body accepted (work-order batches).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token_ttl_secs: default_token_ttl(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_token_ttl() -> u64 {
    12 * 3600
}

fn default_max_body_bytes() -> usize {
    8 * 1024 * 1024
}

/// Roles a `[[users]]` entry may have (agents come from `[[agents]]`).
pub const USER_ROLES: &[&str] = &["supervisor", "admin"];

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every error found in one file, for `check-config` and start-up.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Environment variables that override configuration keys, documented in the README.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("HOTLINE_SIP_LISTEN", "sip.listen"),
    ("HOTLINE_SIP_DOMAIN", "sip.domain"),
    ("HOTLINE_HTTP_LISTEN", "http.listen"),
    ("HOTLINE_DATABASE_URL", "database.url"),
    ("HOTLINE_RTP_PORTS", "media.rtp_ports"),
    ("HOTLINE_RECORDINGS_DIR", "recordings.dir"),
];

impl Config {
    /// The compiled-in example configuration, relative paths resolved against
    /// the current directory.
    pub fn builtin() -> Self {
        match Self::parse(EXAMPLE_CONFIG, "<built-in hotline.toml>", Path::new(".")) {
            Ok(cfg) => cfg,
            // The example file is checked by a unit test; reaching this is a build defect.
            Err(e) => panic!("the built-in example configuration is invalid: {e}"),
        }
    }

    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.display().to_string(),
                line: None,
                message: format!("cannot read: {e}"),
            }])
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        Self::parse(&text, &path.display().to_string(), &base)
    }

    /// Parse and validate configuration text. `file` names it in errors.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Self, ConfigErrors> {
        let err = |line: Option<usize>, message: String| ConfigError {
            file: file.to_string(),
            line,
            message,
        };
        let mut cfg: Config = toml::from_str(text).map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigErrors(vec![err(line, e.message().trim().to_string())])
        })?;
        cfg.base_dir = base_dir.to_path_buf();

        let locate = Locator::new(text);
        let mut errors = Vec::new();
        if cfg.sip.domain.trim().is_empty() {
            errors.push(err(
                locate.key(&["sip", "domain"]),
                "sip.domain: expected a non-empty domain name".into(),
            ));
        }
        if cfg.sip.min_expires == 0 || cfg.sip.min_expires > cfg.sip.max_expires {
            errors.push(err(
                locate.key(&["sip", "min_expires"]),
                format!(
                    "sip.min_expires: expected 1..=max_expires ({}), got {}",
                    cfg.sip.max_expires, cfg.sip.min_expires
                ),
            ));
        }
        if cfg.sip.auth_max_failures == 0 {
            errors.push(err(
                locate.key(&["sip", "auth_max_failures"]),
                "sip.auth_max_failures: expected at least 1".into(),
            ));
        }
        if cfg.sip.digest_algorithms.is_empty()
            || cfg
                .sip
                .digest_algorithms
                .iter()
                .any(|a| crate::sip::digest::Algorithm::parse(a).is_none())
        {
            errors.push(err(
                locate.key(&["sip", "digest_algorithms"]),
                format!(
                    "sip.digest_algorithms: expected a non-empty list of \"MD5\" and \"SHA-256\", got {:?}",
                    cfg.sip.digest_algorithms
                ),
            ));
        }
        if cfg.http.tls_cert.is_some() != cfg.http.tls_key.is_some() {
            errors.push(err(
                locate
                    .key(&["http", "tls_cert"])
                    .or_else(|| locate.key(&["http", "tls_key"])),
                "http: tls_cert and tls_key go together (HTTPS needs both)".into(),
            ));
        }
        if cfg.sip.listen == cfg.http.listen {
            errors.push(err(
                locate.key(&["http", "listen"]),
                "http.listen: must differ from sip.listen".into(),
            ));
        }
        let url = &cfg.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            errors.push(err(
                locate.key(&["database", "url"]),
                format!(
                    "database.url: expected sqlite://FILE or postgres://USER@HOST/DB, got {url:?}"
                ),
            ));
        }
        if let Some(node) = &cfg.server.node {
            if node.trim().is_empty() || node.len() > 128 || node.chars().any(char::is_control) {
                errors.push(err(
                    locate.key(&["server", "node"]),
                    format!(
                        "server.node: expected a name of 1 to 128 printable characters, got {node:?}"
                    ),
                ));
            }
        }
        let media_ip = cfg.media.address.unwrap_or(cfg.sip.listen.ip());
        if media_ip.is_unspecified() {
            errors.push(err(
                locate
                    .key(&["media", "address"])
                    .or(locate.key(&["sip", "listen"])),
                "media.address: required when sip.listen is a wildcard address (it goes into SDP)"
                    .into(),
            ));
        }
        if cfg.media.workers == Some(0) {
            errors.push(err(
                locate.key(&["media", "workers"]),
                "media.workers: expected at least 1".into(),
            ));
        }
        if let Err(m) = cfg.media.port_range() {
            errors.push(err(
                locate.key(&["media", "rtp_ports"]),
                format!("media.rtp_ports: {m}"),
            ));
        }
        if let Err(m) = cfg.media.webrtc_port_policy() {
            errors.push(err(
                locate.key(&["media", "webrtc_ports"]),
                format!("media.webrtc_ports: {m}"),
            ));
        }
        let mut queue_names = HashSet::new();
        for (i, q) in cfg.queues.iter().enumerate() {
            if q.name.is_empty() || !queue_names.insert(q.name.clone()) {
                errors.push(err(
                    locate.array_item(&["queues"], i, "name"),
                    format!(
                        "queues[{i}].name: expected a unique, non-empty name, got {:?}",
                        q.name
                    ),
                ));
            }
        }
        if let Err(e) = crate::acd::Router::new(cfg.router_config()) {
            errors.push(err(locate.key(&["queues"]), format!("queues: {e}")));
        }
        let mut seen = HashSet::new();
        for (i, agent) in cfg.agents.iter().enumerate() {
            let line = locate.array_item(&["agents"], i, "id");
            if agent.id.is_empty()
                || !agent
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                errors.push(err(
                    line,
                    format!(
                        "agents[{i}].id: expected letters, digits, '.', '_' or '-', got {:?}",
                        agent.id
                    ),
                ));
            }
            if !seen.insert(agent.id.clone()) {
                errors.push(err(
                    line,
                    format!("agents[{i}].id: duplicate agent id {:?}", agent.id),
                ));
            }
            for skill in &agent.skills {
                if crate::acd::Skill::parse(skill).is_none() {
                    errors.push(err(
                        locate.array_item(&["agents"], i, "skills"),
                        format!(
                            "agents[{i}].skills: expected \"NAME\" or \"NAME:1-10\", got {skill:?}"
                        ),
                    ));
                }
            }
            if agent.password.len() < 6 {
                errors.push(err(
                    locate.array_item(&["agents"], i, "password"),
                    format!("agents[{i}].password: expected at least 6 characters"),
                ));
            }
        }
        for (i, pattern) in cfg.acd.transfer_numbers.iter().enumerate() {
            let digits = pattern.strip_suffix('*').unwrap_or(pattern);
            let ok = !digits.is_empty()
                && digits
                    .char_indices()
                    .all(|(j, c)| c.is_ascii_digit() || (j == 0 && c == '+'));
            if !ok {
                errors.push(err(
                    locate.key(&["acd", "transfer_numbers"]),
                    format!(
                        "acd.transfer_numbers[{i}]: expected digits, optionally ending in '*', got {pattern:?}"
                    ),
                ));
            }
        }
        if !cfg.acd.transfer_numbers.is_empty() && cfg.acd.transfer_gateway.is_none() {
            errors.push(err(
                locate.key(&["acd", "transfer_numbers"]),
                "acd.transfer_numbers: transfers to outside numbers need acd.transfer_gateway (host:port)".to_string(),
            ));
        }
        for (i, user) in cfg.users.iter().enumerate() {
            let line = locate.array_item(&["users"], i, "id");
            if user.id.is_empty()
                || !user
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                errors.push(err(
                    line,
                    format!(
                        "users[{i}].id: expected letters, digits, '.', '_' or '-', got {:?}",
                        user.id
                    ),
                ));
            }
            if !seen.insert(user.id.clone()) {
                errors.push(err(
                    line,
                    format!(
                        "users[{i}].id: {:?} is already an agent or user id",
                        user.id
                    ),
                ));
            }
            if user.password.len() < 6 {
                errors.push(err(
                    locate.array_item(&["users"], i, "password"),
                    format!("users[{i}].password: expected at least 6 characters"),
                ));
            }
            if !USER_ROLES.contains(&user.role.as_str()) {
                errors.push(err(
                    locate.array_item(&["users"], i, "role"),
                    format!(
                        "users[{i}].role: expected \"supervisor\" or \"admin\", got {:?}",
                        user.role
                    ),
                ));
            }
        }
        if cfg.api.token_ttl_secs < 60 {
            errors.push(err(
                locate.key(&["api", "token_ttl_secs"]),
                format!(
                    "api.token_ttl_secs: expected at least 60, got {}",
                    cfg.api.token_ttl_secs
                ),
            ));
        }
        if cfg.api.max_body_bytes < 1024 {
            errors.push(err(
                locate.key(&["api", "max_body_bytes"]),
                format!(
                    "api.max_body_bytes: expected at least 1024, got {}",
                    cfg.api.max_body_bytes
                ),
            ));
        }
        campaign::check(&cfg, &locate, &err, &mut errors);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Apply `HOTLINE_*` environment overrides (see [`ENV_OVERRIDES`]).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        let bad = |var: &str, m: String| ConfigError {
            file: format!("${var}"),
            line: None,
            message: m,
        };
        if let Some(v) = get("HOTLINE_SIP_LISTEN") {
            match v.parse() {
                Ok(a) => self.sip.listen = a,
                Err(_) => errors.push(bad(
                    "HOTLINE_SIP_LISTEN",
                    format!("expected IP:PORT, got {v:?}"),
                )),
            }
        }
        if let Some(v) = get("HOTLINE_SIP_DOMAIN") {
            self.sip.domain = v;
        }
        if let Some(v) = get("HOTLINE_HTTP_LISTEN") {
            match v.parse() {
                Ok(a) => self.http.listen = a,
                Err(_) => errors.push(bad(
                    "HOTLINE_HTTP_LISTEN",
                    format!("expected IP:PORT, got {v:?}"),
                )),
            }
        }
        if let Some(v) = get("HOTLINE_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = get("HOTLINE_RTP_PORTS") {
            match parse_port_range(&v) {
                Ok(_) => self.media.rtp_ports = v,
                Err(m) => errors.push(bad("HOTLINE_RTP_PORTS", m)),
            }
        }
        if let Some(v) = get("HOTLINE_RECORDINGS_DIR") {
            self.recordings.dir = PathBuf::from(v);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// This node's name: `server.node`, else the host name and process id
    /// (two processes on one host must differ, or both would hold the lease).
    pub fn node_name(&self) -> String {
        match &self.server.node {
            Some(n) => n.clone(),
            None => format!("{}-{}", host_name(), std::process::id()),
        }
    }

    /// The ACD router's configuration (queues and agent policy).
    pub fn router_config(&self) -> crate::acd::RouterConfig {
        crate::acd::RouterConfig {
            queues: self.queues.clone(),
            max_missed_offers: self.acd.max_missed_offers,
        }
    }

    /// The address RTP binds to and advertises.
    pub fn media_address(&self) -> std::net::IpAddr {
        self.media.address.unwrap_or(self.sip.listen.ip())
    }

    /// Dialplan files, resolved against the config file's directory.
    pub fn dialplan_paths(&self) -> Vec<PathBuf> {
        self.dialplans
            .files
            .iter()
            .map(|p| self.resolve(p))
            .collect()
    }

    /// Resolve a path from this config against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset.min(text.len()))
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Finds the line of a key in the original text, for semantic errors that serde
/// cannot attach a span to.
struct Locator<'a> {
    text: &'a str,
    table: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            table: toml::de::DeTable::parse(text).ok(),
        }
    }

    fn key(&self, path: &[&str]) -> Option<usize> {
        let mut table = self.table.as_ref()?.get_ref();
        let (last, parents) = path.split_last()?;
        for p in parents {
            match table.get(*p)?.get_ref() {
                toml::de::DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
        let (k, _) = table.get_key_value(*last)?;
        Some(line_of(self.text, k.span().start))
    }

    fn array_item(&self, path: &[&str], index: usize, field: &str) -> Option<usize> {
        let mut table = self.table.as_ref()?.get_ref();
        let (last, parents) = path.split_last()?;
        for p in parents {
            match table.get(*p)?.get_ref() {
                toml::de::DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
        let toml::de::DeValue::Array(items) = table.get(*last)?.get_ref() else {
            return None;
        };
        let item = items.get(index)?;
        if let toml::de::DeValue::Table(t) = item.get_ref() {
            if let Some((k, _)) = t.get_key_value(field) {
                return Some(line_of(self.text, k.span().start));
            }
        }
        Some(line_of(self.text, item.span().start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid_and_is_the_builtin_default() {
        let cfg = Config::builtin();
        assert_eq!(
            cfg.sip.listen,
            "127.0.0.1:5060".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(cfg.sip.domain, "hotline.local");
        assert_eq!(
            cfg.http.listen,
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(cfg.database.url, "sqlite://hotline.db");
        let ids: Vec<_> = cfg.agents.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["1001", "1002", "1003"]);
        assert_eq!(cfg.media.port_range().unwrap(), (20000, 30000));
    }

    #[test]
    fn transfer_numbers_match_exactly_or_by_prefix() {
        let p = vec!["4008123456".to_string(), "+86755*".to_string()];
        assert!(number_allowed(&p, "4008123456"));
        assert!(!number_allowed(&p, "40081234567"));
        assert!(number_allowed(&p, "+8675512345678"));
        assert!(!number_allowed(&p, "8675512345678"));
        assert!(!number_allowed(&p, "+86755@evil"));
        assert!(!number_allowed(&p, ""));
        assert!(!number_allowed(&[], "4008123456"));
    }

    #[test]
    fn transfer_numbers_need_a_gateway_and_digits() {
        let base = "[sip]\nlisten = \"127.0.0.1:5060\"\ndomain = \"d\"\n[http]\nlisten=\"127.0.0.1:1\"\n[database]\nurl=\"sqlite://x.db\"\n[acd]\n";
        let e = Config::parse(
            &format!("{base}transfer_numbers = [\"400*\"]\n"),
            "x.toml",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("transfer_gateway"), "{e}");
        assert_eq!(e.0[0].line, Some(9), "{e}");
        let e = Config::parse(
            &format!("{base}transfer_numbers = [\"4x*\"]\ntransfer_gateway = \"127.0.0.1:5080\"\n"),
            "x.toml",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("4x*"), "{e}");
        assert!(Config::parse(
            &format!(
                "{base}transfer_numbers = [\"400*\"]\ntransfer_gateway = \"127.0.0.1:5080\"\n"
            ),
            "x.toml",
            Path::new(".")
        )
        .is_ok());
    }

    #[test]
    fn syntax_error_has_line() {
        let text = "[sip]\nlisten = \"127.0.0.1:5060\"\ndomain = \n";
        let e = Config::parse(text, "x.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].line, Some(3), "{e}");
        assert!(e.to_string().starts_with("x.toml:3:"), "{e}");
    }

    #[test]
    fn bad_address_points_at_its_line() {
        let text = "[sip]\nlisten = \"nope\"\ndomain = \"d\"\n[http]\nlisten=\"127.0.0.1:1\"\n[database]\nurl=\"sqlite://x.db\"\n";
        let e = Config::parse(text, "x.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.0[0].line, Some(2), "{e}");
    }

    #[test]
    fn node_name_is_configured_or_host_and_pid() {
        let base = "[sip]\nlisten = \"127.0.0.1:5060\"\ndomain = \"d\"\n[http]\nlisten=\"127.0.0.1:1\"\n[database]\nurl=\"sqlite://x.db\"\n";
        let cfg = Config::parse(base, "x.toml", Path::new(".")).unwrap();
        let pid = format!("-{}", std::process::id());
        assert!(cfg.node_name().ends_with(&pid), "{}", cfg.node_name());
        assert!(cfg.node_name().len() > pid.len());
        let text = format!("{base}[server]\nnode = \"hz-1\"\n");
        let cfg = Config::parse(&text, "x.toml", Path::new(".")).unwrap();
        assert_eq!(cfg.node_name(), "hz-1");
        let text = format!("{base}[server]\nnode = \" \"\n");
        let e = Config::parse(&text, "x.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().starts_with("x.toml:9: server.node"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected_with_line() {
        let text = "[sip]\nlisten = \"127.0.0.1:5060\"\ndomain = \"d\"\nlisen = 1\n[http]\nlisten=\"127.0.0.1:1\"\n[database]\nurl=\"sqlite://x.db\"\n";
        let e = Config::parse(text, "x.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.0[0].line, Some(4), "{e}");
        assert!(e.0[0].message.contains("lisen"), "{e}");
    }

    #[test]
    fn every_semantic_error_is_reported_with_its_line() {
        let text = r#"[sip]
listen = "127.0.0.1:5060"
domain = ""
[http]
listen = "127.0.0.1:5060"
[database]
url = "mysql://x"
[media]
rtp_ports = "30000-20000"
[[agents]]
id = "1001"
name = "a"
password = "secret1"
[[agents]]
id = "1001"
name = "b"
password = "x"
"#;
        let e = Config::parse(text, "bad.toml", Path::new(".")).unwrap_err();
        let lines: Vec<_> = e.0.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            [Some(3), Some(5), Some(7), Some(9), Some(15), Some(17)],
            "{e}"
        );
    }

    #[test]
    fn example_config_has_a_supervisor_and_an_admin() {
        let cfg = Config::builtin();
        let users: Vec<_> = cfg
            .users
            .iter()
            .map(|u| (u.id.as_str(), u.role.as_str()))
            .collect();
        assert_eq!(users, [("s1", "supervisor"), ("admin", "admin")]);
        assert_eq!(cfg.api.token_ttl_secs, 12 * 3600);
    }

    #[test]
    fn bad_users_and_api_settings_are_reported_with_lines() {
        let text = r#"[sip]
listen = "127.0.0.1:5060"
domain = "d"
[http]
listen = "127.0.0.1:8080"
[database]
url = "sqlite://x.db"
[api]
token_ttl_secs = 5
[[agents]]
id = "1001"
name = "a"
password = "secret1"
[[users]]
id = "1001"
name = "s"
password = "secret1"
role = "boss"
"#;
        let e = Config::parse(text, "bad.toml", Path::new(".")).unwrap_err();
        let lines: Vec<_> = e.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(15), Some(18), Some(9)], "{e}");
    }

    #[test]
    fn env_overrides_apply_and_reject_bad_values() {
        let mut cfg = Config::builtin();
        cfg.apply_env(|k| match k {
            "HOTLINE_DATABASE_URL" => Some("postgres://root@127.0.0.1/test".into()),
            "HOTLINE_SIP_LISTEN" => Some("127.0.0.1:5070".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.database.url, "postgres://root@127.0.0.1/test");
        assert_eq!(cfg.sip.listen.port(), 5070);
        let e = cfg
            .apply_env(|k| (k == "HOTLINE_HTTP_LISTEN").then(|| "bad".into()))
            .unwrap_err();
        assert!(e.to_string().contains("HOTLINE_HTTP_LISTEN"));
    }
}
