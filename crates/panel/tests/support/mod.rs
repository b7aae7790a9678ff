//! Fixtures the panel's scheduler test and tick benchmark share.
#![allow(dead_code)]

use api::ServerUuid;
use panel::storage::{NewNode, NewServer, Server, Storage, User};

/// An owner, a node no agent listens behind, and `n` servers of the owner
/// (with a placeholder for the sealed key: these fixtures never open it).
pub async fn owner_with_servers(storage: &Storage, n: usize) -> (User, Vec<Server>) {
    let owner = storage
        .create_user("o@example.com", "h", false, 0)
        .await
        .unwrap();
    let node = storage
        .create_node(
            &NewNode {
                name: "n".into(),
                url: "http://127.0.0.1:9".into(),
                token_enc: "x".into(),
                ca_pem: None,
                browser_downloads: true,
            },
            0,
        )
        .await
        .unwrap();
    let mut servers = Vec::with_capacity(n);
    for i in 0..n {
        let uuid = ServerUuid::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap();
        servers.push(
            storage
                .create_server(
                    &NewServer {
                        uuid,
                        name: format!("s{i}"),
                        owner_id: owner.id,
                        node_id: node.id,
                        backup_limit: 0,
                    },
                    "sealed",
                    0,
                )
                .await
                .unwrap(),
        );
    }
    (owner, servers)
}
