//! Notifications: admin-configured channels (a generic JSON webhook,
//! Discord, Slack, e-mail through `[smtp]`) told when a scheduled backup
//! fails, when a server with a schedule has had no successful backup for a
//! while, when a key is rotated and when a restore starts.
//!
//! Every message goes through the outbox table first, so a receiver that is
//! down, or a panel restart, loses nothing: a delivery worker sends what is
//! due, and a failed attempt is tried again after `notify_retry`, then 4×
//! longer each time (at most 6 h), 6 attempts in all. Several panels on one
//! database share the outbox (each message is leased by one). A channel's
//! target (a webhook URL holds its secret in its path) is sealed like the
//! repository keys and never shown again, nor logged.

use std::time::Duration;

use api::panel::{
    ChannelTested, ChannelView, NewChannelRequest, ServerChannel, ServerChannelRequest,
};
use api::{ChannelKind, JobId, NotifyEvent, Secret, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Panel, now};
use crate::PanelError;
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::permissions::{Authorized, Read, RootAdmin};
use crate::storage::{ChannelRow, Server, User};

/// Attempts per message before it is given up.
const MAX_ATTEMPTS: u32 = 6;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// Messages one delivery round looks at.
const BATCH: i64 = 50;
/// A message being sent is someone else's for this long.
const LEASE_SECS: i64 = 120;
/// An owner's test message, at most this often per server.
const TEST_EVERY: Duration = Duration::from_secs(30);
/// Discord refuses longer `content`.
const DISCORD_MAX: usize = 2000;

/// How notifications leave: the mail relay and the retry pace.
#[derive(Clone)]
pub struct NotifySettings {
    pub smtp: Option<SmtpConfig>,
    pub retry: Duration,
    /// The hosts a server owner's own webhook may point at.
    pub owner_webhook_hosts: Vec<String>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            smtp: None,
            retry: Duration::from_secs(60),
            owner_webhook_hosts: crate::config::DEFAULT_OWNER_WEBHOOK_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
        }
    }
}

/// The server a message is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerRef {
    pub uuid: String,
    pub name: String,
}

/// One message, as queued and as the generic webhook receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub event: NotifyEvent,
    /// `Backup failed`, `No backup for 26 hours`, …
    pub title: String,
    /// One or two sentences saying what happened.
    pub text: String,
    pub server: Option<ServerRef>,
    pub at: Timestamp,
    /// Event-specific figures (error code, snapshot, who).
    pub details: serde_json::Value,
}

impl Message {
    fn headline(&self) -> String {
        match &self.server {
            Some(s) => format!("{} · {}", self.title, s.name),
            None => self.title.clone(),
        }
    }

    /// Discord's webhook body: plain text, no mentions.
    fn discord(&self) -> serde_json::Value {
        let mut content = format!(
            "**{}**\n{}",
            escape_discord(&self.headline()),
            escape_discord(&self.text)
        );
        if let Some(s) = &self.server {
            content.push_str(&format!("\nServer: `{}`", s.uuid));
        }
        if content.chars().count() > DISCORD_MAX {
            content = content.chars().take(DISCORD_MAX - 1).collect::<String>() + "…";
        }
        serde_json::json!({
            "username": "Restic Backups",
            "content": content,
            "allowed_mentions": {"parse": []},
        })
    }

    /// Slack's incoming-webhook body.
    fn slack(&self) -> serde_json::Value {
        let mut text = format!(
            "*{}*\n{}",
            escape_slack(&self.headline()),
            escape_slack(&self.text)
        );
        if let Some(s) = &self.server {
            text.push_str(&format!("\nServer: `{}`", s.uuid));
        }
        serde_json::json!({ "text": text })
    }

    /// The e-mail's subject and plain-text body.
    fn email(&self) -> (String, String) {
        let subject = format!("[Restic Backups] {}", self.headline());
        let mut body = format!("{}\n\n", self.text);
        if let Some(s) = &self.server {
            body.push_str(&format!("Server: {} ({})\n", s.name, s.uuid));
        }
        body.push_str(&format!("When: {}\n", self.at));
        if let Some(details) = self.details.as_object() {
            for (k, v) in details {
                let v = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                body.push_str(&format!("{k}: {v}\n"));
            }
        }
        body.push_str("\n-- \nRestic Backups\n");
        (subject, body)
    }
}

/// Discord formats `*_~`|>#` and links; the text is shown as written.
fn escape_discord(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\*_~`|>#[]()<".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Slack's three control characters.
fn escape_slack(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The sealing context of a channel's target.
fn context(id: &str) -> String {
    format!("notification:{id}")
}

fn bad(code: &'static str, message: impl Into<String>) -> PanelError {
    PanelError::bad_request(code, message)
}

/// What may be shown of a webhook URL: scheme, host and port.
fn shown_url(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

/// A webhook target: http(s), no credentials; plain http only to this
/// machine (a URL carries its secret in its path).
fn check_url(raw: &str) -> Result<url::Url, PanelError> {
    let url = url::Url::parse(raw.trim()).map_err(|_| {
        bad(
            "invalid_target",
            "the target must be a webhook URL such as https://discord.com/api/webhooks/…",
        )
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(bad(
                "invalid_target",
                "the webhook URL must be https (plain http only to this machine)",
            ));
        }
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "invalid_target",
            "the webhook URL needs a host and no user or password",
        ));
    }
    if raw.len() > 2048 {
        return Err(bad(
            "invalid_target",
            "the webhook URL is longer than 2048 characters",
        ));
    }
    Ok(url)
}

/// Who `user` is to the server's owner, in a sentence.
fn role(server: &Server, user: &User) -> &'static str {
    if user.id == server.owner_id {
        "The owner"
    } else if user.root_admin {
        "An administrator"
    } else {
        "A subuser"
    }
}

/// A channel's events (none given: all but `test`) and `missing_hours`
/// (1–720, default 26), checked.
fn events_and_hours(
    words: Option<Vec<String>>,
    hours: Option<u32>,
) -> Result<(Vec<NotifyEvent>, u32), PanelError> {
    let events = match words {
        None => NotifyEvent::ALL
            .iter()
            .copied()
            .filter(|e| *e != NotifyEvent::Test)
            .collect(),
        Some(words) => {
            let mut events = Vec::new();
            for w in words {
                let e: NotifyEvent = w
                    .parse()
                    .map_err(|e: api::UnknownWord| bad("invalid_event", e.to_string()))?;
                if e == NotifyEvent::Test {
                    return Err(bad(
                        "invalid_event",
                        "`test` is sent by the test button only",
                    ));
                }
                if !events.contains(&e) {
                    events.push(e);
                }
            }
            if events.is_empty() {
                return Err(bad("invalid_event", "a channel needs at least one event"));
            }
            events
        }
    };
    let missing_hours = hours.unwrap_or(26);
    if !(1..=720).contains(&missing_hours) {
        return Err(bad(
            "invalid_missing_hours",
            "missing_hours must be from 1 to 720",
        ));
    }
    Ok((events, missing_hours))
}

fn new_channel_id() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the system random number generator failed");
    JobId::from_bytes(b).to_string()
}

/// A failed attempt: why, and whether trying again can help.
struct Failed {
    error: String,
    permanent: bool,
}

impl Failed {
    fn again(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            permanent: false,
        }
    }

    fn permanent(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            permanent: true,
        }
    }
}

/// When the attempt after `attempts` failed ones is due (`None`: give up).
fn retry_after(retry: Duration, attempts: u32) -> Option<Duration> {
    if attempts + 1 >= MAX_ATTEMPTS {
        return None;
    }
    let factor = 4u32.saturating_pow(attempts);
    Some(retry.saturating_mul(factor).min(MAX_BACKOFF))
}

impl Panel {
    fn channel_view(c: ChannelRow) -> ChannelView {
        ChannelView {
            id: JobId::parse(&c.id).unwrap_or_else(|_| JobId::from_bytes([0; 16])),
            name: c.name,
            kind: c.kind,
            target: c.target_shown,
            events: c.events,
            missing_hours: c.missing_hours,
            created_at: Timestamp::from_unix(c.created_at).unwrap_or_else(Timestamp::now),
            last_error: c.last_error,
        }
    }

    /// `GET .../admin/notifications`.
    pub async fn channels(&self, _: &RootAdmin) -> Result<Vec<ChannelView>, PanelError> {
        Ok(self
            .storage()
            .channels()
            .await?
            .into_iter()
            .map(Self::channel_view)
            .collect())
    }

    /// `POST .../admin/notifications`.
    pub async fn add_channel(
        &self,
        _: &RootAdmin,
        req: NewChannelRequest,
    ) -> Result<ChannelView, PanelError> {
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(bad(
                "invalid_name",
                "the name must be 1 to 64 printable characters",
            ));
        }
        let kind: ChannelKind = req
            .kind
            .parse()
            .map_err(|e: api::UnknownWord| bad("invalid_kind", e.to_string()))?;
        let (target, shown) = match kind {
            ChannelKind::Email => {
                if self.inner.notify.smtp.is_none() {
                    return Err(bad(
                        "smtp_not_configured",
                        "e-mail channels need the panel's [smtp] settings",
                    ));
                }
                let address: lettre::Address =
                    req.target.trim().parse().map_err(|_| {
                        bad("invalid_target", "the target must be an e-mail address")
                    })?;
                (address.to_string(), address.to_string())
            }
            _ => {
                let url = check_url(&req.target)?;
                (url.to_string(), shown_url(&url))
            }
        };
        let (events, missing_hours) = events_and_hours(req.events, req.missing_hours)?;
        let id = new_channel_id();
        let secret = Secret::new(target).map_err(|e| bad("invalid_target", e.to_string()))?;
        let row = ChannelRow {
            target_enc: self.admin().seal_with(&secret, &context(&id)),
            id,
            name,
            kind,
            target_shown: shown,
            events,
            missing_hours,
            created_at: now(),
            last_error: None,
            server_uuid: None,
            owner_id: None,
        };
        self.storage().add_channel(&row).await?;
        tracing::info!(channel = %row.name, kind = row.kind.as_str(), "notification channel added");
        Ok(Self::channel_view(row))
    }

    /// Only the server's owner (or a root admin) sets its own channel;
    /// subusers get 403.
    fn owner_of(auth: &Authorized<Read>) -> Result<(), PanelError> {
        if auth.user().root_admin || auth.server().owner_id == auth.user().id {
            Ok(())
        } else {
            Err(PanelError::ForbiddenBecause(
                "only the server's owner sets its notifications",
            ))
        }
    }

    /// `GET …/backups/restic/notifications`: the owner's own Discord webhook.
    pub async fn server_channel(
        &self,
        auth: &Authorized<Read>,
    ) -> Result<ServerChannel, PanelError> {
        Self::owner_of(auth)?;
        Ok(ServerChannel {
            channel: self
                .storage()
                .server_channel(auth.server().uuid.as_str())
                .await?
                .map(Self::channel_view),
        })
    }

    /// `PUT …/backups/restic/notifications`: sets (or replaces) the owner's
    /// Discord webhook; it must point at one of `owner_webhook_hosts`.
    pub async fn set_server_channel(
        &self,
        auth: &Authorized<Read>,
        req: ServerChannelRequest,
    ) -> Result<ServerChannel, PanelError> {
        Self::owner_of(auth)?;
        let url = check_url(&req.url)?;
        let host = url.host_str().unwrap_or("");
        // Owners' hooks go to the listed hosts on their https port only (a
        // loopback host listed for tests may use plain http and a port).
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        if !loopback && (url.scheme() != "https" || url.port().is_some()) {
            return Err(bad(
                "invalid_target",
                "the webhook must be an https URL without a port",
            ));
        }
        let allowed = &self.inner.notify.owner_webhook_hosts;
        if !allowed.iter().any(|h| h.eq_ignore_ascii_case(host))
            || !url.path().starts_with("/api/webhooks/")
        {
            return Err(bad(
                "invalid_target",
                format!(
                    "the webhook must be a Discord webhook URL (https://{}/api/webhooks/…)",
                    allowed.first().map_or("discord.com", String::as_str)
                ),
            ));
        }
        let (events, missing_hours) = events_and_hours(req.events, req.missing_hours)?;
        let uuid = auth.server().uuid.to_string();
        if let Some(old) = self.storage().server_channel(&uuid).await? {
            self.storage().delete_channel(&old.id).await?;
        }
        let id = new_channel_id();
        let secret =
            Secret::new(url.to_string()).map_err(|e| bad("invalid_target", e.to_string()))?;
        let row = ChannelRow {
            target_enc: self.admin().seal_with(&secret, &context(&id)),
            id,
            name: format!("server {uuid}"),
            kind: ChannelKind::Discord,
            target_shown: shown_url(&url),
            events,
            missing_hours,
            created_at: now(),
            last_error: None,
            server_uuid: Some(uuid),
            owner_id: Some(auth.server().owner_id),
        };
        self.storage().add_channel(&row).await?;
        tracing::info!(server = %auth.server().uuid, "the owner's Discord webhook was set");
        Ok(ServerChannel {
            channel: Some(Self::channel_view(row)),
        })
    }

    /// `DELETE …/backups/restic/notifications`.
    pub async fn delete_server_channel(&self, auth: &Authorized<Read>) -> Result<(), PanelError> {
        Self::owner_of(auth)?;
        match self
            .storage()
            .server_channel(auth.server().uuid.as_str())
            .await?
        {
            Some(c) => {
                self.storage().delete_channel(&c.id).await?;
                Ok(())
            }
            None => Err(PanelError::NotFound(crate::Missing::Channel)),
        }
    }

    /// `POST …/backups/restic/notifications/test`: at most one every 30 s
    /// per server (a receiver bans an address that floods it, for every
    /// owner behind that address).
    pub async fn test_server_channel(
        &self,
        auth: &Authorized<Read>,
    ) -> Result<ChannelTested, PanelError> {
        Self::owner_of(auth)?;
        {
            let mut last = self
                .inner
                .notify_tests
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            last.retain(|_, at| now.duration_since(*at) < TEST_EVERY);
            if last.contains_key(&auth.server().id) {
                return Err(PanelError::RateLimited);
            }
            last.insert(auth.server().id, now);
        }
        let channel = self
            .storage()
            .server_channel(auth.server().uuid.as_str())
            .await?
            .ok_or(PanelError::NotFound(crate::Missing::Channel))?;
        Ok(self.send_test(&channel).await)
    }

    /// `DELETE .../admin/notifications/{id}`.
    pub async fn delete_channel(&self, _: &RootAdmin, id: &JobId) -> Result<(), PanelError> {
        if !self.storage().delete_channel(id.as_str()).await? {
            return Err(PanelError::NotFound(crate::Missing::Channel));
        }
        Ok(())
    }

    /// `POST .../admin/notifications/{id}/test`: one attempt, now, outside
    /// the outbox; says how it went.
    pub async fn test_channel(
        &self,
        _: &RootAdmin,
        id: &JobId,
    ) -> Result<ChannelTested, PanelError> {
        let channel = self
            .storage()
            .channel(id.as_str())
            .await?
            .ok_or(PanelError::NotFound(crate::Missing::Channel))?;
        Ok(self.send_test(&channel).await)
    }

    async fn send_test(&self, channel: &ChannelRow) -> ChannelTested {
        let message = Message {
            event: NotifyEvent::Test,
            title: "Test message".into(),
            text: format!(
                "This is a test of the notification channel \"{}\". If you read it, it works.",
                channel.name
            ),
            server: None,
            at: Timestamp::now(),
            details: serde_json::json!({}),
        };
        let result = self.send(channel, &message).await;
        ChannelTested {
            ok: result.is_ok(),
            error: result.err().map(|f| f.error),
        }
    }

    /// Queues `message` for every channel that takes its event, and wakes
    /// the delivery worker; a server owner's own channel gets `for_owner`
    /// (no staff e-mail addresses), and only while its setter still owns
    /// the server. Runs on a task of its own: the request that caused it
    /// does not wait. A message that can not be queued is logged.
    pub(crate) fn notify(&self, message: Message, for_owner: Message) {
        let panel = self.clone();
        tokio::spawn(async move { panel.queue(message, for_owner).await });
    }

    async fn queue(&self, message: Message, for_owner: Message) {
        let storage = self.storage();
        let server = message.server.as_ref().map(|s| s.uuid.as_str());
        let (channels, owner) = match (
            storage.channels_for(server).await,
            match server {
                Some(uuid) => storage.owner_of(uuid).await,
                None => Ok(None),
            },
        ) {
            (Ok(c), Ok(o)) => (c, o),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, event = message.event.as_str(), "notification not queued");
                return;
            }
        };
        let (payload, owner_payload) = match (
            serde_json::to_string(&message),
            serde_json::to_string(&for_owner),
        ) {
            (Ok(p), Ok(o)) => (p, o),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "notification not queued");
                return;
            }
        };
        let mut queued = 0;
        for c in channels
            .iter()
            .filter(|c| c.events.contains(&message.event))
        {
            let payload = match c.server_uuid {
                None => &payload,
                Some(_) if c.owner_id.is_some() && c.owner_id == owner => &owner_payload,
                // Set by someone who no longer owns the server.
                Some(_) => continue,
            };
            match storage
                .enqueue(&c.id, message.event, server, payload, now())
                .await
            {
                Ok(()) => queued += 1,
                Err(e) => tracing::error!(error = %e, channel = %c.name, "notification not queued"),
            }
        }
        if queued > 0 {
            self.inner.notify_wake.notify_one();
        }
    }

    /// A scheduled backup failed.
    /// Told at the 1st, 2nd, 4th, 8th… failure in a row, not at each retry.
    /// Queued before it returns (`schedule run-due` exits right after).
    pub(crate) async fn notify_backup_failed(&self, server: &Server, error: &str, failures: i64) {
        if failures < 1 || (failures & (failures - 1)) != 0 {
            return;
        }
        let message = Message {
            event: NotifyEvent::BackupFailed,
            title: "Backup failed".into(),
            text: format!("The scheduled backup of {} failed: {error}", server.name),
            server: Some(ServerRef {
                uuid: server.uuid.to_string(),
                name: server.name.clone(),
            }),
            at: Timestamp::now(),
            details: serde_json::json!({ "error": error, "failures_in_a_row": failures }),
        };
        self.queue(message.clone(), message).await;
    }

    /// A restore was started (the agent accepted it). The owner's own
    /// channel reads "the owner", "a subuser" or "an administrator" instead
    /// of the address.
    pub(crate) fn notify_restored(&self, server: &Server, by: &User, snapshot: &str) {
        let make = |who: &str| Message {
            event: NotifyEvent::Restored,
            title: "Restore started".into(),
            text: format!(
                "{who} started a restore of {} to backup {snapshot}.",
                server.name
            ),
            server: Some(ServerRef {
                uuid: server.uuid.to_string(),
                name: server.name.clone(),
            }),
            at: Timestamp::now(),
            details: serde_json::json!({ "by": who, "snapshot": snapshot }),
        };
        self.notify(make(&by.email), make(role(server, by)));
    }

    /// A server's repository key was replaced.
    pub(crate) fn notify_key_rotated(&self, server: &Server, by: &User) {
        let make = |who: &str| Message {
            event: NotifyEvent::KeyRotated,
            title: "Repository key replaced".into(),
            text: format!(
                "{who} gave the backups of {} a new key. Keys exported before no longer open them.",
                server.name
            ),
            server: Some(ServerRef {
                uuid: server.uuid.to_string(),
                name: server.name.clone(),
            }),
            at: Timestamp::now(),
            details: serde_json::json!({ "by": who }),
        };
        self.notify(make(&by.email), make(role(server, by)));
    }

    /// Servers with a schedule and no successful backup for a channel's
    /// `missing_hours`: each channel is told once per such stretch.
    pub async fn check_missing_backups(&self, at: i64) {
        let storage = self.storage();
        let (channels, servers) = match (
            storage.all_channels().await,
            storage.scheduled_servers().await,
        ) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "missing backups not checked");
                return;
            }
        };
        for c in channels
            .iter()
            .filter(|c| c.events.contains(&NotifyEvent::BackupMissing))
        {
            // An owner's own channel hears of its server only.
            for s in servers.iter().filter(|s| match &c.server_uuid {
                None => true,
                Some(u) => *u == s.uuid && c.owner_id.is_some() && c.owner_id == Some(s.owner_id),
            }) {
                // A schedule turned on again counts from then.
                let since = s.last_ok.map_or(s.since, |ok| ok.max(s.since));
                let hours = (at - since) / 3600;
                if at - since <= i64::from(c.missing_hours) * 3600 {
                    continue;
                }
                match storage.missing_told(&c.id, &s.uuid).await {
                    Ok(Some(told)) if told == since => continue,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "missing backups not checked");
                        return;
                    }
                }
                let text = match s.last_ok {
                    Some(_) => format!(
                        "{} has had no successful backup for {hours} hours, though its schedule is on.",
                        s.name
                    ),
                    None => format!(
                        "{} has had no successful backup since its schedule was turned on {hours} hours ago.",
                        s.name
                    ),
                };
                let message = Message {
                    event: NotifyEvent::BackupMissing,
                    title: format!("No backup for {} hours", c.missing_hours),
                    text,
                    server: Some(ServerRef {
                        uuid: s.uuid.clone(),
                        name: s.name.clone(),
                    }),
                    at: Timestamp::from_unix(at).unwrap_or_else(Timestamp::now),
                    details: serde_json::json!({
                        "last_success": s.last_ok.and_then(Timestamp::from_unix).map(|t| t.to_string()),
                        "hours": hours,
                    }),
                };
                let queued = match serde_json::to_string(&message) {
                    Ok(payload) => storage
                        .enqueue(
                            &c.id,
                            NotifyEvent::BackupMissing,
                            Some(&s.uuid),
                            &payload,
                            // Due by the wall clock (`at` may be a
                            // run-due's `--at`).
                            now(),
                        )
                        .await
                        .is_ok(),
                    Err(_) => false,
                };
                if queued
                    && storage
                        .set_missing_told(&c.id, &s.uuid, since)
                        .await
                        .is_ok()
                {
                    tracing::info!(server = %s.uuid, channel = %c.name, hours, "no recent backup: notified");
                    self.inner.notify_wake.notify_one();
                }
            }
        }
    }

    /// Sends what is due in the outbox; returns how many were delivered.
    pub async fn deliver_due(&self) -> usize {
        let storage = self.storage();
        let at = now();
        let due = match storage.due_messages(at, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "notifications not sent now");
                return 0;
            }
        };
        let mut delivered = 0;
        // A channel that failed in this round is not asked again in it (a
        // receiver that hangs costs one timeout, not one per message).
        let mut failing: Vec<String> = Vec::new();
        for m in due {
            if failing.contains(&m.channel_id) {
                continue;
            }
            // Leased just before sending, with the clock of now.
            let lease = now() + LEASE_SECS;
            match storage.lease_message(m.id, now(), lease).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "notifications not sent now");
                    return delivered;
                }
            }
            let channel = match storage.channel(&m.channel_id).await {
                Ok(Some(c)) => c,
                Ok(None) => continue, // removed meanwhile (its messages go with it)
                Err(e) => {
                    tracing::warn!(error = %e, "notifications not sent now");
                    return delivered;
                }
            };
            let result = match serde_json::from_str::<Message>(&m.payload) {
                Ok(message) => self.send(&channel, &message).await,
                Err(e) => Err(Failed::permanent(format!(
                    "the queued message does not read: {e}"
                ))),
            };
            let done = now();
            let outcome = match &result {
                Ok(()) => {
                    delivered += 1;
                    if channel.last_error.is_some() {
                        let _ = storage.set_channel_error(&channel.id, None).await;
                    }
                    tracing::info!(channel = %channel.name, event = m.event.as_str(), attempt = m.attempts + 1, "notification sent");
                    storage
                        .message_attempted(m.id, lease, true, None, None, done)
                        .await
                }
                Err(Failed { error, permanent }) => {
                    failing.push(m.channel_id.clone());
                    let retry = retry_after(self.inner.notify.retry, m.attempts)
                        .filter(|_| !permanent)
                        .map(|d| done + d.as_secs() as i64);
                    match retry {
                        Some(_) => {
                            tracing::warn!(channel = %channel.name, event = m.event.as_str(), attempt = m.attempts + 1, %error, "notification not sent; will try again")
                        }
                        None => {
                            tracing::error!(channel = %channel.name, event = m.event.as_str(), attempts = m.attempts + 1, %error, "notification given up");
                            let _ = storage
                                .set_channel_error(
                                    &channel.id,
                                    Some(&format!("{}: {error}", Timestamp::now())),
                                )
                                .await;
                        }
                    }
                    storage
                        .message_attempted(m.id, lease, false, retry, Some(error.as_str()), done)
                        .await
                }
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "notification outcome not recorded");
            }
        }
        delivered
    }

    /// One attempt through `channel`; the error says why, without the
    /// target (a webhook URL's path is its secret). A receiver that says
    /// the webhook is gone or refused (401/403/404/410) is not asked again.
    async fn send(&self, channel: &ChannelRow, message: &Message) -> Result<(), Failed> {
        let target = self
            .admin()
            .open_with(&channel.target_enc, &context(&channel.id))
            .map_err(|_| {
                Failed::permanent("the channel's target can not be opened with this secret key")
            })?;
        let body = match channel.kind {
            ChannelKind::Email => {
                return self
                    .send_email(target.expose(), message)
                    .await
                    .map_err(Failed::again);
            }
            ChannelKind::Webhook => {
                serde_json::to_value(message).map_err(|e| Failed::permanent(e.to_string()))?
            }
            ChannelKind::Discord => message.discord(),
            ChannelKind::Slack => message.slack(),
        };
        let res = self
            .inner
            .notify_http
            .post(target.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                Failed::again(format!(
                    "the receiver could not be reached: {}",
                    e.without_url()
                ))
            })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let error = format!("the receiver answered HTTP {}", status.as_u16());
        Err(match status.as_u16() {
            401 | 403 | 404 | 410 => Failed::permanent(error),
            _ => Failed::again(error),
        })
    }

    async fn send_email(&self, to: &str, message: &Message) -> Result<(), String> {
        use lettre::AsyncTransport;
        let smtp = self
            .inner
            .notify
            .smtp
            .as_ref()
            .ok_or("the panel has no [smtp] settings now")?;
        let (subject, body) = message.email();
        let email = lettre::Message::builder()
            .from(
                smtp.from
                    .parse()
                    .map_err(|_| "smtp.from is not an address")?,
            )
            .to(to
                .parse()
                .map_err(|_| "the channel's address does not read")?)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("the e-mail could not be built: {e}"))?;
        let builder = match smtp.security {
            SmtpSecurity::Tls => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::relay(&smtp.host)
            }
            SmtpSecurity::Starttls => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::starttls_relay(&smtp.host)
            }
            SmtpSecurity::None => Ok(
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&smtp.host),
            ),
        }
        .map_err(|e| format!("the mail relay's settings do not work: {e}"))?;
        let mut builder = builder
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(pass)) = (&smtp.username, &smtp.password) {
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.clone(),
                    pass.expose().to_owned(),
                ));
        }
        builder
            .build()
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| format!("the mail relay refused or could not be reached: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            event: NotifyEvent::BackupFailed,
            title: "Backup failed".into(),
            text: "The scheduled backup of <Survival> failed: @everyone *now*".into(),
            server: Some(ServerRef {
                uuid: "7ff72e79-081f-4de1-81dc-27edb57ead38".into(),
                name: "Survival & Co".into(),
            }),
            at: Timestamp::parse("2026-11-27T18:00:00Z").unwrap(),
            details: serde_json::json!({"error": "store_unreachable"}),
        }
    }

    #[test]
    fn formats_escape_what_receivers_would_read_as_markup() {
        let m = message();
        let d = m.discord();
        assert_eq!(d["allowed_mentions"]["parse"], serde_json::json!([]));
        let content = d["content"].as_str().unwrap();
        assert!(
            content.starts_with("**Backup failed · Survival & Co**\n"),
            "{content}"
        );
        assert!(content.contains("@everyone \\*now\\*"), "{content}");
        let s = m.slack();
        assert_eq!(
            s["text"],
            "*Backup failed · Survival &amp; Co*\nThe scheduled backup of &lt;Survival&gt; failed: @everyone *now*\nServer: `7ff72e79-081f-4de1-81dc-27edb57ead38`"
        );
        let (subject, body) = m.email();
        assert_eq!(subject, "[Restic Backups] Backup failed · Survival & Co");
        assert!(body.contains("Server: Survival & Co (7ff72e79-081f-4de1-81dc-27edb57ead38)\n"));
        assert!(body.contains("error: store_unreachable\n"));
        let long = Message {
            text: "x".repeat(5000),
            ..message()
        };
        assert_eq!(
            long.discord()["content"].as_str().unwrap().chars().count(),
            DISCORD_MAX
        );
    }

    #[test]
    fn retries_back_off_and_end() {
        let r = Duration::from_secs(60);
        assert_eq!(retry_after(r, 0), Some(Duration::from_secs(60)));
        assert_eq!(retry_after(r, 1), Some(Duration::from_secs(240)));
        assert_eq!(retry_after(r, 4), Some(Duration::from_secs(15360)));
        assert_eq!(retry_after(r, 5), None);
        assert_eq!(retry_after(Duration::from_secs(3600), 3), Some(MAX_BACKOFF));
    }

    #[test]
    fn webhook_urls_are_https_or_local() {
        assert!(check_url("https://discord.com/api/webhooks/1/abc").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://example.com/hook").is_err());
        assert!(check_url("https://user:pw@example.com/hook").is_err());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("not a url").is_err());
        let url = check_url("https://hooks.slack.com/services/T/B/secret").unwrap();
        assert_eq!(shown_url(&url), "https://hooks.slack.com/…");
    }
}
