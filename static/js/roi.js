// Drawing the kept area (ROI) with the mouse on a canvas laid over the still frame.
// The canvas has the video's pixel size, so everything is drawn in video pixels.

/** A suggested ROI's shape; results from before the octagon have only `ellipse`. */
export function suggestedShape(s) {
  return s.shape || (s.ellipse ? "ellipse" : "rect");
}

export class RoiEditor {
  constructor({ img, canvas, inputs, shape, corner, onDraw }) {
    this.img = img;
    this.canvas = canvas;
    this.inputs = inputs;
    this.shape = shape;
    this.corner = corner;
    this.onDraw = onDraw;
    this.video = null;
    this.roi = null;
    this.suggested = null;
    this.overlays = [];
    this.drag = null;
    this.ctx = canvas.getContext("2d");

    canvas.addEventListener("pointerdown", (ev) => this.down(ev));
    canvas.addEventListener("pointermove", (ev) => this.move(ev));
    canvas.addEventListener("pointerup", (ev) => this.up(ev));
    canvas.addEventListener("pointercancel", () => {
      this.drag = null;
    });
    for (const input of Object.values(inputs)) {
      input.addEventListener("input", () => {
        const r = this.readInputs();
        if (r) {
          this.roi = r;
          this.draw();
        }
      });
      input.addEventListener("change", () => {
        const r = this.readInputs();
        if (r) this.setRoi(r); // writes the clamped values back
      });
    }
  }

  setVideo(video) {
    this.video = video;
    this.canvas.width = video.width;
    this.canvas.height = video.height;
    this.suggested = null;
    this.overlays = [];
    this.inputs.x.max = String(video.width - 1);
    this.inputs.y.max = String(video.height - 1);
    this.inputs.width.max = String(video.width);
    this.inputs.height.max = String(video.height);
  }

  setSuggestions(suggested, overlays) {
    this.suggested = suggested;
    this.overlays = overlays;
    this.draw();
  }

  clamp(r) {
    const W = this.video.width;
    const H = this.video.height;
    const x = Math.min(Math.max(0, Math.round(r.x)), W - 1);
    const y = Math.min(Math.max(0, Math.round(r.y)), H - 1);
    const width = Math.min(Math.max(1, Math.round(r.width)), W - x);
    const height = Math.min(Math.max(1, Math.round(r.height)), H - y);
    return { x, y, width, height };
  }

  setRoi(r) {
    if (!this.video) return;
    this.roi = this.clamp(r);
    this.inputs.x.value = String(this.roi.x);
    this.inputs.y.value = String(this.roi.y);
    this.inputs.width.value = String(this.roi.width);
    this.inputs.height.value = String(this.roi.height);
    this.draw();
  }

  /** The typed ROI, clamped into the frame, or null when a field is not a number. */
  readInputs() {
    if (!this.video) return null;
    const vals = {};
    for (const [k, input] of Object.entries(this.inputs)) {
      const n = Number(input.value);
      if (input.value.trim() === "" || !Number.isFinite(n)) return null;
      vals[k] = n;
    }
    return this.clamp(vals);
  }

  /** A pointer position in video pixels, clamped to the frame's edges. */
  toVideo(ev) {
    const rect = this.canvas.getBoundingClientRect();
    const fx = (ev.clientX - rect.left) / rect.width;
    const fy = (ev.clientY - rect.top) / rect.height;
    return {
      x: Math.min(Math.max(0, fx), 1) * this.video.width,
      y: Math.min(Math.max(0, fy), 1) * this.video.height,
    };
  }

  down(ev) {
    if (!this.video || ev.button !== 0) return;
    ev.preventDefault();
    this.canvas.setPointerCapture(ev.pointerId);
    this.drag = this.toVideo(ev);
  }

  move(ev) {
    if (!this.drag) return;
    this.update(ev);
  }

  up(ev) {
    if (!this.drag) return;
    this.update(ev);
    this.drag = null;
    if (this.canvas.hasPointerCapture(ev.pointerId)) this.canvas.releasePointerCapture(ev.pointerId);
  }

  update(ev) {
    const p = this.toVideo(ev);
    const a = this.drag;
    const x0 = Math.floor(Math.min(a.x, p.x));
    const y0 = Math.floor(Math.min(a.y, p.y));
    const x1 = Math.ceil(Math.max(a.x, p.x));
    const y1 = Math.ceil(Math.max(a.y, p.y));
    if (x1 - x0 < 2 || y1 - y0 < 2) return; // a click, not a drag
    this.setRoi({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 });
    this.onDraw(this.roi);
  }

  // The kept area's outline: the rectangle, the ellipse inscribed in it, or the octagon
  // (the rectangle with `corner` pixels cut off each corner at 45 degrees).
  path(r, shape, corner) {
    const ctx = this.ctx;
    const c = Math.min(Math.max(0, Number(corner) || 0), r.width / 2, r.height / 2);
    if (shape === "ellipse") {
      ctx.ellipse(r.x + r.width / 2, r.y + r.height / 2, r.width / 2, r.height / 2, 0, 0, Math.PI * 2);
    } else if (shape === "octagon" && c > 0) {
      const x1 = r.x + r.width;
      const y1 = r.y + r.height;
      ctx.moveTo(r.x + c, r.y);
      ctx.lineTo(x1 - c, r.y);
      ctx.lineTo(x1, r.y + c);
      ctx.lineTo(x1, y1 - c);
      ctx.lineTo(x1 - c, y1);
      ctx.lineTo(r.x + c, y1);
      ctx.lineTo(r.x, y1 - c);
      ctx.lineTo(r.x, r.y + c);
      ctx.closePath();
    } else {
      ctx.rect(r.x, r.y, r.width, r.height);
    }
  }

  draw() {
    if (!this.video) return;
    const ctx = this.ctx;
    const W = this.canvas.width;
    const H = this.canvas.height;
    const line = Math.max(2, Math.round(W / 320));
    ctx.clearRect(0, 0, W, H);
    for (const o of this.overlays) {
      ctx.fillStyle = "rgba(230, 57, 70, 0.25)";
      ctx.fillRect(o.x, o.y, o.width, o.height);
      ctx.strokeStyle = "#e63946";
      ctx.lineWidth = line;
      ctx.strokeRect(o.x, o.y, o.width, o.height);
    }
    if (this.suggested) {
      ctx.beginPath();
      const s = this.suggested;
      this.path(s, suggestedShape(s), s.corner);
      ctx.setLineDash([line * 5, line * 3]);
      ctx.strokeStyle = "#ffd166";
      ctx.lineWidth = line;
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (this.roi) {
      const shape = this.shape();
      const corner = this.corner();
      // Darken what will be blacked out.
      ctx.beginPath();
      ctx.rect(0, 0, W, H);
      this.path(this.roi, shape, corner);
      ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
      ctx.fill("evenodd");
      ctx.beginPath();
      this.path(this.roi, shape, corner);
      ctx.strokeStyle = "#4cc9f0";
      ctx.lineWidth = line;
      ctx.stroke();
    }
  }
}
