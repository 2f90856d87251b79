// The portal's meeting API for this tab: the join (which issues the short-lived join token that
// proves who we are) and every other call with a fresh token. No cookies, no storage: the
// rejoin secret lives in memory for this tab only.

const TOKEN_REFRESH_MS = 40000; // join tokens live 60 s

export function createPortal(ctx) {
  async function join(extra = {}) {
    return fetch("/api/meet/v1/join", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "omit",
      body: JSON.stringify({
        meeting_key: ctx.meetingKey, display_name: ctx.displayName, organizer_secret: ctx.organizerSecret,
        rejoin_secret: ctx.rejoinSecret, ...extra,
      }),
    });
  }

  async function token() {
    if (Date.now() - ctx.tokenAt < TOKEN_REFRESH_MS) return ctx.token;
    const resp = await join();
    if (resp.ok) { ctx.token = (await resp.json()).token; ctx.tokenAt = Date.now(); }
    return ctx.token;
  }

  async function api(path, options = {}) {
    const headers = { ...(options.headers || {}), Authorization: `Bearer ${await token()}` };
    return fetch(`/api/meet/v1${path}`, { ...options, headers, credentials: "omit" });
  }

  function json(method, body) {
    return { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  }

  return { join, api, json };
}
