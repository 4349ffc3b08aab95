//! One redactor for everything that may carry a secret: an address (the
//! user name and password in it, query values that look like secrets) and
//! a message that may quote one (GStreamer's errors, a broker's answer).
//! What is hidden shows as `***`.

/// Query parameters whose values are not shown.
const SECRET_KEYS: &[&str] = &[
    "token",
    "key",
    "sig",
    "auth",
    "pass",
    "pwd",
    "secret",
    "credential",
    "session",
];

/// Secrets shorter than this are not searched for in messages (they would
/// hide ordinary words).
const SHORTEST: usize = 3;

const HIDDEN: &str = "***";

fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// `url` fit for messages, logs, metrics and the API: without the user
/// name and password it may carry (`rtsp://admin:pw@cam/…`), and with the
/// values of query parameters that look like secrets (`?token=…`) masked.
/// A file path is returned as it is; an address that does not parse is
/// not shown at all.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url.trim()) else {
        return if url.contains("://") {
            "(unparsable URL)".into()
        } else {
            url.to_string()
        };
    };
    let mut changed = false;
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_username("");
        let _ = u.set_password(None);
        changed = true;
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_key(&k) {
                    HIDDEN.into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if pairs.iter().any(|(_, v)| v == HIDDEN) {
            u.query_pairs_mut().clear().extend_pairs(pairs);
            changed = true;
        }
    }
    if changed {
        u.to_string()
    } else {
        url.to_string()
    }
}

/// The secrets in `url`: its password and the values of its secret-looking
/// query parameters.
pub fn url_secrets(url: &str) -> Vec<String> {
    let Ok(u) = url::Url::parse(url) else {
        return Vec::new();
    };
    let mut out: Vec<String> = u
        .query_pairs()
        .filter(|(k, _)| secret_key(k))
        .map(|(_, v)| v.into_owned())
        .collect();
    out.extend(u.password().map(str::to_string));
    out
}

/// `text` with every copy of each of `secrets` (as written and, when it
/// differs, percent-decoded) replaced by `***`.
pub fn scrub<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.len() < SHORTEST {
            continue;
        }
        out = out.replace(secret, HIDDEN);
        if let Ok(decoded) = percent_encoding::percent_decode_str(secret).decode_utf8()
            && decoded.len() >= SHORTEST
        {
            out = out.replace(decoded.as_ref(), HIDDEN);
        }
    }
    out
}

/// `text` with `url` shown redacted and every secret of it removed.
pub fn scrub_url(text: &str, url: &str) -> String {
    scrub(&text.replace(url, &redact_url(url)), &url_secrets(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let uri = "rtsp://admin:s%40cret@cam1:554/stream";
        assert_eq!(redact_url(uri), "rtsp://cam1:554/stream");
        assert_eq!(redact_url("/tmp/a.mp4"), "/tmp/a.mp4");
        let said = scrub_url(&format!("cannot open {uri} (password s@cret)"), uri);
        assert!(
            !said.contains("s%40cret") && !said.contains("s@cret"),
            "{said}"
        );
        assert!(said.contains("rtsp://cam1:554/stream"), "{said}");
        // Secrets in the query too; other parameters stay.
        let hls = "https://cdn.example/live.m3u8?channel=2&access_token=abc123xyz";
        let shown = redact_url(hls);
        assert!(
            !shown.contains("abc123xyz") && shown.contains("channel=2"),
            "{shown}"
        );
        let said = scrub_url("403 for token abc123xyz", hls);
        assert!(!said.contains("abc123xyz"), "{said}");
        assert_eq!(
            redact_url("rtsp://cam/live?channel=1"),
            "rtsp://cam/live?channel=1"
        );
        assert_eq!(
            redact_url("https://a:b@example.com/x?token=t"),
            "https://example.com/x?token=***"
        );
        assert_eq!(redact_url("https://a b:pw@[x"), "(unparsable URL)");
    }

    #[test]
    fn messages_lose_the_secrets_they_quote() {
        assert_eq!(scrub("x pw1234 y", &["pw1234"]), "x *** y");
        // Too short to look for: ordinary words would go.
        assert_eq!(scrub("a pw b", &["pw"]), "a pw b");
        assert_eq!(scrub("p=s@cret", &["s%40cret"]), "p=***");
    }
}
