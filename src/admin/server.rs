//! HTTP/1.1 admin server: `/metrics`, `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// What the admin endpoints need to answer.
pub struct AdminState {
    pub metrics: Option<PrometheusHandle>,
    pub shared: Arc<crate::shared::Shared>,
}

/// Serves admin requests until the listener fails. At most
/// `limits.admin_max_connections` connections are served at once (more are closed at
/// once and counted), each must send its request head within
/// `limits.admin_header_timeout_ms`, and a connection lives at most
/// [`MAX_CONNECTION_LIFE`].
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let quotas = state.shared.config.current().limits.quotas.clone();
    let slots = Arc::new(Semaphore::new(quotas.admin_max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            crate::metrics::quota_exceeded("admin_max_connections");
            tracing::info!(%peer, "admin connection refused: too many open");
            drop(stream);
            continue;
        };
        let state = state.clone();
        let header_timeout = quotas.admin_header_timeout;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(MAX_CONNECTION_LIFE, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "admin connection ended with an error")
                }
                Err(_) => tracing::debug!(%peer, "admin connection closed: open too long"),
            }
            drop(slot);
        });
    }
}

/// No admin connection is kept longer than this, whatever it does (a refresh call is
/// bounded by the roster fetch timeout, far below).
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(300);

type Reply = Response<Full<Bytes>>;

async fn handle(req: Request<Incoming>, state: Arc<AdminState>) -> Result<Reply, Infallible> {
    let path = req.uri().path();
    if path == "/roster_admin/refresh" && req.method() == Method::POST
        || path.starts_with("/roster_admin/refresh/") && req.method() == Method::GET
    {
        return Ok(super::roster_admin::handle(req, state.shared.clone()).await);
    }
    let reply = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => metrics(&state),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => readiness(&state).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(reply)
}

fn metrics(state: &AdminState) -> Reply {
    match &state.metrics {
        Some(handle) => {
            let mut reply = Response::new(Full::new(Bytes::from(handle.render())));
            reply.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            reply
        }
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        ),
    }
}

async fn readiness(state: &AdminState) -> Reply {
    let upstream = state.shared.config.current().upstream.c2s.clone();
    let probe = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&upstream)).await;
    match probe {
        Ok(Ok(_)) => text(StatusCode::OK, "ready\n"),
        Ok(Err(error)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("upstream {upstream} unreachable: {error}\n"),
        ),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("upstream {upstream} did not accept within 2 s\n"),
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_owned())));
    *reply.status_mut() = status;
    reply
}
