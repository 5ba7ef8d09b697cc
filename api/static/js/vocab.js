// The API's vocabulary for this page load: GET /openapi.json, fetched once and
// kept. app.js awaits loadVocab() before it mounts the first view, so every view
// may read openapi(), STATUSES and TERMINAL synchronously.

import { api } from "./api.js";
import { enumOf } from "./openapi.js";

// The two statuses a job can still leave (DESIGN.md: queued → running → a
// terminal one); every other JobStatus value is terminal, so a status added to
// the enum (stopped_early) stops the pollers with no change here.
const ACTIVE = ["queued", "running"];

/** JobStatus values in the document's order (the jobs list filter). Filled by loadVocab. */
export const STATUSES = [];
/** The JobStatus values a job (or a sweep, whose status is a job status) never leaves. */
export const TERMINAL = new Set();

let doc = null;
let pending = null;

/** Fetch the OpenAPI document once; later calls get the same promise (a failure may be retried). */
export function loadVocab() {
  if (!pending) {
    pending = api("/openapi.json").then(
      (body) => {
        const statuses = enumOf(body, "JobStatus");
        STATUSES.splice(0, STATUSES.length, ...statuses);
        TERMINAL.clear();
        for (const s of statuses) if (!ACTIVE.includes(s)) TERMINAL.add(s);
        doc = body;
        return body;
      },
      (err) => {
        pending = null;
        throw err;
      },
    );
  }
  return pending;
}

/** The loaded OpenAPI document. */
export function openapi() {
  if (!doc) throw new Error("vocab.js: loadVocab() has not finished");
  return doc;
}
