//! The closed sets of words the panel stores and its API speaks:
//! permissions, schedule interval units, and the status and origin of a run
//! in the job history. Each is an enum with one spelling per variant, used
//! in the database, on the wire and in messages alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A word outside one of the sets below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {found:?}; known: {known}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub found: String,
    pub known: String,
}

macro_rules! words {
    ($(#[$doc:meta])* $name:ident ($what:literal) { $($(#[$vdoc:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling of this word.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        found: s.chars().take(64).collect(),
                        known: [$($word),+].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($word),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

words! {
    /// What a subuser may do to a server's backups (Pterodactyl's
    /// `backup.*` permission names).
    Permission ("permission") {
        /// List, stats, schedule read, job status.
        BackupRead => "backup.read",
        /// Create a backup, write the schedule.
        BackupCreate => "backup.create",
        BackupDownload => "backup.download",
        BackupRestore => "backup.restore",
        /// Delete, lock, unlock.
        BackupDelete => "backup.delete",
    }
}

words! {
    /// The unit of a schedule's interval.
    IntervalUnit ("interval unit") {
        Minutes => "minutes",
        Hours => "hours",
        Days => "days",
    }
}

/// A new schedule runs every 24 hours.
impl Default for IntervalUnit {
    fn default() -> Self {
        IntervalUnit::Hours
    }
}

words! {
    /// How a schedule repeats: every interval, or at a time of day (every
    /// day, or on chosen weekdays) in a time zone.
    Repeat ("repeat") {
        Interval => "interval",
        Daily => "daily",
        Weekly => "weekly",
    }
}

/// Schedules saved before daily/weekly existed run at an interval.
impl Default for Repeat {
    fn default() -> Self {
        Repeat::Interval
    }
}

words! {
    /// A day of the week, Monday first (ISO 8601).
    Weekday ("weekday") {
        Monday => "mon",
        Tuesday => "tue",
        Wednesday => "wed",
        Thursday => "thu",
        Friday => "fri",
        Saturday => "sat",
        Sunday => "sun",
    }
}

words! {
    /// What an agent job does.
    JobKind ("job kind") {
        Backup => "backup",
        Restore => "restore",
        Archive => "archive",
        Prune => "prune",
    }
}

words! {
    /// Where a run in the job history and a schedule's last result stand.
    RunStatus ("run status") {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

words! {
    /// Who started a run in the job history.
    RunOrigin ("run origin") {
        /// The panel's scheduler.
        Schedule => "schedule",
        /// A person, through the API or the page.
        Manual => "manual",
        /// Carried over from the PHP extension's job history.
        Imported => "imported",
    }
}

words! {
    /// What a panel task (answered 202, then carried on) does.
    TaskKind ("task kind") {
        /// Archive the server's repository on its node, then delete it.
        ServerDeletion => "server_deletion",
    }
}

words! {
    /// What an entry of the panel's audit log records.
    AuditAction ("audit action") {
        Login => "login",
        Logout => "logout",
        BackupCreate => "backup.create",
        BackupRestore => "backup.restore",
        BackupDownload => "backup.download",
        BackupDelete => "backup.delete",
        BackupLock => "backup.lock",
        BackupUnlock => "backup.unlock",
        BackupNote => "backup.note",
        /// A download of one of Pterodactyl's own backups.
        PterodactylDownload => "pterodactyl.download",
        ScheduleSave => "schedule.save",
        ScheduleRun => "schedule.run",
        PreferencesSave => "preferences.save",
        /// Repository keys shown (the keys page, archived repositories).
        KeysReveal => "keys.reveal",
        KeyRegenerate => "key.regenerate",
        RepositoryPrune => "repository.prune",
        /// Every key printed by the operator's `key export`.
        KeysExport => "keys.export",
        NotificationCreate => "notification.create",
        NotificationDelete => "notification.delete",
        NotificationTest => "notification.test",
        /// A server owner's own webhook set, removed or tested.
        ServerNotificationSet => "server_notification.set",
        ServerNotificationRemove => "server_notification.remove",
        ServerNotificationTest => "server_notification.test",
        ArchiveDelete => "archive.delete",
        UserCreate => "user.create",
        UserUpdate => "user.update",
        UserDelete => "user.delete",
        NodeCreate => "node.create",
        NodeUpdate => "node.update",
        NodeDelete => "node.delete",
        ServerCreate => "server.create",
        ServerUpdate => "server.update",
        ServerDelete => "server.delete",
        SubuserSet => "subuser.set",
        SubuserRemove => "subuser.remove",
        PterodactylSync => "pterodactyl.sync",
    }
}

words! {
    /// What a notification is about.
    NotifyEvent ("notification event") {
        /// A scheduled backup failed.
        BackupFailed => "backup_failed",
        /// A server with a schedule has had no successful backup for the
        /// channel's `missing_hours`.
        BackupMissing => "backup_missing",
        /// An admin gave a server's repository a new key.
        KeyRotated => "key_rotated",
        /// Someone started a restore of a server.
        Restored => "restored",
        /// The "send test" button.
        Test => "test",
    }
}

words! {
    /// Where a notification channel sends.
    ChannelKind ("channel kind") {
        /// A JSON POST to any URL.
        Webhook => "webhook",
        /// A Discord webhook URL.
        Discord => "discord",
        /// A Slack incoming webhook URL.
        Slack => "slack",
        /// E-mail through the panel's `[smtp]` settings.
        Email => "email",
    }
}

words! {
    /// How an audited request ended, by its status: `ok` (2xx/3xx),
    /// `denied` (401/403: not signed in, not allowed, CSRF), `limited`
    /// (429), `refused` (any other 4xx: bad input, not found, conflict),
    /// `failed` (5xx).
    AuditOutcome ("audit outcome") {
        Ok => "ok",
        Denied => "denied",
        Limited => "limited",
        Refused => "refused",
        Failed => "failed",
    }
}

impl AuditOutcome {
    /// The outcome of an answer with `status`.
    pub fn of(status: u16) -> Self {
        match status {
            401 | 403 => AuditOutcome::Denied,
            429 => AuditOutcome::Limited,
            400..=499 => AuditOutcome::Refused,
            500.. => AuditOutcome::Failed,
            _ => AuditOutcome::Ok,
        }
    }

    /// The statuses that read as this outcome, as an inclusive range and
    /// the ones inside it that do not (for queries).
    pub fn statuses(self) -> (u16, u16, &'static [u16]) {
        match self {
            AuditOutcome::Ok => (100, 399, &[]),
            AuditOutcome::Denied => (401, 403, &[402]),
            AuditOutcome::Limited => (429, 429, &[]),
            AuditOutcome::Refused => (400, 499, &[401, 403, 429]),
            AuditOutcome::Failed => (500, 599, &[]),
        }
    }
}

/// Permissions as the panel stores them: one space-separated string.
/// Words this build does not know (a newer build's) are left out.
pub fn parse_permissions(stored: &str) -> Vec<Permission> {
    let mut out: Vec<Permission> = stored
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The stored form of `perms` (see [`parse_permissions`]).
pub fn join_permissions(perms: &[Permission]) -> String {
    perms
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_word_round_trips_through_text_and_json() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), *p);
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Permission>(&json).unwrap(), *p);
        }
        for u in Repeat::ALL {
            assert_eq!(u.to_string().parse::<Repeat>().unwrap(), *u);
        }
        for u in Weekday::ALL {
            assert_eq!(u.to_string().parse::<Weekday>().unwrap(), *u);
        }
        for u in IntervalUnit::ALL {
            assert_eq!(u.to_string().parse::<IntervalUnit>().unwrap(), *u);
        }
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), *s);
        }
        for o in RunOrigin::ALL {
            assert_eq!(o.as_str().parse::<RunOrigin>().unwrap(), *o);
        }
        for a in AuditAction::ALL {
            assert_eq!(a.as_str().parse::<AuditAction>().unwrap(), *a);
        }
    }

    #[test]
    fn audit_outcomes_cover_every_status_once() {
        for status in 100..=599u16 {
            let outcome = AuditOutcome::of(status);
            let matching: Vec<_> = AuditOutcome::ALL
                .iter()
                .filter(|o| {
                    let (lo, hi, except) = o.statuses();
                    (lo..=hi).contains(&status) && !except.contains(&status)
                })
                .collect();
            assert_eq!(matching, vec![&outcome], "status {status}");
        }
    }

    #[test]
    fn an_unknown_word_names_the_known_ones_and_is_cut_short() {
        let e = "backup.everything".parse::<Permission>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown permission \"backup.everything\"; known: backup.read, backup.create, \
             backup.download, backup.restore, backup.delete"
        );
        let long = "x".repeat(10_000);
        let e = long.parse::<IntervalUnit>().unwrap_err();
        assert_eq!(e.found.len(), 64);
        assert!(serde_json::from_str::<RunStatus>("\"Running\"").is_err());
        assert!(serde_json::from_str::<RunOrigin>("3").is_err());
    }

    #[test]
    fn stored_permissions_skip_unknown_words_and_repeats() {
        let perms = parse_permissions("backup.delete  backup.read backup.future backup.read");
        assert_eq!(perms, [Permission::BackupRead, Permission::BackupDelete]);
        assert_eq!(join_permissions(&perms), "backup.read backup.delete");
        assert!(parse_permissions("").is_empty());
    }
}
