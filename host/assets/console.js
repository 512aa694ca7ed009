// Switchyard console: what must be live, on top of pages that work without
// it. No library: EventSource for the overview and log tails (the server
// sends HTML it rendered with the same templates), a filter, confirmations.
"use strict";
(function () {
  // The overview: fragments replace their element by name.
  const live = document.querySelector("[data-live-src]");
  if (live) {
    const note = document.querySelector(".live-note");
    const es = new EventSource(live.dataset.liveSrc);
    for (const name of ["upstreams", "stats"]) {
      es.addEventListener(name, (ev) => {
        const el = document.querySelector(`[data-live="${name}"]`);
        if (el) el.innerHTML = ev.data;
        if (note) note.hidden = false;
      });
    }
    es.onerror = () => { if (note) note.hidden = true; };
  }

  // Log tails: new lines appended (the last 1000 kept), pause, filter.
  for (const pre of document.querySelectorAll("[data-log-src]")) {
    const tools = pre.parentElement.querySelector(".log-tools");
    const pause = tools && tools.querySelector("[data-log-pause]");
    const filter = tools && tools.querySelector("[data-log-filter]");
    if (tools) tools.hidden = false;
    let lines = [];
    let paused = false;
    const show = () => {
      const f = filter ? filter.value.toLowerCase() : "";
      pre.textContent = lines.filter((l) => !f || l.toLowerCase().includes(f)).join("\n");
      pre.scrollTop = pre.scrollHeight;
    };
    const es = new EventSource(pre.dataset.logSrc);
    let first = true;
    es.onmessage = (ev) => {
      if (first) { lines = []; first = false; }
      lines.push(ev.data);
      if (lines.length > 1000) lines.splice(0, lines.length - 1000);
      if (!paused) show();
    };
    es.onerror = () => { first = true; };
    if (pause) pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) show();
    });
    if (filter) filter.addEventListener("input", show);
  }

  // Filters over lists (the explorer's search), as you type.
  for (const input of document.querySelectorAll("[data-filter]")) {
    input.addEventListener("input", () => {
      const q = input.value.toLowerCase();
      for (const el of document.querySelectorAll(input.dataset.filter)) {
        el.hidden = q !== "" && !el.textContent.toLowerCase().includes(q);
      }
    });
  }

  // Confirmations before irreversible actions.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  }
})();

// Parts of a page that refresh themselves (the metrics charts): the same
// page fetched again every 10 s, and the selected element swapped in.
(function () {
  for (const el of document.querySelectorAll("[data-refresh]")) {
    setInterval(async () => {
      try {
        const resp = await fetch(el.dataset.refresh, { credentials: "same-origin" });
        if (!resp.ok) return;
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        const fresh = doc.querySelector(el.dataset.refreshSelect);
        if (fresh) el.innerHTML = fresh.innerHTML;
      } catch (_) { /* offline for a moment: the next tick tries again */ }
    }, 10000);
  }
})();
