//! Pterodactyl's own backups of a server, shown beside ours when a user
//! turns the switch on: read through Pterodactyl's Client API with the
//! visitor's own credential (their session cookie or client key), so
//! Pterodactyl applies its own permissions too.

use api::panel::{Preferences, PteroBackupView};

use super::{ClientIdentity, PteroError, SignedUrl};
use crate::Panel;
use crate::PanelError;
use crate::error::Missing;
use crate::permissions::{Authorized, Download, Read};
use crate::storage::User;

fn mapped(e: PteroError) -> PanelError {
    match e {
        PteroError::Status { status: 404, .. } => PanelError::NotFound(Missing::Backup),
        PteroError::Unauthorized { .. } => {
            PanelError::ForbiddenBecause("Pterodactyl did not accept your sign-in for this")
        }
        other => {
            tracing::warn!(error = %other, "Pterodactyl's backups not read");
            PanelError::PterodactylUnavailable
        }
    }
}

impl Panel {
    fn ptero_client(&self) -> Result<&super::ClientApi, PanelError> {
        Ok(&self
            .pterodactyl()
            .ok_or(PanelError::NotFound(Missing::PterodactylMode))?
            .client)
    }

    /// Pterodactyl's backups of the server, newest first.
    pub async fn pterodactyl_backups(
        &self,
        auth: &Authorized<Read>,
        who: &ClientIdentity,
    ) -> Result<Vec<PteroBackupView>, PanelError> {
        let client = self.ptero_client()?;
        let mut list = client
            .server_backups(who, &auth.server().uuid)
            .await
            .map_err(mapped)?;
        list.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(list
            .into_iter()
            .map(|b| PteroBackupView {
                uuid: b.uuid,
                name: b.name,
                bytes: b.bytes,
                created_at: b.created_at,
                completed_at: b.completed_at,
                is_successful: b.is_successful,
                is_locked: b.is_locked,
            })
            .collect())
    }

    /// Pterodactyl's signed download link of one of its backups.
    pub async fn pterodactyl_backup_link(
        &self,
        auth: &Authorized<Download>,
        who: &ClientIdentity,
        backup: &str,
    ) -> Result<SignedUrl, PanelError> {
        let client = self.ptero_client()?;
        client
            .backup_download_url(who, &auth.server().uuid, backup)
            .await
            .map_err(|e| match e {
                PteroError::Invalid { .. } => PanelError::NotFound(Missing::Backup),
                other => mapped(other),
            })
    }

    pub async fn preferences(&self, user: &User) -> Result<Preferences, PanelError> {
        self.ptero_client()?;
        Ok(Preferences {
            show_pterodactyl_backups: user.show_ptero_backups,
        })
    }

    pub async fn set_preferences(
        &self,
        user: &User,
        p: Preferences,
    ) -> Result<Preferences, PanelError> {
        self.ptero_client()?;
        self.storage()
            .set_show_ptero_backups(user.id, p.show_pterodactyl_backups)
            .await?;
        Ok(p)
    }
}
