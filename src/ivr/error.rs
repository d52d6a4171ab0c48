//! Dialplan errors: every problem found while loading, with its place.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one dialplan file.
///
/// Displays as `FILE:LINE: message` so editors and CI can jump to it.
/// Problems that concern the whole file (unreadable, empty) use line 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialplanError {
    pub path: PathBuf,
    /// 1-based line in `path`.
    pub line: usize,
    pub kind: DialplanErrorKind,
}

impl DialplanError {
    pub fn new(path: &Path, line: usize, kind: DialplanErrorKind) -> Self {
        DialplanError {
            path: path.to_path_buf(),
            line: line.max(1),
            kind,
        }
    }
}

impl fmt::Display for DialplanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.kind)
    }
}

impl std::error::Error for DialplanError {}

/// What is wrong. Each message says what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialplanErrorKind {
    #[error("cannot read file: {0}")]
    Io(String),
    #[error("TOML syntax error: {0}")]
    Syntax(String),
    /// A value of the wrong type, a missing required field or an unknown field.
    #[error("{context}: {message}")]
    Schema { context: String, message: String },
    #[error("missing [{0}] section")]
    MissingSection(&'static str),
    #[error("unknown top-level section `{0}`; expected one of: dialplan, calendar, nodes")]
    UnknownSection(String),
    #[error("node `{node}`: unknown type `{found}`; expected one of: {expected}")]
    UnknownNodeType {
        node: String,
        found: String,
        expected: &'static str,
    },
    #[error("node `{node}`: missing `type`; expected a string such as type = \"play\"")]
    MissingNodeType { node: String },
    #[error(
        "{from}: refers to node `{target}`, which does not exist; expected one of the [nodes.*] names"
    )]
    UnknownNode { from: String, target: String },
    #[error("node `{node}`: prompt file `{prompt}` not found (looked for {looked_at})")]
    MissingPrompt {
        node: String,
        prompt: String,
        looked_at: String,
    },
    #[error("prompts_dir `{0}` is not a directory")]
    MissingPromptsDir(String),
    #[error(
        "node `{0}` can never be reached from `start`; link it from another node or delete it"
    )]
    Unreachable(String),
    #[error(
        "nodes {0} form a loop that never waits for caller input; route one of them through a menu, collect, queue or hangup node"
    )]
    InputlessLoop(String),
    #[error(
        "number `{number}` is already used by {other}; expected each number in one dialplan only"
    )]
    DuplicateNumber { number: String, other: String },
    #[error("unknown time zone `{0}`; expected an IANA name such as \"Asia/Shanghai\"")]
    BadTimezone(String),
    #[error("{context}: bad key `{key}`; expected a single phone key 0-9, * or #")]
    BadDigitKey { context: String, key: String },
    #[error("{context}: {message}")]
    BadValue { context: String, message: String },
}
