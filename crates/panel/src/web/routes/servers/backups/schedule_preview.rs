//! `GET /extensions/resticbackups/servers/{server}/backups/restic/schedule/preview?keep_last=&keep_daily=&keep_weekly=&keep_monthly=&keep_yearly=&keep_within=`
//! → [`RetentionPreview`]: which backups these rules would remove now, so
//! the page can say it before they are saved (`backup.read`; nothing is
//! removed).

use api::agent::RetentionPreview;
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::permissions::Read;
use crate::service::check_retention;
use crate::web::AppState;
use crate::web::extract::{Permit, QueryMap};

const KEEPS: [&str; 5] = [
    "keep_last",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
];

pub async fn schedule_preview(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    QueryMap(query): QueryMap,
) -> Result<Json<RetentionPreview>, PanelError> {
    if query
        .keys()
        .any(|k| !KEEPS.contains(&k.as_str()) && k.as_str() != "keep_within")
    {
        return Err(PanelError::bad_request(
            "invalid_query",
            "only keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly and keep_within are read",
        ));
    }
    let mut keeps = [None; 5];
    for (slot, name) in keeps.iter_mut().zip(KEEPS) {
        *slot = match query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => None,
            Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
                PanelError::bad_request(
                    "invalid_retention",
                    format!("{name} must be a whole number from 0 to 100000"),
                )
            })?),
        };
    }
    let policy = check_retention(keeps, query.get("keep_within").map(String::as_str))?;
    Ok(Json(state.panel.preview_retention(&p, &policy).await?))
}
