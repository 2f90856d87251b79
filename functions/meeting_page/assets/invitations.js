// The organizer invites people from inside the meeting (the portal bounds how many).

import { $ } from "./dom.js";

export function bindInvitations(ctx, portal) {
  $("invite-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const email = String(new FormData(e.target).get("email")).trim();
    const resp = await portal.api("/invitations", portal.json("POST", { participants: [{ name: email.split("@")[0], email }] }));
    $("invite-status").textContent = resp.ok ? "Invitation sent." : "Could not invite.";
    if (resp.ok) e.target.reset();
  });
}
