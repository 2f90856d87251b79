// Raised hands and reactions: one's own hand up or down (the organizer lowers anyone's), a few
// reactions shown on the sender's tile for a moment.

import { $, button } from "./dom.js";
import { REACTIONS, SEND } from "./signalling.js";

const REACTION_SHOWN_MS = 4000;

export function createHands(ctx, send) {
  function mine() { return Boolean(ctx.people.get(ctx.me)?.hand); }

  function show() {
    const up = mine();
    $("raise-hand").textContent = up ? "Lower hand" : "Raise hand";
    $("raise-hand").setAttribute("aria-pressed", String(up));
  }

  function lowerButton(p) {
    return button("Lower hand", "lower-hand", () => send(SEND.hand, { up: false, participant_id: p.id }));
  }

  function reaction(msg) {
    const holder = msg.participant_id === ctx.me ? $("self-view").parentElement
      : document.querySelector(`video[data-participant-id="${CSS.escape(msg.participant_id)}"]`)?.parentElement;
    const badge = document.createElement("span");
    badge.className = "reaction";
    badge.dataset.testid = "reaction";
    badge.dataset.from = msg.participant_id;
    badge.textContent = msg.emoji;
    (holder || $("grid")).append(badge);
    setTimeout(() => badge.remove(), REACTION_SHOWN_MS);
  }

  $("raise-hand").addEventListener("click", () => {
    const up = !mine();
    const me = ctx.people.get(ctx.me);
    if (me) me.hand = up; // shown at once; the MCU's update confirms it
    show();
    send(SEND.hand, { up });
  });
  $("reactions").replaceChildren(...REACTIONS.map((emoji) => {
    const b = button(emoji, "react", () => send(SEND.react, { emoji }));
    b.dataset.emoji = emoji;
    b.setAttribute("aria-label", `React ${emoji}`);
    return b;
  }));

  return { show, lowerButton, reaction };
}
