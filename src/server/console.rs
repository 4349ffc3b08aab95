//! The web console: plain HTML, CSS and JavaScript modules under
//! `src/server/console/`, built into the binary (no build step, nothing
//! fetched at run time), served at `/` and `/console/…`.
//!
//! The page and its files carry no data and are served without the token;
//! everything they show comes from the API, which wants it (the console
//! signs in through [`super::session`]). Every response of the server has
//! a Content-Security-Policy; the console's allows scripts, styles and
//! connections to this origin only (no inline script, no `eval`), and the
//! scripts only ever put untrusted text (names, labels, transcripts) into
//! the page as text.

use std::sync::LazyLock;

use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem;

/// The console's policy: this origin only; pictures also as `blob:` (the
/// tune view's background) and `data:`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' blob: data:; media-src 'self'; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// The policy of every other answer (JSON, pictures, clips).
const CSP_DATA: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// One file of the console.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_str!(concat!("console/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("live.js", "text/javascript; charset=utf-8"),
    asset!("review.js", "text/javascript; charset=utf-8"),
    asset!("ask.js", "text/javascript; charset=utf-8"),
    asset!("tune.js", "text/javascript; charset=utf-8"),
    asset!("cameras.js", "text/javascript; charset=utf-8"),
    asset!("health.js", "text/javascript; charset=utf-8"),
];

/// Each asset's entity tag: a digest of its bytes.
static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    ASSETS
        .iter()
        .map(|a| {
            let d = Sha256::digest(a.body.as_bytes());
            let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The bytes of the whole console (what a first visit downloads).
pub fn weight() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// Whether `path` is part of the console, served without the token.
pub fn is_console(path: &str) -> bool {
    path == "/" || path.starts_with("/console/")
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            problem(format!("the console has no file `{name}`")),
        )
            .into_response();
    };
    let (asset, tag) = (&ASSETS[i], &TAGS[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let head = [
        (header::CONTENT_TYPE, asset.mime),
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, tag.as_str()),
        (header::CONTENT_SECURITY_POLICY, CSP),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, head).into_response();
    }
    (head, asset.body).into_response()
}

/// `GET /`.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{file}`.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

/// Headers every answer carries: no sniffing, no referrer, no framing, and
/// a Content-Security-Policy (the strictest, unless the console set its
/// own).
pub async fn harden(request: Request, next: Next) -> Response {
    let mut r = next.run(request).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP_DATA),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_script() {
        let script = CSP
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .expect("a script-src");
        assert_eq!(script.trim(), "script-src 'self'");
        assert!(!CSP.contains("unsafe"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_handler() {
        let page = ASSETS[0].body;
        for bad in [
            "<script>",
            "onclick=",
            "onload=",
            "onerror=",
            "javascript:",
            "http://",
            "https://",
        ] {
            assert!(!page.contains(bad), "index.html has {bad}");
        }
        // Every module the page or another module imports is served.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let from = line.rsplit("from").next().unwrap_or("");
                let name = from
                    .trim()
                    .trim_matches(|c| c == '\'' || c == '"' || c == ';');
                let name = name.trim_start_matches("./");
                assert!(ASSETS.iter().any(|x| x.name == name), "{}: {line}", a.name);
            }
        }
    }

    #[test]
    fn the_console_is_light() {
        assert!(weight() < 500_000, "{} bytes", weight());
    }
}
