// Screen share: the organizer and presenters share a screen, window or tab (with its audio where
// the browser offers it) as a publish of its own; one share at a time (the MCU enforces it). While
// someone shares, everyone's layout turns to the shared screen, large, and the people small.

import { $ } from "./dom.js";
import { SEND } from "./signalling.js";

export function createScreen(ctx, connection) {
  let local = null; // our own display stream while we share

  function sharer() { return [...ctx.people.values()].find((p) => p.screen) || null; }

  function mayShare() {
    const role = ctx.people.get(ctx.me)?.role || ctx.role;
    return role === "organizer" || role === "presenter";
  }

  function videoFor(id) {
    let video = document.querySelector(`video[data-screen-of="${CSS.escape(id)}"]`);
    if (!video) {
      video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.dataset.screenOf = id;
      video.setAttribute("aria-label", "Shared screen");
      $("stage").replaceChildren(video);
    }
    return video;
  }

  // what the page shows for the room's share (called on every participant change)
  function show() {
    const me = ctx.people.get(ctx.me);
    if (me && local) me.screen = true; // ours, shown at once (the MCU does not echo our own change)
    const who = sharer();
    $("meeting").classList.toggle("presenting", Boolean(who));
    $("stage").hidden = !who;
    if (!who) $("stage").replaceChildren();
    else {
      const video = videoFor(who.id);
      const stream = who.id === ctx.me ? local : ctx.screens.get(who.id)?.stream;
      if (stream && video.srcObject !== stream) { video.srcObject = stream; video.muted = who.id === ctx.me; video.play().catch(() => {}); }
      $("stage-label").textContent = who.id === ctx.me ? "You are sharing your screen" : `${who.name} is sharing their screen`;
    }
    const button = $("share-screen");
    button.hidden = !mayShare();
    button.disabled = Boolean(who) && who.id !== ctx.me;
    button.textContent = local ? "Stop sharing" : "Share screen";
    button.setAttribute("aria-pressed", String(Boolean(local)));
  }

  function attach(id, stream) {
    if (sharer()?.id === id) { const v = videoFor(id); v.srcObject = stream; v.play().catch(() => {}); }
  }

  function stopLocal() {
    if (!local) return;
    for (const t of local.getTracks()) t.stop();
    local = null;
    const me = ctx.people.get(ctx.me);
    if (me) me.screen = false;
    connection.closeScreenPublish();
  }

  async function start() {
    try {
      local = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: true });
    } catch (e) {
      local = null;
      $("connection-state").textContent = "screen sharing was not allowed";
      return;
    }
    // the browser's own "stop sharing" ends the share for everyone
    local.getVideoTracks()[0].addEventListener("ended", () => stop());
    await connection.publishScreen(local);
    show();
  }

  function stop() {
    if (!local) return;
    stopLocal();
    connection.send(SEND.unshare);
    show();
  }

  // the MCU's word on us (sent when someone else changed us): the organizer stopped our share
  function self(me) { if (local && !me.screen) { stopLocal(); show(); } }

  $("share-screen").addEventListener("click", () => (local ? stop() : start()));

  return { show, attach, stop, self, reset: stopLocal };
}
