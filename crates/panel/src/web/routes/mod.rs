pub mod admin;
pub mod auth;
pub mod backups;
pub mod health;
