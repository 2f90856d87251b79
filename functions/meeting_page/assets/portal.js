// The portal's meeting API for this tab: the join (which issues the short-lived join token that
// proves who we are) and every other call with a fresh token. No cookies, no storage: the
// rejoin secret lives in memory for this tab only.

const TOKEN_REFRESH_MS = 40000; // join tokens live 60 s
const PRESENCE_TRIES = 15;
const PRESENCE_WAIT_MS = 700;

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

  async function call(path, options) {
    const headers = { ...(options.headers || {}), Authorization: `Bearer ${await token()}` };
    return fetch(`/api/meet/v1${path}`, { ...options, headers, credentials: "omit" });
  }

  // Reads that need our live connection wait for it: right after joining, the MCU has not yet
  // told the portal we are in (403 not_connected), so they ask again shortly.
  async function api(path, options = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const resp = await call(path, options);
      if (resp.status !== 403 || attempt >= PRESENCE_TRIES || (options.method || "GET") !== "GET") return resp;
      const code = (await resp.clone().json().catch(() => ({}))).error?.code;
      if (code !== "not_connected") return resp;
      await new Promise((resolve) => setTimeout(resolve, PRESENCE_WAIT_MS));
    }
  }

  function json(method, body) {
    return { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  }

  return { join, api, json };
}
