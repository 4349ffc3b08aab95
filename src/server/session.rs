//! Console sessions: the token is typed once into the console's sign-in
//! form, sent once as `Authorization: Bearer` to `POST /session`, and
//! exchanged for a random session id in an `HttpOnly`, `SameSite=Strict`
//! cookie. The page never keeps the token, and it never goes in a URL;
//! pictures, clips and the live records then load with the cookie.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::lock::Locked;

/// The cookie's name.
pub const COOKIE: &str = "vigil_session";

/// How long a session lasts after it was opened.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Sessions at most at once; the oldest goes first.
const MOST: usize = 1024;

/// The open sessions: id → when it was opened.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// Opens a session and returns its id (256 random bits, hex).
    pub fn open(&self) -> String {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = self.open.locked();
        open.retain(|_, at| at.elapsed() < LIFETIME);
        if open.len() >= MOST
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
        {
            open.remove(&oldest);
        }
        open.insert(id.clone(), Instant::now());
        id
    }

    /// Whether `id` names an open session.
    pub fn valid(&self, id: &str) -> bool {
        self.open
            .locked()
            .get(id)
            .is_some_and(|at| at.elapsed() < LIFETIME)
    }

    pub fn close(&self, id: &str) {
        self.open.locked().remove(id);
    }
}

/// The session id the request's cookie carries, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// `GET /session`: whether a token is needed, and whether this browser is
/// signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub required: bool,
    pub signed_in: bool,
}

pub async fn state(State(s): State<AppState>, headers: HeaderMap) -> Json<SessionState> {
    let required = s.token.is_some();
    let signed_in = !required || cookie(&headers).is_some_and(|id| s.sessions.valid(id));
    Json(SessionState {
        required,
        signed_in,
    })
}

/// `POST /session`, with the token as a bearer (the middleware checked it):
/// opens a session and sets its cookie.
pub async fn open(State(s): State<AppState>) -> Response {
    if s.token.is_none() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let id = s.sessions.open();
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!(
                "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                LIFETIME.as_secs()
            ),
        )],
    )
        .into_response()
}

/// `DELETE /session`: signs out.
pub async fn close(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers) {
        s.sessions.close(id);
    }
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_check_and_close() {
        let s = Sessions::default();
        let a = s.open();
        let b = s.open();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(s.valid(&a) && s.valid(&b));
        assert!(!s.valid("") && !s.valid(&a[..63]));
        s.close(&a);
        assert!(!s.valid(&a) && s.valid(&b));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; vigil_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1".parse().unwrap());
        h.append(header::COOKIE, "vigil_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h), Some("xyz"));
        assert_eq!(cookie(&HeaderMap::new()), None);
    }
}
