// Small DOM helpers shared by the meeting page's modules.

export const $ = (id) => document.getElementById(id);

export function link(href, text) {
  const a = document.createElement("a");
  a.href = href; a.textContent = text; a.rel = "noreferrer"; a.target = "_blank";
  return a;
}

export function button(text, testid, onClick) {
  const b = document.createElement("button");
  b.textContent = text;
  if (testid) b.dataset.testid = testid;
  if (onClick) b.addEventListener("click", onClick);
  return b;
}
