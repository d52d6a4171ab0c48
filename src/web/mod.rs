//! The web pages: home, agent desk (`/desk`), supervisor wallboard
//! (`/wallboard`) and reports (`/reports`).
//!
//! Plain HTML, CSS and ES-module JavaScript embedded with `include_str!`, so
//! the one binary serves them and there is no build step. The pages log in
//! through `POST /api/login`, keep the token in `sessionStorage` and use
//! the REST API and the `/api/events` WebSocket like any other client; they
//! live outside `/api` so the OpenAPI document stays the API's alone.
//! Service scripts for the desk come from `dialplans/scripts.toml`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

/// (URL path, content type, body) of every embedded file.
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("assets/index.html")),
    ("/desk", HTML, include_str!("assets/desk.html")),
    ("/wallboard", HTML, include_str!("assets/wallboard.html")),
    ("/reports", HTML, include_str!("assets/reports.html")),
    ("/web/app.css", CSS, include_str!("assets/app.css")),
    ("/web/common.js", JS, include_str!("assets/common.js")),
    ("/web/desk.js", JS, include_str!("assets/desk.js")),
    ("/web/softphone.js", JS, include_str!("assets/softphone.js")),
    ("/web/sip.js", JS, include_str!("assets/sip.js")),
    ("/web/wallboard.js", JS, include_str!("assets/wallboard.js")),
    ("/web/reports.js", JS, include_str!("assets/reports.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The desk's service scripts (TOML source, embedded).
pub const SCRIPTS_TOML: &str = include_str!("../../dialplans/scripts.toml");

/// One service script: what the agent reads for a kind of call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Queue name, `callback` or `default`.
    pub queue: String,
    pub title: String,
    pub steps: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptsFile {
    scripts: Vec<Script>,
}

/// Parse a scripts file.
pub fn parse_scripts(text: &str) -> Result<Vec<Script>, toml::de::Error> {
    toml::from_str::<ScriptsFile>(text).map(|f| f.scripts)
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Pages change with the binary; always revalidate.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn scripts() -> Response {
    match parse_scripts(SCRIPTS_TOML) {
        Ok(s) => axum::Json(s).into_response(),
        // Checked by a unit test; never expected at run time.
        Err(e) => crate::api::ApiError::Internal(format!("scripts.toml: {e}")).into_response(),
    }
}

/// The pages' routes, merged into the HTTP router beside `/api`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new().route("/web/scripts.json", get(scripts));
    for &(path, ct, body) in FILES {
        r = r.route(path, get(move || async move { page(ct, body) }));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_and_cover_every_queue() {
        let scripts = parse_scripts(SCRIPTS_TOML).expect("scripts.toml");
        let config = crate::config::Config::builtin();
        for q in &config.queues {
            assert!(
                scripts.iter().any(|s| s.queue == q.name) || q.name == "general",
                "no script for queue {}",
                q.name
            );
        }
        assert!(scripts.iter().any(|s| s.queue == "default"));
        assert!(scripts.iter().all(|s| !s.steps.is_empty()));
    }

    #[test]
    fn pages_are_embedded() {
        for (path, _, body) in FILES {
            assert!(!body.trim().is_empty(), "{path} is empty");
        }
        // Every page loads the stylesheet and its own module.
        for (path, js) in [
            ("/desk", "desk.js"),
            ("/wallboard", "wallboard.js"),
            ("/reports", "reports.js"),
        ] {
            let html = FILES
                .iter()
                .find(|f| f.0 == path)
                .map(|f| f.2)
                .unwrap_or("");
            assert!(html.contains("/web/app.css"), "{path}");
            assert!(html.contains(js), "{path}");
        }
    }
}
