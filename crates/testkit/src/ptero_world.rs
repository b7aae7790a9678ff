//! Pterodactyl mode's usual stage: the double, filled, and a panel pointed
//! at it.

use super::pterodactyl::{Node, Pterodactyl, Server, User};

/// The usual stage: the double with an owner (2), a helper (3), another
/// admin (4) and a node pointing at `agent` (its token is the agent's); one
/// server on it ("Survival", limit 5), owned by 2, with 3 as a subuser who
/// may only read. Answers the double and the server's UUID.
pub async fn stage(agent: &super::TestAgent) -> (Pterodactyl, String) {
    let ptero = Pterodactyl::start().await;
    // Pterodactyl's admin must not share the e-mail of the panel's local one.
    ptero.edit(|s| s.user_mut(1).unwrap().email = "root@ptero.example".into());
    ptero.add_user(User::new(2, "owner"));
    ptero.add_user(User::new(3, "helper"));
    ptero.add_user(User::new(4, "boss").admin());
    let mut node = Node::new(1);
    node.fqdn = "127.0.0.1".into();
    node.scheme = "http".into();
    node.token = super::TOKEN.into();
    ptero.add_node(node);
    let uuid = agent.add_server();
    let mut server = Server::new(1, 2, 1);
    server.uuid = uuid.clone();
    server.name = "Survival".into();
    server.backup_limit = 5;
    ptero.add_server(server);
    ptero.set_subuser(1, 3, &["control.console", "backup.read"]);
    (ptero, uuid)
}

/// A panel in Pterodactyl mode on `ptero`, its nodes' agents on `agent`'s
/// port, with `extra_toml` in its `[pterodactyl]` table; the folder holds
/// its application key file.
pub fn panel_with(
    db: super::panel::Db,
    ptero: &Pterodactyl,
    agent: &super::TestAgent,
    extra_toml: &[&str],
) -> (super::panel::TestPanel, tempfile::TempDir) {
    panel_under(db, ptero, agent, None, extra_toml)
}

/// Like [`panel_with`], the panel mounted under `base_path`; its `url` then
/// includes the base path, so the harness's clients work unchanged.
pub fn panel_under(
    db: super::panel::Db,
    ptero: &Pterodactyl,
    agent: &super::TestAgent,
    base_path: Option<&str>,
    extra_toml: &[&str],
) -> (super::panel::TestPanel, tempfile::TempDir) {
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("ptla");
    std::fs::write(&key_file, ptero.application_key()).unwrap();
    let port = agent.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let mut lines: Vec<String> = base_path
        .map(|b| format!("base_path = \"{b}\""))
        .into_iter()
        .collect();
    lines.extend([
        "[pterodactyl]".to_owned(),
        format!("url = \"{}\"", ptero.url()),
        format!("application_key_file = \"{}\"", key_file.display()),
        format!("agent_port = {port}"),
    ]);
    lines.extend(extra_toml.iter().map(|l| (*l).to_owned()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut panel = super::panel::TestPanel::start_with(db, &refs);
    if let Some(b) = base_path {
        panel.url = format!("{}{b}", panel.url);
    }
    (panel, key_dir)
}
