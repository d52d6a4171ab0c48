//! Browser tests' plumbing: Chromium and playwright-core present, a folder
//! for screenshots, and a node script under `tests/web/` whose JSON lines
//! the Rust test waits on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{require_binary, KillOnDrop, LineStream, REPO};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Node, playwright-core and chromium, or a panic that says what to install.
pub fn browser_tools() -> PathBuf {
    let node = require_binary("node", "Debian package nodejs");
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} not found: install the Debian package `chromium` (scripts/test does)"
    );
    assert!(
        Path::new(REPO)
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "node_modules/playwright-core is missing: run `npm ci` (or scripts/test) in {REPO}"
    );
    node
}

/// `target/web-artifacts/<name>/`, emptied first (only this run's files).
pub fn artifacts(name: &str) -> PathBuf {
    let dir = Path::new(REPO).join("target/web-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create target/web-artifacts");
    dir
}

/// One browser test at a time: two Chromiums and two servers at once are
/// too much for a small machine.
pub static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Start `tests/web/<script>` with node and `vars` in its environment.
pub fn spawn_browser(node: &Path, script: &str, art: &Path, vars: &[(&str, String)]) -> Browser {
    let stderr = std::fs::File::create(art.join("browser.stderr.log")).expect("browser log");
    let mut cmd = Command::new(node);
    cmd.arg(Path::new(REPO).join("tests/web").join(script))
        .current_dir(REPO)
        .env("ARTIFACTS", art)
        .env("CHROMIUM", CHROMIUM)
        .env("STEP_TIMEOUT_MS", "60000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn node");
    let out = child.stdout.take().expect("stdout");
    Browser {
        _child: KillOnDrop(child),
        lines: LineStream::new(out),
    }
}

pub struct Browser {
    _child: KillOnDrop,
    lines: LineStream,
}

impl Browser {
    /// The next `{"event": kind}` line; panics on `error` or after `limit`.
    pub fn expect(&mut self, kind: &str, limit: Duration) -> Value {
        let got = self.lines.wait_for(limit, |l| {
            serde_json::from_str::<Value>(l)
                .map(|v| v["event"] == kind || v["event"] == "error")
                .unwrap_or(false)
        });
        let Some(line) = got else {
            panic!(
                "browser: no {kind:?} within {limit:?}; output so far:\n{}",
                self.lines.seen.join("\n")
            );
        };
        let v: Value = serde_json::from_str(&line).expect("JSON line");
        if v["event"] == "error" {
            panic!(
                "browser script failed before {kind:?}:\n{}\nconsole errors: {}\nscreenshots: target/web-artifacts/",
                v["message"].as_str().unwrap_or(""),
                v["console_errors"]
            );
        }
        v
    }
}
