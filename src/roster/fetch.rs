//! Fetching one user's roster from the web app: `GET` with `Accept:
//! application/json` and `If-None-Match`, a global cap on fetches in flight, connect
//! and total timeouts, and retries with backoff for transient failures — all within
//! the configured `timeout_ms`, so a roster get or a refresh always answers in time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, ETAG, IF_NONE_MATCH, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Largest roster body accepted from the web app.
const MAX_BODY: usize = 8 << 20;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub enum Fetched {
    /// 304: the cached roster is still current.
    NotModified,
    Body {
        body: Bytes,
        etag: Option<String>,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("the web app answered HTTP {0}")]
    Status(u16),
    #[error("cannot reach the web app: {0}")]
    Transport(String),
    #[error("the web app did not answer within {0:?}")]
    Timeout(Duration),
    #[error("invalid roster URL: {0}")]
    Url(String),
}

impl FetchError {
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Status(code) => *code >= 500 || *code == 429,
            FetchError::Transport(_) => true,
            FetchError::Timeout(_) | FetchError::Url(_) => false,
        }
    }
}

pub struct Fetcher {
    client: Client<Connector, Empty<Bytes>>,
    permits: Arc<Semaphore>,
}

impl Fetcher {
    pub fn new(max_concurrent: usize) -> Result<Fetcher, std::io::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(3)));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Fetcher {
            client: Client::builder(TokioExecutor::new()).build(https),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        })
    }

    /// One roster fetch, retried while transient and time remains.
    pub async fn fetch(
        &self,
        url: &str,
        etag: Option<&str>,
        budget: Duration,
    ) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + budget;
        let _permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| FetchError::Timeout(budget))?
            .map_err(|_| FetchError::Transport("fetcher closed".into()))?;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.once(url, etag)).await;
            let error = match attempt {
                Ok(Ok(fetched)) => return Ok(fetched),
                Ok(Err(error)) => error,
                Err(_) => return Err(FetchError::Timeout(budget)),
            };
            if !error.is_transient() || Instant::now() + backoff >= deadline {
                return Err(error);
            }
            tracing::debug!(%error, ?backoff, "roster fetch failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    async fn once(&self, url: &str, etag: Option<&str>) -> Result<Fetched, FetchError> {
        let mut request = Request::get(url).header(ACCEPT, "application/json").header(
            USER_AGENT,
            concat!("stanzagate/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| FetchError::Url(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        match response.status() {
            StatusCode::NOT_MODIFIED => return Ok(Fetched::NotModified),
            StatusCode::OK => {}
            other => return Err(FetchError::Status(other.as_u16())),
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?
            .to_bytes();
        Ok(Fetched::Body { body, etag })
    }
}

/// The roster URL for `username`: `%s` replaced by the percent-encoded username
/// (Prosody's module inserts it raw, so `alice#x` fetched alice's roster).
pub fn url_for(template: &str, username: &str) -> String {
    let encoded =
        percent_encoding::utf8_percent_encode(username, percent_encoding::NON_ALPHANUMERIC);
    template.replacen("%s", &encoded.to_string(), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_is_percent_encoded() {
        assert_eq!(
            url_for("http://app/contacts/%s", "alice"),
            "http://app/contacts/alice"
        );
        assert_eq!(
            url_for("http://app/contacts/%s", "alice#x"),
            "http://app/contacts/alice%23x"
        );
        assert_eq!(
            url_for("http://app/c/%s?x=1", "a b/c"),
            "http://app/c/a%20b%2Fc?x=1"
        );
    }
}
