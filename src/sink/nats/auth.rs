//! How vigil authenticates to NATS: what `[sinks.nats]` configures, or
//! what the URL carries (async-nats would ignore it).

use std::fmt;
use std::path::PathBuf;

/// How to authenticate to the NATS server.
#[derive(Clone)]
pub enum NatsAuth {
    None,
    /// Secret.
    Token(String),
    /// `password` is secret.
    UserPassword {
        user: String,
        password: String,
    },
    /// `.creds` file (JWT + nkey seed).
    CredentialsFile(PathBuf),
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::Token(_) => f.write_str("Token(***)"),
            NatsAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"***")
                .finish(),
            NatsAuth::CredentialsFile(path) => {
                f.debug_tuple("CredentialsFile").field(path).finish()
            }
        }
    }
}

/// Splits `scheme://user:password@host:port` into the URL without userinfo
/// and the (percent-decoded) userinfo.
pub fn split_userinfo(url: &str) -> (String, Option<(String, Option<String>)>) {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let bare = format!("{scheme}{}", &rest[at + 1..]);
            let creds = match userinfo.split_once(':') {
                Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
                None => (percent_decode(userinfo), None),
            };
            let creds = if creds.0.is_empty() && creds.1.as_deref().is_none_or(str::is_empty) {
                None
            } else {
                Some(creds)
            };
            (bare, creds)
        }
        None => (url.to_string(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
