//! `GET /healthz` and `GET /readyz` answers, the same on panel and agent.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"status":"ok"}` (alive), `{"status":"ready"}`, or
/// `{"status":"not_ready","failing":["database"]}` (names of the failing
/// checks only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
}

impl Health {
    pub fn alive() -> Self {
        Self {
            status: "ok".into(),
            failing: Vec::new(),
        }
    }

    /// Ready when nothing fails.
    pub fn readiness(failing: &[&str]) -> Self {
        Self {
            status: if failing.is_empty() {
                "ready"
            } else {
                "not_ready"
            }
            .into(),
            failing: failing.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}
