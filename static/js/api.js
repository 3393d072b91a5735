// JSON requests to the vidcorrect API, with its {"error": {code, message}} errors as exceptions.

/** Sent on window when the API answers 401 outside signing in: the session is gone. */
export const UNAUTHORIZED_EVENT = "vidcorrect:unauthorized";
const SESSION_URL = "/api/session/";

function noteUnauthorized(status, url) {
  if (status === 401 && url !== SESSION_URL) window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
}

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export async function errorFrom(response) {
  let code = "http_error";
  let message = `The server answered ${response.status} ${response.statusText}.`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    /* not JSON */
  }
  const retry = response.headers.get("Retry-After");
  return new ApiError(response.status, code, message, retry ? Number(retry) : null);
}

export async function apiFetch(url, { method = "GET", body } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  noteUnauthorized(response.status, url);
  if (!response.ok) throw await errorFrom(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** Upload with XMLHttpRequest for its upload progress. Resolves to the video JSON. */
export function uploadVideo(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/videos/");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) onProgress(ev.loaded / ev.total);
    });
    xhr.addEventListener("load", () => {
      noteUnauthorized(xhr.status, "/api/videos/");
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        onProgress(1);
        resolve(body);
      } else {
        const err = body && body.error ? body.error : {};
        reject(new ApiError(xhr.status, err.code || "http_error", err.message || `Upload failed (${xhr.status}).`));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "The upload failed: network error.")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "The upload was aborted.")));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}
