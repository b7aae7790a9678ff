//! Keys outlive their server: a deleted server's archived repository can be
//! opened with the key the archived-repositories page shows and
//! `key export` prints; deleting the archive deletes its key record; a
//! server on a node that is gone can be force-deleted with its key kept.

use reqwest::Method;
use serde_json::Value;
use testkit::panel::{Db, World, run_cli};

const API: &str = "/extensions/resticbackups";

fn archive_of<'a>(list: &'a Value, server: &str) -> Option<&'a Value> {
    list["archives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["server_uuid"] == server)
}

async fn keys_follow_the_archive(db: Db) {
    let mut w = World::new(db, 2, 0).await;
    let (doomed, rotated) = (w.servers[0].clone(), w.servers[1].clone());
    w.owner.backup(&doomed).await;
    w.owner.backup(&rotated).await;
    let doomed_key = w.panel.key_of(&w.admin, &doomed).await;
    let old_rotated_key = w.panel.key_of(&w.admin, &rotated).await;
    let (s, v) = w
        .admin
        .send(
            Method::POST,
            &format!("{API}/admin/servers/{rotated}/key/regenerate"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let new_rotated_key = w.panel.key_of(&w.admin, &rotated).await;
    assert_ne!(new_rotated_key, old_rotated_key);

    for server in [&doomed, &rotated] {
        // The node archives the repository first: 202, then the task ends.
        let (s, v) = w.admin.delete_server(server).await;
        assert_eq!((s, v["status"].as_str()), (202, Some("succeeded")), "{v}");
        assert!(v["finished_at"].is_string(), "{v}");
    }
    let (s, list) = w.admin.get(&format!("{API}/admin/archived-repos")).await;
    assert_eq!(s, 200, "{list}");
    let doomed_archive = archive_of(&list, &doomed).expect("archived").clone();
    assert_eq!(doomed_archive["location"], "on_node");
    assert_eq!(doomed_archive["key"], doomed_key.as_str());
    assert_eq!(doomed_archive["server_name"], format!("server {doomed}"));
    let rotated_archive = archive_of(&list, &rotated).unwrap().clone();
    assert_eq!(rotated_archive["key"], new_rotated_key.as_str());
    assert_eq!(
        rotated_archive["other_keys"],
        serde_json::json!([old_rotated_key]),
        "the earlier key is listed for repositories restored from old copies"
    );

    // The key shown opens the archived repository with plain restic.
    let name = doomed_archive["name"].as_str().unwrap();
    let archived = w.agent.repo_root().join("archive").join(name);
    let listed = testkit::restic(&archived, &doomed_key, None, &["snapshots", "--json"]);
    assert!(listed.contains("\"tree\""), "{listed}");

    // Disaster recovery: every key, archived ones included, on stdout.
    let config = w.panel.dir.path().join("panel.toml");
    let (ok, out) = run_cli(&config, &["key", "export"], "");
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&doomed))
        .expect("the archived key is exported");
    assert_eq!(
        line.split('\t').collect::<Vec<_>>(),
        ["archived", "node-1", name, doomed_key.as_str()]
            .iter()
            .fold(vec![doomed.as_str()], |mut v, x| {
                v.push(x);
                v
            })
    );
    assert!(out.contains(&format!("{rotated}\tarchived-previous\tnode-1")));

    // Deleting the archive deletes its key record.
    let (s, v) = w
        .admin
        .send(
            Method::DELETE,
            &format!("{API}/admin/archived-repos/{name}"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, list) = w.admin.get(&format!("{API}/admin/archived-repos")).await;
    assert!(archive_of(&list, &doomed).is_none(), "{list}");
    let (_, out) = run_cli(&config, &["key", "export"], "");
    assert!(!out.contains(&doomed_key), "{out}");
    assert!(!archived.exists());
}

async fn a_server_on_a_dead_node_can_be_force_deleted_keeping_its_key(db: Db) {
    let mut w = World::new(db, 0, 0).await;
    // A node that is gone: nothing listens at its address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (s, v) = w
        .admin
        .send(
            Method::POST,
            &format!("{API}/admin/nodes"),
            Some(serde_json::json!({"name": "gone", "url": url, "token": "gone-node-token-0123456789"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let server = testkit::new_uuid();
    w.panel
        .add_server(&w.admin, &server, "owner@example.com", "gone", 0)
        .await;
    let key = w.panel.key_of(&w.admin, &server).await;

    let path = format!("{API}/admin/servers/{server}");
    let (s, v) = w.admin.send(Method::DELETE, &path, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("node_unavailable")),
        "{v}"
    );
    let (s, v) = w
        .admin
        .send(Method::DELETE, &format!("{path}?force=maybe"), None)
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = w
        .admin
        .send(Method::DELETE, &format!("{path}?force=true"), None)
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, servers) = w.admin.get(&format!("{API}/admin/servers")).await;
    assert!(!servers.to_string().contains(&server));

    let (_, list) = w.admin.get(&format!("{API}/admin/archived-repos")).await;
    let a = archive_of(&list, &server).expect("recorded").clone();
    assert_eq!(a["location"], "unreachable_node");
    assert_eq!(a["node"], "gone");
    assert_eq!(a["key"], key.as_str());
    assert!(list["unavailable_nodes"].to_string().contains("gone"));
    // Its record can be deleted once the repository is given up.
    let (s, v) = w
        .admin
        .send(
            Method::DELETE,
            &format!("{API}/admin/archived-repos/{server}?node=gone"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, list) = w.admin.get(&format!("{API}/admin/archived-repos")).await;
    assert!(archive_of(&list, &server).is_none());
}

/// A deletion that was interrupted after the node archived the repository:
/// the retry finds no repository, but the archive, and keeps its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_deletion_keeps_the_key_of_the_earlier_archive() {
    let mut w = World::new(Db::Sqlite, 1, 0).await;
    let server = w.servers[0].clone();
    w.owner.backup(&server).await;
    let key = w.panel.key_of(&w.admin, &server).await;
    // The first attempt's archive job ran on the node…
    let (s, a) = w
        .agent
        .call(
            Method::POST,
            &format!("{}/archive", w.agent.backups_url(&server)),
            &key,
            None,
        )
        .await;
    assert_eq!(s, 202, "{a}");
    w.agent
        .wait_job(&server, a["job_id"].as_str().unwrap())
        .await;
    std::fs::remove_dir_all(w.agent.data_dir().join(&server)).unwrap();
    // …and the retry finds the repository gone.
    let (s, v) = w
        .admin
        .send(
            Method::DELETE,
            &format!("{API}/admin/servers/{server}"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, list) = w.admin.get(&format!("{API}/admin/archived-repos")).await;
    let archive = archive_of(&list, &server).expect("listed");
    assert_eq!(archive["key"], key.as_str(), "{list}");
    assert_eq!(archive["location"], "on_node");
}

/// An archive the node can not make: the deletion's task fails with the
/// node's reason and the server (with its key) stays; task IDs are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_archive_fails_the_task_and_keeps_the_server() {
    let mut w = World::new(Db::Sqlite, 1, 0).await;
    let server = w.servers[0].clone();
    w.owner.backup(&server).await;
    let key = w.panel.key_of(&w.admin, &server).await;
    // A damaged repository: restic can not take the final snapshot.
    std::fs::write(w.agent.repo(&server).join("config"), b"damaged").unwrap();
    let (s, task) = w.admin.delete_server(&server).await;
    assert_eq!(
        (s, task["status"].as_str()),
        (202, Some("failed")),
        "{task}"
    );
    assert_eq!(task["error"]["code"], "conflict", "{task}");
    assert!(
        task["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the repository could not be archived, so the server was kept"),
        "{task}"
    );
    let (_, servers) = w.admin.get(&format!("{API}/admin/servers")).await;
    assert!(servers.to_string().contains(&server), "{servers}");
    assert_eq!(w.panel.key_of(&w.admin, &server).await, key);

    let (s, v) = w
        .admin
        .get(&format!(
            "{API}/admin/tasks/0123456789abcdef0123456789abcdef"
        ))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("task_not_found")),
        "{v}"
    );
    let (s, v) = w.admin.get(&format!("{API}/admin/tasks/../../x")).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = w.admin.get(&format!("{API}/admin/tasks/NOT-A-TASK")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_task_id")),
        "{v}"
    );
    let (s, _) = w
        .owner
        .get(&format!(
            "{API}/admin/tasks/{}",
            task["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 403, "only root admins read tasks");
}

/// A panel that crashes while its node archives: deleting again picks up
/// the node's job (or the archive it made) instead of archiving twice, and
/// the one archive keeps the server's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_cut_short_by_a_crash_is_finished_by_deleting_again() {
    let mut w = World::new(Db::Sqlite, 1, 0).await;
    let server = w.servers[0].clone();
    w.owner.backup(&server).await;
    let key = w.panel.key_of(&w.admin, &server).await;
    let path = format!("{API}/admin/servers/{server}");
    let (s, task) = w.admin.send(Method::DELETE, &path, None).await;
    assert_eq!(
        (s, task["status"].as_str()),
        (202, Some("running")),
        "{task}"
    );
    w.panel.crash_and_restart();
    w.admin.base = w.panel.url.clone();
    // The server is still there; its node finished (or finishes) the archive.
    let (_, servers) = w.admin.get(&format!("{API}/admin/servers")).await;
    assert!(servers.to_string().contains(&server), "{servers}");
    let (s, v) = w.admin.delete_server(&server).await;
    assert!(
        s == 204 || (s == 202 && v["status"] == "succeeded"),
        "deleting again finishes the work: {s} {v}"
    );
    let (_, servers) = w.admin.get(&format!("{API}/admin/servers")).await;
    assert!(!servers.to_string().contains(&server), "{servers}");
    let (_, list) = w.admin.get(&format!("{API}/admin/archived-repos")).await;
    let archives: Vec<&Value> = list["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["server_uuid"] == server.as_str())
        .collect();
    assert_eq!(archives.len(), 1, "archived once: {list}");
    assert_eq!(archives[0]["key"], key.as_str(), "{list}");
    assert_eq!(archives[0]["location"], "on_node", "{list}");
}

testkit::on_both_databases!(
    keys_follow_the_archive,
    a_server_on_a_dead_node_can_be_force_deleted_keeping_its_key
);
