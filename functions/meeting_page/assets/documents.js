// The organizer's documents (PDFs kept with the meeting), shown with pdf.js from this origin.

import { $, button } from "./dom.js";

const LINK_FRESH_MS = 4 * 60 * 1000; // document links are signed for a few minutes

export function createDocuments(ctx, portal, changed) {
  let rendered = null;
  let fetchedAt = 0;

  async function render(url) {
    rendered = url;
    const pdfjs = await import("/assets/vendor/pdf.min.mjs");
    pdfjs.GlobalWorkerOptions.workerSrc = "/assets/vendor/pdf.worker.min.mjs";
    const doc = await pdfjs.getDocument({ url, isEvalSupported: false }).promise;
    const page = await doc.getPage(1);
    const viewport = page.getViewport({ scale: 0.5 });
    const canvas = $("pdf-view");
    canvas.width = viewport.width;
    canvas.height = viewport.height;
    await page.render({ canvasContext: canvas.getContext("2d"), viewport }).promise;
    canvas.dataset.pages = String(doc.numPages);
  }

  // the list is fetched only when it changes: a link older than its signature is signed again
  async function open(id) {
    if (Date.now() - fetchedAt >= LINK_FRESH_MS) await show({ quiet: true });
    const url = $("pdf-list").querySelector(`li[data-pdf-id="${CSS.escape(id)}"]`)?.dataset.url;
    if (url) await render(url);
  }

  async function show({ quiet = false } = {}) {
    const resp = await portal.api("/pdfs");
    if (!resp.ok) return;
    const docs = (await resp.json()).pdfs;
    fetchedAt = Date.now();
    $("pdf-list").replaceChildren(...docs.map((d) => {
      const li = document.createElement("li");
      li.dataset.pdfId = d.id;
      li.dataset.url = d.url;
      li.append(button(d.label, "show-pdf", () => open(d.id)));
      return li;
    }));
    if (docs.length && !rendered && !quiet) render(docs[0].url);
  }

  $("pdf-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    await portal.api("/pdfs", { method: "POST", body: file });
    e.target.value = "";
    rendered = null;
    changed("documents");
  });

  return { show };
}
