//! The audit middleware: every request to an audited route (each change,
//! each download, each reveal of keys, logins and logouts) becomes one
//! audit-log entry once its answer is known: who (the session's user, or
//! the email a login tried), what (the action of the route), which server
//! and object (the path's IDs), how it ended (the status), from where (the
//! client address) and the request ID. Refusals are entries too: a
//! subuser's forbidden restore is as telling as an allowed one.

use std::net::SocketAddr;

use api::AuditAction;
use api::routes::panel as route;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::extract::client_addr;
use crate::storage::AuditRecord;

/// Set on a response by a handler whose actor is not the session's user
/// (a login names the email it tried).
#[derive(Clone)]
pub struct AuditActor(pub String);

/// The audited routes: method and template (as the router matched it,
/// below `base_path`) → action. Reads that are not here are not audited;
/// `HEAD` is a `GET` (axum answers it with the `GET` handler, a download's
/// redirect included).
pub fn action_of(method: &Method, matched: &str) -> Option<AuditAction> {
    use AuditAction as A;
    let rel = matched.strip_prefix(route::PREFIX);
    let m = match method.as_str() {
        "HEAD" => "GET",
        other => other,
    };
    Some(match (m, rel, matched) {
        ("POST", _, route::LOGIN) => A::Login,
        ("POST", _, route::LOGOUT) => A::Logout,
        ("POST", Some(route::BACKUPS), _) => A::BackupCreate,
        ("POST", Some(route::RESTORE), _) => A::BackupRestore,
        ("GET", Some(route::DOWNLOAD), _) => A::BackupDownload,
        ("DELETE", Some(route::SNAPSHOT), _) => A::BackupDelete,
        ("POST", Some(route::LOCK), _) => A::BackupLock,
        ("POST", Some(route::UNLOCK), _) => A::BackupUnlock,
        ("PUT", Some(route::NOTE), _) => A::BackupNote,
        ("GET", Some(route::PTERO_DOWNLOAD), _) => A::PterodactylDownload,
        ("POST", Some(route::SCHEDULE), _) => A::ScheduleSave,
        ("POST", Some(route::SCHEDULE_RUN), _) => A::ScheduleRun,
        ("PUT", Some(route::PREFERENCES), _) => A::PreferencesSave,
        ("GET", Some(route::ADMIN_KEYS | route::ADMIN_ARCHIVES), _) => A::KeysReveal,
        ("POST", Some(route::ADMIN_KEY_REGENERATE), _) => A::KeyRegenerate,
        ("POST", Some(route::ADMIN_PRUNE), _) => A::RepositoryPrune,
        ("DELETE", Some(route::ADMIN_ARCHIVE), _) => A::ArchiveDelete,
        ("POST", Some(route::ADMIN_USERS), _) => A::UserCreate,
        ("PATCH", Some(route::ADMIN_USER), _) => A::UserUpdate,
        ("DELETE", Some(route::ADMIN_USER), _) => A::UserDelete,
        ("POST", Some(route::ADMIN_NODES), _) => A::NodeCreate,
        ("PATCH", Some(route::ADMIN_NODE), _) => A::NodeUpdate,
        ("DELETE", Some(route::ADMIN_NODE), _) => A::NodeDelete,
        ("POST", Some(route::ADMIN_SERVERS), _) => A::ServerCreate,
        ("PATCH", Some(route::ADMIN_SERVER), _) => A::ServerUpdate,
        ("DELETE", Some(route::ADMIN_SERVER), _) => A::ServerDelete,
        ("PUT", Some(route::ADMIN_SUBUSERS), _) => A::SubuserSet,
        ("DELETE", Some(route::ADMIN_SUBUSER), _) => A::SubuserRemove,
        ("POST", Some(route::ADMIN_SYNC), _) => A::PterodactylSync,
        ("POST", Some(route::ADMIN_NOTIFICATIONS), _) => A::NotificationCreate,
        ("DELETE", Some(route::ADMIN_NOTIFICATION), _) => A::NotificationDelete,
        ("POST", Some(route::ADMIN_NOTIFICATION_TEST), _) => A::NotificationTest,
        ("PUT", Some(route::SERVER_NOTIFICATIONS), _) => A::ServerNotificationSet,
        ("DELETE", Some(route::SERVER_NOTIFICATIONS), _) => A::ServerNotificationRemove,
        ("POST", Some(route::SERVER_NOTIFICATIONS_TEST), _) => A::ServerNotificationTest,
        _ => return None,
    })
}

/// The longest a value from a request is kept in an entry.
const MAX_FIELD: usize = 200;

fn clipped(s: &str) -> String {
    s.chars().take(MAX_FIELD).collect()
}

/// Middleware (outside `load_session`, which names the session's user on
/// the response): writes the entry of an audited request once its handler
/// answered. The handler and the write run on a task of their own, so a
/// client that hangs up mid-request does not leave a change unaudited.
pub async fn audit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    // Under `base_path` the router's match starts with it.
    let Some(action) = matched
        .as_deref()
        .map(|m| m.strip_prefix(&*state.base).unwrap_or(m))
        .and_then(|m| action_of(req.method(), m))
    else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &state)
        .await
        .ok();
    let (mut server, mut target) = (None, None);
    for (name, value) in params.iter().flat_map(|p| p.iter()) {
        if name == "server" {
            // As the server is known (lowercase), so filters find it; a
            // value that is no server ID stays as given, clipped.
            server = Some(
                api::ServerUuid::parse(value)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| clipped(value)),
            );
        } else if target.is_none() {
            target = Some(format!("{name}={}", clipped(value)));
        }
    }
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            client_addr(peer.ip(), &parts.headers, &state.trusted_proxies).to_string()
        });
    let request_id = parts
        .extensions
        .get::<httpd::RequestId>()
        .map(|id| id.0.clone());
    let req = Request::from_parts(parts, body);
    let panel = state.panel.clone();
    use tracing::Instrument;
    let task = tokio::spawn(
        async move {
            let res = next.run(req).await;
            let actor = res.extensions().get::<AuditActor>().map(|a| clipped(&a.0));
            let status = res.status().as_u16();
            // Not worth a row: an anonymous knock on an audited route, and
            // logins refused unchecked (rate limited: counted in the metrics
            // and logged), so nobody can fill the table from outside.
            let noise = (status == 401 && actor.is_none() && action != AuditAction::Login)
                || (status == 429 && action == AuditAction::Login);
            if !noise {
                panel
                    .audit(AuditRecord {
                        at: crate::service::now(),
                        action,
                        status,
                        actor,
                        server_uuid: server,
                        target,
                        client,
                        request_id,
                    })
                    .await;
            }
            res
        }
        // The request's span (and its request ID) goes with it.
        .in_current_span(),
    );
    match task.await {
        Ok(res) => res,
        // A panicking handler: the same JSON 500 as everywhere.
        Err(_) => axum::response::IntoResponse::into_response(crate::PanelError::Internal(
            "a handler panicked".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route that changes something is audited, and every audited
    /// route exists.
    #[test]
    fn every_change_is_audited() {
        let doc = api::openapi::panel();
        let ops = api::openapi::operations(&doc);
        for (method, path) in &ops {
            let method: Method = method.parse().unwrap();
            let audited = action_of(&method, path).is_some();
            if method != Method::GET {
                assert!(
                    audited,
                    "{method} {path} changes something and is not audited"
                );
            }
        }
        let audited_ops = ops
            .iter()
            .filter(|(m, p)| action_of(&m.parse().unwrap(), p).is_some())
            .count();
        // Each action but the operator's key export comes from one route
        // (keys.reveal from two).
        assert_eq!(audited_ops, AuditAction::ALL.len() - 1 + 1);
    }
}
