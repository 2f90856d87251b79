// Files shared in the running session: upload (the file's name never leaves the browser, only
// its extension), and the session's list with short-lived download links.

import { $, link } from "./dom.js";

const LINK_FRESH_MS = 4 * 60 * 1000; // download links are signed for 5 minutes

export function createFiles(ctx, portal, changed) {
  let fetchedAt = 0;

  async function show() {
    const resp = await portal.api("/files");
    if (!resp.ok) return;
    fetchedAt = Date.now();
    $("file-list").replaceChildren(...(await resp.json()).files.map((f) => {
      const li = document.createElement("li");
      li.dataset.fileId = f.id;
      const a = link(f.url, f.label);
      a.addEventListener("click", async (e) => { // an old link: sign it again first (the list is fetched only on change)
        if (Date.now() - fetchedAt < LINK_FRESH_MS) return;
        e.preventDefault();
        await show();
        const fresh = document.querySelector(`#file-list li[data-file-id="${CSS.escape(f.id)}"] a`);
        if (fresh) window.open(fresh.href, "_blank", "noreferrer");
      });
      li.append(a, ` (${Math.ceil(f.size / 1024)} KB)`);
      return li;
    }));
  }

  $("file-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const ext = file.name.includes(".") ? file.name.split(".").pop() : "";
    await portal.api(`/files?ext=${encodeURIComponent(ext)}`, { method: "POST", body: file });
    e.target.value = "";
    changed("files");
  });

  return { show };
}
