//! `GET /extensions/resticbackups/admin/audit`: the audit log, newest first,
//! with filters (`server`, `actor`, `action`, `outcome`, `from`, `to`) and
//! cursor paging.

use api::panel::AuditList;
use axum::Json;
use axum::extract::{RawQuery, State};

use super::JsonResult;
use crate::PanelError;
use crate::service::audit::AuditQuery;
use crate::web::AppState;
use crate::web::extract::Admin;

pub async fn audit_log(
    State(state): State<AppState>,
    Admin(a): Admin,
    RawQuery(raw): RawQuery,
) -> JsonResult<AuditList> {
    let query: AuditQuery =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).map_err(|e| {
            PanelError::bad_request("invalid_query", format!("the query could not be read: {e}"))
        })?;
    Ok(Json(state.panel.audit_log(&a, &query).await?))
}
