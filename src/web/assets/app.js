// vast-supervisor dashboard: live updates on top of server-rendered pages. The pages work
// without this script; it adds new events to the log as they are committed (server-sent
// events) and refreshes the parts of a page marked data-refresh without reloading it.
"use strict";

(function () {
  const MAX_ROWS = 500;

  function pad(n) { return String(n).padStart(2, "0"); }

  function utc(iso) {
    const t = new Date(iso);
    return t.getUTCFullYear() + "-" + pad(t.getUTCMonth() + 1) + "-" + pad(t.getUTCDate()) +
      " " + pad(t.getUTCHours()) + ":" + pad(t.getUTCMinutes()) + ":" + pad(t.getUTCSeconds()) + " UTC";
  }

  function cell(row, child) {
    const td = document.createElement("td");
    if (child) td.appendChild(child);
    row.appendChild(td);
    return td;
  }

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  function subjectLabel(s) {
    if (s.type === "machine") return (s.name ? s.name + " (" + s.id + ")" : "machine " + s.id);
    if (s.type === "instance") return (s.name ? s.name + " (" + s.id + ")" : "instance " + s.id);
    if (s.type === "account") return "account " + s.id;
    return "supervisor";
  }

  // One row as the server renders it (events.rs: event_rows), built without innerHTML.
  function eventRow(seq, e) {
    const row = document.createElement("tr");
    row.className = "event fresh sev-" + e.severity;
    row.dataset.seq = seq;
    row.dataset.kind = e.kind;
    const when = text("time", utc(e.time));
    when.setAttribute("datetime", e.time);
    cell(row, when);
    cell(row, text("span", e.kind, "kind"));
    cell(row, document.createTextNode(e.account || ""));
    if (e.subject && e.subject.type === "machine") {
      const a = text("a", subjectLabel(e.subject));
      a.href = "/machines/" + e.subject.id;
      cell(row, a);
    } else {
      cell(row, document.createTextNode(subjectLabel(e.subject || {})));
    }
    const what = cell(row, text("strong", e.title));
    what.appendChild(text("div", e.text, "text"));
    return row;
  }

  function followLog(table) {
    const body = table.tBodies[0];
    const live = document.getElementById("live");
    const source = new EventSource(table.dataset.stream);
    source.onopen = function () { if (live) live.hidden = false; };
    source.onerror = function () { if (live) live.hidden = true; };
    source.onmessage = function (message) {
      const item = JSON.parse(message.data);
      if (body.querySelector('tr[data-seq="' + item.seq + '"]')) return;
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      body.insertBefore(eventRow(item.seq, item.event), body.firstChild);
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    };
  }

  // Swaps the data-refresh parts of the page for fresh ones, every few seconds while visible.
  function refreshParts() {
    const parts = document.querySelectorAll("[data-refresh]");
    if (parts.length === 0) return;
    let busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(location.href, { headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          const fresh = new DOMParser().parseFromString(html, "text/html")
            .querySelectorAll("[data-refresh]");
          const current = document.querySelectorAll("[data-refresh]");
          if (fresh.length !== current.length) return;
          current.forEach(function (old, i) { old.replaceWith(document.adoptNode(fresh[i])); });
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }, 10000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const log = document.getElementById("event-log");
    if (log && log.dataset.stream && window.EventSource) followLog(log);
    refreshParts();
  });
})();
