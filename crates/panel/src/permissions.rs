//! Who may do what to a server's backups, decided in one place. The answer
//! is a capability: [`Authorized<A>`] can only be made here, so code that
//! needs, say, `Authorized<Delete>` can not be called without the check
//! having passed for exactly that action.
//!
//! Owners and root admins may do everything; subusers need the Pterodactyl
//! permission of the action; anyone else is told the server does not exist.

use std::marker::PhantomData;

use api::{Permission, ServerUuid};
use thiserror::Error;

use crate::storage::{Server, Storage, StorageError, User};

/// One kind of action on a server's backups.
pub trait Action {
    /// The subuser permission it needs.
    const PERMISSION: Permission;
}

macro_rules! actions {
    ($($(#[$doc:meta])* $name:ident => $perm:expr),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl Action for $name {
            const PERMISSION: Permission = $perm;
        }
    )*};
}

actions! {
    /// List, stats, schedule read, job status.
    Read => Permission::BackupRead,
    /// Create a backup, write the schedule.
    Create => Permission::BackupCreate,
    Download => Permission::BackupDownload,
    Restore => Permission::BackupRestore,
    /// Delete, lock, unlock.
    Delete => Permission::BackupDelete,
}

#[derive(Debug, Error)]
pub enum Denied {
    /// Unknown server, or one the user can not see: the same answer, so
    /// existence is not revealed.
    #[error("no such server")]
    NotFound,
    /// A subuser of the server without the needed permission.
    #[error("you do not have permission to do this")]
    Forbidden,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Proof that `user` may perform `A` on `server`.
#[derive(Debug)]
pub struct Authorized<A: Action> {
    server: Server,
    user: User,
    _action: PhantomData<A>,
}

impl<A: Action> Authorized<A> {
    pub fn server(&self) -> &Server {
        &self.server
    }

    pub fn user(&self) -> &User {
        &self.user
    }

    /// The same user's right to `B` on the same server, checked now (an
    /// operation that turns out to need more than its route asked for, such
    /// as saving retention rules that can forget snapshots).
    pub async fn also<B: Action>(&self, storage: &Storage) -> Result<Authorized<B>, Denied> {
        if !may(storage, &self.user, &self.server, B::PERMISSION).await? {
            return Err(Denied::Forbidden);
        }
        Ok(Authorized {
            server: self.server.clone(),
            user: self.user.clone(),
            _action: PhantomData,
        })
    }
}

/// Whether `user`, who can see `server`, holds `permission` on it.
async fn may(
    storage: &Storage,
    user: &User,
    server: &Server,
    permission: Permission,
) -> Result<bool, Denied> {
    if user.root_admin || server.owner_id == user.id {
        return Ok(true);
    }
    match storage.subuser_permissions(server.id, user.id).await? {
        None => Err(Denied::NotFound),
        Some(perms) => Ok(perms.contains(&permission)),
    }
}

/// Checks that `user` may perform `A` on the server with `uuid`.
pub async fn authorize<A: Action>(
    storage: &Storage,
    user: &User,
    uuid: &ServerUuid,
) -> Result<Authorized<A>, Denied> {
    let server = storage
        .server_by_uuid(uuid)
        .await?
        .ok_or(Denied::NotFound)?;
    if !may(storage, user, &server, A::PERMISSION).await? {
        return Err(Denied::Forbidden);
    }
    Ok(Authorized {
        server,
        user: user.clone(),
        _action: PhantomData,
    })
}

/// Proof that a user is a root admin (the admin API takes one).
#[derive(Debug)]
pub struct RootAdmin {
    user: User,
}

impl RootAdmin {
    pub fn user(&self) -> &User {
        &self.user
    }
}

/// Proof that the caller is the host's operator: a process started at the
/// host's shell with the panel's settings and secret key (the admin
/// commands, `demo`). The web layer never makes one (a test checks it); it
/// yields the operator's [`crate::admin::Admin`] through
/// [`crate::Panel::operator`] or [`crate::open_operator`].
#[derive(Debug)]
pub struct Operator {
    _private: (),
}

impl Operator {
    /// Claims the operator's authority. Only for code that runs at the
    /// host's shell: having the settings and the secret key is the proof.
    pub fn at_the_host_shell() -> Self {
        Self { _private: () }
    }
}

/// Checks that `user` is a root admin.
pub fn require_root_admin(user: &User) -> Result<RootAdmin, Denied> {
    if user.root_admin {
        Ok(RootAdmin { user: user.clone() })
    } else {
        Err(Denied::Forbidden)
    }
}

/// Which actions a user has on a server, for showing only the buttons they
/// may use. `None` if they can not see the server.
pub async fn allowed_permissions(
    storage: &Storage,
    user: &User,
    server: &Server,
) -> Result<Option<Vec<Permission>>, StorageError> {
    if user.root_admin || server.owner_id == user.id {
        return Ok(Some(Permission::ALL.to_vec()));
    }
    storage.subuser_permissions(server.id, user.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn owners_admins_subusers_and_strangers_get_what_they_should() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
            .await
            .unwrap();
        let owner = db.create_user("o@x", "h", false, 0).await.unwrap();
        let admin = db.create_user("a@x", "h", true, 0).await.unwrap();
        let sub = db.create_user("s@x", "h", false, 0).await.unwrap();
        let stranger = db.create_user("x@x", "h", false, 0).await.unwrap();
        let server = crate::storage::test_server(&db, &owner, 0).await;
        let uuid = server.uuid.clone();
        db.set_subuser(server.id, sub.id, &[Permission::BackupRead])
            .await
            .unwrap();

        assert!(authorize::<Delete>(&db, &owner, &uuid).await.is_ok());
        assert!(authorize::<Restore>(&db, &admin, &uuid).await.is_ok());
        assert_eq!(
            authorize::<Read>(&db, &sub, &uuid)
                .await
                .unwrap()
                .server()
                .id,
            server.id
        );
        assert!(matches!(
            authorize::<Create>(&db, &sub, &uuid).await,
            Err(Denied::Forbidden)
        ));
        assert!(matches!(
            authorize::<Read>(&db, &stranger, &uuid).await,
            Err(Denied::NotFound)
        ));
        let ghost = ServerUuid::parse("00000000-0000-0000-0000-000000000000").unwrap();
        assert!(matches!(
            authorize::<Read>(&db, &admin, &ghost).await,
            Err(Denied::NotFound)
        ));

        assert_eq!(
            allowed_permissions(&db, &sub, &server).await.unwrap(),
            Some(vec![Permission::BackupRead])
        );
        assert_eq!(
            allowed_permissions(&db, &owner, &server)
                .await
                .unwrap()
                .unwrap()
                .len(),
            5
        );
        assert_eq!(
            allowed_permissions(&db, &stranger, &server).await.unwrap(),
            None
        );
    }
}
