// Connection quality per person, measured by this page from what it receives of them (packet
// loss, jitter, the round trip to the MCU) and, for oneself, from what the MCU reports of our
// own stream. Local only: no request, nothing sent.

const EVERY_MS = 2000;

export function level({ lost, received, jitterMs, rttMs, flowing }) {
  const total = lost + received;
  const loss = total > 0 ? lost / total : 0;
  if (!flowing || loss > 0.08 || rttMs > 800 || jitterMs > 100) return "poor";
  if (loss > 0.02 || rttMs > 300 || jitterMs > 30) return "fair";
  return "good";
}

// While a connection is repairing loss (its video asks for retransmissions), its video is held
// long enough for a retransmission to arrive (about a round trip and a half) instead of
// freezing each time one is under way; back to the browser's own choice after a calm spell.
export const PLAYOUT_HOLD_MS = 10000;
export const PLAYOUT_MAX_MS = 400;

export function playoutTargetMs({ sinceNackMs, rttMs }) {
  if (sinceNackMs === null || sinceNackMs > PLAYOUT_HOLD_MS) return null;
  return Math.min(PLAYOUT_MAX_MS, Math.round(1.5 * Math.max(rttMs, 50) + 30));
}

export function createQuality(ctx, onChange) {
  const last = new Map(); // key -> {lost, received}
  const levels = new Map(); // participant id -> good | fair | poor
  const nacked = new Map(); // participant id -> {nacks, at}: its video's retransmission requests
  const targets = new Map(); // participant id -> the playout target set on its video (ms) or null

  function tunePlayout(id, pc, nacks, rttMs) {
    const now = performance.now();
    const before = nacked.get(id);
    let at = before ? before.at : null; // the first look cannot tell how recent its count is
    if (before && nacks > before.nacks) at = now;
    nacked.set(id, { nacks, at });
    const target = playoutTargetMs({ sinceNackMs: at === null ? null : now - at, rttMs });
    if ((targets.get(id) ?? null) === target) return;
    targets.set(id, target);
    for (const r of pc.getReceivers()) {
      if (r.track && r.track.kind === "video" && "jitterBufferTarget" in r) {
        try { r.jitterBufferTarget = target; } catch (e) { /* out of the browser's range: its own choice stands */ }
      }
    }
  }

  function delta(key, lost, received) {
    const before = last.get(key) || { lost: 0, received: 0 };
    last.set(key, { lost, received });
    return { lost: Math.max(0, lost - before.lost), received: Math.max(0, received - before.received) };
  }

  async function measure(id, pc, expectMedia, playout) {
    let lost = 0, received = 0, jitterMs = 0, rttMs = 0, nacks = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp") {
        lost += s.packetsLost || 0; received += s.packetsReceived || 0;
        jitterMs = Math.max(jitterMs, 1000 * (s.jitter || 0));
        if (s.kind === "video") nacks += s.nackCount || 0;
      }
      if (s.type === "remote-inbound-rtp") { // the MCU's view of what we send
        lost += s.packetsLost || 0; received += s.packetsReceived || 0;
        jitterMs = Math.max(jitterMs, 1000 * (s.jitter || 0));
        rttMs = Math.max(rttMs, 1000 * (s.roundTripTime || 0));
      }
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime) rttMs = Math.max(rttMs, 1000 * s.currentRoundTripTime);
    });
    const d = delta(id, lost, received);
    if (playout) tunePlayout(id, pc, nacks, rttMs);
    return level({ ...d, jitterMs, rttMs, flowing: d.received > 0 || !expectMedia });
  }

  async function tick() {
    const next = new Map();
    for (const [id, sub] of ctx.subs) {
      const p = ctx.people.get(id);
      if (!p) continue;
      next.set(id, await measure(id, sub.pc, p.audio !== false || p.video !== false, true).catch(() => "poor"));
    }
    if (ctx.pubPc && ctx.me) next.set(ctx.me, await measure("self", ctx.pubPc, false, false).catch(() => "poor"));
    const changed = next.size !== levels.size || [...next].some(([id, q]) => levels.get(id) !== q);
    levels.clear();
    for (const [id, q] of next) levels.set(id, q);
    if (changed) onChange();
  }

  setInterval(() => { if (!ctx.leaving) tick().catch(() => {}); }, EVERY_MS);

  return {
    of: (id) => levels.get(id) || null,
    all: () => Object.fromEntries(levels),
    playout: () => Object.fromEntries(targets), // participant id -> the hold on its video (ms) or null
  };
}
