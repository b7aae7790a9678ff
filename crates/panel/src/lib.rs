//! The panel: users, sessions, permissions, nodes, servers and keys; proxies
//! backup operations to the agents. So far: storage, secret sealing and
//! password hashing, which the HTTP layer will build on.

pub mod admin;
pub mod agent_client;
pub mod auth;
pub mod config;
pub mod password;
pub mod permissions;
pub mod schedule;
pub mod seal;
pub mod storage;
