//! The engine against the real restic binary.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use api::{Secret, SnapshotId};
use engine::{BackupEvent, BackupRequest, Cancel, EngineError, Restic, StatsMode, Timeouts};

fn key(s: &str) -> Secret {
    Secret::new(s).unwrap()
}

async fn restic_with(timeouts: Timeouts) -> Restic {
    Restic::detect("restic", None, timeouts)
        .await
        .expect("restic 0.14+ on PATH")
}

fn big_file(dir: &Path, mb: usize) {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut data = Vec::with_capacity(mb << 20);
    while data.len() < mb << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(dir.join("big.bin"), data).unwrap();
}

/// A backup of `src` with no tags or excludes.
fn plain(src: &Path) -> BackupRequest<'_> {
    BackupRequest {
        source: src,
        host: "h",
        tags: &[],
        excludes: &[],
    }
}

fn locks(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("locks"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn detects_version_and_refuses_missing_or_old_binaries() {
    let r = restic_with(Timeouts::default()).await;
    assert!(r.version() >= engine::Version::MINIMUM);

    let missing = Restic::detect("/nonexistent/restic", None, Timeouts::default()).await;
    assert!(
        matches!(missing, Err(EngineError::ResticMissing { .. })),
        "{missing:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("restic");
    std::fs::write(
        &old,
        "#!/bin/sh\necho 'restic 0.9.6 compiled with go1.13 on linux/amd64'\n",
    )
    .unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Restic::detect(&old, None, Timeouts::default())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::ResticTooOld { .. }), "{err:?}");
    assert!(err.to_string().contains("0.14.0"), "{err}");

    std::fs::write(&old, "#!/bin/sh\necho 'something else'\n").unwrap();
    let err = Restic::detect(&old, None, Timeouts::default())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownVersion { .. }), "{err:?}");
}

#[tokio::test]
async fn classifies_missing_repository_wrong_key_and_works_with_the_right_one() {
    let r = restic_with(Timeouts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let repo = r.repo(&path, key("right-key"));
    assert!(matches!(
        repo.snapshots().await,
        Err(EngineError::RepoNotFound)
    ));
    repo.init().await.unwrap();
    assert!(engine::repo_exists(&path));
    assert!(repo.snapshots().await.unwrap().is_empty());
    repo.check_key().await.unwrap();

    let wrong = r.repo(&path, key("wrong-key"));
    assert!(matches!(
        wrong.snapshots().await,
        Err(EngineError::WrongKey)
    ));
    assert!(matches!(
        wrong.check_key().await,
        Err(EngineError::WrongKey)
    ));

    // A key that looks like a flag is just a key.
    let odd = r.repo(
        dir.path().join("odd"),
        key("--password-command=touch /tmp/pwned"),
    );
    odd.init().await.unwrap();
    odd.check_key().await.unwrap();
    assert!(!Path::new("/tmp/pwned").exists());
}

#[tokio::test]
async fn backup_tag_forget_and_stats_round_trip() {
    let r = restic_with(Timeouts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("server");
    std::fs::create_dir_all(src.join("logs")).unwrap();
    std::fs::write(src.join("world.dat"), b"hello world").unwrap();
    std::fs::write(src.join("logs/latest.log"), b"noise").unwrap();
    std::fs::write(src.join("keep.log"), b"kept").unwrap();
    let repo = r.repo(dir.path().join("repo"), key("k"));
    repo.init().await.unwrap();

    let mut events = Vec::new();
    let excludes = vec![
        format!("{}/logs", src.display()),
        "*.log".into(),
        "!keep.log".into(),
    ];
    let summary = repo
        .backup(
            &BackupRequest {
                source: &src,
                host: "my-host",
                tags: &["pre-restore"],
                excludes: &excludes,
            },
            None,
            &mut |e| events.push(e),
        )
        .await
        .unwrap();
    assert_eq!(
        summary.total_files_processed, 2,
        "logs/ excluded, keep.log negated back in"
    );
    assert_eq!(summary.total_bytes_processed, 15);
    assert!(events.iter().all(|e| !matches!(e, BackupEvent::Summary(_))));

    let snaps = repo.snapshots().await.unwrap();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert!(s.id.as_str().starts_with(&summary.snapshot_id));
    assert_eq!(s.hostname, "my-host");
    assert_eq!(s.tags, ["pre-restore"]);

    repo.tag(&s.id, "locked", true).await.unwrap();
    let after = repo.snapshots().await.unwrap();
    assert_ne!(after[0].id, s.id);
    assert_eq!(after[0].stable_id(), &s.id);
    assert!(after[0].has_tag("locked"));

    let restore = repo
        .stats(StatsMode::RestoreSize, &[&after[0].id])
        .await
        .unwrap();
    assert_eq!((restore.total_size, restore.snapshots_count), (15, 1));
    let raw = repo.stats(StatsMode::RawData, &[]).await.unwrap();
    assert!(raw.total_size > 0);

    let ghost = SnapshotId::parse(&"0".repeat(64)).unwrap();
    let none = repo.stats(StatsMode::RestoreSize, &[&ghost]).await.unwrap();
    assert_eq!(
        none.snapshots_count, 0,
        "restic ignores unknown IDs; callers must check"
    );

    repo.forget(&[&after[0].id]).await.unwrap();
    assert!(repo.snapshots().await.unwrap().is_empty());
}

#[tokio::test]
async fn cancelling_a_backup_interrupts_restic_and_leaves_no_lock() {
    let r = restic_with(Timeouts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("server");
    std::fs::create_dir_all(&src).unwrap();
    big_file(&src, 300);
    let repo = r.repo(dir.path().join("repo"), key("k"));
    repo.init().await.unwrap();

    let cancel = Cancel::new();
    let trigger = cancel.clone();
    let mut saw_status = false;
    let result = repo
        .backup(&plain(&src), Some(&cancel), &mut |e| {
            if matches!(e, BackupEvent::Status(_)) && !saw_status {
                saw_status = true;
                trigger.cancel();
            }
        })
        .await;
    assert!(saw_status, "restic reported no progress before finishing");
    assert!(matches!(result, Err(EngineError::Cancelled)), "{result:?}");
    assert_eq!(
        locks(repo.location().local_path().unwrap()),
        0,
        "restic left its lock behind"
    );
    assert!(repo.snapshots().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_timeout_interrupts_restic_and_leaves_no_lock() {
    let r = restic_with(Timeouts {
        long: Duration::from_millis(1500),
        ..Timeouts::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("server");
    std::fs::create_dir_all(&src).unwrap();
    big_file(&src, 600);
    let repo = r.repo(dir.path().join("repo"), key("k"));
    repo.init().await.unwrap();
    let result = repo.backup(&plain(&src), None, &mut |_| {}).await;
    assert!(
        matches!(result, Err(EngineError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(
        locks(repo.location().local_path().unwrap()),
        0,
        "restic left its lock behind"
    );
}

#[tokio::test]
async fn dropping_a_running_backup_interrupts_restic() {
    let r = restic_with(Timeouts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("server");
    std::fs::create_dir_all(&src).unwrap();
    big_file(&src, 300);
    let repo = r.repo(dir.path().join("repo"), key("k"));
    repo.init().await.unwrap();
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let task = {
        let repo = repo.clone();
        let src = src.clone();
        tokio::spawn(async move {
            repo.backup(&plain(&src), None, &mut |e| {
                let _ = tx.send(matches!(e, BackupEvent::Status(_)));
            })
            .await
        })
    };
    // Abandon the run once restic is busy. (restic 0.14 itself leaves its lock
    // behind when interrupted in the first instant after creating it; the
    // agent's stale-lock cleanup handles that case.)
    while let Some(is_status) = progress.recv().await {
        if is_status {
            break;
        }
    }
    assert!(
        locks(repo.location().local_path().unwrap()) > 0,
        "restic holds no lock while backing up"
    );
    task.abort();
    let _ = task.await;
    for _ in 0..500 {
        if locks(repo.location().local_path().unwrap()) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("restic did not remove its lock after SIGINT");
}

/// Snapshot files read with the master key are what `restic snapshots`
/// lists, in both repository versions; a wrong password, a changed file or
/// a file under another name are refused.
#[tokio::test]
async fn snapshot_files_read_directly_match_restics_listing() {
    let r = restic_with(Timeouts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("server");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("world.dat"), b"hello world").unwrap();
    for version in ["1", "2"] {
        let path = dir.path().join(format!("repo-v{version}"));
        let status = std::process::Command::new("restic")
            .args(["init", "--repository-version", version, "-q"])
            .env("RESTIC_REPOSITORY", &path)
            .env("RESTIC_PASSWORD", "k")
            .status()
            .unwrap();
        assert!(status.success());
        let repo = r.repo(path.clone(), key("k"));
        let tags: &[&str] = &["pre-restore"];
        let req = BackupRequest {
            source: &src,
            host: "my-host",
            tags,
            excludes: &[],
        };
        repo.backup(&req, None, &mut |_| {}).await.unwrap();
        repo.backup(&plain(&src), None, &mut |_| {}).await.unwrap();
        let first = repo.snapshots().await.unwrap()[0].id.clone();
        repo.tag(&first, "locked", true).await.unwrap();
        repo.add_key(&key("second")).await.unwrap();

        let master = tokio::task::spawn_blocking({
            let path = path.clone();
            move || engine::MasterKey::open(&path, &key("second"))
        })
        .await
        .unwrap()
        .unwrap();
        let listed = repo.snapshots().await.unwrap();
        assert_eq!(listed.len(), 2);
        for s in &listed {
            let read = master.read_snapshot(&path, s.id.as_str()).unwrap();
            assert_eq!(&read, s, "repository version {version}");
        }
        assert!(
            listed.iter().any(|s| s.original.is_some()),
            "a re-tagged one"
        );

        let wrong = engine::MasterKey::open(&path, &key("not-it"));
        assert!(matches!(wrong, Err(EngineError::WrongKey)), "{wrong:?}");
        // A changed byte (name kept) and a file under another's name.
        let id = listed[0].id.as_str();
        let file = path.join("snapshots").join(id);
        let mut data = std::fs::read(&file).unwrap();
        let original = data.clone();
        let last = data.len() - 1;
        data[last] ^= 1;
        std::fs::write(&file, &data).unwrap();
        assert!(master.read_snapshot(&path, id).is_err());
        std::fs::write(&file, &original).unwrap();
        let other = listed[1].id.as_str();
        let other_file = path.join("snapshots").join(other);
        let kept = std::fs::read(&other_file).unwrap();
        std::fs::write(&other_file, &original).unwrap();
        assert!(master.read_snapshot(&path, other).is_err());
        std::fs::write(&other_file, &kept).unwrap();
        for bad in ["../config", "", "ABC", &"g".repeat(64)] {
            assert!(master.read_snapshot(&path, bad).is_err(), "{bad:?}");
        }
    }
}

/// A local repository for a 256-bit key is written without `restic init`:
/// restic opens it (checking its chunker polynomial), backs up into it,
/// `restic check` finds nothing wrong, its one key has the light work
/// factor, and the master key returned reads what restic lists.
#[tokio::test]
async fn a_repository_written_without_restic_is_one_restic_accepts() {
    let r = restic_with(Timeouts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("server");
    std::fs::create_dir_all(&src).unwrap();
    big_file(&src, 3);
    std::fs::write(src.join("world.dat"), b"hello world").unwrap();
    let machine = "0123456789abcdef".repeat(4);
    assert!(engine::is_machine_key(&key(&machine)));
    for human in ["k", "correct horse battery staple", &"g".repeat(64)] {
        assert!(!engine::is_machine_key(&key(human)), "{human}");
    }
    let path = dir.path().join("repo");
    let repo = r.repo(path.clone(), key(&machine));
    let master = repo.init().await.unwrap().expect("written directly");
    assert!(engine::repo_exists(&path));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let restic = |args: &[&str]| {
        let out = std::process::Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", &path)
            .env("RESTIC_PASSWORD", &machine)
            .env("RESTIC_CACHE_DIR", dir.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restic {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let config: serde_json::Value = serde_json::from_str(&restic(&["cat", "config"])).unwrap();
    assert_eq!(config["version"], 2);
    assert_eq!(config["id"].as_str().unwrap().len(), 64);
    let polynomial =
        u64::from_str_radix(config["chunker_polynomial"].as_str().unwrap(), 16).unwrap();
    assert_eq!(63 - polynomial.leading_zeros(), 53);

    repo.backup(&plain(&src), None, &mut |_| {}).await.unwrap();
    std::fs::write(src.join("world.dat"), b"hello again").unwrap();
    repo.backup(&plain(&src), None, &mut |_| {}).await.unwrap();
    let listed = repo.snapshots().await.unwrap();
    assert_eq!(listed.len(), 2);
    for s in &listed {
        assert_eq!(&master.read_snapshot(&path, s.id.as_str()).unwrap(), s);
    }
    restic(&["check", "--read-data"]);

    let keys = repo.keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].current);
    let key_files: Vec<_> = std::fs::read_dir(path.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(key_files.len(), 1);
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key_files[0]).unwrap()).unwrap();
    assert_eq!(
        (file["N"].as_u64(), file["r"].as_u64(), file["p"].as_u64()),
        (Some(4096), Some(8), Some(1))
    );
    assert_eq!(file["username"], "restic-backups");
    assert!(
        !std::fs::read_to_string(&key_files[0])
            .unwrap()
            .contains(&machine)
    );
    let mode = std::fs::metadata(&key_files[0])
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o400);
    assert!(matches!(
        r.repo(path.clone(), key(&"f".repeat(64))).check_key().await,
        Err(EngineError::WrongKey)
    ));

    // A second key added the same way opens the repository for restic too.
    let second = "fedcba9876543210".repeat(4);
    master.add_light_key(&path, &key(&second)).unwrap();
    let other = r.repo(path.clone(), key(&second));
    assert_eq!(other.snapshots().await.unwrap().len(), 2);
    assert_eq!(repo.keys().await.unwrap().len(), 2);
    assert!(master.add_light_key(&path, &key("short")).is_err());

    // Never over a repository (directly or through restic); a folder that
    // is there already (an operator's, a mount point) is left to restic,
    // which fills it in place.
    assert!(repo.init().await.is_err());
    let again = engine::init_local(&path, &key(&machine));
    assert!(
        matches!(again, Err(EngineError::Failed { ref message, .. }) if message.contains("exists there already")),
        "{again:?}"
    );
    let in_the_way = dir.path().join("in-the-way");
    std::fs::create_dir_all(in_the_way.join("stuff")).unwrap();
    let err = engine::init_local(&in_the_way, &key(&machine));
    assert!(
        matches!(err, Err(EngineError::Failed { ref message, .. }) if message.contains("holds no repository")),
        "{err:?}"
    );
    assert!(in_the_way.join("stuff").is_dir(), "left as it was");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(
        r.repo(empty.clone(), key(&machine))
            .init()
            .await
            .unwrap()
            .is_none()
    );
    assert!(engine::repo_exists(&empty));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".init-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A key file a crash left under its temporary name goes with the next
    // key written; a key file of another repository is not taken for this
    // one's.
    std::fs::write(path.join(".key-0011223344556677.tmp"), b"{}").unwrap();
    master.add_light_key(&path, &key(&"ab".repeat(32))).unwrap();
    assert!(!path.join(".key-0011223344556677.tmp").exists());
    let elsewhere = dir.path().join("elsewhere");
    let foreign = r
        .repo(elsewhere.clone(), key(&"cd".repeat(32)))
        .init()
        .await
        .unwrap()
        .unwrap();
    foreign
        .add_light_key(&path, &key(&"cd".repeat(32)))
        .unwrap();
    let wrong = engine::MasterKey::open(&path, &key(&"cd".repeat(32)));
    assert!(matches!(wrong, Err(EngineError::WrongKey)), "{wrong:?}");
}
