// Dial-in numbers from the PBX: organizers only (the portal checks the token's role).

export async function showDialIn(ctx, portal, tries = 0) {
  const resp = await portal.api("/dialin");
  // 403 not_connected: the MCU has not yet told the portal we are in; ask again shortly
  const early = resp.status === 403 && (await resp.clone().json()).error?.code === "not_connected";
  if (!resp.ok && !early) return;
  const data = early ? { status: "pending" } : await resp.json();
  if (data.status === "pending" && tries < 10) { setTimeout(() => showDialIn(ctx, portal, tries + 1), 1000); return; }
  let box = document.querySelector("[data-testid=dialin]");
  if (!box) {
    box = document.createElement("section");
    box.dataset.testid = "dialin";
    document.querySelector("#meeting aside").append(box);
  }
  box.replaceChildren();
  const h = document.createElement("h2");
  h.textContent = "Dial-in";
  box.append(h);
  if (data.status !== "ok") { box.append("No dial-in numbers available."); return; }
  const conf = document.createElement("p");
  conf.textContent = `Conference ${data.conference_number}`;
  box.append(conf);
  for (const n of data.dial_in) {
    const p = document.createElement("p");
    p.textContent = `${n.country} ${n.number}`;
    box.append(p);
  }
}
