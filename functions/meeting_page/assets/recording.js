// Recording: the organizer asks the portal (it checks role and license and signs a grant), then
// hands the grant to the MCU; everyone sees the indicator while it records.

import { $ } from "./dom.js";
import { SEND } from "./signalling.js";

export function createRecording(ctx, portal, send) {
  let recording = false;

  function show(active) {
    recording = active;
    $("recording-indicator").hidden = !active;
    $("record").textContent = active ? "Stop recording" : "Record";
    $("record").setAttribute("aria-pressed", String(active));
  }

  async function toggle() {
    $("record").disabled = true;
    try {
      const action = recording ? "stop" : "start";
      const resp = await portal.api("/recording", portal.json("POST", { action }));
      const body = await resp.json();
      if (!resp.ok) { $("record-status").textContent = body.error.message; return; }
      $("record-status").textContent = "";
      send(SEND.record, { action, grant: body.grant });
    } finally {
      $("record").disabled = false;
    }
  }

  $("record").addEventListener("click", toggle);
  return { show };
}
