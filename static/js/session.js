// Signing in with the API token: the server answers with an HttpOnly session cookie, which
// every later request (fetch, EventSource, image and download links) carries by itself.

import { apiFetch } from "./api.js";

export { UNAUTHORIZED_EVENT } from "./api.js";

/** {auth_required, authenticated} for this browser. */
export function sessionState() {
  return apiFetch("/api/session/");
}

/** Exchange the token for a session cookie; rejects with the server's ApiError (401 if wrong). */
export function signIn(token) {
  return apiFetch("/api/session/", { method: "POST", body: { token } });
}

/** Drop the session cookie. */
export function signOut() {
  return apiFetch("/api/session/", { method: "DELETE" });
}

/** Who is signed in: {name, role, permissions} (name and role null when the API is open), or
 * null from a server that does not say. */
export async function whoAmI() {
  try {
    const me = await apiFetch("/api/me/");
    return me && Array.isArray(me.permissions) ? me : null;
  } catch {
    return null;
  }
}
