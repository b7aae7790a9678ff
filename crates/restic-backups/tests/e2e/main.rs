//! The end-to-end tests: one binary, one module per story, over the shared
//! harness in `crates/testkit`. Each test starts the real `restic-backups`
//! binary (and whatever servers it needs) on its own temp folders and ports.

mod agent_adopt;
mod agent_archive_keys_prune;
mod agent_bad_input;
mod agent_download;
mod agent_jobs;
mod agent_recovery;
mod agent_reload;
mod agent_restore;
mod agent_restore_wings;
mod agent_secrets_and_concurrency;
mod agent_snapshots;
mod agent_startup;
mod agent_tenant_safety;
mod agent_tls;
mod audit;
mod backup_notes;
mod config_check;
mod connection_limits;
mod demo;
mod disaster_recovery;
mod health;
mod import_extension;
mod logs;
mod metrics;
mod notifications;
mod offsite;
mod openapi;
mod panel_agent_client;
mod panel_archived_keys;
mod panel_cli;
mod panel_http;
mod panel_logins;
mod panel_nodes;
mod panel_schedule;
mod panel_start;
mod pterodactyl_api;
mod pterodactyl_sync;
mod repo_hygiene;
mod snapshot_browser;
mod ui;
