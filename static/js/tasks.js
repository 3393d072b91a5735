// Task cards: progress from the event stream, polling as a fallback, cancel, results.

import { apiFetch } from "./api.js";
import { downloadRefusal, refusalWords, saveLink } from "./review.js";
import {
  FINAL_STATES,
  OPERATION_NAMES,
  STATE_WORDS,
  errorWords,
  formatEta,
  resultSummary,
  verificationSummary,
} from "./format.js";

const STORE_KEY = "vidcorrect.runningTasks";
const REVIEW_WORDS = { pending: "Not reviewed yet", approved: "Approved", rejected: "Rejected" };
const POLL_MS = 1000;

export function rememberedTasks() {
  try {
    const ids = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
    return Array.isArray(ids) ? ids.filter((x) => typeof x === "string") : [];
  } catch {
    return [];
  }
}

function remember(id, running) {
  const ids = new Set(rememberedTasks());
  if (running) ids.add(id);
  else ids.delete(id);
  localStorage.setItem(STORE_KEY, JSON.stringify([...ids]));
}

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

export class TaskBoard {
  /**
   * @param {HTMLElement} list  the <ul> the cards go in
   * @param {(task: object) => void} onFinished  called once when a task ends (any state)
   * @param {(task: object) => void} onReview  the card's "Review" button (a finished output)
   */
  constructor(list, emptyNote, onFinished, onReview = () => undefined) {
    this.list = list;
    this.emptyNote = emptyNote;
    this.onFinished = onFinished;
    this.onReview = onReview;
    /** @type {Map<string, {task: object, card: HTMLElement, source: EventSource|null, timer: number|null, finished: boolean}>} */
    this.entries = new Map();
  }

  /** Forget every card and stop following (when another video gets selected). */
  clear() {
    for (const entry of this.entries.values()) this.stopFollowing(entry);
    this.entries.clear();
    this.list.replaceChildren();
    this.updateEmpty();
  }

  updateEmpty() {
    this.emptyNote.hidden = this.entries.size > 0;
  }

  /** Show a task (newest on top unless `append`) and follow it while it runs. */
  show(task, { append = false } = {}) {
    let entry = this.entries.get(task.task_id);
    if (!entry) {
      const card = this.buildCard(task);
      entry = { task, card, source: null, timer: null, finished: false };
      this.entries.set(task.task_id, entry);
      if (append) this.list.append(card);
      else this.list.prepend(card);
      this.updateEmpty();
    }
    this.update(entry, task);
    if (!FINAL_STATES.has(task.state) && !entry.source && entry.timer == null) {
      remember(task.task_id, true);
      this.follow(entry);
    }
    return entry;
  }

  buildCard(task) {
    const id = task.task_id;
    const card = el("li", { class: "task-card", "data-testid": "task-card", "data-task-id": id });
    const head = el("div", { class: "task-head" });
    const title = el("h3", { class: "task-title" });
    const state = el("span", { class: "task-state", "data-testid": "task-state" });
    head.append(title, state);
    const barRow = el("div", { class: "task-bar" });
    const progress = el("progress", {
      max: "100",
      value: "0",
      "data-testid": "task-progress",
      "aria-label": "Task progress",
    });
    const percent = el("span", { class: "percent", "data-testid": "task-percent" }, "0%");
    barRow.append(progress, percent);
    const status = el("p", { class: "task-status", "data-testid": "task-status" });
    const eta = el("p", { class: "task-eta", "data-testid": "task-eta" });
    const note = el("p", { class: "task-note", "data-testid": "task-note", hidden: "" });
    const outcome = el("p", { class: "task-outcome", "data-testid": "task-outcome" });
    const verification = el("p", { class: "task-verification", "data-testid": "task-verification" });
    const error = el("p", { class: "task-error error", "data-testid": "task-error", role: "alert" });
    const actions = el("div", { class: "task-actions" });
    const cancel = el("button", { type: "button", class: "task-cancel", "data-testid": "task-cancel" }, "Cancel");
    cancel.addEventListener("click", () => this.cancel(id));
    const review = el("button", { type: "button", class: "task-review-open", "data-testid": "task-review-open", hidden: "" }, "Review");
    review.addEventListener("click", () => {
      const entry = this.entries.get(id);
      if (entry) this.onReview(entry.task);
    });
    const download = el("a", { class: "task-download button", "data-testid": "task-download", hidden: "" }, "Download result");
    download.addEventListener("click", (ev) => this.download(ev, id));
    actions.append(cancel, review, download);
    const reviewState = el("p", { class: "task-review", "data-testid": "task-review" });
    card.append(head, barRow, status, eta, note, outcome, verification, reviewState, error, actions);
    return card;
  }

  update(entry, task) {
    entry.task = task;
    const card = entry.card;
    const q = (sel) => card.querySelector(sel);
    const name = OPERATION_NAMES[task.operation] || task.operation || "Task";
    const created = task.created_at
      ? new Date(typeof task.created_at === "number" ? task.created_at * 1000 : task.created_at)
      : null;
    const when = created && !Number.isNaN(created.getTime()) ? ` · ${created.toLocaleTimeString()}` : "";
    q(".task-title").textContent = `${name}${when}`;
    card.dataset.state = task.state;
    card.dataset.operation = task.operation || "";
    q(".task-state").textContent = STATE_WORDS[task.state] || task.state;

    const pct = task.state === "SUCCESS" ? 100 : Math.max(0, Math.min(100, Math.round(task.progress || 0)));
    const progress = q("progress");
    progress.value = pct;
    progress.setAttribute("aria-valuenow", String(pct));
    progress.setAttribute("aria-label", `${name} progress`);
    q(".percent").textContent = `${pct}%`;

    const final = FINAL_STATES.has(task.state);
    const statusLine = task.status || "";
    // The state is shown beside the title; repeat the status line only when it says more.
    q(".task-status").textContent = statusLine.toLowerCase() === q(".task-state").textContent.toLowerCase() ? "" : statusLine;
    q(".task-eta").textContent = final ? "" : formatEta(task.eta_seconds) || (task.state === "PENDING" ? "" : "estimating time left…");

    const cancel = q(".task-cancel");
    cancel.hidden = final;

    const download = q(".task-download");
    const outputUrl = task.state === "SUCCESS" && task.result ? task.result.output_url : null;
    if (outputUrl) {
      download.href = outputUrl;
      download.setAttribute("download", "");
      download.hidden = false;
    } else {
      download.hidden = true;
    }
    q(".task-review-open").hidden = !outputUrl;
    const reviewLine = q(".task-review");
    const review = outputUrl ? task.review || null : null;
    reviewLine.dataset.state = review ? review.state || "" : "";
    reviewLine.textContent = review
      ? `${REVIEW_WORDS[review.state] || review.state}${review.by && review.state !== "pending" ? ` by ${review.by}` : ""}${review.comment ? `: “${review.comment}”` : ""}`
      : "";
    q(".task-outcome").textContent = task.state === "SUCCESS" ? resultSummary(task) : "";
    const verification = task.state === "SUCCESS" && task.result ? task.result.verification : null;
    const vText = q(".task-verification");
    vText.textContent = verificationSummary(verification);
    vText.classList.toggle("failed", Boolean(verification && !verification.passed));
    q(".task-error").textContent = task.state === "FAILURE" ? errorWords(task.error) : "";

    if (final && !entry.finished) {
      entry.finished = true;
      this.stopFollowing(entry);
      remember(task.task_id, false);
      this.onFinished(task);
    }
  }

  follow(entry) {
    const id = entry.task.task_id;
    if (typeof EventSource === "undefined") {
      this.startPolling(entry);
      return;
    }
    const source = new EventSource(`/api/task-status/${encodeURIComponent(id)}/events`);
    entry.source = source;
    const handle = (ev) => {
      try {
        this.update(entry, JSON.parse(ev.data));
      } catch {
        /* a malformed event: the next one, or polling, catches up */
      }
    };
    source.addEventListener("progress", handle);
    source.addEventListener("end", (ev) => {
      handle(ev);
      source.close();
      entry.source = null;
    });
    source.addEventListener("error", () => {
      if (entry.finished || entry.source !== source) return;
      source.close();
      entry.source = null;
      this.startPolling(entry);
    });
  }

  startPolling(entry) {
    const note = entry.card.querySelector(".task-note");
    note.textContent = "Live updates unavailable, checking every second.";
    note.hidden = false;
    const tick = async () => {
      entry.timer = null;
      if (entry.finished || !this.entries.has(entry.task.task_id)) return;
      try {
        const task = await apiFetch(`/api/task-status/${encodeURIComponent(entry.task.task_id)}/`);
        this.update(entry, task);
      } catch {
        /* keep trying */
      }
      if (!entry.finished && this.entries.has(entry.task.task_id)) entry.timer = window.setTimeout(tick, POLL_MS);
    };
    entry.timer = window.setTimeout(tick, POLL_MS);
  }

  stopFollowing(entry) {
    if (entry.source) entry.source.close();
    entry.source = null;
    if (entry.timer != null) window.clearTimeout(entry.timer);
    entry.timer = null;
  }

  /** A download link's click: asks first (see downloadRefusal) and says why on the card (403
   * not_approved, a deleted output) instead of a browser's bare failed download. */
  async download(ev, id) {
    ev.preventDefault();
    const entry = this.entries.get(id);
    if (!entry) return;
    const link = entry.card.querySelector(".task-download");
    const error = entry.card.querySelector(".task-error");
    error.textContent = "";
    const refusal = await downloadRefusal(link.href);
    if (refusal) error.textContent = refusalWords(refusal);
    else saveLink(link.href);
  }

  async cancel(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    const button = entry.card.querySelector(".task-cancel");
    button.disabled = true;
    button.textContent = "Cancelling…";
    try {
      await apiFetch(`/api/task-status/${encodeURIComponent(id)}/cancel/`, { method: "POST" });
    } catch (err) {
      if (err.status !== 409) {
        entry.card.querySelector(".task-error").textContent = err.message;
        button.disabled = false;
        button.textContent = "Cancel";
        return;
      }
    }
    // The stream (or polling) reports REVOKED; if it is not followed any more, ask once.
    if (!entry.source && entry.timer == null && !entry.finished) this.startPolling(entry);
  }
}
