//! The OpenAPI documents of both APIs (`GET /openapi.json` on the agent and
//! on the panel), built from the same route templates the routers mount
//! ([`crate::routes`]) and the schemas derived from this crate's bodies.
//! Each operation is one line of a table below: method, path, summary,
//! request body, answer. A test on each side checks that the document lists
//! every route the router answers, and nothing else.

use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, Schema};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr,
    Required, ResponseBuilder, ResponsesBuilder, SecurityRequirement, Type,
};

use crate::agent::{
    AdoptAnswer, AdoptRequest, ArchiveList, BackupList, CreateBackupRequest, ErrorBody,
    JobAccepted, JobList, JobView, KeyRotated, LockState, NodeInfo, RepoStats, RestoreRequest,
    RetentionPolicy, RetentionPreview, RetentionResult, RotateKeyRequest, StorageHistory,
};
use crate::files::FileList;
use crate::health::Health;
use crate::panel::{
    AuditList, ChannelTested, ChannelView, KeyRegenerated, NewChannelRequest, NewNodeRequest,
    NewServerRequest, NewUserRequest, NodeView, NoteRequest, NoteView, PanelArchiveList,
    PanelBackupList, PanelCreateBackup, Preferences, PteroBackupList, PteroSyncStatus, RunHistory,
    ScheduleRequest, ScheduleView, ServerChannel, ServerChannelRequest, ServerKeyList,
    ServerSummaryList, ServerView, SessionInfo, SetSubuserRequest, SubuserView, TaskView,
    UpdateNodeRequest, UpdateServerRequest, UpdateUserRequest, UserView,
};
use crate::routes::{agent as a, panel as p};

/// A request body or an answer of an operation, as a type: any schema
/// type (JSON), [`List`] of one, or one of the markers below.
trait Part {
    /// The JSON schema, or `None` with what the body is instead.
    fn describe(doc: &mut Doc) -> Result<RefOr<Schema>, &'static str>;
}

impl<T: ToSchema> Part for T {
    fn describe(doc: &mut Doc) -> Result<RefOr<Schema>, &'static str> {
        Ok(doc.schema::<T>())
    }
}

/// A JSON array of `T`.
struct List<T>(std::marker::PhantomData<T>);

impl<T: ToSchema> Part for List<T> {
    fn describe(doc: &mut Doc) -> Result<RefOr<Schema>, &'static str> {
        let item = doc.schema::<T>();
        Ok(utoipa::openapi::schema::ArrayBuilder::new()
            .items(item)
            .into())
    }
}

/// Bodies that are not JSON: each a marker type with what it is instead.
macro_rules! not_json {
    ($($(#[$doc:meta])* $name:ident => $what:literal;)*) => {$(
        $(#[$doc])*
        struct $name;

        impl Part for $name {
            fn describe(_: &mut Doc) -> Result<RefOr<Schema>, &'static str> {
                Err($what)
            }
        }
    )*};
}

not_json! {
    /// No body.
    Nothing => "no body";
    /// A backup as an archive (`tar.gz`, `tar.zst` or `zip`).
    Archive => "the archive, streamed";
    /// A redirect (to the node's one-time link, or to Wings).
    Redirect => "a redirect to the download (or, for nodes browsers can not reach, 200 with the archive)";
    /// The document itself.
    Document => "this OpenAPI 3.1 document";
    /// Prometheus' text exposition format.
    MetricsText => "metrics in Prometheus' text format (version 0.0.4)";
    /// The login answer: the session as JSON, or a redirect for a form.
    Login => "the session (`SessionInfo`) and its cookie; a redirect for a form login";
}

/// One API's document while it is being built.
struct Doc {
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
    /// The security requirement of operations that are not open.
    security: Vec<SecurityRequirement>,
}

/// The version of both APIs' shape.
const API_VERSION: &str = "1";

/// No query parameters.
const NO_QUERY: &[(&str, &str)] = &[];
/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// The API's credentials ([`Doc::security`]).
    Closed,
    /// Anyone (health checks, this document, signed links, login).
    Open,
}

impl Doc {
    fn new(security: Vec<SecurityRequirement>) -> Self {
        let mut doc = Doc {
            paths: Paths::new(),
            schemas: Vec::new(),
            security,
        };
        doc.schema::<ErrorBody>();
        doc
    }

    /// A reference to `T`'s schema, which (with what it refers to) goes
    /// into the document's components.
    fn schema<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let name = T::name();
        if !self.schemas.iter().any(|(n, _)| n.as_str() == name) {
            self.schemas.push((name.to_string(), T::schema()));
            T::schemas(&mut self.schemas);
        }
        RefOr::Ref(Ref::from_schema_name(name))
    }

    /// Adds one operation: request body `B`, answer `R` with `status`.
    /// Path parameters come from the template; `query` lists optional query
    /// parameters with their meaning.
    fn op<B: Part, R: Part>(
        &mut self,
        method: HttpMethod,
        path: &str,
        summary: &str,
        query: &[(&str, &str)],
        status: u16,
        gate: Gate,
    ) {
        let json = |schema: RefOr<Schema>| ContentBuilder::new().schema(Some(schema)).build();
        let mut op = OperationBuilder::new().summary(Some(summary));
        let params = path_params(path)
            .into_iter()
            .map(|n| (n, ParameterIn::Path, None));
        let queries = query
            .iter()
            .map(|(n, m)| (*n, ParameterIn::Query, Some(*m)));
        for (name, place, meaning) in params.chain(queries) {
            let required = if place == ParameterIn::Path {
                Required::True
            } else {
                Required::False
            };
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(place)
                    .required(required)
                    .description(meaning)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        if let Ok(schema) = B::describe(self) {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(schema))
                    .build(),
            ));
        }
        let answer = match R::describe(self) {
            Ok(schema) => ResponseBuilder::new()
                .description("done")
                .content("application/json", json(schema)),
            Err(what) => ResponseBuilder::new().description(what),
        };
        let error = ResponseBuilder::new()
            .description("an error: `{\"error\":{\"code\",\"message\"}}`")
            .content(
                "application/json",
                json(RefOr::Ref(Ref::from_schema_name("ErrorBody"))),
            );
        op = op.responses(
            ResponsesBuilder::new()
                .response(status.to_string(), answer.build())
                .response("default", error.build())
                .build(),
        );
        let security = match gate {
            Gate::Closed => self.security.clone(),
            Gate::Open => Vec::new(),
        };
        op = op.securities(Some(security));
        self.paths
            .add_path_operation(path, vec![method], op.build());
    }

    fn finish(
        self,
        title: &str,
        description: &str,
        schemes: Vec<(&str, SecurityScheme)>,
    ) -> OpenApi {
        let mut components = ComponentsBuilder::new().schemas_from_iter(self.schemas);
        for (name, scheme) in schemes {
            components = components.security_scheme(name, scheme);
        }
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title(title)
                    // The API's version, not the build's (no unauthenticated
                    // caller learns which build runs).
                    .version(API_VERSION)
                    .description(Some(description))
                    .build(),
            )
            .paths(self.paths)
            .components(Some(components.build()))
            .build()
    }
}

/// The `{name}`s of a path template, in order.
pub fn path_params(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

const LIST_QUERY: &[(&str, &str)] = &[
    ("limit", "page size, 1-100 (default 20)"),
    ("cursor", "the `next_cursor` of the page before"),
];
const AUDIT_QUERY: &[(&str, &str)] = &[
    ("limit", "page size, 1-200 (default 50)"),
    ("cursor", "the `next_cursor` of the page before"),
    ("server", "only entries about this server (UUID)"),
    ("actor", "only entries by this email (or `operator`)"),
    ("action", "only this action, e.g. `backup.restore`"),
    (
        "outcome",
        "only `ok`, `denied`, `limited`, `refused` or `failed`",
    ),
    ("from", "only entries at or after this time (RFC 3339)"),
    ("to", "only entries before this time (RFC 3339)"),
];
const FORMAT_QUERY: &[(&str, &str)] = &[
    (
        "format",
        "tar.gz (default), tar.zst or zip (a single file comes as itself)",
    ),
    (
        "path",
        "a file or folder of the backup (default `/`: all of it)",
    ),
];
const PREVIEW_QUERY: &[(&str, &str)] = &[
    ("keep_last", "0-100000"),
    ("keep_daily", "0-100000"),
    ("keep_weekly", "0-100000"),
    ("keep_monthly", "0-100000"),
    ("keep_yearly", "0-100000"),
    ("keep_within", "a restic duration such as 7d or 1y2m"),
];
const ACTIVE_QUERY: &[(&str, &str)] = &[("active", "`true`: only queued and running jobs")];
const FILES_QUERY: &[(&str, &str)] = &[
    ("path", "the folder, e.g. `/world` (default `/`)"),
    ("limit", "entries per page, 1-1000 (default 200)"),
    ("cursor", "the `next_cursor` of the page before"),
];

fn health(d: &mut Doc, healthz: &str, readyz: &str, openapi: &str) {
    use Gate::Open;
    use HttpMethod::Get;
    d.op::<Nothing, Health>(Get, healthz, "The process is alive", NO_QUERY, 200, Open);
    d.op::<Nothing, Health>(
        Get,
        readyz,
        "Ready to serve (503 with the failing checks' names otherwise)",
        NO_QUERY,
        200,
        Open,
    );
    d.op::<Nothing, Document>(Get, openapi, "This document", NO_QUERY, 200, Open);
}

/// The node agent's API.
#[rustfmt::skip]
pub fn agent() -> OpenApi {
    use Gate::{Closed, Open};
    use HttpMethod::{Delete, Get, Post};
    let key = vec![SecurityRequirement::new("node_token", Vec::<String>::new()).add("repository_key", Vec::<String>::new())];
    let mut d = Doc::new(key.clone());
    d.op::<Nothing, BackupList>(Get, a::BACKUPS, "List a server's backups, newest first", LIST_QUERY, 200, Closed);
    d.op::<CreateBackupRequest, JobAccepted>(Post, a::BACKUPS, "Start a backup (the repository is made at the first one)", NO_QUERY, 202, Closed);
    d.op::<Nothing, RepoStats>(Get, a::STATS, "Repository size and deduplication", NO_QUERY, 200, Closed);
    d.op::<Nothing, StorageHistory>(Get, a::STATS_HISTORY, "Per backup: bytes added and the repository's size after it", NO_QUERY, 200, Closed);
    d.op::<AdoptRequest, AdoptAnswer>(Post, a::ADOPT, "Check a key opens the server's repository; move the PHP extension's into place", NO_QUERY, 200, Closed);
    d.op::<Nothing, JobAccepted>(Post, a::ARCHIVE, "Archive the repository (a final locked snapshot, then set aside)", NO_QUERY, 202, Closed);
    d.op::<RotateKeyRequest, KeyRotated>(Post, a::KEY, "Replace the repository key", NO_QUERY, 200, Closed);
    d.op::<RetentionPolicy, RetentionResult>(Post, a::RETENTION, "Forget what a retention policy does not keep", NO_QUERY, 200, Closed);
    d.op::<RetentionPolicy, RetentionPreview>(Post, a::RETENTION_PREVIEW, "What a retention policy would forget now (nothing is forgotten)", NO_QUERY, 200, Closed);
    d.op::<Nothing, JobAccepted>(Post, a::PRUNE, "Reclaim the space of forgotten backups now (a prune job)", NO_QUERY, 202, Closed);
    d.op::<Nothing, JobView>(Get, a::JOB, "A job's status, progress and result", NO_QUERY, 200, Closed);
    d.op::<Nothing, JobList>(Get, a::JOBS, "The server's jobs, newest first", ACTIVE_QUERY, 200, Closed);
    d.op::<Nothing, LockState>(Post, a::LOCK, "Lock a backup (never forgotten or deleted)", NO_QUERY, 200, Closed);
    d.op::<Nothing, LockState>(Post, a::UNLOCK, "Unlock a backup", NO_QUERY, 200, Closed);
    d.op::<Nothing, Archive>(Get, a::DOWNLOAD, "Stream a backup as an archive", FORMAT_QUERY, 200, Closed);
    d.op::<RestoreRequest, JobAccepted>(Post, a::RESTORE, "Restore a backup in place (after a safety snapshot)", NO_QUERY, 202, Closed);
    d.op::<Nothing, FileList>(Get, a::FILES, "One folder of a backup, folders first (listed once with `restic ls`, then from the agent's copy)", FILES_QUERY, 200, Closed);
    d.op::<Nothing, Nothing>(Delete, a::SNAPSHOT, "Delete an unlocked backup", NO_QUERY, 204, Closed);
    // Node-wide: the token alone (a remote archive's deletion also takes its key).
    d.security = vec![SecurityRequirement::new("node_token", Vec::<String>::new())];
    d.op::<Nothing, ArchiveList>(Get, a::ARCHIVES, "The node's archived repositories", NO_QUERY, 200, Closed);
    d.op::<Nothing, Nothing>(Delete, a::ARCHIVED, "Delete an archived repository (a remote one needs its key)", NO_QUERY, 204, Closed);
    d.op::<Nothing, NodeInfo>(Get, a::NODE, "Where this node keeps repositories, and its versions", NO_QUERY, 200, Closed);
    d.security = vec![SecurityRequirement::new("node_token", Vec::<String>::new()), SecurityRequirement::new("metrics_token", Vec::<String>::new())];
    d.op::<Nothing, MetricsText>(Get, a::METRICS, "Prometheus metrics: jobs, failures by class, per-server last backup, repository size and snapshots (the node token, or `metrics_token` when set)", NO_QUERY, 200, Closed);
    d.security = key;
    d.op::<Nothing, Archive>(Get, a::DOWNLOAD_LINK, "A one-time signed download link (the token is the proof)", &[("token", "the signed link token")], 200, Open);
    health(&mut d, a::HEALTHZ, a::READYZ, a::OPENAPI);
    d.finish(
        "Restic Backups node agent",
        "Runs restic for the game servers of one Wings node. Every path but the health checks, this document and download links needs the node token; per-server paths also take the repository key in `X-Restic-Password`.",
        vec![
            ("node_token", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build())),
            ("metrics_token", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build())),
            ("repository_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(crate::agent::PASSWORD_HEADER)))),
        ],
    )
}

/// The panel's JSON API (paths under the panel's `base_path`).
#[rustfmt::skip]
pub fn panel() -> OpenApi {
    use Gate::{Closed, Open};
    use HttpMethod::{Delete, Get, Patch, Post, Put};
    let mut d = Doc::new(vec![SecurityRequirement::new("session", Vec::<String>::new())]);
    let at = |rel: &str| format!("{}{rel}", p::PREFIX);
    d.op::<Nothing, Login>(Post, p::LOGIN, "Sign in (JSON or a form `{email, password}`): sets the session cookie", NO_QUERY, 200, Open);
    d.op::<Nothing, SessionInfo>(Get, p::SESSION, "The signed-in user and the CSRF token for changes", NO_QUERY, 200, Closed);
    d.op::<Nothing, Nothing>(Post, p::LOGOUT, "Sign out", NO_QUERY, 204, Closed);
    health(&mut d, p::HEALTHZ, p::READYZ, p::OPENAPI);
    d.security = vec![SecurityRequirement::new("session", Vec::<String>::new()), SecurityRequirement::new("metrics_token", Vec::<String>::new())];
    d.op::<Nothing, MetricsText>(Get, p::METRICS, "Prometheus metrics: requests by route and status with latency, logins, scheduler lag and results, Pterodactyl syncs (a root admin, or the `metrics_token` as a bearer token)", NO_QUERY, 200, Closed);
    d.security = vec![SecurityRequirement::new("session", Vec::<String>::new())];
    d.op::<Nothing, ServerSummaryList>(Get, &at(p::SERVERS), "Servers the user can see, with their permissions", NO_QUERY, 200, Closed);
    d.op::<Nothing, PanelBackupList>(Get, &at(p::BACKUPS), "A server's backups (backup.read)", LIST_QUERY, 200, Closed);
    d.op::<PanelCreateBackup, JobAccepted>(Post, &at(p::BACKUPS), "Start a backup (backup.create)", NO_QUERY, 202, Closed);
    d.op::<Nothing, RepoStats>(Get, &at(p::STATS), "Repository statistics (backup.read)", NO_QUERY, 200, Closed);
    d.op::<Nothing, StorageHistory>(Get, &at(p::STATS_HISTORY), "Storage over time: per backup, bytes added and the repository's size after it (backup.read)", NO_QUERY, 200, Closed);
    d.op::<Nothing, ScheduleView>(Get, &at(p::SCHEDULE), "The schedule and retention (backup.read)", NO_QUERY, 200, Closed);
    d.op::<ScheduleRequest, ScheduleView>(Post, &at(p::SCHEDULE), "Save the schedule (backup.create; retention rules also backup.delete)", NO_QUERY, 200, Closed);
    d.op::<Nothing, RetentionPreview>(Get, &at(p::SCHEDULE_PREVIEW), "Which backups these retention rules would remove now, before saving them (backup.read)", PREVIEW_QUERY, 200, Closed);
    d.op::<Nothing, JobAccepted>(Post, &at(p::SCHEDULE_RUN), "Run the schedule's backup now, then its retention (backup.create)", NO_QUERY, 202, Closed);
    d.op::<Nothing, RunHistory>(Get, &at(p::SCHEDULE_HISTORY), "Recent runs (backup.read)", NO_QUERY, 200, Closed);
    d.op::<Nothing, JobView>(Get, &at(p::JOB), "A job of the server (backup.read)", NO_QUERY, 200, Closed);
    d.op::<Nothing, JobList>(Get, &at(p::JOBS), "The server's jobs on its node, newest first (backup.read)", ACTIVE_QUERY, 200, Closed);
    d.op::<Nothing, Nothing>(Delete, &at(p::SNAPSHOT), "Delete a backup (backup.delete)", NO_QUERY, 204, Closed);
    d.op::<RestoreRequest, JobAccepted>(Post, &at(p::RESTORE), "Restore a backup, or some of its files and folders (backup.restore)", NO_QUERY, 202, Closed);
    d.op::<Nothing, FileList>(Get, &at(p::FILES), "Browse one folder of a backup (backup.read)", FILES_QUERY, 200, Closed);
    d.op::<NoteRequest, NoteView>(Put, &at(p::NOTE), "Set or clear a backup's note (backup.create)", NO_QUERY, 200, Closed);
    d.op::<Nothing, Redirect>(Get, &at(p::DOWNLOAD), "Download a backup (backup.download)", FORMAT_QUERY, 302, Closed);
    d.op::<Nothing, LockState>(Post, &at(p::LOCK), "Lock a backup (backup.delete)", NO_QUERY, 200, Closed);
    d.op::<Nothing, LockState>(Post, &at(p::UNLOCK), "Unlock a backup (backup.delete)", NO_QUERY, 200, Closed);
    d.op::<Nothing, PteroBackupList>(Get, &at(p::PTERO_BACKUPS), "Pterodactyl's own backups of the server (Pterodactyl mode)", NO_QUERY, 200, Closed);
    d.op::<Nothing, Redirect>(Get, &at(p::PTERO_DOWNLOAD), "Download one of Pterodactyl's backups", NO_QUERY, 302, Closed);
    d.op::<Nothing, ServerChannel>(Get, &at(p::SERVER_NOTIFICATIONS), "The server owner's own Discord webhook (owner or root admin)", NO_QUERY, 200, Closed);
    d.op::<ServerChannelRequest, ServerChannel>(Put, &at(p::SERVER_NOTIFICATIONS), "Set the owner's Discord webhook (a URL on owner_webhook_hosts)", NO_QUERY, 200, Closed);
    d.op::<Nothing, Nothing>(Delete, &at(p::SERVER_NOTIFICATIONS), "Remove the owner's Discord webhook", NO_QUERY, 204, Closed);
    d.op::<Nothing, ChannelTested>(Post, &at(p::SERVER_NOTIFICATIONS_TEST), "Send a test message to the owner's webhook", NO_QUERY, 200, Closed);
    d.op::<Nothing, Preferences>(Get, &at(p::PREFERENCES), "The user's preferences", NO_QUERY, 200, Closed);
    d.op::<Preferences, Preferences>(Put, &at(p::PREFERENCES), "Save the user's preferences", NO_QUERY, 200, Closed);
    // Root admins only.
    d.op::<Nothing, ServerKeyList>(Get, &at(p::ADMIN_KEYS), "Every server's repository key", NO_QUERY, 200, Closed);
    d.op::<Nothing, PteroSyncStatus>(Get, &at(p::ADMIN_SYNC), "The last Pterodactyl sync", NO_QUERY, 200, Closed);
    d.op::<Nothing, PteroSyncStatus>(Post, &at(p::ADMIN_SYNC), "Sync users, nodes, servers and subusers from Pterodactyl now", NO_QUERY, 200, Closed);
    d.op::<Nothing, KeyRegenerated>(Post, &at(p::ADMIN_KEY_REGENERATE), "Give a server's repository a new key", NO_QUERY, 200, Closed);
    d.op::<Nothing, JobAccepted>(Post, &at(p::ADMIN_PRUNE), "Reclaim the space of a server's forgotten backups now", NO_QUERY, 202, Closed);
    d.op::<Nothing, PanelArchiveList>(Get, &at(p::ADMIN_ARCHIVES), "Archived repositories on every node, with their keys", NO_QUERY, 200, Closed);
    d.op::<Nothing, Nothing>(Delete, &at(p::ADMIN_ARCHIVE), "Delete an archived repository", &[("node", "the node it is on")], 204, Closed);
    d.op::<Nothing, List<UserView>>(Get, &at(p::ADMIN_USERS), "Users", NO_QUERY, 200, Closed);
    d.op::<NewUserRequest, UserView>(Post, &at(p::ADMIN_USERS), "Add a user", NO_QUERY, 201, Closed);
    d.op::<UpdateUserRequest, UserView>(Patch, &at(p::ADMIN_USER), "Change a user", NO_QUERY, 200, Closed);
    d.op::<Nothing, Nothing>(Delete, &at(p::ADMIN_USER), "Delete a user", NO_QUERY, 204, Closed);
    d.op::<Nothing, List<NodeView>>(Get, &at(p::ADMIN_NODES), "Nodes, with where each keeps repositories", NO_QUERY, 200, Closed);
    d.op::<NewNodeRequest, NodeView>(Post, &at(p::ADMIN_NODES), "Add a node", NO_QUERY, 201, Closed);
    d.op::<UpdateNodeRequest, NodeView>(Patch, &at(p::ADMIN_NODE), "Change a node", NO_QUERY, 200, Closed);
    d.op::<Nothing, Nothing>(Delete, &at(p::ADMIN_NODE), "Delete a node without servers", NO_QUERY, 204, Closed);
    d.op::<Nothing, List<ServerView>>(Get, &at(p::ADMIN_SERVERS), "Servers", NO_QUERY, 200, Closed);
    d.op::<NewServerRequest, ServerView>(Post, &at(p::ADMIN_SERVERS), "Add a server (with a new random key)", NO_QUERY, 201, Closed);
    d.op::<UpdateServerRequest, ServerView>(Patch, &at(p::ADMIN_SERVER), "Change a server", NO_QUERY, 200, Closed);
    d.op::<Nothing, TaskView>(Delete, &at(p::ADMIN_SERVER), "Delete a server: 204 at once (no repository, or `force`), else 202 with the task that archives its repository first", &[("force", "true: the node is gone for good; keep the keys, ask nothing")], 202, Closed);
    d.op::<Nothing, List<SubuserView>>(Get, &at(p::ADMIN_SUBUSERS), "A server's subusers", NO_QUERY, 200, Closed);
    d.op::<SetSubuserRequest, Nothing>(Put, &at(p::ADMIN_SUBUSERS), "Give a user exactly these permissions on the server", NO_QUERY, 204, Closed);
    d.op::<Nothing, Nothing>(Delete, &at(p::ADMIN_SUBUSER), "Remove a subuser", NO_QUERY, 204, Closed);
    d.op::<Nothing, TaskView>(Get, &at(p::ADMIN_TASK), "How a task the panel carried on with stands", NO_QUERY, 200, Closed);
    d.op::<Nothing, List<ChannelView>>(Get, &at(p::ADMIN_NOTIFICATIONS), "Notification channels (webhooks, Discord, Slack, e-mail)", NO_QUERY, 200, Closed);
    d.op::<NewChannelRequest, ChannelView>(Post, &at(p::ADMIN_NOTIFICATIONS), "Add a notification channel (its URL or address sealed like keys)", NO_QUERY, 201, Closed);
    d.op::<Nothing, Nothing>(Delete, &at(p::ADMIN_NOTIFICATION), "Remove a notification channel", NO_QUERY, 204, Closed);
    d.op::<Nothing, ChannelTested>(Post, &at(p::ADMIN_NOTIFICATION_TEST), "Send a test message through the channel now", NO_QUERY, 200, Closed);
    d.op::<Nothing, AuditList>(Get, &at(p::ADMIN_AUDIT), "The audit log, newest first: who did what to which server, when, from where", AUDIT_QUERY, 200, Closed);
    d.finish(
        "Restic Backups panel",
        "The panel's JSON API (paths under the panel's `base_path`). Sign in at `/auth/login`; changes also need the `X-CSRF-Token` header from `/auth/session`.",
        vec![
            ("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("rb_session")))),
            ("metrics_token", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build())),
        ],
    )
}

/// [`agent`] as JSON, built once.
pub fn agent_json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::to_string(&agent()).expect("the document serialises"))
}

/// [`panel`] as JSON, built once.
pub fn panel_json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::to_string(&panel()).expect("the document serialises"))
}

/// `(METHOD, path)` of every operation of a document, sorted.
pub fn operations(doc: &OpenApi) -> Vec<(String, String)> {
    let value = serde_json::to_value(doc).expect("an OpenAPI document serialises");
    let mut out = Vec::new();
    if let Some(paths) = value["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch"] {
                if item.get(method).is_some() {
                    out.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_document_covers_every_agent_route_and_resolves_every_reference() {
        let doc = agent();
        let ops = operations(&doc);
        let paths: std::collections::BTreeSet<&str> = ops.iter().map(|(_, p)| p.as_str()).collect();
        for template in a::ALL {
            assert!(paths.contains(template), "{template} is not documented");
        }
        assert_eq!(
            paths.len(),
            a::ALL.len(),
            "a documented path the routes do not have"
        );
        every_reference_resolves(&doc);
    }

    #[test]
    fn the_panel_document_covers_every_panel_route_and_resolves_every_reference() {
        let doc = panel();
        let ops = operations(&doc);
        let paths: std::collections::BTreeSet<String> =
            ops.iter().map(|(_, p)| p.clone()).collect();
        let expected: std::collections::BTreeSet<String> = p::ROOT
            .iter()
            .map(|s| (*s).to_owned())
            .chain(p::API.iter().map(|rel| format!("{}{rel}", p::PREFIX)))
            .collect();
        assert_eq!(paths, expected);
        every_reference_resolves(&doc);
    }

    fn every_reference_resolves(doc: &OpenApi) {
        let text = serde_json::to_string(doc).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let schemas = value["components"]["schemas"].as_object().unwrap();
        let mut rest = text.as_str();
        let mut seen = 0;
        while let Some(at) = rest.find("#/components/schemas/") {
            rest = &rest[at + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            assert!(
                schemas.contains_key(&name),
                "{name} is referred to but not defined"
            );
            seen += 1;
        }
        assert!(seen > 10, "too few references: {seen}");
    }
}
