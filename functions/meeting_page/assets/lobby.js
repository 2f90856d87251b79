// The lobby: a person waits at the door ("waiting for the organizer", with their preview and the
// meeting's title, nothing else of the meeting) until the organizer or a presenter lets them in
// or turns them away; the organizer turns the lobby on or off for the session.

import { $, button } from "./dom.js";
import { SEND } from "./signalling.js";

export function createLobby(ctx, send) {
  let state = { enabled: false, waiting: [] };

  function waiting() { // our own page: at the door
    $("meeting").hidden = true;
    $("lobby-screen").hidden = false;
    $("lobby-preview").srcObject = ctx.localStream;
  }

  function admitted() { $("lobby-screen").hidden = true; $("meeting").hidden = false; }

  function rejected() { $("lobby-screen").hidden = true; $("meeting").hidden = true; $("lobby-rejected").hidden = false; }

  function show(msg) { // the organizer's and presenters' view of the door
    if (msg) state = msg;
    const doorman = ["organizer", "presenter"].includes(ctx.people.get(ctx.me)?.role || ctx.role);
    const list = $("lobby-list");
    list.replaceChildren(...state.waiting.map((w) => {
      const li = document.createElement("li");
      li.dataset.testid = "lobby-entry";
      li.dataset.participantId = w.id;
      const name = document.createElement("span");
      name.textContent = w.name;
      const admit = button("Admit", "admit", () => send(SEND.admit, { participant_id: w.id, admit: true }));
      admit.setAttribute("aria-label", `Admit ${w.name}`);
      const reject = button("Reject", "reject", () => send(SEND.admit, { participant_id: w.id, admit: false }));
      reject.setAttribute("aria-label", `Reject ${w.name}`);
      li.append(name, admit, reject);
      return li;
    }));
    const n = state.waiting.length;
    $("lobby-panel").hidden = !doorman || n === 0;
    $("lobby-notice").hidden = !doorman || n === 0;
    $("lobby-notice").textContent = n === 1 ? `${state.waiting[0].name} is waiting to join` : `${n} people are waiting to join`;
    const toggle = $("lobby-toggle");
    toggle.hidden = ctx.role !== "organizer";
    toggle.textContent = state.enabled ? "Turn lobby off" : "Turn lobby on";
    toggle.setAttribute("aria-pressed", String(state.enabled));
  }

  function setEnabled(enabled) { state = { ...state, enabled }; show(); }

  $("lobby-toggle").addEventListener("click", () => send(SEND.lobby, { enabled: !state.enabled }));

  return { waiting, admitted, rejected, show, setEnabled };
}
