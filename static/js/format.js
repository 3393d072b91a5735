// Plain-words formatting of sizes, durations, time left, task results.

export function formatBytes(n) {
  if (n == null) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "?";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatFps(fps) {
  if (fps == null) return "?";
  return Number.isInteger(fps) ? String(fps) : fps.toFixed(2);
}

/** "about 1 min 20 s left" from eta_seconds; "" when unknown. */
export function formatEta(eta) {
  if (eta == null || !Number.isFinite(eta)) return "";
  const total = Math.max(0, Math.round(eta));
  if (total < 1) return "almost done";
  if (total < 60) return `about ${total} s left`;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `about ${h} h ${m} min left`;
  return s ? `about ${m} min ${s} s left` : `about ${m} min left`;
}

export const OPERATION_NAMES = {
  mask: "Mask",
  remove_frames: "Remove frames",
  analyze: "Analysis",
  reprocess: "Reprocess",
};

export const STATE_WORDS = {
  PENDING: "Waiting in the queue",
  STARTED: "Started",
  PROGRESS: "Running",
  RETRY: "Retrying",
  SUCCESS: "Done",
  FAILURE: "Failed",
  REVOKED: "Cancelled",
};

export const FINAL_STATES = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

export function verificationSummary(v) {
  if (!v) return "";
  const checked = `Checked ${v.frames_checked} of ${v.frames_expected} frames`;
  if (v.passed) {
    const parts = [];
    if (v.max_luma_outside != null) {
      parts.push(
        `nothing visible outside the kept area (max brightness ${v.max_luma_outside}, limit ${v.luma_limit})`,
      );
    }
    if (v.max_luma_blackened != null) {
      parts.push(`blackened frames are black (max brightness ${v.max_luma_blackened}, limit ${v.luma_limit})`);
    }
    if (!parts.length) parts.push("the output is complete");
    return `${checked}: ${parts.join("; ")}.`;
  }
  const problems = (v.problems || []).join("; ") || "the output did not pass the check";
  return `Verification failed. ${checked}: ${problems}.`;
}

export function analysisSummary(r) {
  if (!r) return "";
  const pct = Math.round((r.sensitive_ratio || 0) * 1000) / 10;
  const segs = (r.segments || []).length;
  const roi = r.suggested_roi ? "an endoscope area was found" : "no endoscope area was found";
  return `${r.sensitive_frame_count} of ${r.total_frames} frames look sensitive (${pct}%) in ${segs} segment${segs === 1 ? "" : "s"}; ${roi}.`;
}

export function resultSummary(task) {
  const r = task.result || {};
  if (task.operation === "analyze") return analysisSummary(r);
  const parts = [];
  if (r.frames != null) parts.push(`${r.frames} frames written`);
  if (r.removed_frames != null) {
    const n = Array.isArray(r.removed_frames) ? r.removed_frames.length : r.removed_frames;
    parts.push(`${n} removed${r.removed_ranges ? ` (${r.removed_ranges})` : ""}`);
  }
  if (r.processing_time != null) parts.push(`in ${formatDuration(r.processing_time)}`);
  return parts.length ? `${parts.join(", ")}.` : "";
}

export function errorWords(error) {
  if (!error) return "The task failed.";
  return error.message || error.code || "The task failed.";
}
