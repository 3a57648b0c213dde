//! The web app's refresh endpoints on the admin listener (checklist 72–76):
//! `POST /roster_admin/refresh` (JSON array of usernames) and
//! `GET /roster_admin/refresh/USERNAME`, both requiring `Authorization: Bearer TOKEN`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use subtle::ConstantTimeEq;

use crate::config::RosterAdmin;
use crate::jid::Domain;
use crate::roster::refresh::{refresh, Report};
use crate::shared::Shared;

const MAX_BODY: usize = 1 << 20;

type Reply = Response<Full<Bytes>>;

/// Handles both refresh endpoints.
pub async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Reply {
    let single = req
        .uri()
        .path()
        .strip_prefix("/roster_admin/refresh/")
        .map(|user| {
            percent_encoding::percent_decode_str(user)
                .decode_utf8_lossy()
                .into_owned()
        });
    let Some((domain, admin)) = host(&req, &shared) else {
        return json(
            StatusCode::NOT_FOUND,
            &message("error", "no such roster-admin host (use ?host=DOMAIN)"),
        );
    };
    if !authorized(&req, &admin) {
        return json(
            StatusCode::UNAUTHORIZED,
            &message("error", "missing or wrong bearer token"),
        );
    }
    let users = match single {
        Some(user) if !user.is_empty() => vec![user],
        Some(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                &message("error", "no username in the path"),
            )
        }
        None => match body_users(req).await {
            Ok(users) => users,
            Err(why) => return json(StatusCode::BAD_REQUEST, &message("error", &why)),
        },
    };
    let refreshed = refresh(shared.roster.clone(), domain, admin, users).await;
    for (user, query) in refreshed.changes {
        shared.privilege.roster_changed(&user, query);
    }
    json(
        StatusCode::OK,
        &serde_json::to_value(&refreshed.report).unwrap_or_default(),
    )
}

/// The roster-admin host the request is for: `?host=`, else the `Host` header, else
/// the only roster-admin host.
fn host(req: &Request<Incoming>, shared: &Shared) -> Option<(String, RosterAdmin)> {
    let cfg = shared.config.current();
    let managed: Vec<(&String, &RosterAdmin)> = cfg
        .hosts
        .iter()
        .filter_map(|(d, h)| h.roster_admin.as_ref().map(|a| (d, a)))
        .collect();
    let asked = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("host=")))
        .and_then(|h| Domain::parse(h).ok())
        .map(|h| h.as_str().to_owned())
        .or_else(|| {
            let header = req.headers().get(hyper::header::HOST)?.to_str().ok()?;
            let host = header.rsplit_once(':').map_or(header, |(h, _)| h);
            let name = Domain::parse(host).ok()?.as_str().to_owned();
            managed.iter().any(|(d, _)| **d == name).then_some(name)
        });
    let found = match asked {
        Some(name) => managed.iter().find(|(d, _)| **d == name),
        None if managed.len() == 1 => managed.first(),
        None => None,
    };
    found.map(|(domain, admin)| ((*domain).clone(), (*admin).clone()))
}

fn authorized(req: &Request<Incoming>, admin: &RosterAdmin) -> bool {
    let Some(given) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let expected = admin.refresh_token.expose().as_bytes();
    // Constant time (`subtle`): the answer's timing reveals nothing about the token.
    bool::from(given.trim().as_bytes().ct_eq(expected))
}

async fn body_users(req: Request<Incoming>) -> Result<Vec<String>, String> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let serde_json::Value::Array(list) = value else {
        return Err("the body must be a JSON array of usernames".into());
    };
    list.into_iter()
        .map(|v| match v {
            serde_json::Value::String(user) if !user.is_empty() => Ok(user),
            _ => Err("every entry must be a non-empty username string".to_owned()),
        })
        .collect()
}

fn message(status: &'static str, text: &str) -> serde_json::Value {
    serde_json::to_value(Report {
        status,
        message: text.to_owned(),
        updated: 0,
        errors: 0,
    })
    .unwrap_or_default()
}

fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(value.to_string())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    reply
}
