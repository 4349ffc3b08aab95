//! What `vigil attach`, `vigil detach`, `vigil streams` and `vigil ask
//! --server` send to a running `vigil serve`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api::{AttachRequest, Attached, Detached, Problem, StreamEntry};

/// Where `vigil serve` listens unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:9090";

/// How an error of [`Client`] for a 404 answer begins.
const NOT_FOUND: &str = "404 Not Found:";

/// A connection to the control API.
pub struct Client {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Client, String> {
        let base = reqwest::Url::parse(server)
            .map_err(|e| format!("--server `{server}` is not a URL: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!(
                "--server `{server}`: expected http://HOST:PORT or https://HOST:PORT"
            ));
        }
        let tls = crate::sink::tls::optional_client_config("--server", None)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client { base, token, http })
    }

    /// `POST /streams` with `spec` (name, uri, options).
    pub async fn attach(&self, spec: &AttachRequest) -> Result<Attached, String> {
        let request = self.http.post(self.url("streams")?).json(spec);
        self.send(request).await
    }

    /// `DELETE /streams/NAME`.
    pub async fn detach(&self, name: &str) -> Result<Detached, String> {
        let mut url = self.url("streams")?;
        url.path_segments_mut()
            .map_err(|_| "the server URL cannot take a path".to_string())?
            .push(name);
        self.send(self.http.delete(url)).await
    }

    /// `GET /streams`.
    pub async fn streams(&self) -> Result<Vec<StreamEntry>, String> {
        self.send(self.http.get(self.url("streams")?)).await
    }

    /// `GET /cluster`: none when the server is not a node of a cluster.
    pub async fn cluster(&self) -> Result<Option<crate::cluster::buckets::View>, String> {
        match self.send(self.http.get(self.url("cluster")?)).await {
            Ok(view) => Ok(Some(view)),
            Err(e) if e.starts_with(NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The same server's token, at another address (another node).
    pub fn at(&self, server: &str) -> Result<Client, String> {
        Client::new(server, self.token.clone())
    }

    /// `GET /search` with the question and its filters (`q`, `stream`,
    /// `since`, `until`, `top`, `mode`, `now`).
    pub async fn search(&self, query: &[(&str, String)]) -> Result<crate::search::Answers, String> {
        let mut url = self.url("search")?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        self.send(self.http.get(url)).await
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        self.base
            .join(path)
            .map_err(|e| format!("cannot make a URL of {} and {path}: {e}", self.base))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> Result<T, String> {
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                format!(
                    "cannot reach vigil serve at {}: is it running? (start it with `vigil serve PIPELINE`, or give --server)",
                    self.base
                )
            } else {
                format!("{}: {e}", self.base)
            }
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{}: cannot read the answer: {e}", self.base))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| format!("{}: cannot read the answer: {e}", self.base));
        }
        let reason = match serde_json::from_str::<Problem>(&text) {
            Ok(p) => p.error,
            // Not vigil's answer (a proxy's?): shown as JSON.
            Err(_) => serde_json::from_str(&text)
                .unwrap_or(Value::String(text))
                .to_string(),
        };
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(format!(
                "{reason} (the server wants a token: set VIGIL_TOKEN or give --token-file)"
            ));
        }
        Err(format!("{status}: {reason}"))
    }
}
