// HTTP client for the tricklab API: JSON in and out, the API key on every call,
// a key prompt on 401, and Server-Sent Events read through fetch (EventSource
// cannot send an Authorization header).

import { toast } from "./util.js";

const KEY_STORAGE = "tricklab.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e && e.message ? e.message : `HTTP ${status}`);
    this.status = status;
    this.code = e ? e.code : null;
    // [{loc: [...], msg}] for validation errors; anything else is shown as text
    this.details = e && Array.isArray(e.details) ? e.details : [];
  }
}

export function getKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function authHeaders(extra = {}) {
  const key = getKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// One prompt at a time: every poller that meets a 401 waits on the same promise.
let pending = null;

export function askKey(reason) {
  if (pending) return pending;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-reason").textContent =
    reason || "Enter your API key. It is kept in this browser (localStorage) and sent as Authorization: Bearer ….";
  input.value = getKey();
  pending = new Promise((resolve) => {
    const done = (ok) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      pending = null;
      resolve(ok);
    };
    const form = document.getElementById("key-form");
    const cancel = document.getElementById("key-cancel");
    const onSubmit = (ev) => {
      ev.preventDefault();
      setKey(input.value.trim());
      done(true);
    };
    const onCancel = () => done(false);
    // Escape closes a modal <dialog> by itself: settle as a cancel, or every caller waits forever
    const onClose = () => done(false);
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    input.focus();
  });
  return pending;
}

async function send(path, { method = "GET", body, signal, headers = {} } = {}) {
  for (;;) {
    const init = { method, signal, headers: authHeaders(headers) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status !== 401) return res;
    const ok = await askKey("The API answered 401 Unauthorized: enter a valid API key.");
    if (!ok) return res;
  }
}

async function errorFrom(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON: the status line says enough */
  }
  return new ApiError(res.status, body);
}

/** JSON request; throws ApiError on any non-2xx answer. */
export async function api(path, opts = {}) {
  const res = await send(path, opts);
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** A binary download with the auth header, saved through a blob URL. */
export async function download(path, filename) {
  const res = await send(path);
  if (!res.ok) throw await errorFrom(res);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * Read an SSE stream with fetch, calling onEvent(type, data) per event, where
 * data is parsed JSON when it parses. Resolves when the stream ends; rejects on
 * network errors (callers fall back to polling). Stop it with the signal.
 */
export async function streamEvents(path, onEvent, signal) {
  const res = await send(path, { signal, headers: { Accept: "text/event-stream" } });
  if (!res.ok || !res.body) throw await errorFrom(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, "");
      let type = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) continue; // comment / keep-alive
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") type = val;
        else if (field === "data") data.push(val);
      }
      if (!data.length) continue;
      const raw = data.join("\n");
      let parsed = raw;
      try {
        parsed = JSON.parse(raw);
      } catch {
        /* plain text data */
      }
      onEvent(type, parsed);
    }
  }
}

/** GET /jobs answers {data, count, next_cursor}; older builds may answer a bare list. */
export function listOf(body) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body.data)) return body.data;
  return [];
}

/** POST /jobs/{id}/cancel from a page; says how it went in a toast. `base` is "/jobs/{id}". */
export async function cancelJob(base) {
  try {
    await api(`${base}/cancel`, { method: "POST" });
    toast("Cancel requested");
  } catch (e) {
    toast(`Cancel failed: ${e.message}`, 5000);
  }
}
