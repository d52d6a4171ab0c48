//! Headless Chromium through playwright-core (`tests/browser/run.mjs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn tool_present(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Fails with the fix when a tool is missing (CI must install them, so a
/// missing tool is an error, not a skip).
pub fn check_prerequisites() {
    let root = root();
    for (ok, what) in [
        (Path::new(&chromium()).exists(), "chromium"),
        (tool_present("node"), "node"),
        (tool_present("sox"), "sox"),
        (
            root.join("node_modules/playwright-core").exists(),
            "playwright-core",
        ),
        (root.join("node_modules/jssip").exists(), "jssip"),
        (root.join("node_modules/.bin/esbuild").exists(), "esbuild"),
    ] {
        assert!(ok, "{what} missing: run scripts/setup-browser-test.sh");
    }
}

pub fn scratch_dir() -> PathBuf {
    let dir = root().join("target/browser-test");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A 48 kHz mono WAV with a steady tone, for `--use-file-for-fake-audio-capture`.
pub fn tone_wav(hz: u32) -> PathBuf {
    let wav = scratch_dir().join(format!("mic-{hz}.wav"));
    // 30 s so it never loops mid-test.
    let status = std::process::Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["synth", "30", "sine", &hz.to_string(), "gain", "-6"])
        .status()
        .expect("run sox");
    assert!(status.success(), "sox failed");
    wav
}

/// Runs the pages one after another in one headless Chromium; returns the
/// `window.result` of each.
pub async fn run_pages(mic: &Path, urls: &[String], limit: Duration) -> Vec<serde_json::Value> {
    let root = root();
    let child = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/run.mjs"))
        .arg(mic)
        .args(urls)
        .env("CHROMIUM", chromium())
        .current_dir(&root)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("browser run timed out")
        .expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "node failed: {stdout}");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).expect("result json"))
        .collect()
}

/// Bundles JsSIP for the page with esbuild (offline).
pub fn jssip_bundle() -> String {
    let root = root();
    let out = scratch_dir().join("jssip.js");
    let status = std::process::Command::new(root.join("node_modules/.bin/esbuild"))
        .arg(root.join("tests/browser/jssip-entry.js"))
        .args(["--bundle", "--format=iife", "--log-level=warning"])
        .arg(format!("--outfile={}", out.display()))
        .current_dir(&root)
        .status()
        .expect("run esbuild");
    assert!(status.success(), "esbuild failed");
    std::fs::read_to_string(out).expect("bundle")
}
