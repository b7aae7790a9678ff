//! The web UI in a real headless Chromium (Debian's `chromium` through
//! `chromedriver`) against the real binary, agent and restic. Screenshots go
//! to `target/ui-screenshots/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::panel::{Db, PASSWORD, TestPanel, World};
use testkit::webdriver::Browser;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots")
}

async fn log_in(b: &Browser, panel: &TestPanel, email: &str, password: &str) {
    b.goto(&format!("{}/login", panel.url)).await;
    b.fill("#email", email).await;
    b.fill("#password", password).await;
    b.click("#login-submit").await;
    b.wait_for("#logout").await;
}

async fn log_out(b: &Browser) {
    b.click("#logout").await;
    b.wait_for("#login-form").await;
}

/// Opens the actions menu of the first backup row and clicks `action`.
async fn row_action(b: &Browser, action: &str) {
    b.click("#rows tr:first-child .menu-button").await;
    b.click(&format!("#rows tr:first-child [data-action=\"{action}\"]"))
        .await;
}

fn rows_count_js() -> &'static str {
    "return document.querySelectorAll('#rows tr').length"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_subuser_and_admin_use_the_backups_pages() {
    let World {
        agent,
        panel,
        admin: admin_api,
        owner: mut owner_api,
        servers,
    } = World::new(Db::Sqlite, 1, 0).await;
    let server = servers[0].clone();
    panel.add_user(&admin_api, "reader@example.com").await;
    // Some weight, so the backup shows progress for a moment.
    std::fs::write(
        agent
            .data_dir()
            .join(&server)
            .join("world/region/r.1.0.mca"),
        testkit::pseudo_random(7, 48 * 1024 * 1024),
    )
    .unwrap();
    panel
        .set_subuser(&admin_api, &server, "reader@example.com", &["backup.read"])
        .await;
    let downloads = tempfile::tempdir().unwrap();
    let b = Browser::start(downloads.path()).await;
    let shots = screenshots();

    // --- the owner ---
    log_in(&b, &panel, "owner@example.com", PASSWORD).await;
    b.wait_until(
        "my servers",
        "return document.querySelector('#server-list a')",
        json!([]),
    )
    .await;
    b.click("#server-list a").await;
    b.wait_for("#create-backup").await;
    b.wait_for("#empty").await;
    assert!(b.text("#empty").await.contains("No backups yet"));

    // Create: the progress bar shows, then the new row and fresh stats.
    b.js(
        "window.__progress = []; const p = document.getElementById('progress');
         new MutationObserver(() => { if (!p.hidden) window.__progress.push(document.getElementById('progress-text').textContent); })
           .observe(p, {attributes: true, subtree: true, childList: true, characterData: true});",
        json!([]),
    )
    .await;
    b.click("#create-backup").await;
    b.wait_until("a backup row", rows_count_js(), json!([]))
        .await;
    b.wait_until(
        "the progress bar to go away",
        "return document.getElementById('progress').hidden",
        json!([]),
    )
    .await;
    let seen = b.js("return window.__progress", json!([])).await;
    assert!(
        !seen.as_array().unwrap().is_empty(),
        "the progress bar was never shown"
    );
    b.wait_until(
        "stats",
        "return document.getElementById('stat-count').textContent === '1'",
        json!([]),
    )
    .await;
    assert!(b.text("#stat-size").await.contains("MiB"));
    assert!(
        b.text("#rows tr:first-child .rel").await.len() > 3,
        "relative time"
    );
    b.screenshot(&shots.join("backups-desktop.png")).await;

    // Lock: the icon shows and Delete is disabled; then unlock.
    row_action(&b, "lock").await;
    b.wait_until(
        "the lock icon (drawn in SVG, not an emoji)",
        "const l = document.querySelector('#rows tr:first-child:not([aria-busy]) .lock'); return l && l.tagName === 'svg'",
        json!([]),
    )
    .await;
    b.click("#rows tr:first-child .menu-button").await;
    let delete_disabled = b
        .js(
            "return document.querySelector('#rows tr:first-child [data-action=\"delete\"]').disabled",
            json!([]),
        )
        .await;
    assert_eq!(delete_disabled, json!(true));
    b.click("#rows tr:first-child [data-action=\"unlock\"]")
        .await;
    b.wait_until(
        "the lock icon to go",
        "return !document.querySelector('#rows tr:first-child .lock') && document.querySelector('#rows tr:first-child:not([aria-busy]) [data-action=\"lock\"]')",
        json!([]),
    )
    .await;

    // Every archive format is offered, with the size of the files.
    b.click("#rows tr:first-child .menu-button").await;
    for action in ["download", "download-zst", "download-zip"] {
        let css = format!("#rows tr:first-child [data-action=\"{action}\"]");
        assert!(b.text(&css).await.contains("MiB of files"), "{action}");
    }
    b.js("document.body.click()", json!([])).await;

    // Download: the file arrives and is a valid archive.
    row_action(&b, "download").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let archive = loop {
        let done: Vec<PathBuf> = std::fs::read_dir(downloads.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .collect();
        if let Some(p) = done.first() {
            break p.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no download arrived: {:?} (page error: {})",
            std::fs::read_dir(downloads.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect::<Vec<_>>(),
            b.text("#error").await,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(testkit::tar_list(&archive, &["-tzf"]).contains("server.properties"));

    // Restore: the confirmation says what happens; the changed file comes back.
    let props = agent.data_dir().join(&server).join("server.properties");
    let original = std::fs::read_to_string(&props).unwrap();
    std::fs::write(&props, "motd=griefed\n").unwrap();
    row_action(&b, "restore").await;
    b.wait_for("#confirm[open]").await;
    let text = b.text("#confirm-text").await;
    assert!(
        text.contains("replaced") && text.contains("safety snapshot"),
        "{text}"
    );
    // The owner chooses whether the game server is stopped; yes by default.
    assert!(
        b.text("#confirm-extra")
            .await
            .contains("Stop the server during the restore"),
        "{}",
        b.text("#confirm-extra").await
    );
    assert_eq!(
        b.js(
            "return document.getElementById('confirm-stop-server').checked",
            json!([])
        )
        .await,
        json!(true)
    );
    b.click("#confirm-ok").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(&props).unwrap_or_default() != original {
        assert!(Instant::now() < deadline, "the file did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.wait_until(
        "the restore to finish",
        "return document.getElementById('progress').hidden && document.getElementById('stat-count').textContent === '2'",
        json!([]),
    )
    .await;
    assert!(
        b.text("#error").await.is_empty() || !b.exists("#error:not([hidden])").await,
        "an error was shown: {}",
        b.text("#error").await
    );

    // Browse the backup: into a folder, pick one file, restore just it.
    let level = agent.data_dir().join(&server).join("world/level.dat");
    let level_before = std::fs::read(&level).unwrap();
    std::fs::write(&level, "corrupted by a plugin").unwrap();
    std::fs::write(&props, "motd=changed since\n").unwrap();
    row_action(&b, "browse").await;
    b.wait_for("#browser[open] #browser-rows tr").await;
    let names = b
        .js(
            "return [...document.querySelectorAll('#browser-rows td.name')].map(t => t.textContent)",
            json!([]),
        )
        .await;
    assert_eq!(names[0], "world/", "folders first: {names}");
    b.click("#browser-rows tr[data-path=\"/world\"] button.open")
        .await;
    b.wait_for("#browser-rows tr[data-path=\"/world/level.dat\"]")
        .await;
    assert!(b.text("#browser-crumbs").await.contains("world"));
    b.screenshot(&shots.join("browser-desktop.png")).await;
    b.click("#browser-rows tr[data-path=\"/world/level.dat\"] input")
        .await;
    assert_eq!(b.text("#browser-selected").await, "1 selected");
    b.click("#browser-restore").await;
    b.wait_for("#confirm[open]").await;
    assert!(b.text("#confirm-extra").await.contains("/world/level.dat"));
    b.click("#confirm-ok").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read(&level).unwrap_or_default() != level_before {
        assert!(
            Instant::now() < deadline,
            "the file did not come back: {}",
            b.text("#error").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.wait_until(
        "the partial restore to finish",
        "return document.getElementById('progress').hidden && !document.getElementById('browser').open && document.getElementById('stat-count').textContent === '3'",
        json!([]),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&props).unwrap(),
        "motd=changed since\n",
        "only the chosen file is restored"
    );
    std::fs::write(&props, &original).unwrap();

    // A note on the newest backup, shown in its row.
    row_action(&b, "note").await;
    b.wait_for("#confirm[open] #note-input").await;
    b.fill("#note-input", "before the 1.21 update").await;
    b.click("#confirm-ok").await;
    b.wait_until(
        "the note in the list",
        "const n = document.querySelector('#rows tr:first-child .note'); return !!n && n.textContent === 'before the 1.21 update'",
        json!([]),
    )
    .await;

    // A backup started elsewhere (another tab, the API) shows here: after
    // a reload the page finds it running, shows its bar, and says how it
    // ended.
    std::fs::write(
        agent
            .data_dir()
            .join(&server)
            .join("world/region/r.2.0.mca"),
        testkit::pseudo_random(8, 96 * 1024 * 1024),
    )
    .unwrap();
    let (status, started) = owner_api
        .post(
            &format!("/extensions/resticbackups/servers/{server}/backups/restic"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    b.js("location.reload()", json!([])).await;
    b.wait_until(
        "the running backup's bar after a reload",
        "return !document.getElementById('progress').hidden",
        json!([]),
    )
    .await;
    b.wait_until(
        "the toast saying how it ended",
        "const t = document.getElementById('toast'); return !t.hidden && t.textContent.startsWith('Backup finished')",
        json!([]),
    )
    .await;
    assert!(
        b.text("#toast").await.contains("added"),
        "{}",
        b.text("#toast").await
    );
    b.wait_until(
        "the new backup in the list",
        "return document.getElementById('stat-count').textContent === '4'",
        json!([]),
    )
    .await;
    // Storage over time: a bar per backup and the size line.
    b.wait_until(
        "the storage chart",
        "return !document.getElementById('storage').hidden && document.querySelectorAll('#storage-chart rect').length === 4 && !!document.querySelector('#storage-chart path.size')",
        json!([]),
    )
    .await;
    assert!(b.text("#rows tr:first-child").await.contains("manual"));
    b.screenshot(&shots.join("backups-chart.png")).await;

    // Schedule: save, then read back after a reload.
    b.click("#tab-schedule").await;
    b.wait_for("#schedule-save").await;
    b.js(
        "document.getElementById('s-enabled').checked = true",
        json!([]),
    )
    .await;
    b.fill("#s-value", "2").await;
    b.js(
        "document.getElementById('s-unit').value = 'hours'",
        json!([]),
    )
    .await;
    // What the rules would remove is said before saving.
    b.fill("#s-keep_last", "1").await;
    b.wait_until(
        "the retention preview",
        "return document.getElementById('s-preview').textContent.includes('would remove')",
        json!([]),
    )
    .await;
    // A wrong value is said at its field, in the form's words.
    b.fill("#s-keep_last", "-3").await;
    b.fill("#s-keep_within", "a week").await;
    b.click("#schedule-save").await;
    b.wait_for("#err-s-keep_last").await;
    let said = b.text("#err-s-keep_last").await;
    assert!(
        said.starts_with("“Last”") && !said.contains("keep_last"),
        "{said}"
    );
    assert!(b.text("#err-s-keep_within").await.contains("“Within”"));
    assert!(
        !b.exists("#error:not([hidden])").await,
        "not in the top banner"
    );
    assert_eq!(
        b.js("return document.activeElement.id", json!([])).await,
        json!("s-keep_last"),
        "the first wrong field has the focus"
    );
    b.fill("#s-keep_last", "5").await;
    b.fill("#s-keep_within", "7d").await;
    b.click("#schedule-save").await;
    b.wait_for("#schedule-saved").await;
    assert!(!b.exists("#err-s-keep_last").await);
    // Run now: the schedule's backup at once, told in the toast.
    b.js("document.getElementById('toast').hidden = true", json!([]))
        .await;
    b.click("#schedule-run").await;
    b.wait_until(
        "the run-now backup to finish",
        "const t = document.getElementById('toast'); return !t.hidden && t.textContent.startsWith('Backup finished')",
        json!([]),
    )
    .await;
    assert_ne!(b.text("#s-next").await, "not scheduled");
    b.js("location.reload()", json!([])).await;
    b.click("#tab-schedule").await;
    b.wait_until(
        "the saved schedule",
        "return document.getElementById('s-keep_last').value === '5' && document.getElementById('s-value').value === '2' && document.getElementById('s-enabled').checked && document.getElementById('s-keep_within').value === '7d'",
        json!([]),
    )
    .await;
    // Weekly at a time of day, in the browser's time zone unless another
    // is chosen.
    b.js(
        "const r = document.getElementById('s-repeat'); r.value = 'weekly'; r.dispatchEvent(new Event('change'))",
        json!([]),
    )
    .await;
    assert_eq!(
        b.js(
            "return [document.getElementById('s-days').hidden, document.getElementById('s-at-row').hidden, document.getElementById('s-interval-row').hidden, document.getElementById('s-tz').value === Intl.DateTimeFormat().resolvedOptions().timeZone]",
            json!([]),
        )
        .await,
        json!([false, false, true, true]),
        "the weekly fields, the browser's zone by default"
    );
    b.click("#schedule-save").await;
    b.wait_for("#err-s-days").await;
    assert!(b.text("#err-s-days").await.contains("at least one day"));
    b.click("input[name=s-day][value=mon]").await;
    b.click("input[name=s-day][value=thu]").await;
    b.js("document.getElementById('s-at').value = '21:30'", json!([]))
        .await;
    b.fill("#s-tz", "Mars/Olympus_Mons").await;
    b.click("#schedule-save").await;
    b.wait_for("#err-s-tz").await;
    let said = b.text("#err-s-tz").await;
    assert!(said.starts_with("“Time zone”"), "{said}");
    b.fill("#s-tz", "America/New_York").await;
    b.click("#schedule-save").await;
    b.wait_for("#schedule-saved").await;
    let next = b.text("#s-next").await;
    let browser_zone = b
        .js(
            "return Intl.DateTimeFormat().resolvedOptions().timeZone",
            json!([]),
        )
        .await;
    if browser_zone != json!("America/New_York") {
        assert!(
            (next.contains("Mon 21:30") || next.contains("Thu 21:30"))
                && next.contains("in America/New_York"),
            "{next}"
        );
    }
    b.screenshot(&shots.join("schedule-weekly.png")).await;
    b.js("location.reload()", json!([])).await;
    b.click("#tab-schedule").await;
    b.wait_until(
        "the saved weekly schedule",
        "return document.getElementById('s-repeat').value === 'weekly' && document.getElementById('s-at').value === '21:30' && document.getElementById('s-tz').value === 'America/New_York' && [...document.querySelectorAll('input[name=s-day]:checked')].map(b => b.value).join() === 'mon,thu' && document.getElementById('s-interval-row').hidden",
        json!([]),
    )
    .await;
    // The owner's own Discord webhook: a wrong one is refused at the
    // field's error, a Discord one is kept and shown by host only.
    b.wait_until(
        "the owner's notification card",
        "return !document.getElementById('owner-notify').hidden",
        json!([]),
    )
    .await;
    b.fill("#notify-url", "https://example.com/hook").await;
    b.click("#notify-save").await;
    b.wait_for("#error:not([hidden])").await;
    b.fill(
        "#notify-url",
        "https://discord.com/api/webhooks/1/secret-token",
    )
    .await;
    b.click("#notify-save").await;
    b.wait_until(
        "the webhook shown by host",
        "return document.getElementById('notify-current').textContent.includes('https://discord.com/…')",
        json!([]),
    )
    .await;
    assert!(!b.text("#owner-notify").await.contains("secret-token"));
    b.screenshot(&shots.join("schedule-owner-notify.png")).await;
    b.click("#tab-backups").await;

    // Keyboard: the tabs move with the arrow keys.
    b.keys("#tab-backups", "\u{E014}").await; // ArrowRight
    b.wait_until(
        "the schedule tab by keyboard",
        "return document.getElementById('tab-schedule').getAttribute('aria-selected') === 'true'",
        json!([]),
    )
    .await;
    b.click("#tab-backups").await;

    // 375 px wide.
    b.set_width(Some(375)).await;
    b.js("location.reload()", json!([])).await;
    b.wait_until("rows at 375 px", rows_count_js(), json!([]))
        .await;
    let overflow = b
        .js(
            "return document.documentElement.scrollWidth > window.innerWidth + 1",
            json!([]),
        )
        .await;
    assert_eq!(
        overflow,
        json!(false),
        "the page scrolls sideways at 375 px"
    );
    b.screenshot(&shots.join("backups-375px.png")).await;
    b.set_width(None).await;
    log_out(&b).await;

    // --- the backup.read-only subuser ---
    log_in(&b, &panel, "reader@example.com", PASSWORD).await;
    b.goto(&format!("{}/servers/{server}", panel.url)).await;
    b.wait_until("rows", rows_count_js(), json!([])).await;
    for css in [
        "#create-backup",
        "[data-action=\"download\"]",
        "[data-action=\"restore\"]",
        "[data-action=\"delete\"]",
        "[data-action=\"lock\"]",
        "#schedule-save",
    ] {
        assert!(!b.exists(css).await, "a read-only subuser sees {css}");
    }
    // They browse, but pick nothing to restore or download.
    row_action(&b, "browse").await;
    b.wait_for("#browser[open] #browser-rows tr").await;
    for css in [
        "#browser-rows input",
        "#browser-restore:not([hidden])",
        "#browser-download:not([hidden])",
    ] {
        assert!(!b.exists(css).await, "a read-only subuser sees {css}");
    }
    b.click("#browser-close").await;
    b.click("#tab-schedule").await;
    b.wait_for("#s-at").await;
    assert!(
        b.js(
            "return document.getElementById('s-at').disabled && document.getElementById('s-repeat').disabled",
            json!([])
        )
        .await
            == json!(true),
        "a read-only subuser can change the schedule's fields"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        b.js(
            "return document.getElementById('owner-notify').hidden",
            json!([])
        )
        .await
            == json!(true),
        "a subuser sees the owner's notifications"
    );
    log_out(&b).await;

    // --- the admin: regenerate the key ---
    log_in(&b, &panel, testkit::panel::ADMIN, PASSWORD).await;
    b.goto(&format!("{}/admin/keys", panel.url)).await;
    let key_css = format!("[data-key=\"{server}\"]");
    let reveal = format!("tr[data-server=\"{server}\"] [data-action=\"reveal\"]");
    b.wait_for(&key_css).await;
    // Keys are hidden until asked for.
    assert!(
        !b.text(&key_css)
            .await
            .chars()
            .any(|c| c.is_ascii_hexdigit())
    );
    b.click(&reveal).await;
    let before = b.text(&key_css).await;
    assert_eq!(before.len(), 64);
    b.screenshot(&shots.join("admin-keys.png")).await;
    b.click(&format!(
        "tr[data-server=\"{server}\"] [data-action=\"regenerate\"]"
    ))
    .await;
    b.wait_for("#confirm[open]").await;
    b.click("#confirm-ok").await;
    b.wait_until(
        "the page drawn again with the key hidden",
        "const e = document.querySelector(arguments[0]); return e && e.dataset.hidden === 'true'",
        json!([key_css]),
    )
    .await;
    b.click(&reveal).await;
    b.wait_until(
        "a new key",
        "const e = document.querySelector(arguments[0]); return e && e.textContent.length === 64 && e.textContent !== arguments[1]",
        json!([key_css, before]),
    )
    .await;
    // The other admin pages render.
    for section in ["nodes", "servers", "users", "archived-repos"] {
        b.goto(&format!("{}/admin/{section}", panel.url)).await;
        b.wait_until(
            section,
            "return !document.querySelector('#admin-content .muted') || document.querySelector('#admin-content table, #admin-content .empty')",
            json!([]),
        )
        .await;
        assert!(
            !b.exists("#error:not([hidden])").await,
            "{section}: {}",
            b.text("#error").await
        );
    }
    b.goto(&format!("{}/admin/users", panel.url)).await;
    b.wait_for("[data-perm=\"backup.read\"]").await;
    // Choosing a subuser ticks what they hold; Remove asks first.
    let section = format!("#subusers-{server}");
    b.js(
        "const s = document.querySelector(arguments[0] + ' select'); s.value = 'reader@example.com'; s.dispatchEvent(new Event('change'));",
        json!([section]),
    )
    .await;
    assert_eq!(
        b.js(
            "return [...document.querySelectorAll(arguments[0] + ' [data-perm]')].filter(b => b.checked).map(b => b.value)",
            json!([section]),
        )
        .await,
        json!(["backup.read"])
    );
    b.click(&format!("{section} [data-action=\"remove-subuser\"]"))
        .await;
    b.wait_for("#confirm[open]").await;
    assert!(
        b.text("#confirm-title")
            .await
            .contains("reader@example.com")
    );
    b.js(
        "document.getElementById('confirm').close('cancel')",
        json!([]),
    )
    .await;
    assert!(
        b.exists(&format!("{section} [data-action=\"remove-subuser\"]"))
            .await
    );
    // Notifications: a channel is added from the form and removed again.
    b.goto(&format!("{}/admin/notifications", panel.url)).await;
    b.wait_for("#channel-form").await;
    b.fill("#channel-form input[name=name]", "ops hook").await;
    b.js(
        "document.querySelector('#channel-form select[name=kind]').value = 'webhook'",
        json!([]),
    )
    .await;
    b.fill(
        "#channel-form input[name=target]",
        "https://hooks.example.com/secret-path",
    )
    .await;
    b.click("#channel-form button[type=submit]").await;
    b.wait_for("tr[data-channel]").await;
    let row = b.text("tr[data-channel]").await;
    assert!(
        row.contains("ops hook") && row.contains("https://hooks.example.com/…"),
        "{row}"
    );
    assert!(!row.contains("secret-path"), "{row}");
    b.screenshot(&shots.join("admin-notifications.png")).await;
    // The audit log: the key regeneration is there; filtering by action
    // leaves only such rows; at 390 px the page does not scroll sideways.
    b.goto(&format!("{}/admin/audit", panel.url)).await;
    b.wait_for("tr[data-action=\"key.regenerate\"]").await;
    assert!(b.exists("tr[data-action=\"login\"]").await);
    b.js(
        "document.querySelector('#audit-filters select[name=action]').value = 'key.regenerate'",
        json!([]),
    )
    .await;
    b.click("#audit-filters button[type=submit]").await;
    b.wait_until(
        "only key.regenerate rows",
        "const rows = [...document.querySelectorAll('#audit-list tr[data-action]')]; return rows.length > 0 && rows.every(r => r.dataset.action === 'key.regenerate')",
        json!([]),
    )
    .await;
    b.set_width(Some(390)).await;
    b.js("location.reload()", json!([])).await;
    b.wait_for("tr[data-action]").await;
    assert_eq!(
        b.js(
            "return document.documentElement.scrollWidth > window.innerWidth + 1",
            json!([])
        )
        .await,
        json!(false),
        "the audit page scrolls sideways at 390 px"
    );
    b.screenshot(&shots.join("admin-audit-390px.png")).await;
    b.set_width(None).await;
    log_out(&b).await;

    // Wide admin tables scroll inside their card at 390 px, not the page.
    log_in(&b, &panel, testkit::panel::ADMIN, PASSWORD).await;
    b.set_width(Some(390)).await;
    for section in [
        "keys",
        "nodes",
        "servers",
        "users",
        "archived-repos",
        "notifications",
    ] {
        b.goto(&format!("{}/admin/{section}", panel.url)).await;
        b.wait_until(
            section,
            "return document.querySelector('#admin-content table, #admin-content .empty, #admin-content form')",
            json!([]),
        )
        .await;
        assert_eq!(
            b.js(
                "return document.documentElement.scrollWidth > window.innerWidth + 1",
                json!([])
            )
            .await,
            json!(false),
            "the {section} page scrolls sideways at 390 px"
        );
        let text = b.text("#admin-content").await;
        assert!(
            !text.contains("null") && !text.contains("undefined"),
            "the {section} page prints a missing value: {text}"
        );
    }
    b.set_width(None).await;
    log_out(&b).await;

    // Logged out, the page asked for (its Schedule tab) comes back after
    // the login; then the owner's list still loads with the new key.
    b.goto(&format!("{}/servers/{server}#schedule", panel.url))
        .await;
    b.wait_for("#login-form").await;
    b.fill("#email", "owner@example.com").await;
    b.fill("#password", PASSWORD).await;
    b.click("#login-submit").await;
    b.wait_for("#tab-schedule[aria-selected=\"true\"]").await;
    assert!(b.js("return location.hash", json!([])).await == json!("#schedule"));
    b.click("#tab-backups").await;
    assert!(b.js("return location.hash", json!([])).await == json!(""));
    b.wait_until(
        "rows after the key change",
        // Three backups and the safety snapshots of the two restores.
        "return document.querySelectorAll('#rows tr').length === 5",
        json!([]),
    )
    .await;
    assert!(
        !b.exists("#error:not([hidden])").await,
        "{}",
        b.text("#error").await
    );
    b.quit().await;
}

/// Pterodactyl mode in the browser, mounted under `base_path` as beside
/// Pterodactyl: a visitor who carries Pterodactyl's session cookie is signed
/// in without a password and sees their server; a Pterodactyl admin runs a
/// sync from the admin page and sees its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pterodactyl_users_arrive_signed_in() {
    const BASE: &str = "/extensions/resticbackups";
    let agent = testkit::TestAgent::start();
    let (ptero, uuid) = testkit::ptero_world::stage(&agent).await;
    let (panel, _key_dir) =
        testkit::ptero_world::panel_under(Db::Sqlite, &ptero, &agent, Some(BASE), &[]);
    // Nothing outside the base path but the health checks; the session
    // cookie is scoped to it.
    let root = panel.url.strip_suffix(BASE).unwrap().to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, want) in [
        ("/login", 404),
        ("/healthz", 200),
        (&format!("{BASE}/login") as &str, 200),
    ] {
        let r = http.get(format!("{root}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{path}");
    }
    let mut admin = panel.admin().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, b) = admin
            .get("/extensions/resticbackups/admin/pterodactyl/sync")
            .await;
        if b["last"]["ok"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no sync at start: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (After the first sync, which brought the owner's account.)
    let r = http
        .get(format!("{}/auth/session", panel.url))
        .header(
            "Cookie",
            format!("{}={}", ptero.cookie_name(), ptero.add_session(2, false)),
        )
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains(&format!("Path={BASE};")), "{cookie}");
    let downloads = tempfile::tempdir().unwrap();
    let b = Browser::start(downloads.path()).await;

    // The owner: Pterodactyl's cookie (the browser sends it to the panel's
    // host, as under Pterodactyl's own domain) is all it takes.
    b.goto(&format!("{}/login", panel.url)).await;
    b.wait_for("#pterodactyl-login").await;
    let cookie = ptero.add_session(2, false);
    b.js(
        "document.cookie = arguments[0] + '=' + arguments[1] + '; path=/'",
        json!([ptero.cookie_name(), cookie]),
    )
    .await;
    b.goto(&format!("{}/", panel.url)).await;
    b.wait_until(
        "the owner's server listed",
        "return document.getElementById('server-list')?.textContent.includes(arguments[0])",
        json!(["Survival"]),
    )
    .await;
    b.goto(&format!("{}/servers/{uuid}", panel.url)).await;
    b.wait_for("#create-backup").await;
    // The switch shows Pterodactyl's own backups, and stays on.
    ptero.add_backup(1, testkit::pterodactyl::Backup::new(1));
    b.click("#show-ptero").await;
    let shows_ptero_backup =
        "return document.getElementById('ptero-list')?.textContent.includes('Backup 1')";
    b.wait_until("Pterodactyl's backups", shows_ptero_backup, json!([]))
        .await;
    b.goto(&format!("{}/servers/{uuid}", panel.url)).await;
    b.wait_until("the switch remembered", shows_ptero_backup, json!([]))
        .await;
    b.screenshot(&screenshots().join("pterodactyl-owner.png"))
        .await;

    // A Pterodactyl root admin in the same browser (after logging out
    // here): the sync page and its button.
    b.js(
        "document.cookie = arguments[0] + '=' + arguments[1] + '; path=/'",
        json!([ptero.cookie_name(), ptero.add_session(1, false)]),
    )
    .await;
    b.click("#logout").await;
    // Logged out here, the login page signs the browser in again through
    // Pterodactyl (now as the admin) and moves on to the start page.
    b.wait_until(
        "signed in again through Pterodactyl",
        "return location.pathname === arguments[0] && document.readyState === 'complete' \
         && document.getElementById('server-list')?.textContent.includes('Survival')",
        json!([format!("{BASE}/")]),
    )
    .await;
    ptero.edit(|s| s.server_mut(1).unwrap().name = "Survival (renamed)".into());
    b.goto(&format!("{}/admin/pterodactyl", panel.url)).await;
    b.wait_for("#pterodactyl-sync").await;
    b.click("#pterodactyl-sync").await;
    b.wait_until(
        "the sync's result",
        "return document.getElementById('admin-content')?.textContent.includes('servers +0 ~1 -0')",
        json!([]),
    )
    .await;
    b.screenshot(&screenshots().join("pterodactyl-sync.png"))
        .await;
    b.quit().await;
    assert!(ptero.writes().is_empty());
}
