// The vidcorrect page: upload, video list, operations, ROI drawing, analysis, task progress.

import { apiFetch, uploadVideo } from "./js/api.js";
import { analysisSummary, formatBytes, formatDuration, formatFps } from "./js/format.js";
import { RoiEditor, suggestedShape } from "./js/roi.js";
import { TaskBoard, rememberedTasks } from "./js/tasks.js";
import { ReviewView } from "./js/review.js";
import { UNAUTHORIZED_EVENT, sessionState, signIn, signOut, whoAmI } from "./js/session.js";

const SELECTED_KEY = "vidcorrect.selectedVideo";
const $ = (id) => document.getElementById(id);

const state = {
  videos: [],
  devices: [],
  video: null, // the selected video (with tasks and outputs)
  analysis: null, // result of its latest successful analysis
  me: null, // who is signed in ({name, role, permissions}), null when the server does not say
};

const board = new TaskBoard($("task-list"), $("tasks-empty"), onTaskFinished, (task) => openReview(task.task_id));
const review = new ReviewView({
  onClose: (task) => {
    const id = task ? task.video_id : state.video && state.video.id;
    if (id != null) {
      history.replaceState(null, "", `#video=${id}`);
      selectVideo(id, { keepTasks: state.video != null && state.video.id === id });
    } else {
      history.replaceState(null, "", window.location.pathname);
    }
  },
  onReviewed: (task) => {
    const entry = board.entries.get(task.task_id);
    if (entry) board.update(entry, task);
  },
});
const roi = new RoiEditor({
  img: $("frame-img"),
  canvas: $("roi-canvas"),
  inputs: { x: $("roi-x"), y: $("roi-y"), width: $("roi-width"), height: $("roi-height") },
  shape: () => shape(),
  corner: () => $("roi-corner").value,
  onDraw: () => {
    $("mask-type").value = "custom";
    syncMaskType();
  },
});

// ---- videos -------------------------------------------------------------------------------

function videoProps(v) {
  const audio = v.has_audio ? `audio ${v.audio_codec || "yes"}` : "no audio";
  return [
    `${v.width}×${v.height}`,
    `${formatFps(v.fps)} fps`,
    `${v.frame_count} frames`,
    formatDuration(v.duration),
    formatBytes(v.size_bytes),
    audio,
  ];
}

function renderVideoList() {
  const list = $("video-list");
  list.replaceChildren();
  $("videos-empty").hidden = state.videos.length > 0;
  for (const v of state.videos) {
    const li = document.createElement("li");
    li.className = "video-item";
    li.dataset.testid = "video-item";
    li.dataset.videoId = String(v.id);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "video-select";
    button.setAttribute("aria-pressed", String(state.video != null && state.video.id === v.id));
    const img = document.createElement("img");
    img.className = "thumb";
    img.dataset.testid = "video-thumb";
    img.alt = "";
    img.src = `/api/videos/${v.id}/frame?n=0`;
    const text = document.createElement("span");
    text.className = "video-text";
    const name = document.createElement("span");
    name.className = "video-name";
    name.textContent = v.filename;
    const props = document.createElement("span");
    props.className = "video-props";
    props.dataset.testid = "video-item-props";
    props.textContent = videoProps(v).join(" · ");
    text.append(name, props);
    button.append(img, text);
    button.addEventListener("click", () => selectVideo(v.id));
    li.append(button);
    list.append(li);
  }
}

async function loadVideos() {
  const body = await apiFetch("/api/videos/");
  state.videos = body.videos || [];
  renderVideoList();
}

async function selectVideo(id, { keepTasks = false } = {}) {
  let video;
  try {
    video = await apiFetch(`/api/videos/${id}/`);
  } catch (err) {
    if (err.status === 404) localStorage.removeItem(SELECTED_KEY);
    return;
  }
  const changed = !state.video || state.video.id !== video.id;
  state.video = video;
  localStorage.setItem(SELECTED_KEY, String(video.id));
  if (window.location.hash !== `#video=${video.id}`) history.replaceState(null, "", `#video=${video.id}`);
  renderVideoList();
  $("welcome").hidden = true;
  $("video-detail").hidden = false;
  $("tasks-section").hidden = false;
  $("video-title").textContent = video.filename;
  $("video-props").textContent = videoProps(video).join(" · ");
  $("op-error").textContent = "";
  if (changed) {
    roi.setVideo(video);
    $("frame-img").src = `/api/videos/${video.id}/frame?n=0`;
    roi.setRoi({ x: 0, y: 0, width: video.width, height: video.height });
    board.clear();
  }
  if (!keepTasks || changed) {
    // Oldest first so the newest ends on top.
    const tasks = [...(video.tasks || [])].slice(0, 20).reverse();
    for (const task of tasks) board.show(task);
    // Running tasks started from this browser that are not in the list any more.
    for (const taskId of rememberedTasks()) {
      if (board.entries.has(taskId)) continue;
      apiFetch(`/api/task-status/${encodeURIComponent(taskId)}/`)
        .then((task) => {
          if (state.video && task.video_id === state.video.id) board.show(task);
        })
        .catch(() => undefined);
    }
  }
  const analysis = (video.tasks || []).find((t) => t.operation === "analyze" && t.state === "SUCCESS");
  showAnalysis(analysis ? analysis.result : null);
}

// ---- upload -------------------------------------------------------------------------------

async function upload(file) {
  if (!file) return;
  const wrap = $("upload-progress-wrap");
  const bar = $("upload-progress");
  const pct = $("upload-percent");
  $("upload-error").textContent = "";
  $("upload-status").textContent = `Uploading ${file.name}…`;
  $("upload-progress-label").textContent = `Uploading ${file.name}`;
  wrap.hidden = false;
  const setPct = (f) => {
    const p = Math.round(f * 100);
    bar.value = p;
    pct.textContent = `${p}%`;
  };
  setPct(0);
  try {
    const video = await uploadVideo(file, setPct);
    $("upload-status").textContent = `Uploaded ${video.filename}.`;
    await loadVideos();
    await selectVideo(video.id);
  } catch (err) {
    $("upload-status").textContent = "";
    $("upload-error").textContent = err.message;
  } finally {
    wrap.hidden = true;
    $("file-input").value = "";
  }
}

function setupUpload() {
  $("file-input").addEventListener("change", (ev) => upload(ev.target.files[0]));
  const zone = $("drop-zone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (ev) => {
      ev.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    const file = ev.dataTransfer && ev.dataTransfer.files[0];
    upload(file);
  });
  // A file dropped outside the zone must not navigate away from the page.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
}

// ---- devices and mask parameters ------------------------------------------------------------

async function loadDevices() {
  try {
    const body = await apiFetch("/api/devices/");
    state.devices = body.devices || [];
  } catch {
    state.devices = [];
  }
  const select = $("device-select");
  select.replaceChildren();
  for (const d of state.devices) {
    const opt = document.createElement("option");
    opt.value = d.name;
    opt.textContent = `${d.name.replaceAll("_", " ")} (${d.frame_width}×${d.frame_height})`;
    select.append(opt);
  }
  if (!state.devices.length) {
    $("mask-type").querySelector("option[value=device]").disabled = true;
  }
}

function selectedDevice() {
  return state.devices.find((d) => d.name === $("device-select").value) || null;
}

function syncMaskType() {
  const device = $("mask-type").value === "device";
  $("device-row").hidden = !device;
  for (const id of ["roi-x", "roi-y", "roi-width", "roi-height"]) $(id).disabled = device;
  if (device && state.video) {
    const d = selectedDevice();
    if (d) {
      // Preview of the device's area, scaled to this video as the server does.
      const sx = state.video.width / d.frame_width;
      const sy = state.video.height / d.frame_height;
      roi.setRoi({
        x: Math.round(d.roi.x * sx),
        y: Math.round(d.roi.y * sy),
        width: Math.round(d.roi.width * sx),
        height: Math.round(d.roi.height * sy),
      });
    }
  }
  roi.draw();
}

function shape() {
  return (document.querySelector("input[name=shape]:checked") || {}).value || "ellipse";
}

/** The octagon's corner, when the shape is the octagon: { corner } or {} for the others. */
function cornerParams() {
  if (shape() !== "octagon") return {};
  const corner = Number($("roi-corner").value);
  if (!Number.isInteger(corner) || corner < 1) {
    throw new Error("Enter the octagon's corners cut as a whole number of pixels (1 or more).");
  }
  return { corner };
}

function syncShape() {
  $("corner-row").hidden = shape() !== "octagon";
  roi.draw();
}

function maskParams() {
  if ($("mask-type").value === "device") {
    const d = selectedDevice();
    if (!d) throw new Error("Choose a device.");
    return { mask_type: "device", device_name: d.name, shape: shape(), ...cornerParams() };
  }
  const r = roi.readInputs();
  if (!r) throw new Error("Enter the kept area as whole numbers: x, y, width and height.");
  return { mask_type: "custom", roi: r, shape: shape(), ...cornerParams() };
}

// ---- operations -----------------------------------------------------------------------------

async function submit(path, body, button) {
  const error = $("op-error");
  error.textContent = "";
  if (!state.video) return;
  button.disabled = true;
  try {
    const answer = await apiFetch(`/api/${path}/${state.video.id}/`, { method: "POST", body });
    let task;
    try {
      task = await apiFetch(answer.status_url || `/api/task-status/${answer.task_id}/`);
    } catch {
      task = { task_id: answer.task_id, state: "PENDING", progress: 0, status: answer.message };
    }
    board.show(task);
    if (answer.duplicate) error.textContent = "The same task is already running; showing it.";
  } catch (err) {
    if (err.status === 429) {
      const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "";
      error.textContent = `${err.message}${wait}`;
    } else {
      error.textContent = err.message;
    }
  } finally {
    button.disabled = false;
  }
}

/** The edits' "audio" field, from the "Keep audio" box (sent always, so the box is what happens). */
function audioChoice() {
  return $("keep-audio").checked ? "keep" : "drop";
}

function setupForms() {
  $("mask-type").addEventListener("change", syncMaskType);
  $("device-select").addEventListener("change", syncMaskType);
  for (const r of document.querySelectorAll("input[name=shape]")) r.addEventListener("change", syncShape);
  $("roi-corner").addEventListener("input", () => roi.draw());

  $("mask-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    let body;
    try {
      body = maskParams();
    } catch (err) {
      $("op-error").textContent = err.message;
      return;
    }
    const blacken = $("blacken-frames").value.trim();
    if (blacken) body.blacken_frames = blacken;
    body.audio = audioChoice();
    submit("video-apply-mask", body, $("start-mask"));
  });

  $("remove-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    let body;
    if ($("remove-auto").checked) {
      body = { detection_method: "automatic" };
    } else {
      const ranges = $("remove-ranges").value.trim();
      if (!ranges) {
        $("op-error").textContent = "Enter the frames to remove, e.g. 10-20,30.";
        return;
      }
      body = { frame_ranges: ranges };
    }
    body.audio = audioChoice();
    submit("video-remove-frames", body, $("start-remove"));
  });
  $("remove-auto").addEventListener("change", () => {
    $("remove-ranges").disabled = $("remove-auto").checked;
  });

  $("analyze-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = Number($("sample-every").value || "1");
    if (!Number.isInteger(n) || n < 1) {
      $("op-error").textContent = "“Look at every Nth frame” must be a whole number of at least 1.";
      return;
    }
    submit("video-analyze", { sample_every: n }, $("start-analyze"));
  });

  $("reprocess-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    let body = {};
    if ($("reprocess-use-mask").checked) {
      try {
        body = maskParams();
      } catch (err) {
        $("op-error").textContent = err.message;
        return;
      }
    }
    body.remove_labels = [...document.querySelectorAll("#reprocess-form input[type=checkbox][id^=label-]")]
      .filter((c) => c.checked)
      .map((c) => c.value);
    body.audio = audioChoice();
    submit("video-reprocess", body, $("start-reprocess"));
  });

  $("accept-roi").addEventListener("click", () => {
    const s = state.analysis && state.analysis.suggested_roi;
    if (!s) return;
    $("mask-type").value = "custom";
    const kind = suggestedShape(s);
    $(`shape-${kind}`).checked = true;
    if (kind === "octagon") $("roi-corner").value = s.corner;
    syncShape();
    roi.setRoi({ x: s.x, y: s.y, width: s.width, height: s.height });
    syncMaskType();
    $("roi-x").focus();
  });
  $("accept-ranges").addEventListener("click", () => {
    const ids = state.analysis && state.analysis.sensitive_frame_ids;
    if (!ids) return;
    $("remove-ranges").value = ids;
    $("remove-auto").checked = false;
    $("remove-ranges").disabled = false;
    $("remove-ranges").focus();
  });
}

// ---- analysis ------------------------------------------------------------------------------

const LABEL_WORDS = { blank: "blank", text_screen: "text screen", non_endoscopic: "not endoscopic" };

function shapeWords(s) {
  const kind = suggestedShape(s);
  if (kind === "octagon") return `, octagon with ${s.corner} px corners cut`;
  return kind === "ellipse" ? ", ellipse" : "";
}

function showAnalysis(result) {
  state.analysis = result;
  roi.setSuggestions(result ? result.suggested_roi : null, result ? result.overlay_regions || [] : []);
  const section = $("analysis");
  if (!result) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  $("analysis-summary").textContent = analysisSummary(result);
  const timeline = $("timeline");
  timeline.replaceChildren();
  const total = Math.max(1, result.total_frames || 1);
  const segments = result.segments || [];
  for (const seg of segments) {
    const div = document.createElement("div");
    div.className = `segment seg-${seg.label}`;
    div.dataset.testid = "segment";
    div.dataset.label = seg.label;
    div.style.left = `${(seg.start_frame / total) * 100}%`;
    div.style.width = `${(Math.max(1, seg.end_frame - seg.start_frame + 1) / total) * 100}%`;
    div.title = `${LABEL_WORDS[seg.label] || seg.label}: frames ${seg.start_frame}–${seg.end_frame}`;
    timeline.append(div);
  }
  timeline.setAttribute(
    "aria-label",
    segments.length
      ? `Timeline of ${total} frames: ${segments.map((s) => `${LABEL_WORDS[s.label] || s.label} ${s.start_frame}–${s.end_frame}`).join(", ")}`
      : `Timeline of ${total} frames: no sensitive segments`,
  );
  const s = result.suggested_roi;
  $("analysis-roi").textContent = s
    ? `Suggested kept area: x ${s.x}, y ${s.y}, ${s.width}×${s.height}${shapeWords(s)}.`
    : "No kept area suggested.";
  $("accept-roi").disabled = !s;
  $("accept-ranges").disabled = !result.sensitive_frame_ids;
}

// ---- review ----------------------------------------------------------------------------------

/** The analysis to draw under a task's players: its own (a reprocess), else the video's latest
 * successful one. */
function analysisFor(task, video) {
  if (task.result && task.result.analysis) return task.result.analysis;
  const latest = (video.tasks || []).find((t) => t.operation === "analyze" && t.state === "SUCCESS");
  return latest ? latest.result : null;
}

async function openReview(taskId) {
  $("op-error").textContent = "";
  let task;
  let video;
  try {
    task = await apiFetch(`/api/task-status/${encodeURIComponent(taskId)}/`);
    video = await apiFetch(`/api/videos/${task.video_id}/`);
  } catch (err) {
    $("op-error").textContent = `That task cannot be reviewed: ${err.message}`;
    return false;
  }
  if (task.state !== "SUCCESS" || !task.result || !task.result.output_url) {
    $("op-error").textContent = "Only a finished task with an output video can be reviewed.";
    return false;
  }
  if (window.location.hash !== `#review=${task.task_id}`) history.replaceState(null, "", `#review=${task.task_id}`);
  window.scrollTo(0, 0);
  await review.open(task, video, analysisFor(task, video), state.me);
  return true;
}

function onTaskFinished(task) {
  if (!state.video || task.video_id !== state.video.id) return;
  if (task.operation === "analyze" && task.state === "SUCCESS") showAnalysis(task.result);
}

// ---- start ---------------------------------------------------------------------------------

// ---- signing in -----------------------------------------------------------------------------

function showSignIn(message = "") {
  review.close({ notify: false });
  board.clear();
  $("app-main").hidden = true;
  $("sign-out").hidden = true;
  $("signed-in-as").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("token-input").value = "";
  $("token-input").focus();
}

function setupSession() {
  $("sign-in-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) {
      $("sign-in-error").textContent = "Enter the API token.";
      return;
    }
    $("sign-in-button").disabled = true;
    try {
      await signIn(token);
      $("token-input").value = "";
      $("sign-in").hidden = true;
      $("app-main").hidden = false;
      $("sign-out").hidden = false;
      await startApp();
    } catch (err) {
      $("sign-in-error").textContent = err.message;
    } finally {
      $("sign-in-button").disabled = false;
    }
  });
  $("sign-out").addEventListener("click", async () => {
    try {
      await signOut();
    } finally {
      showSignIn("Signed out.");
    }
  });
  window.addEventListener(UNAUTHORIZED_EVENT, () => {
    if ($("sign-in").hidden) showSignIn("Your session has ended; sign in again.");
  });
}

// ---- start ---------------------------------------------------------------------------------

let appStarted = false;

/** A link or typed address within the page: #review=<task> opens a review, #video=<id> a video. */
async function followHash() {
  const reviewHash = /^#review=([A-Za-z0-9_-]{1,64})$/.exec(window.location.hash);
  if (reviewHash) {
    await openReview(reviewHash[1]);
    return;
  }
  const videoHash = /^#video=(\d+)$/.exec(window.location.hash);
  if (videoHash) {
    review.close({ notify: false });
    await selectVideo(Number(videoHash[1]));
  }
}

/** Who is signed in, shown in the header (null from a server without users). */
async function loadMe() {
  state.me = await whoAmI();
  const who = $("signed-in-as");
  const named = state.me && state.me.name;
  who.textContent = named ? `Signed in as ${state.me.name} (${state.me.role})` : "";
  who.hidden = !named;
}

async function startApp() {
  if (!appStarted) {
    appStarted = true;
    setupUpload();
    setupForms();
    window.addEventListener("hashchange", followHash);
  }
  await Promise.all([loadDevices(), loadVideos().catch(() => undefined), loadMe()]);
  syncMaskType();
  const reviewHash = /^#review=([A-Za-z0-9_-]{1,64})$/.exec(window.location.hash);
  if (reviewHash && (await openReview(reviewHash[1]))) return;
  const fromHash = /^#video=(\d+)$/.exec(window.location.hash);
  const stored = fromHash ? fromHash[1] : localStorage.getItem(SELECTED_KEY);
  const id = Number(stored);
  if (stored && state.videos.some((v) => v.id === id)) await selectVideo(id);
}

async function start() {
  setupSession();
  let session = { auth_required: false, authenticated: true };
  try {
    session = await sessionState();
  } catch {
    /* an older server without sessions: carry on, errors show where they happen */
  }
  if (session.auth_required && !session.authenticated) {
    showSignIn();
  } else {
    $("sign-out").hidden = !session.auth_required;
    await startApp();
  }
  document.body.dataset.ready = "true";
}

start();
