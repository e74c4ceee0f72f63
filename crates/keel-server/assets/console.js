// Keel console: the only script of the server-rendered pages, compiled into keel serve.
// 1. Live regions: every `data-live-ms` the page's own URL is fetched again and each element
//    marked `data-live` (by id) is replaced, unless the operator is typing in it.
// 2. Forms marked `data-api` are sent to the JSON API as JSON (the same API the CLI uses);
//    the answer is shown in the form's `[data-result]`. Buttons marked `data-needs-preview`
//    stay disabled until a preview (a submit button marked `data-preview`) of the same
//    values succeeded, so a bulk change is always seen before it is made.
"use strict";

(function () {
  const liveMs = Number(document.body.dataset.liveMs || 0);
  const status = () => document.getElementById("live-status");

  async function refreshLive() {
    if (document.hidden) return;
    const regions = document.querySelectorAll("[data-live][id]");
    if (regions.length === 0) return;
    try {
      const response = await fetch(location.href, { cache: "no-store", headers: { "x-keel-live": "1" } });
      if (!response.ok) throw new Error(String(response.status));
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of regions) {
        if (region.contains(document.activeElement) && document.activeElement !== document.body) continue;
        const replacement = fresh.getElementById(region.id);
        if (replacement) region.replaceWith(replacement);
      }
      const s = status();
      if (s) { s.textContent = "live · " + new Date().toLocaleTimeString(); s.className = "muted"; }
    } catch (error) {
      const s = status();
      if (s) { s.textContent = "offline: " + error.message; s.className = "bad"; }
    }
  }
  if (liveMs > 0) setInterval(refreshLive, liveMs);

  // `a.b` sets target.a.b; `a[b.c]` sets target.a["b.c"] (a key with dots, as Kafka's
  // setting names have).
  function setPath(target, path, value) {
    const keyed = path.match(/^([^[]*)\[(.*)\]$/);
    const parts = keyed ? [...keyed[1].split("."), keyed[2]] : path.split(".");
    let at = target;
    for (const part of parts.slice(0, -1)) at = at[part] = at[part] || {};
    at[parts[parts.length - 1]] = value;
  }

  function convert(element, raw) {
    switch (element.dataset.type) {
      case "number": return Number(raw);
      case "bool": return element.type === "checkbox" ? element.checked : raw === "true";
      case "json": return JSON.parse(raw);
      default: return raw;
    }
  }

  function body(form, submitter) {
    const out = {};
    for (const element of form.elements) {
      if (!element.name || element.disabled || element.dataset.skip !== undefined) continue;
      if (element.tagName === "BUTTON") continue;
      if (element.type === "radio" && !element.checked) continue;
      if (element.type === "checkbox" && element.dataset.type !== "bool" && !element.checked) continue;
      const raw = element.value;
      if (raw === "" && element.type !== "checkbox") continue;
      try {
        setPath(out, element.name, convert(element, raw));
      } catch (error) {
        throw new Error(element.name + ": " + error.message);
      }
    }
    if (submitter && submitter.name) setPath(out, submitter.name, convert(submitter, submitter.value));
    return out;
  }

  function table(rows) {
    const t = document.createElement("table");
    if (rows.length === 0) { t.textContent = "nothing"; return t; }
    const columns = Object.keys(rows[0]);
    const head = t.createTHead().insertRow();
    for (const c of columns) head.appendChild(document.createElement("th")).textContent = c;
    const tbody = t.createTBody();
    for (const row of rows) {
      const tr = tbody.insertRow();
      for (const c of columns) {
        const v = row[c];
        tr.insertCell().textContent = v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v);
      }
    }
    return t;
  }

  function show(form, answer, ok, submitter) {
    const area = form.querySelector("[data-result]");
    if (!area) return;
    area.replaceChildren();
    if (!ok) {
      const line = document.createElement("div");
      line.className = "error";
      line.textContent = answer && answer.error ? answer.error : String(answer);
      area.appendChild(line);
      return;
    }
    const done = document.createElement("div");
    done.className = "done";
    const template = (submitter && submitter.dataset.done) || form.dataset.done || "done";
    done.textContent = template.replace(/\{(\w+)\}/g, (_, k) =>
      answer[k] === undefined ? "" : Array.isArray(answer[k]) ? answer[k].length : answer[k]);
    area.appendChild(done);
    const render = form.dataset.render || "";
    if (render.startsWith("table:")) {
      const rows = answer[render.slice(6)];
      if (Array.isArray(rows)) area.appendChild(table(rows));
    } else if (render === "json") {
      const pre = document.createElement("pre");
      pre.className = "json";
      pre.textContent = JSON.stringify(answer, null, 2);
      area.appendChild(pre);
    }
  }

  async function pollCanary(form, id) {
    const area = form.querySelector("[data-result]");
    const line = document.createElement("div");
    line.dataset.canary = id;
    area.appendChild(line);
    for (let i = 0; i < 120; i++) {
      const response = await fetch("/api/dead-letters/canary/" + encodeURIComponent(id), { cache: "no-store" });
      const outcome = await response.json();
      line.textContent = "canary " + id + ": " + (outcome.outcome || outcome.error);
      line.dataset.outcome = outcome.outcome || "error";
      if (outcome.outcome !== "pending") return;
      await new Promise(resolve => setTimeout(resolve, 1000));
    }
  }

  function gate(form, open) {
    for (const button of form.querySelectorAll("[data-needs-preview]")) button.disabled = !open;
  }

  document.addEventListener("submit", async event => {
    const form = event.target;
    if (!form.matches("form[data-api]")) return;
    event.preventDefault();
    const submitter = event.submitter;
    const confirmField = form.dataset.confirmField;
    if (confirmField && !(submitter && submitter.dataset.preview !== undefined)) {
      const typed = form.elements[confirmField];
      if (!typed || typed.value !== form.dataset.confirmValue) {
        show(form, { error: "type " + form.dataset.confirmValue + " to confirm" }, false);
        return;
      }
    }
    let payload;
    try {
      payload = body(form, submitter);
    } catch (error) {
      show(form, { error: error.message }, false);
      return;
    }
    const method = (submitter && submitter.dataset.method) || form.dataset.method || "POST";
    const url = (submitter && submitter.dataset.api) || form.dataset.api;
    const init = { method, headers: { "content-type": "application/json" } };
    if (method !== "GET" && method !== "DELETE") init.body = JSON.stringify(payload);
    let response, answer;
    try {
      response = await fetch(url, init);
      answer = await response.json().catch(() => ({ error: response.statusText }));
    } catch (error) {
      show(form, { error: error.message }, false);
      return;
    }
    show(form, answer, response.ok, submitter);
    if (!response.ok) return;
    if (submitter && submitter.dataset.preview !== undefined) { gate(form, true); return; }
    gate(form, false);
    const then = form.dataset.then || "";
    if (then === "reload") setTimeout(() => location.reload(), 700);
    else if (then.startsWith("goto:")) setTimeout(() => { location.href = then.slice(5); }, 700);
    else if (then === "canary" && answer.canary && answer.id) pollCanary(form, answer.id);
  });

  document.addEventListener("input", event => {
    const form = event.target.closest && event.target.closest("form[data-api]");
    if (form) gate(form, false);
  });

  document.addEventListener("change", event => {
    const select = event.target;
    if (!select.matches || !select.matches("select[data-template-target]")) return;
    const option = select.selectedOptions[0];
    const target = document.getElementById(select.dataset.templateTarget);
    if (option && option.dataset.template && target) target.value = option.dataset.template;
  });
})();
