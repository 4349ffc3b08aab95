//! A node of a cluster asking the others: where a camera runs, and a `GET`
//! forwarded to another node's API (`from=node`, with this node's token),
//! its answer streamed back as it comes.

use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::AppState;
use super::client::Client;
use crate::cluster::buckets::View;

/// Headers of another node's answer passed on as they are.
const PASSED_ON: [header::HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::LAST_MODIFIED,
    header::ETAG,
    header::CACHE_CONTROL,
    header::RETRY_AFTER,
];

/// Whether a request's query asks this node alone (`from=node`).
pub fn here_only(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "from=node"))
}

/// The cluster as this node read it within the last second, if it is a
/// node of one.
pub async fn view(s: &AppState) -> Option<Result<View, String>> {
    let handle = s.cluster.as_ref()?;
    let read = handle.view_within(std::time::Duration::from_secs(1)).await;
    Some(read.map_err(|e| e.to_string()))
}

/// The other live nodes of `view` with where their API is.
pub fn others(view: &View) -> impl Iterator<Item = (&String, &String)> {
    view.nodes
        .iter()
        .filter(move |(n, _)| **n != view.node)
        .filter_map(|(n, b)| b.api.as_ref().map(|a| (n, a)))
}

/// `ask` of every other live node of `view` at once, through a client of
/// its API with this node's token, each within `wait`: node → its answer
/// or why there is none.
pub async fn ask_others<'v, T, F, Fut>(
    s: &AppState,
    view: &'v View,
    wait: std::time::Duration,
    ask: F,
) -> Vec<(&'v String, Result<T, String>)>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let token = s.token.as_deref().map(str::to_string);
    let asks = view
        .nodes
        .iter()
        .filter(|(node, _)| **node != view.node)
        .map(|(node, beat)| {
            let client = match &beat.api {
                Some(api) => Client::new(&crate::cluster::api_url(api), token.clone()),
                None => Err("its heartbeat gives no API address".into()),
            };
            let asked = client.map(&ask);
            async move {
                let answer = match asked {
                    Ok(asked) => tokio::time::timeout(wait, asked)
                        .await
                        .unwrap_or_else(|_| Err(format!("no answer within {wait:?}"))),
                    Err(e) => Err(e),
                };
                (node, answer)
            }
        });
    futures_util::future::join_all(asks).await
}

/// `GET {api}/{segments…}?from=node[&query]` on another node, with
/// `range`; its answer, whatever its status, streamed through.
pub async fn forward(
    s: &AppState,
    api: &str,
    segments: &[&str],
    query: Option<&str>,
    range: Option<&HeaderValue>,
) -> Result<Response, String> {
    let mut url = reqwest::Url::parse(&crate::cluster::api_url(api))
        .map_err(|e| format!("`{api}` is not a URL: {e}"))?;
    url.path_segments_mut()
        .map_err(|_| format!("`{api}` cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    url.set_query(Some(&match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("from=node&{q}"),
        None => "from=node".into(),
    }));
    let mut asked = client()?.get(url);
    if let Some(range) = range {
        asked = asked.header(header::RANGE, range);
    }
    if let Some(t) = &s.token {
        asked = asked.bearer_auth(t);
    }
    let r = asked.send().await.map_err(|e| e.to_string())?;
    let mut out = Response::builder().status(r.status());
    for h in &PASSED_ON {
        if let Some(v) = r.headers().get(h) {
            out = out.header(h, v);
        }
    }
    out.body(axum::body::Body::from_stream(r.bytes_stream()))
        .map_err(|e| e.to_string())
}

/// The client a node asks the others with (their API over the cluster's
/// network; https trusted as `vigil` trusts a server).
fn client() -> Result<reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let tls = crate::sink::tls::optional_client_config("the cluster's API", None)?;
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .connect_timeout(std::time::Duration::from_secs(5))
                .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .clone()
}
