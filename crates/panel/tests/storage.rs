//! One story against the storage, run on SQLite and on PostgreSQL.
//! PostgreSQL comes from `TEST_DATABASE_URL` (scripts/test starts a throwaway
//! server and sets it); each run gets a fresh database.

use api::ServerUuid;
use panel::storage::{Backend, NewNode, NewServer, Storage, StorageError};
use sqlx::Connection;

async fn story(db: &Storage) {
    let owner = db
        .create_user("owner@example.com", "hash-o", false, 100)
        .await
        .unwrap();
    let sub = db
        .create_user("sub@example.com", "hash-s", false, 100)
        .await
        .unwrap();
    let stranger = db
        .create_user("stranger@example.com", "hash-x", false, 100)
        .await
        .unwrap();
    let admin = db
        .create_user("admin@example.com", "hash-a", true, 100)
        .await
        .unwrap();
    assert!(admin.root_admin && !owner.root_admin);
    assert!(matches!(
        db.create_user("owner@example.com", "h", false, 1).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        db.user_by_email("sub@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        sub.id
    );
    assert!(
        db.user_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.update_user(sub.id, None, Some("hash-s2"), None)
            .await
            .unwrap()
    );
    assert_eq!(
        db.user(sub.id).await.unwrap().unwrap().password_hash,
        "hash-s2"
    );
    assert_eq!(db.users().await.unwrap().len(), 4);

    db.create_session("h1", owner.id, "csrf1", 1000)
        .await
        .unwrap();
    db.create_session("h2", sub.id, "csrf2", 1000)
        .await
        .unwrap();
    db.touch_session("h1", 1500).await.unwrap();
    let s = db.session("h1").await.unwrap().unwrap();
    assert_eq!(
        (s.user_id, s.csrf_token.as_str(), s.last_seen_at),
        (owner.id, "csrf1", 1500)
    );
    let (joined, user) = db.session_with_user("h1").await.unwrap().unwrap();
    assert_eq!((joined, user), (s, owner.clone()));
    assert_eq!(db.session_with_user("h0").await.unwrap(), None);
    assert_eq!(db.expire_sessions(1200, 0).await.unwrap(), 1, "h2 was idle");
    assert!(db.session("h2").await.unwrap().is_none());
    db.delete_session("h1").await.unwrap();
    assert!(db.session("h1").await.unwrap().is_none());

    let node = db
        .create_node(
            &NewNode {
                name: "node-1".into(),
                url: "https://node1.example.com:8090".into(),
                token_enc: "sealed-token".into(),
                ca_pem: None,
                browser_downloads: true,
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(db.nodes().await.unwrap(), vec![node.clone()]);
    let uuid = ServerUuid::parse("1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
    let new = NewServer {
        uuid: uuid.clone(),
        name: "Survival".into(),
        owner_id: owner.id,
        node_id: node.id,
        backup_limit: 5,
    };
    let server = db.create_server(&new, "sealed-key-1", 100).await.unwrap();
    assert!(matches!(
        db.create_server(&new, "k", 100).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(db.server_by_uuid(&uuid).await.unwrap().unwrap(), server);
    assert_eq!(
        db.server_key(server.id).await.unwrap().as_deref(),
        Some("sealed-key-1")
    );

    assert_eq!(db.servers_of_user(owner.id).await.unwrap().len(), 1);
    assert!(db.servers_of_user(sub.id).await.unwrap().is_empty());
    db.set_subuser(
        server.id,
        sub.id,
        &[api::Permission::BackupRead, api::Permission::BackupCreate],
    )
    .await
    .unwrap();
    assert_eq!(db.servers_of_user(sub.id).await.unwrap().len(), 1);
    assert!(db.servers_of_user(stranger.id).await.unwrap().is_empty());
    db.set_subuser(server.id, sub.id, &[api::Permission::BackupRead])
        .await
        .unwrap();
    assert_eq!(
        db.subuser_permissions(server.id, sub.id).await.unwrap(),
        Some(vec![api::Permission::BackupRead])
    );
    assert_eq!(
        db.subuser_permissions(server.id, stranger.id)
            .await
            .unwrap(),
        None
    );

    db.replace_server_key(server.id, "sealed-key-2", 200)
        .await
        .unwrap();
    assert_eq!(
        db.server_key(server.id).await.unwrap().as_deref(),
        Some("sealed-key-2")
    );
    assert_eq!(db.key_history_len(server.id).await.unwrap(), 2);
    assert!(db.set_backup_limit(server.id, 10).await.unwrap());
    assert_eq!(
        db.server_by_uuid(&uuid)
            .await
            .unwrap()
            .unwrap()
            .backup_limit,
        10
    );

    // Deleting a user drops their sessions and subuser rows (foreign keys on).
    db.create_session("h3", sub.id, "csrf3", 300).await.unwrap();
    assert!(db.delete_user(sub.id).await.unwrap());
    assert!(db.session("h3").await.unwrap().is_none());
    assert!(!db.remove_subuser(server.id, sub.id).await.unwrap());
    assert!(db.delete_server(server.id).await.unwrap());
    assert_eq!(db.server_key(server.id).await.unwrap(), None);
    assert!(db.delete_node(node.id).await.unwrap());
}

#[tokio::test]
async fn the_storage_story_holds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let db = Storage::connect(&url).await.unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    story(&db).await;
    // Reopening applies no migration twice.
    let again = Storage::connect(&url).await.unwrap();
    assert!(again.users().await.unwrap().len() == 3);
}

/// A fresh database named `name` on the PostgreSQL server
/// `TEST_DATABASE_URL` names: its URL and a connection to the server.
async fn fresh_postgres(name: &str) -> (String, sqlx::AnyConnection) {
    let admin_url = std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL must name a PostgreSQL server (./scripts/test starts one and sets it)",
    );
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&admin_url)
        .await
        .expect("connect to TEST_DATABASE_URL");
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
    (format!("{base}/{name}"), admin)
}

#[tokio::test]
async fn the_storage_story_holds_on_postgres() {
    let name = format!("panel_test_{}", std::process::id());
    let (url, mut admin) = fresh_postgres(&name).await;
    let db = Storage::connect(&url).await.unwrap();
    assert_eq!(db.backend(), Backend::Postgres);
    story(&db).await;
    // Two panels starting at once on one database: migrations apply once.
    let (a, b) = tokio::join!(Storage::connect(&url), Storage::connect(&url));
    a.unwrap();
    b.unwrap();
    drop(db);
    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}

/// A connection to the database at `url`.
async fn admin_on(url: &str) -> sqlx::AnyConnection {
    sqlx::AnyConnection::connect(url).await.unwrap()
}

/// The change watcher's connection dies (a PostgreSQL restart, a network
/// cut) while another panel changes a server: the change, whose
/// notification nobody heard, still shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_the_watcher_reconnects_still_shows_on_postgres() {
    let name = format!("panel_watch_{}", std::process::id());
    let (url, mut admin) = fresh_postgres(&name).await;
    let db = Storage::connect(&url).await.unwrap();
    let other = Storage::connect(&url).await.unwrap();
    let owner = db.create_user("o@x", "h", false, 0).await.unwrap();
    let node = db
        .create_node(
            &NewNode {
                name: "n".into(),
                url: "http://n".into(),
                token_enc: "t".into(),
                ca_pem: None,
                browser_downloads: true,
            },
            0,
        )
        .await
        .unwrap();
    let uuid = ServerUuid::parse("1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
    let server = db
        .create_server(
            &NewServer {
                uuid: uuid.clone(),
                name: "s".into(),
                owner_id: owner.id,
                node_id: node.id,
                backup_limit: 1,
            },
            "k",
            0,
        )
        .await
        .unwrap();
    let limit = |db: Storage| {
        let uuid = uuid.clone();
        async move {
            db.server_by_uuid(&uuid)
                .await
                .unwrap()
                .unwrap()
                .backup_limit
        }
    };
    // Two panels, each watching.
    let watcher = db.watch_changes();
    let other_watcher = other.watch_changes();
    // Heard from the database, the read is held — and the other panel's
    // heartbeats are not taken for changes: a write no trigger reports
    // stays unseen (only here, to see where answers come from).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(limit(db.clone()).await, 1);
    sqlx::raw_sql(&format!(
        "ALTER TABLE servers DISABLE TRIGGER servers_changed; \
         UPDATE servers SET backup_limit = 2 WHERE id = {}; \
         ALTER TABLE servers ENABLE TRIGGER servers_changed",
        server.id
    ))
    .execute(&mut admin_on(&url).await)
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        limit(db.clone()).await,
        1,
        "the read was not held, or another panel's heartbeat dropped it"
    );
    // A reported change: seen at once.
    other.set_backup_limit(server.id, 3).await.unwrap();
    let started = std::time::Instant::now();
    while limit(db.clone()).await != 3 {
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // An operator's TRUNCATE is reported too.
    db.create_session("h".repeat(64).as_str(), owner.id, "csrf", 0)
        .await
        .unwrap();
    let hash = "h".repeat(64);
    assert!(db.session_with_user(&hash).await.unwrap().is_some());
    assert!(db.session_with_user(&hash).await.unwrap().is_some());
    sqlx::raw_sql("TRUNCATE sessions")
        .execute(&mut admin_on(&url).await)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while db.session_with_user(&hash).await.unwrap().is_some() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "a truncated session still signs in"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for round in 0..3 {
        let killed = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(&name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        // Both panels' watchers lose their connection.
        assert_eq!(killed.len(), 2, "the watchers' connections were not found");
        let want = 10 + round;
        other.set_backup_limit(server.id, want).await.unwrap();
        let started = std::time::Instant::now();
        while limit(db.clone()).await != want {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "a change made while the watcher reconnected never showed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Back to listening before the next round.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    watcher.abort();
    other_watcher.abort();
    drop((db, other));
    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}
