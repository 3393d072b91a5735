// The review view of one finished output: the original and the output side by side and in
// sync, stepped frame by frame, the analysis and the cuts on a timeline, the output's check
// figures, and the reviewer's approve / reject.

import { apiFetch, errorFrom } from "./api.js";
import { OPERATION_NAMES, formatDuration, formatFps } from "./format.js";
import { FrameMapping, clock, frameAt, frameTime } from "./frames.js";

const $ = (id) => document.getElementById(id);

const LABEL_WORDS = { blank: "blank", text_screen: "text screen", non_endoscopic: "not endoscopic" };
const REVIEW_WORDS = { pending: "Waiting for review", approved: "Approved", rejected: "Rejected" };
/** Seconds the output may drift from where the original says it should be while playing. */
const MAX_DRIFT = 0.12;

/**
 * Whether a download of `url` would be refused: null when it may be had, else the server's
 * ApiError (403 `not_approved`, 403 `forbidden_role`, 404 `output_deleted`, ...). Asked with a
 * HEAD request, which the audit trail does not count as a download; only a refusal is asked
 * again with one byte, for the server's words (a HEAD answer has no body), and recorded as
 * the refused download it is.
 */
export async function downloadRefusal(url) {
  let response;
  try {
    response = await fetch(url, { method: "HEAD" });
    if (response.ok) return null;
    response = await fetch(url, { headers: { Range: "bytes=0-0" } });
  } catch {
    return null; // the network: the download itself will say
  }
  if (response.ok) {
    if (response.body) response.body.cancel().catch(() => undefined);
    return null;
  }
  return errorFrom(response);
}

/** Words for a refused download: the server's message (it says what would make it possible,
 * such as a reviewer's approval), its status and code. */
export function refusalWords(err) {
  return `${err.message} (HTTP ${err.status}, ${err.code})`;
}

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function shortHash(hex) {
  return typeof hex === "string" && hex.length > 16 ? `${hex.slice(0, 12)}…${hex.slice(-4)}` : String(hex);
}

/** The check figures of an output's result, as [label, value, status] rows. */
export function checkFigures(task, video) {
  const r = task.result || {};
  const rows = [];
  const v = r.verification;
  if (v) {
    rows.push(["Check", v.passed ? "passed" : `failed: ${(v.problems || []).join("; ")}`, v.passed ? "ok" : "bad"]);
    rows.push(["Frames checked", `${v.frames_checked} of ${v.frames_expected}`, ""]);
    if (v.method) rows.push(["Method", v.method, ""]);
    if (v.max_luma_outside != null) {
      rows.push(["Brightest outside the kept area", `${v.max_luma_outside} (limit ${v.luma_limit}, black 16)`, v.max_luma_outside <= v.luma_limit ? "ok" : "bad"]);
    }
    if (v.max_luma_blackened != null) {
      rows.push(["Brightest in blackened frames", `${v.max_luma_blackened} (limit ${v.luma_limit})`, v.max_luma_blackened <= v.luma_limit ? "ok" : "bad"]);
    }
    if (v.min_psnr != null) rows.push(["Lowest PSNR of re-encoded frames", `${Number(v.min_psnr).toFixed(1)} dB`, ""]);
    if (v.frames_decoded != null) rows.push(["Frames decoded", String(v.frames_decoded), ""]);
    for (const field of v.text_fields || []) {
      rows.push([`Text field ${field.name.replaceAll("_", " ")}`, field.dark ? `dark (max ${field.max_luma})` : `NOT dark (max ${field.max_luma})`, field.dark ? "ok" : "bad"]);
    }
  }
  if (r.frames != null) rows.push(["Frames written", `${r.frames} of ${video.frame_count}`, ""]);
  if (r.removed_frames != null) {
    const n = Array.isArray(r.removed_frames) ? r.removed_frames.length : r.removed_frames;
    rows.push(["Frames removed", `${n}${r.removed_ranges ? ` (${r.removed_ranges})` : ""}`, ""]);
  }
  if (r.mode) rows.push(["Removal", `${r.mode}${r.frames_copied != null ? `: ${r.frames_copied} copied, ${r.frames_reencoded} re-encoded` : ""}`, ""]);
  if (r.audio) rows.push(["Audio", r.audio, ""]);
  if (r.mask && r.mask.source) rows.push(["Mask from", String(r.mask.source), ""]);
  if (r.source_sha256) {
    const same = video.sha256 ? r.source_sha256 === video.sha256 : null;
    const note = same === null ? "" : same ? ", the upload's" : ", NOT the upload's";
    rows.push(["Original SHA-256", `${shortHash(r.source_sha256)}${note}`, same === false ? "bad" : ""]);
  }
  if (r.output_sha256) rows.push(["Output SHA-256", shortHash(r.output_sha256), ""]);
  if (r.processing_time != null) rows.push(["Processing time", formatDuration(r.processing_time), ""]);
  return rows;
}

export class ReviewView {
  /**
   * @param {{onClose: () => void, onReviewed: (task: object) => void}} hooks
   */
  constructor({ onClose, onReviewed }) {
    this.section = $("review");
    this.original = $("review-original");
    this.output = $("review-output");
    this.onClose = onClose;
    this.onReviewed = onReviewed;
    this.task = null;
    this.video = null;
    this.me = null;
    this.mapping = null;
    this.fps = 25;
    this.frame = 0; // the original's frame shown (the master position)
    this.playing = false;
    this.loop = null;
    this.outputRefused = false;
    this.originalRefused = false;

    $("review-close").addEventListener("click", () => this.close());
    $("review-play").addEventListener("click", () => this.togglePlay());
    $("review-back-second").addEventListener("click", () => this.step(-this.secondFrames()));
    $("review-back-frame").addEventListener("click", () => this.step(-1));
    $("review-next-frame").addEventListener("click", () => this.step(1));
    $("review-next-second").addEventListener("click", () => this.step(this.secondFrames()));
    $("review-sound").addEventListener("change", () => {
      this.output.muted = !$("review-sound").checked;
    });
    $("review-approve").addEventListener("click", () => this.decide("approved"));
    $("review-reject").addEventListener("click", () => this.decide("rejected"));
    $("review-download").addEventListener("click", (ev) => this.download(ev));
    $("original-timeline").addEventListener("click", (ev) => this.seekFromTimeline(ev));
    for (const v of [this.original, this.output]) {
      v.addEventListener("seeked", () => this.render());
      v.addEventListener("loadeddata", () => this.render());
      v.addEventListener("error", () => this.videoError(v));
    }
    for (const v of [this.original, this.output]) {
      v.addEventListener("ended", () => {
        if (this.playing && v === this.leader()) this.pause();
      });
    }
    document.addEventListener("keydown", (ev) => this.key(ev));
  }

  get isOpen() {
    return !this.section.hidden && this.task != null;
  }

  secondFrames() {
    return Math.max(1, Math.round(this.fps));
  }

  // ---- opening and closing ---------------------------------------------------------------

  /**
   * Show `task` (a finished task with an output) of `video`; `analysis` is the analysis to
   * draw (the task's own, or the video's latest), `me` who is signed in ({name, role,
   * permissions} from GET /api/me/, or null from a server that does not say).
   */
  async open(task, video, analysis, me) {
    this.stopLoop();
    this.task = task;
    this.video = video;
    this.me = me;
    this.fps = video.fps > 0 ? video.fps : 25;
    this.mapping = FrameMapping.of(task.result, video.frame_count);
    this.frame = 0;
    this.playing = false;
    this.outputRefused = false;
    this.originalRefused = false;
    this.section.hidden = false;
    document.body.classList.add("reviewing");

    const name = OPERATION_NAMES[task.operation] || task.operation;
    $("review-heading").textContent = `Review: ${name} of ${video.filename}`;
    $("review-summary").textContent =
      `${video.width}×${video.height}, ${formatFps(video.fps)} fps; original ${video.frame_count} frames, output ${this.mapping.outputFrames} frames. Task ${task.task_id}.`;
    $("output-refused").textContent = "";
    $("review-download-error").textContent = "";
    $("review-download").href = task.result.output_url;
    this.renderChecks();
    this.renderTimelines(analysis);
    this.renderDecision();

    await Promise.all([this.load(this.original, `/api/videos/${video.id}/file`), this.load(this.output, task.result.output_url)]);
    if (this.task !== task) return;
    this.seek(0);
    $("review-players").focus({ preventScroll: true });
  }

  /** Give player `v` its file, or say why it may not be had (asked first, see downloadRefusal). */
  async load(v, url) {
    const which = v === this.original ? "original" : "output";
    $(`${which}-refused`).textContent = "";
    const refusal = await downloadRefusal(url);
    if (refusal) {
      if (which === "output") this.outputRefused = true;
      else this.originalRefused = true;
      v.removeAttribute("src");
      v.load();
      $(`${which}-refused`).textContent = `The ${which} cannot be shown: ${refusalWords(refusal)}`;
      return;
    }
    v.src = url;
  }

  /** Leave the view; `notify` false: without going back to the video (signed out). */
  close({ notify = true } = {}) {
    if (this.section.hidden) return;
    this.pause();
    for (const v of [this.original, this.output]) {
      v.removeAttribute("src");
      v.load();
    }
    this.section.hidden = true;
    document.body.classList.remove("reviewing");
    const task = this.task;
    this.task = null;
    if (notify) this.onClose(task);
  }

  /** A player could not load its file: ask the server why (a 403 says, a bad file does not). */
  async videoError(v) {
    const url = v.getAttribute("src");
    if (!this.isOpen || !url) return;
    const which = v === this.original ? "original" : "output";
    const refusal = await downloadRefusal(url);
    if (!this.isOpen || v.getAttribute("src") !== url) return;
    if (which === "output") this.outputRefused = true;
    else this.originalRefused = true;
    const message = v.error ? v.error.message || `code ${v.error.code}` : "unknown error";
    $(`${which}-refused`).textContent = refusal
      ? `The ${which} cannot be shown: ${refusalWords(refusal)}`
      : `The ${which} cannot be played (${message}).`;
    this.render();
  }

  // ---- position ------------------------------------------------------------------------------

  /** Show original frame `s` (and the output frame made from it), paused. */
  seek(s) {
    const frames = this.video.frame_count;
    this.frame = Math.max(0, Math.min(frames - 1, Math.round(s)));
    if (this.original.getAttribute("src")) this.original.currentTime = frameTime(this.frame, this.fps);
    if (this.output.getAttribute("src")) {
      this.output.currentTime = frameTime(this.mapping.toOutput(this.frame).frame, this.fps);
    }
    this.render();
  }

  step(n) {
    if (!this.isOpen) return;
    if (this.playing) this.pause();
    this.seek(this.frame + n);
  }

  togglePlay() {
    if (this.playing) this.pause();
    else this.play();
  }

  play() {
    if (!this.isOpen || this.playing) return;
    if (this.frame >= this.video.frame_count - 1 || (this.leader() === this.output && this.mapping.toOutput(this.frame).frame >= this.mapping.outputFrames - 1)) this.seek(0);
    this.playing = true;
    $("review-play").textContent = "Pause";
    $("review-play").setAttribute("aria-pressed", "true");
    const lead = this.leader();
    lead.play().catch(() => this.pause());
    if (lead === this.original) this.syncOutput();
    const tick = () => {
      if (!this.playing) return;
      this.frame = this.playedFrame();
      if (lead === this.original) this.syncOutput();
      this.render();
      this.loop = requestAnimationFrame(tick);
    };
    this.loop = requestAnimationFrame(tick);
  }

  /** The player that leads playback: the original, or the output alone when the original may
   * not be had (an uploader's view of an approved output). */
  leader() {
    return this.original.getAttribute("src") || !this.output.getAttribute("src") ? this.original : this.output;
  }

  /** The original's frame the leading player shows now. */
  playedFrame() {
    if (this.leader() === this.original) return frameAt(this.original.currentTime, this.fps, this.video.frame_count);
    return this.mapping.toSource(frameAt(this.output.currentTime, this.fps, this.mapping.outputFrames));
  }

  /** Stop both players and settle on the frame the original shows, both exactly on a frame. */
  pause() {
    const was = this.playing;
    this.playing = false;
    this.stopLoop();
    this.original.pause();
    this.output.pause();
    $("review-play").textContent = "Play";
    $("review-play").setAttribute("aria-pressed", "false");
    if (was && this.task) this.seek(this.playedFrame());
  }

  stopLoop() {
    if (this.loop != null) cancelAnimationFrame(this.loop);
    this.loop = null;
  }

  /** While playing: keep the output where the original says, holding it over removed frames. */
  syncOutput() {
    const out = this.output;
    if (!out.getAttribute("src") || out.seeking) return;
    const { frame, kept } = this.mapping.toOutput(this.frame);
    if (!kept) {
      if (!out.paused) out.pause();
      if (Math.abs(out.currentTime - frameTime(frame, this.fps)) > 1 / this.fps) {
        out.currentTime = frameTime(frame, this.fps);
      }
      return;
    }
    const want = this.original.currentTime - (this.frame - frame) / this.fps;
    if (Math.abs(out.currentTime - want) > MAX_DRIFT) out.currentTime = want;
    if (out.paused && !out.ended) out.play().catch(() => undefined);
  }

  // ---- keys ----------------------------------------------------------------------------------

  key(ev) {
    if (!this.isOpen || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const t = ev.target;
    if (t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (ev.key === " " || ev.code === "Space") {
      // Space plays or pauses wherever the focus is (as in video players), never presses the
      // focused button (an Approve just clicked): the focus goes to the players, so the key's
      // release does not land on the button. Enter still presses buttons.
      ev.preventDefault();
      if (t instanceof HTMLElement && /^(BUTTON|A)$/.test(t.tagName)) $("review-players").focus({ preventScroll: true });
      this.togglePlay();
    } else if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") {
      ev.preventDefault();
      const sign = ev.key === "ArrowLeft" ? -1 : 1;
      this.step(sign * (ev.shiftKey ? this.secondFrames() : 1));
    } else if (ev.key === "Escape") {
      this.close();
    }
  }

  // ---- drawing ---------------------------------------------------------------------------------

  render() {
    if (!this.isOpen) return;
    const total = this.video.frame_count;
    const s = this.frame;
    const { frame: o, kept } = this.mapping.toOutput(s);
    const settled = (v) => !this.playing && !v.seeking && v.readyState >= 2;
    const orig = $("original-figure");
    orig.dataset.frame = String(s);
    orig.dataset.settled = String(this.originalRefused || settled(this.original));
    $("original-frame").textContent = this.originalRefused ? "not available" : `frame ${s} of ${total} · ${clock(s / this.fps)}`;
    const outFig = $("output-figure");
    outFig.dataset.frame = String(o);
    outFig.dataset.kept = String(kept);
    outFig.dataset.settled = String(this.outputRefused || settled(this.output));
    $("output-frame").textContent = this.outputRefused
      ? "not available"
      : kept
        ? `frame ${o} of ${this.mapping.outputFrames} · ${clock(o / this.fps)}`
        : `holding frame ${o} of ${this.mapping.outputFrames}`;
    outFig.classList.toggle("removed-here", !kept && !this.outputRefused);
    $("output-removed-badge").hidden = kept || this.outputRefused;
    const after = this.mapping.runs.some(([a]) => a > s);
    $("output-removed-badge").textContent = `Original frame ${s} is not in the output; shown: ${after ? "the next kept frame" : "its last frame"}`;
    const pct = `${((s + 0.5) / Math.max(1, total)) * 100}%`;
    for (const head of this.section.querySelectorAll(".playhead")) head.style.left = pct;
    $("review-position").textContent = `Frame ${s} of ${total}`;
  }

  renderTimelines(analysis) {
    const total = Math.max(1, this.video.frame_count);
    const bar = $("original-timeline");
    bar.replaceChildren();
    const removed = this.mapping.removedRanges();
    for (const [a, b] of removed) {
      const div = el("div", { class: "cut", "data-testid": "removed-range", title: `removed: frames ${a}–${b}` });
      div.dataset.start = String(a);
      div.dataset.end = String(b);
      div.style.left = `${(a / total) * 100}%`;
      div.style.width = `${((b - a + 1) / total) * 100}%`;
      bar.append(div);
    }
    bar.append(el("div", { class: "playhead", "aria-hidden": "true" }));
    bar.setAttribute(
      "aria-label",
      removed.length
        ? `Original, ${total} frames; removed: ${removed.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ")}`
        : `Original, ${total} frames; nothing removed`,
    );
    $("original-timeline-note").textContent = removed.length
      ? `Removed from the output: ${removed.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ")}.`
      : "Nothing was removed: the output has every frame of the original.";

    const wrap = $("review-analysis");
    const segBar = $("analysis-timeline");
    segBar.replaceChildren();
    const segments = analysis && Array.isArray(analysis.segments) ? analysis.segments : null;
    wrap.hidden = !segments;
    if (!segments) return;
    for (const seg of segments) {
      const words = LABEL_WORDS[seg.label] || seg.label;
      const button = el("button", {
        type: "button",
        class: `segment seg-${seg.label}`,
        "data-testid": "review-segment",
        "data-label": seg.label,
        "data-start": String(seg.start_frame),
        title: `${words}: frames ${seg.start_frame}–${seg.end_frame} (click to go there)`,
        "aria-label": `Go to ${words}, frames ${seg.start_frame} to ${seg.end_frame}`,
      });
      button.style.left = `${(seg.start_frame / total) * 100}%`;
      button.style.width = `${((Math.max(seg.start_frame, seg.end_frame) - seg.start_frame + 1) / total) * 100}%`;
      button.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (this.playing) this.pause();
        this.seek(seg.start_frame);
      });
      segBar.append(button);
    }
    segBar.append(el("div", { class: "playhead", "aria-hidden": "true" }));
    $("analysis-timeline-note").textContent = segments.length
      ? `${segments.length} segment${segments.length === 1 ? "" : "s"} found by the analysis; click one to go to its first frame.`
      : "The analysis found nothing sensitive.";
  }

  seekFromTimeline(ev) {
    const bar = $("original-timeline");
    const box = bar.getBoundingClientRect();
    if (box.width <= 0) return;
    const f = Math.floor(((ev.clientX - box.left) / box.width) * this.video.frame_count);
    if (this.playing) this.pause();
    this.seek(f);
  }

  renderChecks() {
    const list = $("review-checks");
    list.replaceChildren();
    for (const [label, value, status] of checkFigures(this.task, this.video)) {
      const dt = el("dt", {}, label);
      const dd = el("dd", status ? { class: status } : {}, value);
      list.append(dt, dd);
    }
  }

  // ---- review decision -----------------------------------------------------------------------

  renderDecision() {
    const review = this.task.review || { state: "pending" };
    const state = review.state || "pending";
    const badge = $("review-state");
    badge.textContent = REVIEW_WORDS[state] || state;
    badge.dataset.state = state;
    const who = [];
    if (review.by) who.push(`by ${review.by}`);
    if (review.at) {
      const at = new Date(review.at);
      if (!Number.isNaN(at.getTime())) who.push(at.toLocaleString());
    }
    $("review-who").textContent = state !== "pending" && who.length ? who.join(", ") : "";
    $("review-comment-shown").textContent = review.comment ? `“${review.comment}”` : "";
    const canReview = this.me == null || this.me.permissions.includes("review");
    $("review-form").hidden = !canReview;
    $("review-not-reviewer").hidden = canReview;
    if (!canReview) {
      const who = this.me.name ? `Signed in as ${this.me.name} (${this.me.role})` : "Not signed in as a reviewer";
      $("review-not-reviewer").textContent = `${who}: only a reviewer or an admin can approve or reject an output.`;
    }
    $("review-error").textContent = "";
  }

  async decide(state) {
    const task = this.task;
    if (!task) return;
    const comment = $("review-comment").value.trim();
    const buttons = [$("review-approve"), $("review-reject")];
    for (const b of buttons) b.disabled = true;
    $("review-error").textContent = "";
    try {
      const fresh = await apiFetch(`/api/tasks/${encodeURIComponent(task.task_id)}/review`, {
        method: "POST",
        body: comment ? { state, comment } : { state },
      });
      if (this.task !== task) return;
      this.task = fresh;
      $("review-comment").value = "";
      this.renderDecision();
      this.onReviewed(fresh);
      if (this.outputRefused && state === "approved") {
        // Approved: the output may be had now.
        this.outputRefused = false;
        await this.load(this.output, fresh.result.output_url);
        if (this.task === fresh) this.seek(this.frame);
      }
    } catch (err) {
      $("review-error").textContent = err.message;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  async download(ev) {
    ev.preventDefault();
    const url = $("review-download").href;
    $("review-download-error").textContent = "";
    const refusal = await downloadRefusal(url);
    if (refusal) {
      $("review-download-error").textContent = refusalWords(refusal);
      return;
    }
    saveLink(url);
  }
}

/** Start a download of `url` (the server names the file). */
export function saveLink(url) {
  const a = document.createElement("a");
  a.href = url;
  a.setAttribute("download", "");
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
}
