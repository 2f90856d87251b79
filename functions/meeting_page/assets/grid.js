// The media grid and the people list: one tile per remote participant, their stream attached.

import { $ } from "./dom.js";

// (Re)attach a participant's stream; re-assigning when the video track arrives makes the
// element pick it up even if it started with the audio track alone.
export function attach(video, stream, force) {
  if (!force && video.srcObject === stream) return;
  video.srcObject = stream;
  video.play().catch(() => {}); // autoplay may still need the join click's gesture
}

export function videoOf(participantId) {
  return document.querySelector(`video[data-participant-id="${CSS.escape(participantId)}"]`);
}

const QUALITY_TEXT = { good: "good connection", fair: "fair connection", poor: "poor connection" };

export function render(ctx, extras = () => [], quality = () => null) {
  $("participant-count").textContent = String(ctx.people.size);
  const list = $("people");
  list.replaceChildren();
  for (const p of ctx.people.values()) {
    const li = document.createElement("li");
    li.textContent = (p.hand ? "✋ " : "") + p.name + (p.id === ctx.me ? " (you)" : "")
      + (p.role === "participant" ? "" : ` · ${p.role}`) + (p.audio === false ? " · muted" : "")
      + (p.reconnecting ? " · reconnecting" : "");
    li.dataset.testid = "participant";
    li.dataset.participantId = p.id;
    li.dataset.role = p.role;
    li.dataset.hand = p.hand ? "up" : "down";
    const q = quality(p.id);
    if (q) {
      li.dataset.quality = q;
      const dot = document.createElement("span");
      dot.className = `quality ${q}`;
      dot.setAttribute("role", "img");
      dot.setAttribute("aria-label", QUALITY_TEXT[q]);
      dot.title = QUALITY_TEXT[q];
      li.prepend(dot);
    }
    li.append(...extras(p));
    list.append(li);
  }
  for (const p of ctx.people.values()) {
    if (p.id === ctx.me) continue;
    let video = videoOf(p.id);
    if (!video) {
      const tile = document.createElement("div");
      tile.className = "tile";
      video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.dataset.participantId = p.id;
      const label = document.createElement("span");
      label.className = "label";
      tile.append(video, label);
      $("grid").append(tile);
      const sub = ctx.subs.get(p.id);
      if (sub) attach(video, sub.stream, true);
    }
    video.parentElement.querySelector(".label").textContent = p.name
      + (p.reconnecting ? " · reconnecting" : quality(p.id) === "poor" ? " · poor connection" : "");
    video.parentElement.classList.toggle("reconnecting", Boolean(p.reconnecting));
    video.setAttribute("aria-label", `${p.name}'s camera`);
    video.parentElement.dataset.quality = quality(p.id) || "";
    video.parentElement.classList.toggle("video-off", p.video === false);
  }
  for (const video of document.querySelectorAll("video[data-participant-id]")) {
    if (!ctx.people.has(video.dataset.participantId)) video.parentElement.remove();
  }
}
