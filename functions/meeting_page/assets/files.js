// Files shared in the running session: upload (the file's name never leaves the browser, only
// its extension), and the session's list with short-lived download links.

import { $, link } from "./dom.js";

export function createFiles(ctx, portal, refresh) {
  async function show() {
    const resp = await portal.api("/files");
    if (!resp.ok) return;
    $("file-list").replaceChildren(...(await resp.json()).files.map((f) => {
      const li = document.createElement("li");
      li.dataset.fileId = f.id;
      li.append(link(f.url, f.label), ` (${Math.ceil(f.size / 1024)} KB)`);
      return li;
    }));
  }

  $("file-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const ext = file.name.includes(".") ? file.name.split(".").pop() : "";
    await portal.api(`/files?ext=${encodeURIComponent(ext)}`, { method: "POST", body: file });
    e.target.value = "";
    refresh();
  });

  return { show };
}
