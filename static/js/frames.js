// Frame numbers of an original and of an output cut from it: a removal's frame map, frame
// times, and the ranges that went.

/**
 * The kept runs of a result as [old_start, old_end, new_start]: its `frame_map`, else the
 * complement of its `removed_ranges`, else the whole original as one run (a mask).
 */
export function keptRuns(result, sourceFrames) {
  const map = result && Array.isArray(result.frame_map) ? result.frame_map : null;
  if (map && map.length) {
    return map
      .filter((run) => Array.isArray(run) && run.length === 3 && run.every(Number.isInteger))
      .map(([a, b, n]) => [a, b, n])
      .sort((x, y) => x[0] - y[0]);
  }
  // No frame map: the complement of `removed_ranges` ("10-20,30"), else the whole original.
  const runs = [];
  let next = 0;
  let written = 0;
  const removed = parseRanges(result && result.removed_ranges).sort((x, y) => x[0] - y[0]);
  for (const [a, b] of [...removed, [sourceFrames, sourceFrames]]) {
    const end = Math.min(a, sourceFrames) - 1;
    if (end >= next) {
      runs.push([next, end, written]);
      written += end - next + 1;
    }
    next = Math.max(next, b + 1);
  }
  return runs;
}

/** Parse "10-20,30" into [[10, 20], [30, 30]]. */
export function parseRanges(text) {
  if (typeof text !== "string" || !text.trim()) return [];
  const ranges = [];
  for (const part of text.split(",")) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    if (!m) continue;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b >= a) ranges.push([a, b]);
  }
  return ranges;
}

export class FrameMapping {
  /**
   * @param {number[][]} runs  kept runs [old_start, old_end, new_start], sorted
   * @param {number} sourceFrames  frames of the original
   * @param {number} outputFrames  frames of the output
   */
  constructor(runs, sourceFrames, outputFrames) {
    this.runs = runs;
    this.sourceFrames = sourceFrames;
    this.outputFrames = outputFrames;
  }

  static of(result, sourceFrames) {
    const runs = keptRuns(result, sourceFrames);
    const last = runs[runs.length - 1];
    const fromRuns = last ? last[2] + last[1] - last[0] + 1 : sourceFrames;
    const outputFrames = result && Number.isInteger(result.frames) ? result.frames : fromRuns;
    return new FrameMapping(runs, sourceFrames, outputFrames);
  }

  /**
   * The output frame shown for original frame `s`: {frame, kept}; a removed frame maps to the
   * next kept one (the last one after the end), with kept false.
   */
  toOutput(s) {
    for (const [a, b, n] of this.runs) {
      if (s < a) return { frame: n, kept: false };
      if (s <= b) return { frame: n + s - a, kept: true };
    }
    return { frame: Math.max(0, this.outputFrames - 1), kept: false };
  }

  /** The original frame that output frame `o` was made from. */
  toSource(o) {
    for (const [a, b, n] of this.runs) {
      if (o >= n && o <= n + b - a) return a + o - n;
    }
    return Math.min(o, Math.max(0, this.sourceFrames - 1));
  }

  /** The original's frames that are not in the output, as [first, last] ranges. */
  removedRanges() {
    const removed = [];
    let next = 0;
    for (const [a, b] of this.runs) {
      if (a > next) removed.push([next, a - 1]);
      next = Math.max(next, b + 1);
    }
    if (next < this.sourceFrames) removed.push([next, this.sourceFrames - 1]);
    return removed;
  }
}

/** The time a player seeks to for frame `n`: the middle of its display interval, so rounding
 * of either side never lands on the frame before or after. */
export function frameTime(n, fps) {
  return (n + 0.5) / fps;
}

/** The frame shown at time `t`. */
export function frameAt(t, fps, frames) {
  const n = Math.floor(t * fps + 1e-6);
  return Math.max(0, Math.min(frames - 1, n));
}

/** "0:01.52" (minutes, seconds and hundredths). */
export function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(2).padStart(5, "0")}`;
}
