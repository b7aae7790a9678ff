// Restic Backups panel. Plain JavaScript, no build step. Pages are shells
// rendered by the panel; this file fills them through the JSON API. Every
// unsafe request carries the CSRF token from <meta name="csrf-token">.
"use strict";

(function () {
  // The panel's base_path ("" at the root): every link and call lives under it.
  const BASE = document.body ? document.body.dataset.base || "" : "";
  const API = BASE + "/extensions/resticbackups";
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  // ---- helpers ----

  /** Builds an element; children are nodes or text (never HTML). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, "network", "The panel could not be reached. Check your connection.");
    }
    if (res.status === 401) {
      window.location.href = BASE + "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search + window.location.hash);
      throw new ApiError(401, "not_logged_in", "You are not logged in.");
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const err = data && data.error ? data.error : { code: "http_" + res.status, message: "The request failed (" + res.status + ")." };
      throw new ApiError(res.status, err.code, err.message);
    }
    return data;
  }

  function showError(e) {
    const box = $("error");
    if (!box) return;
    box.textContent = e instanceof Error ? e.message : String(e);
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  function clearError() {
    const box = $("error");
    if (box) box.hidden = true;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
  }

  /** A padlock drawn in SVG (an emoji renders as a box where fonts lack it). */
  function lockIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const icon = document.createElementNS(ns, "svg");
    icon.setAttribute("viewBox", "0 0 16 16");
    icon.setAttribute("class", "lock");
    icon.setAttribute("role", "img");
    icon.setAttribute("aria-label", "Locked");
    const title = document.createElementNS(ns, "title");
    title.textContent = "Locked";
    const body = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x: "3", y: "7", width: "10", height: "8", rx: "1.5" })) body.setAttribute(k, v);
    const shackle = document.createElementNS(ns, "path");
    shackle.setAttribute("d", "M5 7V5a3 3 0 0 1 6 0v2");
    icon.append(title, body, shackle);
    return icon;
  }

  // Relative times ("3 minutes ago") are kept current.
  setInterval(() => {
    for (const el of document.querySelectorAll("[data-rel]")) el.textContent = relative(new Date(el.dataset.rel));
  }, 30000);

  function relative(date) {
    const secs = (date.getTime() - Date.now()) / 1000;
    const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    const steps = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
    for (const [unit, size] of steps) {
      if (Math.abs(secs) >= size) return rtf.format(Math.round(secs / size), unit);
    }
    return rtf.format(Math.round(secs), "second");
  }

  function localTime(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function duration(secs) {
    if (secs === null || secs === undefined) return "";
    if (secs < 60) return secs + " s";
    const m = Math.floor(secs / 60);
    if (m < 60) return m + " min " + (secs % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  /**
   * Asks for confirmation in the page's dialog; resolves to true/false.
   * `extra` (optional) is a node shown under the text, such as an option.
   */
  function confirmDialog(title, text, okLabel, extra) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel || "Confirm";
    $("confirm-extra").replaceChildren(...(extra ? [extra] : []));
    // Focus goes back where it was; from an item of a menu that closed, to
    // the menu's button.
    let back = document.activeElement;
    const menu = back && back.closest ? back.closest(".menu") : null;
    if (menu && menu.previousElementSibling) back = menu.previousElementSibling;
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          if (back && document.contains(back) && back.offsetParent !== null) back.focus();
          resolve(dialog.returnValue === "ok");
        },
        { once: true }
      );
      dialog.returnValue = "cancel";
      dialog.showModal();
    });
  }

  /**
   * A button that asks first, then sends `method path` and reloads the
   * section with `reload` (errors are shown, the section reloads anyway).
   */
  function confirmedButton(label, cls, ask, method, path, reload, attrs) {
    return h(
      "button",
      {
        type: "button",
        class: cls,
        ...(attrs || {}),
        onclick: async (e) => {
          if (!(await confirmDialog(ask.title, ask.text, label))) return;
          e.target.disabled = true;
          clearError();
          try {
            const answer = await api(method, path);
            // 202: the panel goes on with it (deleting a server waits for
            // its node to archive the repository); wait for how it ends.
            if (answer && answer.kind && answer.status === "running") {
              e.target.textContent = "Working…";
              await waitForTask(answer.id);
            }
          } catch (err) {
            showError(err);
          }
          reload().catch(showError);
        },
      },
      label
    );
  }

  // Polls a panel task until it ends; a failed one throws its error.
  async function waitForTask(id) {
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      const t = await api("GET", API + "/admin/tasks/" + id);
      if (t.status === "succeeded") return t;
      if (t.status === "failed") {
        const err = t.error || { code: "failed", message: "The task failed." };
        throw new ApiError(409, err.code, err.message);
      }
    }
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      // Clipboard API unavailable (plain HTTP): select the text instead.
      return false;
    }
  }

  // ---- every page ----

  function initCommon() {
    const logout = $("logout");
    if (logout) {
      logout.addEventListener("click", async () => {
        try {
          await api("POST", BASE + "/auth/logout");
        } catch (e) {
          /* logged out anyway */
        }
        window.location.href = BASE + "/login";
      });
    }
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") closeMenus();
    });
    document.addEventListener("click", (e) => {
      if (!e.target.closest(".actions")) closeMenus();
    });
  }

  function closeMenus() {
    document.querySelectorAll(".menu").forEach((m) => {
      m.hidden = true;
      const b = m.parentElement.querySelector("button.menu-button");
      if (b) b.setAttribute("aria-expanded", "false");
    });
  }

  // ---- login ----

  /** Where to go after logging in: the page asked for, if it is one of ours. */
  function nextPage() {
    const next = new URLSearchParams(window.location.search).get("next") || "";
    // Parsed as the browser would (it drops tabs and line breaks, so
    // "/\t/evil.com" is "//evil.com"): only this origin, under BASE.
    let url = null;
    try {
      url = new URL(next, window.location.origin);
    } catch (e) {
      url = null;
    }
    const ours =
      url !== null &&
      !/[\u0000-\u0020\\]/.test(next) &&
      next.startsWith("/") &&
      url.origin === window.location.origin &&
      url.pathname.startsWith(BASE + "/");
    if (!ours) return BASE + "/";
    // The fragment (a tab) never reached the server; the browser kept it.
    return url.pathname + url.search + (url.hash || window.location.hash);
  }

  function initLogin() {
    const form = $("login-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const err = $("login-error");
      err.hidden = true;
      $("login-submit").disabled = true;
      try {
        const res = await fetch(BASE + "/auth/login", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          credentials: "same-origin",
          body: JSON.stringify({ email: $("email").value, password: $("password").value }),
        });
        if (res.ok) {
          window.location.href = nextPage();
          return;
        }
        const data = await res.json().catch(() => null);
        err.textContent = data && data.error ? data.error.message : "Login failed.";
        err.hidden = false;
      } catch (e2) {
        err.textContent = "The panel could not be reached.";
        err.hidden = false;
      } finally {
        $("login-submit").disabled = false;
      }
    });
  }

  // ---- my servers ----

  async function initServers() {
    const list = $("server-list");
    try {
      const data = await api("GET", API + "/servers");
      list.replaceChildren();
      if (data.servers.length === 0) {
        list.append(h("li", { class: "muted" }, "You have no servers yet."));
      }
      for (const s of data.servers) {
        list.append(
          h("li", {}, h("a", { href: BASE + "/servers/" + s.uuid }, h("strong", {}, s.name), h("span", { class: "rel mono" }, s.uuid)))
        );
      }
    } catch (e) {
      list.replaceChildren();
      showError(e);
    }
  }

  // ---- backups page ----

  function initBackups() {
    const server = document.body.dataset.server;
    const perms = new Set((document.body.dataset.permissions || "").split(" ").filter(Boolean));
    const base = API + "/servers/" + server + "/backups/restic";
    const PAGE = 5;
    const state = { cursors: [null], page: 0, next: null, job: null, backups: [] };

    // Tabs (arrow keys move between them).
    const tabs = [$("tab-backups"), $("tab-schedule")];
    function selectTab(tab) {
      // Choosing the tab already shown reloads nothing (it would undo
      // unsaved changes in the schedule form).
      const shown = tab.getAttribute("aria-selected") === "true" && !$(tab.getAttribute("aria-controls")).hidden;
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      }
      if (tab.id === "tab-schedule" && !shown) loadSchedule();
      const hash = tab.id === "tab-schedule" ? "#schedule" : "";
      if (window.location.hash !== hash) history.replaceState(null, "", window.location.pathname + window.location.search + hash);
    }
    tabs.forEach((t, i) => {
      t.addEventListener("click", () => selectTab(t));
      t.addEventListener("keydown", (e) => {
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
          const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
          next.focus();
          selectTab(next);
        }
      });
    });

    async function loadStats() {
      try {
        const s = await api("GET", base + "/stats");
        $("stat-size").textContent = bytes(s.total_size);
        $("stat-raw").textContent = bytes(s.total_uncompressed_size);
        $("stat-ratio").textContent = s.snapshots_count > 0 ? s.dedup_ratio.toFixed(2) + "×" : "–";
        $("stat-count").textContent = String(s.snapshots_count);
      } catch (e) {
        showError(e);
      }
    }

    async function loadList() {
      const cursor = state.cursors[state.page];
      const q = "?limit=" + PAGE + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      try {
        const data = await api("GET", base + q);
        state.next = data.next_cursor;
        state.backups = data.backups;
        renderRows(data);
      } catch (e) {
        showError(e);
      }
    }

    function renderRows(data) {
      const tbody = $("rows");
      tbody.replaceChildren(...data.backups.map(row));
      $("empty").hidden = data.total !== 0;
      tbody.closest("table").hidden = data.total === 0;
      const pages = Math.max(1, Math.ceil(data.total / PAGE));
      $("page-info").textContent = data.total === 0 ? "" : "Page " + (state.page + 1) + " of " + pages;
      $("prev").disabled = state.page === 0;
      $("next").disabled = !state.next;
      $("prev").parentElement.hidden = data.total <= PAGE;
      $("limit-info").textContent =
        data.backup_limit > 0
          ? "Keeps at most " + data.backup_limit + " backups; the oldest unlocked ones make room."
          : data.backup_limit < 0
          ? "Backups are turned off for this server (its backup limit is 0)."
          : "No limit on the number of backups.";
    }

    function row(b) {
      const when = new Date(b.time);
      const tr = h(
        "tr",
        { "data-id": b.id },
        h("td", {}, h("time", { datetime: b.time }, localTime(b.time)), h("span", { class: "rel", "data-rel": b.time }, relative(when)), b.note ? h("span", { class: "note", title: "Note" }, b.note) : null),
        h("td", {}, b.size === null ? "measuring…" : bytes(b.size)),
        h(
          "td",
          { class: "mono" },
          b.short_id,
          h("span", { class: "rel label" }, rowLabel(b)),
          typeof b.added === "number" ? h("span", { class: "rel", title: "Bytes this backup added to the repository" }, "+" + bytes(b.added)) : null,
          b.copied === true
            ? h("span", { class: "rel", title: "The node's second copy holds this backup" }, "copied")
            : b.copied === false
              ? h("span", { class: "rel", title: "Not in the node's second copy yet: the next backup copies it" }, "not copied yet")
              : null
        ),
        h("td", { class: "lockcell" }, b.locked ? lockIcon() : null),
        h("td", { class: "actions" }, actionsMenu(b))
      );
      return tr;
    }

    /** What made a backup: a person, the schedule, a restore, an archive. */
    function rowLabel(b) {
      if (b.tags.includes("pre-restore")) return "safety snapshot";
      if (b.tags.includes("archived")) return "archived";
      if (b.origin === "schedule") return "scheduled";
      if (b.origin === "manual") return "manual";
      if (b.origin === "imported") return "imported";
      return "";
    }

    // ---- storage over time ----

    function svg(tag, attrs, ...children) {
      const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
      for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
      for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
      return el;
    }

    async function loadHistory() {
      let data;
      try {
        data = await api("GET", base + "/stats/history");
      } catch (e) {
        return;
      }
      const points = data.points.slice(-60);
      const box = $("storage");
      box.hidden = points.length < 2;
      if (points.length < 2) return;
      const W = 600, H = 160, pad = 4;
      const maxAdded = Math.max(1, ...points.map((p) => p.added));
      const sizes = points.map((p) => p.size).filter((s) => typeof s === "number");
      const maxSize = Math.max(1, ...sizes);
      const step = (W - 2 * pad) / points.length;
      const bars = points.map((p, i) =>
        svg(
          "rect",
          { class: "added" + (p.kept ? "" : " gone"), x: (pad + i * step + step * 0.15).toFixed(1), width: (step * 0.7).toFixed(1), y: (H - pad - (p.added / maxAdded) * (H * 0.45)).toFixed(1), height: Math.max(1, (p.added / maxAdded) * (H * 0.45)).toFixed(1) },
          svg("title", {}, localTime(p.time) + ": +" + bytes(p.added) + (typeof p.size === "number" ? ", " + bytes(p.size) + " on disk" : "") + (p.kept ? "" : " (deleted)"))
        )
      );
      const line = points
        .map((p, i) => (typeof p.size === "number" ? [pad + i * step + step / 2, H - pad - (p.size / maxSize) * (H - 2 * pad - 10)] : null))
        .filter(Boolean)
        .map(([x, y], i) => (i === 0 ? "M" : "L") + x.toFixed(1) + " " + y.toFixed(1))
        .join(" ");
      const chart = svg(
        "svg",
        { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Repository size and bytes added by the last " + points.length + " backups", preserveAspectRatio: "none" },
        bars,
        line ? svg("path", { class: "size", d: line }) : null
      );
      const first = points[0], last = points[points.length - 1];
      $("storage-chart").replaceChildren(
        chart,
        h("div", { class: "axis muted small" }, h("span", {}, localTime(first.time)), h("span", {}, sizes.length ? "largest " + bytes(maxSize) : ""), h("span", {}, localTime(last.time)))
      );
    }

    const reclaim = $("reclaim");
    if (reclaim) {
      reclaim.addEventListener("click", async () => {
        clearError();
        reclaim.disabled = true;
        try {
          const job = await api("POST", API + "/admin/servers/" + server + "/prune");
          watchJob(job.job_id, KINDS.prune);
        } catch (e) {
          showError(e);
        } finally {
          reclaim.disabled = false;
        }
      });
    }

    function actionsMenu(b) {
      const items = [];
      if (perms.has("backup.delete")) {
        items.push(h("button", { type: "button", role: "menuitem", "data-action": b.locked ? "unlock" : "lock", onclick: () => setLocked(b, !b.locked) }, b.locked ? "Unlock" : "Lock"));
      }
      items.push(h("button", { type: "button", role: "menuitem", "data-action": "browse", onclick: () => browse(b) }, "Browse files"));
      if (perms.has("backup.create")) {
        items.push(h("button", { type: "button", role: "menuitem", "data-action": "note", onclick: () => editNote(b) }, b.note ? "Edit note" : "Add note"));
      }
      if (perms.has("backup.download")) {
        const size = typeof b.size === "number" ? " · " + bytes(b.size) + " of files" : "";
        items.push(h("button", { type: "button", role: "menuitem", "data-action": "download", onclick: () => download(b, "tar.gz") }, "Download (.tar.gz)" + size));
        items.push(h("button", { type: "button", role: "menuitem", "data-action": "download-zst", onclick: () => download(b, "tar.zst") }, "Download (.tar.zst, smaller)" + size));
        items.push(h("button", { type: "button", role: "menuitem", "data-action": "download-zip", onclick: () => download(b, "zip") }, "Download (.zip)" + size));
      }
      if (perms.has("backup.restore")) {
        items.push(h("button", { type: "button", role: "menuitem", "data-action": "restore", onclick: () => restore(b) }, "Restore"));
      }
      if (perms.has("backup.delete")) {
        items.push(
          h(
            "button",
            {
              type: "button",
              role: "menuitem",
              class: "danger-item",
              "data-action": "delete",
              disabled: b.locked,
              title: b.locked ? "Unlock the backup to delete it" : null,
              onclick: () => remove(b),
            },
            "Delete"
          )
        );
      }
      if (items.length === 0) return null;
      const menu = h("div", { class: "menu", role: "menu", hidden: true }, items);
      const button = h(
        "button",
        {
          type: "button",
          class: "secondary menu-button",
          "aria-haspopup": "menu",
          "aria-expanded": "false",
          "aria-label": "Actions for backup " + b.short_id,
          onclick: (e) => {
            e.stopPropagation();
            const open = menu.hidden;
            closeMenus();
            menu.hidden = !open;
            button.setAttribute("aria-expanded", open ? "true" : "false");
            if (open) {
              const first = menu.querySelector("button:not(:disabled)");
              if (first) first.focus();
            }
          },
        },
        "Actions ▾"
      );
      menu.addEventListener("keydown", (e) => {
        const buttons = [...menu.querySelectorAll("button:not(:disabled)")];
        const i = buttons.indexOf(document.activeElement);
        if (e.key === "ArrowDown") {
          e.preventDefault();
          buttons[(i + 1) % buttons.length].focus();
        } else if (e.key === "ArrowUp") {
          e.preventDefault();
          buttons[(i - 1 + buttons.length) % buttons.length].focus();
        } else if (e.key === "Escape") {
          closeMenus();
          button.focus();
        }
      });
      return [button, menu];
    }

    async function refresh() {
      await Promise.all([loadList(), loadStats(), loadHistory()]);
    }

    async function setLocked(b, locked) {
      closeMenus();
      clearError();
      // Show the new state at once, then confirm with the server's view.
      // The row is busy (its menu disabled) until the server answered.
      b.locked = locked;
      const tr = document.querySelector('tr[data-id="' + b.id + '"]');
      if (tr) {
        const busy = row(b);
        busy.setAttribute("aria-busy", "true");
        const menuButton = busy.querySelector(".menu-button");
        if (menuButton) menuButton.disabled = true;
        tr.replaceWith(busy);
      }
      try {
        await api("POST", base + "/" + b.id + "/" + (locked ? "lock" : "unlock"));
      } catch (e) {
        showError(e);
      }
      await loadList();
      // The row was drawn anew: focus its menu button again.
      const again = document.querySelector('tr[data-id="' + b.id + '"] .menu-button');
      if (again) again.focus();
    }

    function download(b, format) {
      closeMenus();
      clearError();
      // The panel answers with a redirect to a one-time link (or the file).
      window.location.href = base + "/" + b.id + "/download?format=" + encodeURIComponent(format);
    }

    // ---- snapshot browser ----

    const browser = { b: null, path: "/", next: null, selected: new Map(), opener: null };

    function browse(b) {
      closeMenus();
      clearError();
      browser.b = b;
      browser.selected = new Map();
      browser.opener = document.activeElement;
      $("browser-snapshot").textContent = b.short_id + " · " + localTime(b.time);
      $("browser-download").hidden = !perms.has("backup.download");
      $("browser-restore").hidden = !perms.has("backup.restore");
      updateSelection();
      const dialog = $("browser");
      if (!dialog.open) dialog.showModal();
      openFolder("/");
    }

    function pathParts(path) {
      return path.split("/").filter(Boolean);
    }

    function renderCrumbs(path) {
      const parts = pathParts(path);
      const crumbs = [h("button", { type: "button", onclick: () => openFolder("/") }, "Server folder")];
      parts.forEach((part, i) => {
        const to = "/" + parts.slice(0, i + 1).join("/");
        crumbs.push(h("span", { class: "sep", "aria-hidden": "true" }, "/"));
        crumbs.push(i === parts.length - 1 ? h("strong", { "aria-current": "location" }, part) : h("button", { type: "button", onclick: () => openFolder(to) }, part));
      });
      $("browser-crumbs").replaceChildren(...crumbs);
    }

    function fileRow(e) {
      const canPick = perms.has("backup.restore") || perms.has("backup.download");
      const pick = canPick
        ? h("input", {
            type: "checkbox",
            "aria-label": "Select " + e.name,
            checked: browser.selected.has(e.path),
            onchange: (ev) => {
              if (ev.target.checked) browser.selected.set(e.path, e);
              else browser.selected.delete(e.path);
              updateSelection();
            },
          })
        : null;
      const kind = e.type === "symlink" ? "link" : e.type === "other" ? "special" : null;
      const name =
        e.type === "dir"
          ? h("button", { type: "button", class: "open", onclick: () => openFolder(e.path) }, e.name + "/")
          : h("span", {}, e.name, kind ? h("span", { class: "kind" }, kind) : null);
      return h(
        "tr",
        { "data-path": e.path, "data-type": e.type },
        h("td", { class: "pick" }, pick),
        h("td", { class: "name" }, name),
        h("td", { class: "num" }, e.type === "dir" || e.type === "file" ? bytes(e.size) : ""),
        h("td", { class: "when" }, h("time", { datetime: e.mtime }, localTime(e.mtime)))
      );
    }

    async function openFolder(path, more) {
      const b = browser.b;
      const status = $("browser-status");
      if (!more) {
        browser.path = path;
        browser.next = null;
        renderCrumbs(path);
        $("browser-rows").replaceChildren();
      }
      status.textContent = "Loading…";
      $("browser-more").hidden = true;
      const q = "?path=" + encodeURIComponent(path) + "&limit=200" + (more && browser.next ? "&cursor=" + encodeURIComponent(browser.next) : "");
      try {
        const page = await api("GET", base + "/" + b.id + "/files" + q);
        if (browser.b !== b || browser.path !== path) return;
        $("browser-rows").append(...page.entries.map(fileRow));
        browser.next = page.next_cursor;
        $("browser-more").hidden = !page.next_cursor;
        status.textContent = page.total === 0 ? "This folder is empty." : page.next_cursor ? "Showing " + $("browser-rows").children.length + " of " + page.total + "." : "";
        if (!more) {
          const first = $("browser-rows").querySelector("button, input");
          (first || $("browser-close")).focus();
        }
      } catch (e) {
        status.textContent = e.message;
      }
    }

    function updateSelection() {
      const n = browser.selected.size;
      $("browser-selected").textContent = n === 0 ? "Select files or folders to restore or download." : n + " selected";
      $("browser-restore").disabled = n === 0;
      const one = n === 1 ? [...browser.selected.values()][0] : null;
      const dl = $("browser-download");
      dl.disabled = !(one && (one.type === "file" || one.type === "dir"));
      dl.title = n > 1 ? "Downloads take one file or folder at a time" : "";
    }

    function closeBrowser() {
      const dialog = $("browser");
      if (dialog.open) dialog.close();
    }

    $("browser-close").addEventListener("click", closeBrowser);
    $("browser").addEventListener("close", () => {
      browser.b = null;
      if (browser.opener && document.contains(browser.opener)) browser.opener.focus();
    });
    $("browser-more").addEventListener("click", () => openFolder(browser.path, true));
    $("browser-download").addEventListener("click", () => {
      const one = [...browser.selected.values()][0];
      if (!one || !browser.b) return;
      window.location.href = base + "/" + browser.b.id + "/download?format=tar.gz&path=" + encodeURIComponent(one.path);
    });
    $("browser-restore").addEventListener("click", async () => {
      const b = browser.b;
      const picked = [...browser.selected.values()];
      if (!b || picked.length === 0) return;
      const stop = h("input", { type: "checkbox", id: "confirm-stop-server", checked: true });
      const keep = h("input", { type: "checkbox", id: "confirm-keep-files" });
      const options = h(
        "div",
        {},
        h("ul", { class: "picked" }, picked.slice(0, 8).map((e) => h("li", { class: "mono" }, e.path)), picked.length > 8 ? h("li", {}, "and " + (picked.length - 8) + " more") : null),
        h("label", { class: "check" }, stop, " Stop the server during the restore"),
        h("label", { class: "check" }, keep, " Keep files in restored folders that are not in the backup")
      );
      const ok = await confirmDialog(
        "Restore " + (picked.length === 1 ? "this item" : picked.length + " items") + "?",
        "They are brought back as they were in backup " + b.short_id + " from " + localTime(b.time) + ". Everything else in the server stays as it is. A safety snapshot of the current files is taken first.",
        "Restore",
        options
      );
      if (!ok) return;
      clearError();
      try {
        const job = await api("POST", base + "/" + b.id + "/restore", {
          paths: picked.map((e) => e.path),
          truncate: !keep.checked,
          stop_server: stop.checked,
        });
        closeBrowser();
        watchJob(job.job_id, "Restoring");
      } catch (e) {
        $("browser-status").textContent = e.message;
      }
    });

    async function restore(b) {
      closeMenus();
      // Checked by default: a running game server would overwrite the
      // restored files with its next save.
      const stop = h("input", { type: "checkbox", id: "confirm-stop-server", checked: true });
      const keep = h("input", { type: "checkbox", id: "confirm-keep-files" });
      const option = h(
        "div",
        {},
        h("label", { class: "check" }, stop, " Stop the server during the restore", h("span", { class: "muted" }, " (it is started again afterwards if it was running)")),
        h("label", { class: "check" }, keep, " Keep files that are not in the backup")
      );
      const ok = await confirmDialog(
        "Restore this backup?",
        "The server's files will be replaced by backup " +
          b.short_id +
          " from " +
          localTime(b.time) +
          ". Files made since then are removed unless you keep them below. A safety snapshot of the current files is taken first, so this can be undone.",
        "Restore",
        option
      );
      if (!ok) return;
      clearError();
      try {
        const job = await api("POST", base + "/" + b.id + "/restore", { truncate: !keep.checked, stop_server: stop.checked });
        watchJob(job.job_id, "Restoring");
      } catch (e) {
        showError(e);
      }
    }

    async function editNote(b) {
      closeMenus();
      const input = h("input", { type: "text", id: "note-input", maxlength: "500", value: b.note || "", "aria-label": "Note" });
      const ok = await confirmDialog("Note for backup " + b.short_id, "A short line shown with the backup; leave it empty to remove it.", "Save note", input);
      if (!ok) return;
      clearError();
      try {
        await api("PUT", base + "/" + b.id + "/note", { note: input.value });
      } catch (e) {
        showError(e);
      }
      await loadList();
    }

    async function remove(b) {
      closeMenus();
      if (b.locked) return;
      const ok = await confirmDialog(
        "Delete this backup?",
        "Backup " + b.short_id + " from " + localTime(b.time) + " will be deleted. This can not be undone.",
        "Delete"
      );
      if (!ok) return;
      clearError();
      try {
        await api("DELETE", base + "/" + b.id);
        if (state.backups.length === 1 && state.page > 0) state.page--;
      } catch (e) {
        showError(e);
      }
      await refresh();
    }

    /** The steps of a restore (`progress.phase`), as the bar names them. */
    const PHASES = {
      stopping: "stopping the game server",
      safety_snapshot: "safety snapshot",
      restoring: "restoring files",
      starting: "starting the game server",
    };

    function setProgress(kind, view) {
      const box = $("progress");
      box.hidden = false;
      $("progress-kind").textContent = kind;
      const p = view && view.progress ? view.progress : {};
      const bar = box.querySelector(".bar");
      let text = view && view.status === "queued" ? "waiting for the node…" : "starting…";
      if (typeof p.percent === "number") {
        const pct = Math.max(0, Math.min(100, p.percent));
        $("progress-fill").style.width = pct.toFixed(1) + "%";
        bar.setAttribute("aria-valuenow", pct.toFixed(0));
        text = pct.toFixed(0) + "%";
        if (p.seconds_remaining !== null && p.seconds_remaining !== undefined) text += " · about " + duration(p.seconds_remaining) + " left";
      } else if (view && view.status === "running") {
        text = "working…";
      }
      const phase = PHASES[p.phase];
      if (phase && view.status === "running") text = phase + (typeof p.percent === "number" ? " · " + text : "…");
      $("progress-text").textContent = text;
    }

    const KINDS = { backup: "Backing up", restore: "Restoring", archive: "Archiving", prune: "Reclaiming space" };

    /** How a job ended, in one line for the toast. */
    function outcomeText(view) {
      const what = { backup: "Backup", restore: "Restore", archive: "Archive", prune: "Space reclaim" }[view.kind] || "Job";
      if (view.status === "failed") return what + " failed: " + (view.error ? view.error.message : "unknown error");
      const r = view.result || {};
      let text = what + " finished";
      if (view.kind === "backup" && typeof r.data_added === "number") text += " · " + bytes(r.data_added) + " added";
      if (view.kind === "restore" && Array.isArray(r.paths)) text += " · " + r.paths.length + (r.paths.length === 1 ? " item" : " items") + " restored";
      if (Array.isArray(r.forgotten) && r.forgotten.length > 0) {
        text += " · max backups reached: removed " + r.forgotten.map((id) => String(id).slice(0, 8)).join(", ");
      }
      return text;
    }

    let toastTimer = null;
    function toast(text, bad) {
      const box = $("toast");
      if (!box) return;
      box.textContent = text;
      box.className = "toast" + (bad ? " bad" : "");
      box.hidden = false;
      clearTimeout(toastTimer);
      toastTimer = setTimeout(() => (box.hidden = true), bad ? 12000 : 6000);
    }

    // Jobs started elsewhere (another tab, a schedule, another person)
    // show here too: the page asks for the server's running jobs on load
    // and every few seconds while it is visible, and follows one.
    async function followActive() {
      if (state.job || document.hidden) return;
      try {
        const list = await api("GET", base + "/jobs?active=true");
        const job = list.jobs[list.jobs.length - 1];
        if (job && !state.job) watchJob(job.id, KINDS[job.kind] || "Working");
      } catch (e) {
        /* the next round tries again */
      }
    }
    // Every 15 s the numbers are read again, and the list when they
    // changed (a backup deleted in another tab), unless the user is in a
    // menu or a dialog.
    let ticks = 0;
    setInterval(async () => {
      if (document.hidden) return;
      await followActive();
      ticks++;
      if (ticks % 3 !== 0 || state.job || document.querySelector(".menu:not([hidden]), dialog[open]")) return;
      const before = $("stat-count").textContent + $("stat-size").textContent;
      await loadStats();
      if ($("stat-count").textContent + $("stat-size").textContent !== before) loadList();
    }, 5000);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) followActive();
    });

    async function watchJob(jobId, kind) {
      if (state.job === jobId) return;
      state.job = jobId;
      const create = $("create-backup");
      if (create) create.disabled = true;
      $("progress-fill").style.width = "0%";
      setProgress(kind, null);
      try {
        for (;;) {
          let view;
          try {
            view = await api("GET", base + "/jobs/" + jobId);
          } catch (e) {
            if (e.code === "node_unavailable") {
              await new Promise((r) => setTimeout(r, 2000));
              continue;
            }
            throw e;
          }
          setProgress(kind, view);
          if (view.status === "succeeded" || view.status === "failed") {
            toast(outcomeText(view), view.status === "failed");
            if (view.status === "failed") {
              showError(kind + " failed: " + (view.error ? view.error.message : "unknown error"));
            }
            const game = view.result && view.result.game_server;
            if (game && game.start_error) {
              showError("The files were restored, but the game server could not be started again: " + game.start_error);
            }
            break;
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      } catch (e) {
        showError(e);
      } finally {
        state.job = null;
        $("progress").hidden = true;
        if (create) create.disabled = false;
        state.page = 0;
        state.cursors = [null];
        await refresh();
      }
    }

    const create = $("create-backup");
    if (create) {
      create.addEventListener("click", async () => {
        clearError();
        create.disabled = true;
        const noteBox = $("new-note");
        const note = noteBox ? noteBox.value.trim() : "";
        try {
          const job = await api("POST", base, note ? { note } : {});
          if (noteBox) noteBox.value = "";
          watchJob(job.job_id, "Backing up");
        } catch (e) {
          create.disabled = false;
          showError(e);
        }
      });
    }
    $("next").addEventListener("click", () => {
      if (!state.next) return;
      state.cursors[state.page + 1] = state.next;
      state.page++;
      loadList().then(keepPagerFocus);
    });
    $("prev").addEventListener("click", () => {
      if (state.page === 0) return;
      state.page--;
      loadList().then(keepPagerFocus);
    });
    // A pager button disabled on the first or last page would drop the
    // focus to the page: it moves to the other one.
    function keepPagerFocus() {
      const at = document.activeElement;
      if (at && at.disabled) (at.id === "next" ? $("prev") : $("next")).focus();
      else if (!at || at === document.body) $("page-info").focus();
    }

    // ---- schedule tab ----

    const keeps = ["keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"];

    // What the rules on the form would remove now, said before saving.
    let previewTimer = null;
    let previewSeq = 0;
    async function previewRetention() {
      const seq = ++previewSeq;
      const q = new URLSearchParams();
      for (const k of [...keeps, "keep_within"]) {
        const v = $("s-" + k).value.trim();
        if (v !== "") q.set(k, v);
      }
      const out = $("s-preview");
      try {
        const p = await api("GET", base + "/schedule/preview?" + q.toString());
        if (seq !== previewSeq) return;
        if (p.would_remove.length === 0) {
          out.textContent = [...q.keys()].length === 0 ? "No rules: every backup is kept." : "With these rules, no backup would be removed now.";
        } else {
          const shown = p.would_remove.slice(0, 5).map((b) => b.short_id + " (" + localTime(b.time) + ")");
          out.textContent =
            "With these rules, the next scheduled backup would remove " +
            p.would_remove.length +
            (p.would_remove.length === 1 ? " backup" : " backups") +
            " as they are now: " +
            shown.join(", ") +
            (p.would_remove.length > 5 ? ", …" : "") +
            "; " +
            p.kept +
            " kept.";
        }
      } catch (e) {
        if (seq === previewSeq) out.textContent = e.code === "invalid_retention" ? "" : e.message;
      }
    }
    for (const k of [...keeps, "keep_within"]) {
      $("s-" + k).addEventListener("input", () => {
        clearTimeout(previewTimer);
        previewTimer = setTimeout(previewRetention, 400);
      });
    }

    // Daily/weekly schedules: the browser's own time zone unless one is saved.
    const browserZone = (() => {
      try {
        return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
      } catch (e) {
        return "UTC";
      }
    })();
    const zoneList = $("s-tz-list");
    if (zoneList && zoneList.children.length === 0) {
      let zones = [];
      try {
        zones = Intl.supportedValuesOf("timeZone");
      } catch (e) {
        zones = [browserZone];
      }
      if (!zones.includes("UTC")) zones = ["UTC", ...zones];
      zoneList.replaceChildren(...zones.map((z) => h("option", { value: z })));
    }
    const dayBoxes = () => [...document.querySelectorAll('input[name="s-day"]')];
    function showRepeat() {
      const repeat = $("s-repeat").value;
      $("s-interval-row").hidden = repeat !== "interval";
      $("s-at-row").hidden = repeat === "interval";
      $("s-days").hidden = repeat !== "weekly";
    }
    $("s-repeat").addEventListener("change", showRepeat);
    // "Thu 21:30 in America/New_York" beside the browser's own time, when
    // the schedule's zone is another one.
    function inZone(iso, zone) {
      try {
        return new Intl.DateTimeFormat([], { weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone }).format(new Date(iso)) + " in " + zone;
      } catch (e) {
        return "";
      }
    }

    function fillSchedule(s) {
      $("s-enabled").checked = s.enabled;
      $("s-repeat").value = s.repeat || "interval";
      $("s-value").value = s.interval_value;
      $("s-unit").value = s.interval_unit;
      $("s-at").value = s.at || "03:00";
      $("s-tz").value = s.time_zone || browserZone;
      const days = new Set(s.weekdays || []);
      for (const box of dayBoxes()) box.checked = days.has(box.value);
      showRepeat();
      for (const k of keeps) $("s-" + k).value = s[k] === null ? "" : s[k];
      $("s-keep_within").value = s.keep_within || "";
      const zoned = s.next_run_at && s.time_zone && s.time_zone !== browserZone ? " · " + inZone(s.next_run_at, s.time_zone) : "";
      $("s-next").textContent = s.next_run_at ? localTime(s.next_run_at) + " (" + relative(new Date(s.next_run_at)) + ")" + zoned : s.enabled ? "–" : "not scheduled";
      $("s-last").textContent = s.last_run_at ? localTime(s.last_run_at) : "never";
      const r = s.last_result;
      $("s-result").replaceChildren(
        r ? h("span", { class: "status-" + r.status }, r.status, r.message ? h("span", { class: "rel" }, r.message) : null) : "–"
      );
      const editable = perms.has("backup.create");
      for (const el of $("schedule-form").querySelectorAll("input, select")) el.disabled = !editable;
    }

    // The owner's own Discord webhook (the section stays hidden for
    // anyone the API refuses).
    async function loadOwnerNotify() {
      const card = $("owner-notify");
      let data;
      try {
        data = await api("GET", base + "/notifications");
      } catch (e) {
        card.hidden = true;
        return;
      }
      card.hidden = false;
      const c = data.channel;
      $("notify-current").textContent = c ? "Sending to " + c.target + (c.last_error ? " — last failure: " + c.last_error : "") : "No webhook set.";
      $("notify-test").hidden = !c;
      $("notify-remove").hidden = !c;
    }
    if ($("owner-notify")) {
      const status = (text) => ($("notify-status").textContent = text);
      $("notify-save").addEventListener("click", async () => {
        clearError();
        try {
          await api("PUT", base + "/notifications", { url: $("notify-url").value.trim() });
          $("notify-url").value = "";
          status("Saved.");
          await loadOwnerNotify();
        } catch (e) {
          showError(e);
        }
      });
      $("notify-test").addEventListener("click", async () => {
        clearError();
        try {
          const r = await api("POST", base + "/notifications/test");
          status(r.ok ? "Test message sent." : "Not delivered: " + r.error);
        } catch (e) {
          showError(e);
        }
      });
      $("notify-remove").addEventListener("click", async () => {
        clearError();
        try {
          await api("DELETE", base + "/notifications");
          status("Removed.");
          await loadOwnerNotify();
        } catch (e) {
          showError(e);
        }
      });
    }

    async function loadSchedule() {
      loadOwnerNotify();
      const form = $("schedule-form");
      const fields = form.querySelectorAll("input, select, button");
      // Not editable until the saved schedule is in it (its defaults are not the server's).
      form.setAttribute("aria-busy", "true");
      for (const f of fields) f.disabled = true;
      try {
        const [s, hist] = await Promise.all([api("GET", base + "/schedule"), api("GET", base + "/schedule/history")]);
        for (const f of fields) f.disabled = false;
        fillSchedule(s);
        form.removeAttribute("aria-busy");
        previewRetention();
        const runs = $("runs");
        runs.replaceChildren(
          ...hist.runs.map((r) =>
            h(
              "li",
              {},
              h("span", { class: "status-" + r.status }, r.status),
              " · " + (r.origin === "schedule" ? "scheduled" : r.origin) + " " + r.kind,
              " · " + localTime(r.started_at) + (r.snapshot_id ? " · " + r.snapshot_id.slice(0, 8) : ""),
              r.error ? h("span", { class: "rel" }, r.error) : null
            )
          )
        );
        if (hist.runs.length === 0) runs.append(h("li", { class: "muted" }, "No runs yet."));
      } catch (e) {
        showError(e);
      }
    }

    const save = $("schedule-save");
    if (save) {
      // Problems are said at the field, in the words the form uses.
      const FIELDS = {
        interval_value: ["s-value", "Every"],
        at: ["s-at", "At"],
        time_zone: ["s-tz", "Time zone"],
        weekdays: ["s-days", "On"],
        keep_last: ["s-keep_last", "Last"],
        keep_daily: ["s-keep_daily", "Daily"],
        keep_weekly: ["s-keep_weekly", "Weekly"],
        keep_monthly: ["s-keep_monthly", "Monthly"],
        keep_yearly: ["s-keep_yearly", "Yearly"],
        keep_within: ["s-keep_within", "Within"],
      };
      const clearFieldErrors = () => {
        for (const el of document.querySelectorAll("#schedule-form .field-error")) el.remove();
        for (const el of document.querySelectorAll("#schedule-form [aria-invalid]")) {
          el.removeAttribute("aria-invalid");
          el.removeAttribute("aria-describedby");
        }
      };
      const fieldError = (id, text) => {
        const input = $(id);
        const msg = h("span", { class: "field-error", id: "err-" + id, role: "alert" }, text);
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", msg.id);
        input.insertAdjacentElement("afterend", msg);
        return input;
      };
      const checkFields = () => {
        const bad = [];
        const repeat = $("s-repeat").value;
        for (const [field, [id, label]] of Object.entries(FIELDS)) {
          if (["keep_within", "at", "time_zone", "weekdays"].includes(field)) continue;
          if (field === "interval_value" && repeat !== "interval") continue;
          const v = $(id).value.trim();
          const min = field === "interval_value" ? 1 : 0;
          if ((field === "interval_value" || v !== "") && (!/^\d+$/.test(v) || Number(v) < min || Number(v) > 100000)) {
            bad.push(fieldError(id, "“" + label + "” takes a whole number from " + min + " to 100000."));
          }
        }
        if (repeat !== "interval" && !/^\d\d:\d\d$/.test($("s-at").value)) {
          bad.push(fieldError("s-at", "“At” takes a time of day, like 03:30."));
        }
        if (repeat !== "interval" && $("s-tz").value.trim() === "") {
          bad.push(fieldError("s-tz", "“Time zone” takes a name like Europe/Berlin or UTC."));
        }
        if (repeat === "weekly" && !dayBoxes().some((b) => b.checked)) {
          bad.push(fieldError("s-days", "Choose at least one day."));
        }
        const within = $("s-keep_within").value.trim();
        if (within !== "" && !/^(\d+y)?(\d+m)?(\d+d)?(\d+h)?$/.test(within)) {
          bad.push(fieldError("s-keep_within", "“Within” looks like 7d or 1y2m (years, months, days, hours)."));
        }
        if (bad.length) bad[0].focus();
        return bad.length === 0;
      };
      save.addEventListener("click", async () => {
        clearError();
        clearFieldErrors();
        $("schedule-saved").hidden = true;
        if (!checkFields()) return;
        const num = (id) => {
          const v = $(id).value.trim();
          return v === "" ? null : Number(v);
        };
        const repeat = $("s-repeat").value;
        const body = {
          enabled: $("s-enabled").checked,
          repeat,
          keep_within: $("s-keep_within").value.trim() || null,
        };
        if (repeat === "interval") {
          body.interval_value = Number($("s-value").value);
          body.interval_unit = $("s-unit").value;
        } else {
          body.at = $("s-at").value;
          body.time_zone = $("s-tz").value.trim();
          if (repeat === "weekly") body.weekdays = dayBoxes().filter((b) => b.checked).map((b) => b.value);
        }
        for (const k of keeps) body[k] = num("s-" + k);
        save.disabled = true;
        try {
          const s = await api("POST", base + "/schedule", body);
          fillSchedule(s);
          $("schedule-saved").hidden = false;
        } catch (e) {
          // An answer that names a field goes to that field.
          const named = Object.entries(FIELDS).find(([field]) => e.message && e.message.startsWith(field + " "));
          if (named) {
            const [field, [id, label]] = named;
            fieldError(id, "“" + label + "”" + e.message.slice(field.length)).focus();
          } else {
            showError(e);
          }
        } finally {
          save.disabled = false;
        }
      });
    }

    // The saved schedule's backup now, then its retention.
    const runNow = $("schedule-run");
    if (runNow) {
      runNow.addEventListener("click", async () => {
        clearError();
        runNow.disabled = true;
        try {
          const job = await api("POST", base + "/schedule/run");
          watchJob(job.job_id, "Backing up");
        } catch (e) {
          showError(e);
        } finally {
          runNow.disabled = false;
        }
      });
    }

    // Pterodactyl mode: Pterodactyl's own backups, behind a switch that is
    // remembered per user.
    const showPtero = $("show-ptero");
    async function loadPtero() {
      const list = $("ptero-list");
      list.hidden = !showPtero.checked;
      if (!showPtero.checked) return;
      list.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      const data = await api("GET", API + "/servers/" + server + "/backups/pterodactyl");
      list.replaceChildren(
        data.backups.length === 0
          ? h("p", { class: "empty" }, "Pterodactyl has no backups of this server.")
          : table(
              ["Name", "Created", "Size", ""],
              data.backups.map((b) =>
                h(
                  "tr",
                  {},
                  h("td", {}, b.name + (b.is_locked ? " 🔒" : "") + (b.is_successful ? "" : " (failed)")),
                  h("td", {}, localTime(b.created_at)),
                  h("td", {}, bytes(b.bytes)),
                  h(
                    "td",
                    { class: "actions" },
                    perms.has("backup.download") && b.is_successful
                      ? h(
                          "a",
                          {
                            class: "button secondary",
                            href: API + "/servers/" + server + "/backups/pterodactyl/" + b.uuid + "/download",
                          },
                          "Download"
                        )
                      : null
                  )
                )
              )
            )
      );
    }
    if (showPtero) {
      api("GET", API + "/preferences")
        .then((p) => {
          showPtero.checked = p.show_pterodactyl_backups;
          return loadPtero();
        })
        .catch(showError);
      showPtero.addEventListener("change", async () => {
        clearError();
        try {
          await api("PUT", API + "/preferences", { show_pterodactyl_backups: showPtero.checked });
          await loadPtero();
        } catch (e) {
          showError(e);
        }
      });
    }

    refresh();
    followActive();
    if (window.location.hash === "#schedule") selectTab($("tab-schedule"));
  }

  // ---- admin pages ----

  function table(headers, rows) {
    return h(
      "table",
      { class: "admin" },
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)
    );
  }

  function field(label, input) {
    return h("label", {}, label, input);
  }

  const admin = {
    async keys(root) {
      const data = await api("GET", API + "/admin/keys");
      root.replaceChildren(
        h("p", { class: "muted" }, "Each server's repository key. With it (and plain restic) a backup can be restored without this panel. Keep it secret."),
        table(
          ["Server", "Node", "Key", ""],
          data.keys.map((k) => {
            // Hidden until asked for (a screen share or a shoulder must not see it).
            const keyCell = h("span", { class: "key", "data-key": k.server, "data-hidden": "true" }, "•".repeat(16));
            const reveal = h(
              "button",
              {
                type: "button",
                class: "link",
                "data-action": "reveal",
                "aria-pressed": "false",
                onclick: () => {
                  const show = keyCell.dataset.hidden === "true";
                  keyCell.textContent = show ? k.key : "•".repeat(16);
                  keyCell.dataset.hidden = show ? "false" : "true";
                  reveal.textContent = show ? "Hide" : "Show";
                  reveal.setAttribute("aria-pressed", show ? "true" : "false");
                },
              },
              "Show"
            );
            return h(
              "tr",
              { "data-server": k.server },
              h("td", {}, h("strong", {}, k.name), h("span", { class: "rel mono" }, k.server)),
              h("td", {}, k.node),
              h("td", {}, keyCell, " ", reveal, h("span", { class: "rel" }, "generation " + k.generations)),
              h(
                "td",
                { class: "actions" },
                h(
                  "button",
                  {
                    type: "button",
                    class: "secondary",
                    "data-action": "copy",
                    onclick: async (e) => {
                      const ok = await copyText(k.key);
                      if (!ok) window.getSelection().selectAllChildren(keyCell);
                      e.target.textContent = ok ? "Copied" : "Selected";
                      setTimeout(() => (e.target.textContent = "Copy"), 1500);
                    },
                  },
                  "Copy"
                ),
                " ",
                confirmedButton(
                  "Regenerate",
                  "danger",
                  {
                    title: "Regenerate this key?",
                    text: "A new key is added to " + k.name + "'s repository, checked, and then the old key is removed. Copies of the old key stop working.",
                  },
                  "POST",
                  API + "/admin/servers/" + k.server + "/key/regenerate",
                  () => admin.keys(root),
                  { "data-action": "regenerate" }
                )
              )
            );
          })
        )
      );
    },

    async nodes(root) {
      const nodes = await api("GET", API + "/admin/nodes");
      const name = h("input", { required: true, id: "node-name" });
      const url = h("input", { required: true, id: "node-url", placeholder: "https://node1.example.com:8090" });
      const token = h("input", { required: true, id: "node-token", type: "password", autocomplete: "off" });
      const ca = h("textarea", { id: "node-ca", placeholder: "-----BEGIN CERTIFICATE----- (optional)" });
      const browser = h("input", { type: "checkbox", id: "node-browser", checked: true });
      root.replaceChildren(
        table(
          ["Name", "URL", "Repositories", "Custom CA", "Downloads", ""],
          nodes.map((n) =>
            h(
              "tr",
              {},
              h("td", {}, n.name),
              h("td", { class: "mono" }, n.url),
              h(
                "td",
                { class: "mono" },
                n.repository == null ? "(node not answering)" : n.repository === "local" ? "on the node's disk" : n.repository,
                n.copy_to ? h("div", { class: "muted" }, "copy: " + n.copy_to) : null
              ),
              h("td", {}, n.has_ca ? "yes" : "no"),
              h("td", {}, n.browser_downloads ? "direct from node" : "through the panel"),
              h(
                "td",
                { class: "actions" },
                confirmedButton(
                  "Remove",
                  "secondary",
                  { title: "Remove node " + n.name + "?", text: "Only nodes without servers can be removed." },
                  "DELETE",
                  API + "/admin/nodes/" + encodeURIComponent(n.name),
                  () => admin.nodes(root)
                )
              )
            )
          )
        ),
        h("h2", {}, "Add a node"),
        h(
          "div",
          { class: "form-inline" },
          field("Name", name),
          field("Agent URL", url),
          field("Node token", token),
          h("label", { class: "check" }, browser, "Browsers can reach the node (direct downloads)")
        ),
        field("CA certificate (PEM, optional)", ca),
        h(
          "button",
          {
            type: "button",
            class: "primary",
            id: "node-add",
            onclick: async () => {
              clearError();
              try {
                await api("POST", API + "/admin/nodes", {
                  name: name.value.trim(),
                  url: url.value.trim(),
                  token: token.value,
                  ca_pem: ca.value.trim() || null,
                  browser_downloads: browser.checked,
                });
                admin.nodes(root).catch(showError);
              } catch (e) {
                showError(e);
              }
            },
          },
          "Add node"
        )
      );
    },

    async servers(root) {
      const [servers, nodes, users] = await Promise.all([
        api("GET", API + "/admin/servers"),
        api("GET", API + "/admin/nodes"),
        api("GET", API + "/admin/users"),
      ]);
      const uuid = h("input", { id: "server-uuid", placeholder: "Pterodactyl server UUID" });
      const name = h("input", { id: "server-name-input" });
      const owner = h("select", { id: "server-owner" }, users.map((u) => h("option", { value: u.email }, u.email)));
      const node = h("select", { id: "server-node" }, nodes.map((n) => h("option", { value: n.name }, n.name)));
      const limit = h("input", { id: "server-limit", type: "number", min: "0", value: "0" });
      root.replaceChildren(
        table(
          ["Server", "Owner", "Node", "Backup limit", ""],
          servers.map((s) => {
            const lim = h("input", { type: "number", min: "0", value: String(s.backup_limit), "aria-label": "Backup limit of " + s.name, class: "w6" });
            return h(
              "tr",
              {},
              h("td", {}, h("a", { href: BASE + "/servers/" + s.uuid }, s.name), h("span", { class: "rel mono" }, s.uuid)),
              h("td", {}, s.owner),
              h("td", {}, s.node),
              h("td", {}, lim, " ", h("button", {
                type: "button",
                class: "secondary",
                onclick: async () => {
                  clearError();
                  try {
                    await api("PATCH", API + "/admin/servers/" + s.uuid, { backup_limit: Number(lim.value) });
                    admin.servers(root).catch(showError);
                  } catch (e) {
                    showError(e);
                  }
                },
              }, "Save")),
              h(
                "td",
                { class: "actions" },
                h("a", { class: "button secondary", href: BASE + "/admin/users#subusers-" + s.uuid }, "Subusers"),
                " ",
                confirmedButton(
                  "Delete",
                  "danger",
                  {
                    title: "Delete server " + s.name + "?",
                    text: "Its repository is archived on its node first (a final snapshot, locked), then the server is removed from the panel. If archiving fails, nothing is deleted.",
                  },
                  "DELETE",
                  API + "/admin/servers/" + s.uuid,
                  () => admin.servers(root)
                )
              )
            );
          })
        ),
        h("h2", {}, "Add a server"),
        h("div", { class: "form-inline" }, field("UUID", uuid), field("Name", name), field("Owner", owner), field("Node", node), field("Backup limit (0: none)", limit)),
        h(
          "button",
          {
            type: "button",
            class: "primary",
            onclick: async () => {
              clearError();
              try {
                await api("POST", API + "/admin/servers", {
                  uuid: uuid.value.trim(),
                  name: name.value.trim(),
                  owner: owner.value,
                  node: node.value,
                  backup_limit: Number(limit.value || 0),
                });
                admin.servers(root).catch(showError);
              } catch (e) {
                showError(e);
              }
            },
          },
          "Add server"
        )
      );
    },

    async users(root) {
      const [users, servers] = await Promise.all([api("GET", API + "/admin/users"), api("GET", API + "/admin/servers")]);
      const email = h("input", { id: "user-email", type: "email", autocomplete: "off" });
      const password = h("input", { id: "user-password", type: "password", autocomplete: "new-password" });
      const isAdmin = h("input", { id: "user-admin", type: "checkbox" });
      const subSections = [];
      for (const s of servers) {
        const subs = await api("GET", API + "/admin/servers/" + s.uuid + "/subusers");
        const perms = ["backup.read", "backup.create", "backup.download", "backup.restore", "backup.delete"];
        const subEmail = h("select", { "aria-label": "User" }, users.filter((u) => u.email !== s.owner).map((u) => h("option", { value: u.email }, u.email)));
        const boxes = perms.map((p) => h("input", { type: "checkbox", value: p, "data-perm": p }));
        // Choosing someone shows what they hold now, so "Set" changes only what is ticked differently.
        const tickHeld = () => {
          const held = subs.find((u) => u.email === subEmail.value);
          for (const b of boxes) b.checked = !!held && held.permissions.includes(b.value);
        };
        subEmail.addEventListener("change", tickHeld);
        tickHeld();
        subSections.push(
          h(
            "section",
            { class: "card spaced", id: "subusers-" + s.uuid },
            h("h2", { class: "flush" }, "Subusers of " + s.name),
            subs.length === 0
              ? h("p", { class: "muted" }, "No subusers.")
              : table(
                  ["User", "Permissions", ""],
                  subs.map((u) =>
                    h(
                      "tr",
                      {},
                      h("td", {}, u.email),
                      h("td", {}, u.permissions.join(", ") || "none"),
                      h(
                        "td",
                        { class: "actions" },
                        confirmedButton(
                          "Remove",
                          "secondary",
                          { title: "Remove " + u.email + " from " + s.name + "?", text: "They lose every permission on this server's backups." },
                          "DELETE",
                          API + "/admin/servers/" + s.uuid + "/subusers/" + u.user_id,
                          () => admin.users(root),
                          { "data-action": "remove-subuser" }
                        )
                      )
                    )
                  )
                ),
            h("div", { class: "row mt" }, subEmail, h("div", { class: "perms" }, perms.map((p, i) => h("label", {}, boxes[i], p)))),
            h("button", {
              type: "button",
              class: "secondary mt",
              onclick: async () => {
                clearError();
                try {
                  await api("PUT", API + "/admin/servers/" + s.uuid + "/subusers", {
                    email: subEmail.value,
                    permissions: boxes.filter((b) => b.checked).map((b) => b.value),
                  });
                  admin.users(root).catch(showError);
                } catch (e) {
                  showError(e);
                }
              },
            }, "Set permissions")
          )
        );
      }
      root.replaceChildren(
        table(
          ["Email", "Role", ""],
          users.map((u) =>
            h(
              "tr",
              {},
              h("td", {}, u.email),
              h("td", {}, u.root_admin ? "root admin" : "user"),
              h(
                "td",
                { class: "actions" },
                confirmedButton(
                  "Delete",
                  "secondary",
                  { title: "Delete user " + u.email + "?", text: "Users who own servers can not be deleted." },
                  "DELETE",
                  API + "/admin/users/" + u.id,
                  () => admin.users(root)
                )
              )
            )
          )
        ),
        h("h2", {}, "Add a user"),
        h("div", { class: "form-inline" }, field("Email", email), field("Password (10+ characters)", password), h("label", { class: "check" }, isAdmin, "Root admin")),
        h("button", {
          type: "button",
          class: "primary",
          onclick: async () => {
            clearError();
            try {
              await api("POST", API + "/admin/users", { email: email.value.trim(), password: password.value, root_admin: isAdmin.checked });
              admin.users(root).catch(showError);
            } catch (e) {
              showError(e);
            }
          },
        }, "Add user"),
        h("h2", {}, "Subusers"),
        ...subSections
      );
      if (location.hash) {
        const target = document.getElementById(location.hash.slice(1));
        if (target) target.scrollIntoView();
      }
    },

    async pterodactyl(root) {
      const render = (data) => {
        const row = (s) =>
          h(
            "tr",
            {},
            h("td", {}, localTime(s.started_at * 1000)),
            h("td", {}, s.origin),
            h("td", { class: s.ok ? "" : "error" }, s.ok ? "ok" : "failed"),
            h("td", {}, s.summary),
            h("td", {}, String(s.rows_written)),
            h("td", {}, s.duration_ms + " ms"),
            h("td", {}, s.errors.join(" · "))
          );
        const headers = ["Started", "By", "Result", "Changes (+added ~updated -removed)", "Rows", "Took", "Problems"];
        const sync = h(
          "button",
          {
            type: "button",
            class: "primary",
            id: "pterodactyl-sync",
            onclick: async (e) => {
              e.target.disabled = true;
              e.target.textContent = "Syncing…";
              clearError();
              try {
                render(await api("POST", API + "/admin/pterodactyl/sync"));
              } catch (err) {
                showError(err);
                e.target.disabled = false;
                e.target.textContent = "Sync now";
              }
            },
          },
          "Sync now"
        );
        root.replaceChildren(
          h("p", {}, sync),
          h("h2", {}, "Last sync of this panel"),
          data.last ? table(headers, [row(data.last)]) : h("p", { class: "empty" }, "No sync yet."),
          h("h2", {}, "Syncs that changed something or failed"),
          data.recorded.length === 0 ? h("p", { class: "empty" }, "None yet.") : table(headers, data.recorded.map(row))
        );
      };
      render(await api("GET", API + "/admin/pterodactyl/sync"));
    },

    async notifications(root) {
      const data = await api("GET", API + "/admin/notifications");
      const events = ["backup_failed", "backup_missing", "key_rotated", "restored"];
      const labels = {
        backup_failed: "Scheduled backup failed",
        backup_missing: "No backup for a while",
        key_rotated: "Key replaced",
        restored: "Restore started",
      };
      const name = h("input", { type: "text", name: "name", maxlength: 64, autocomplete: "off" });
      const kind = h(
        "select",
        { name: "kind" },
        h("option", { value: "discord" }, "Discord webhook"),
        h("option", { value: "slack" }, "Slack webhook"),
        h("option", { value: "webhook" }, "Webhook (JSON)"),
        h("option", { value: "email" }, "E-mail")
      );
      const target = h("input", { type: "text", name: "target", placeholder: "https://discord.com/api/webhooks/… or an address", autocomplete: "off" });
      const hours = h("input", { type: "number", name: "missing_hours", min: 1, max: 720, value: 26 });
      const boxes = events.map((e) => h("input", { type: "checkbox", name: "event", value: e, checked: true }));
      const rows = data.map((c) =>
        h(
          "tr",
          { "data-channel": c.id },
          h("td", {}, h("strong", {}, c.name), h("span", { class: "rel" }, c.kind)),
          h("td", { class: "mono" }, c.target),
          h("td", {}, c.events.map((e) => labels[e] || e).join(", ") + (c.events.includes("backup_missing") ? " (" + c.missing_hours + " h)" : "")),
          h("td", { class: c.last_error ? "error" : "muted" }, c.last_error || "—"),
          h(
            "td",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                class: "secondary",
                "data-action": "test",
                onclick: async (e) => {
                  clearError();
                  e.target.disabled = true;
                  try {
                    const r = await api("POST", API + "/admin/notifications/" + c.id + "/test");
                    e.target.textContent = r.ok ? "Sent" : "Failed";
                    if (!r.ok) showError(new ApiError(0, "test_failed", "The test message was not delivered: " + r.error));
                  } catch (err) {
                    showError(err);
                  } finally {
                    e.target.disabled = false;
                    setTimeout(() => (e.target.textContent = "Send test"), 2000);
                  }
                },
              },
              "Send test"
            ),
            confirmedButton(
              "Remove",
              "secondary",
              { title: "Remove channel " + c.name + "?", text: "Messages waiting for it are dropped." },
              "DELETE",
              API + "/admin/notifications/" + c.id,
              () => admin.notifications(root)
            )
          )
        )
      );
      root.replaceChildren(
        h("p", { class: "muted" }, "Who is told when a scheduled backup fails, when a server with a schedule has had no successful backup for a while, when a key is replaced and when a restore starts. Webhook addresses are kept sealed and never shown again."),
        rows.length === 0
          ? h("p", { class: "empty" }, "No channels yet.")
          : h("div", { class: "table-wrap" }, table(["Channel", "Sends to", "Events", "Last failure", ""], rows)),
        h("h2", {}, "Add a channel"),
        h(
          "form",
          {
            class: "form-inline",
            id: "channel-form",
            onsubmit: async (e) => {
              e.preventDefault();
              clearError();
              try {
                await api("POST", API + "/admin/notifications", {
                  name: name.value.trim(),
                  kind: kind.value,
                  target: target.value.trim(),
                  events: boxes.filter((b) => b.checked).map((b) => b.value),
                  missing_hours: Number(hours.value) || 26,
                });
                admin.notifications(root).catch(showError);
              } catch (err) {
                showError(err);
              }
            },
          },
          field("Name", name),
          field("Kind", kind),
          field("Webhook URL or e-mail address", target),
          field("No backup for (hours)", hours),
          h("fieldset", { class: "checks" }, h("legend", {}, "Events"), boxes.map((b) => h("label", { class: "check" }, b, labels[b.value]))),
          h("button", { type: "submit", class: "primary" }, "Add channel")
        )
      );
    },

    async audit(root) {
      const actions = [
        "login", "logout", "backup.create", "backup.restore", "backup.download", "backup.delete",
        "backup.lock", "backup.unlock", "pterodactyl.download", "schedule.save", "preferences.save",
        "keys.reveal", "key.regenerate", "keys.export", "archive.delete", "user.create", "user.update",
        "user.delete", "node.create", "node.update", "node.delete", "server.create", "server.update",
        "server.delete", "subuser.set", "subuser.remove", "pterodactyl.sync", "notification.create",
        "notification.delete", "notification.test", "server_notification.set",
        "server_notification.remove", "server_notification.test",
      ];
      const select = (name, values) =>
        h("select", { name }, h("option", { value: "" }, "any"), values.map((v) => h("option", { value: v }, v)));
      const actor = h("input", { type: "text", name: "actor", placeholder: "email", autocomplete: "off" });
      const server = h("input", { type: "text", name: "server", placeholder: "server UUID", autocomplete: "off" });
      const action = select("action", actions);
      const outcome = select("outcome", ["ok", "denied", "limited", "refused", "failed"]);
      const from = h("input", { type: "datetime-local", name: "from" });
      const to = h("input", { type: "datetime-local", name: "to" });
      const list = h("div", { id: "audit-list" });
      const query = () => {
        const q = new URLSearchParams();
        for (const [k, el] of [["actor", actor], ["server", server], ["action", action], ["outcome", outcome]]) {
          if (el.value.trim()) q.set(k, el.value.trim());
        }
        for (const [k, el] of [["from", from], ["to", to]]) {
          if (el.value) q.set(k, new Date(el.value).toISOString());
        }
        return q;
      };
      const rows = [];
      // "Older entries" pages through the list shown, whatever the fields
      // say now.
      let shown = new URLSearchParams();
      const load = async (cursor) => {
        clearError();
        try {
          if (!cursor) shown = query();
          const q = new URLSearchParams(shown);
          if (cursor) q.set("cursor", cursor);
          const data = await api("GET", API + "/admin/audit?" + q.toString());
          if (!cursor) rows.length = 0;
          for (const e of data.entries) {
            rows.push(
              h(
                "tr",
                { "data-action": e.action },
                h("td", {}, localTime(e.at)),
                h("td", {}, e.actor || "—"),
                h("td", { class: "mono" }, e.action),
                h("td", { class: "mono" }, e.server || ""),
                h("td", { class: "mono" }, e.target || ""),
                h("td", { class: e.outcome === "ok" ? "" : "error" }, e.outcome + " (" + e.status + ")"),
                h("td", { class: "mono" }, e.client || "")
              )
            );
          }
          const more = data.next_cursor
            ? h("button", { type: "button", class: "secondary", id: "audit-older", onclick: () => load(data.next_cursor) }, "Older entries")
            : null;
          list.replaceChildren(
            rows.length === 0
              ? h("p", { class: "empty" }, "No entries match.")
              : h("div", { class: "table-wrap" }, table(["When", "Who", "Action", "Server", "Object", "Outcome", "From"], rows)),
            more
          );
          if (cursor) $("audit-older")?.focus();
        } catch (e) {
          showError(e);
        }
      };
      const filters = h(
        "form",
        {
          class: "form-inline",
          id: "audit-filters",
          onsubmit: (e) => {
            e.preventDefault();
            load();
          },
        },
        field("Who", actor),
        field("Server", server),
        field("Action", action),
        field("Outcome", outcome),
        field("From", from),
        field("To", to),
        h("button", { type: "submit", class: "primary" }, "Filter")
      );
      root.replaceChildren(
        h("p", { class: "muted" }, "Who did what to which server, when and from where: every change, download, restore, key reveal and login, allowed or not."),
        filters,
        list
      );
      await load();
    },

    async "archived-repos"(root) {
      const data = await api("GET", API + "/admin/archived-repos");
      // (replaceChildren prints a null as the text "null": h() drops it.)
      root.replaceChildren(
        h("div", {}, data.unavailable_nodes.length ? h("p", { class: "error" }, "Not reachable: " + data.unavailable_nodes.join(", ")) : null),
        data.archives.length === 0
          ? h("p", { class: "empty" }, "No archived repositories.")
          : table(
              ["Server", "Archive", "Node", "Size", "Archived", ""],
              data.archives.map((a) =>
                h(
                  "tr",
                  {},
                  h("td", {}, a.server_name || h("span", { class: "mono" }, a.server_uuid)),
                  h("td", { class: "mono" }, a.name),
                  h("td", {}, a.node),
                  h("td", {}, bytes(a.size_bytes)),
                  h("td", {}, localTime(a.archived_at)),
                  h(
                    "td",
                    { class: "actions" },
                    confirmedButton(
                      "Delete",
                      "danger",
                      {
                        title: "Delete archive " + a.name + "?",
                        text: "The archived repository and every backup in it are removed from " + a.node + ". This can not be undone.",
                      },
                      "DELETE",
                      API + "/admin/archived-repos/" + encodeURIComponent(a.name) + "?node=" + encodeURIComponent(a.node),
                      () => admin["archived-repos"](root)
                    )
                  )
                )
              )
            )
      );
    },
  };

  function initAdmin() {
    const section = document.body.dataset.section;
    const root = $("admin-content");
    admin[section](root).catch((e) => {
      root.replaceChildren();
      showError(e);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    initCommon();
    const page = document.body.dataset.page;
    if (page === "login") initLogin();
    else if (page === "servers") initServers();
    else if (page === "backups") initBackups();
    else if (page === "admin") initAdmin();
  });
})();
