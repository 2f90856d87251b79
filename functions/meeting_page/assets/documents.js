// The organizer's documents (PDFs kept with the meeting), shown with pdf.js from this origin.

import { $, button } from "./dom.js";

export function createDocuments(ctx, portal, refresh) {
  let rendered = null;

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

  async function show() {
    const resp = await portal.api("/pdfs");
    if (!resp.ok) return;
    const docs = (await resp.json()).pdfs;
    $("pdf-list").replaceChildren(...docs.map((d) => {
      const li = document.createElement("li");
      li.append(button(d.label, "show-pdf", () => render(d.url)));
      return li;
    }));
    if (docs.length && !rendered) render(docs[0].url);
  }

  $("pdf-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    await portal.api("/pdfs", { method: "POST", body: file });
    e.target.value = "";
    rendered = null;
    refresh();
  });

  return { show };
}
