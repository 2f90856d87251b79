// The side panels (people, chat, files, documents, polls) as tabs: the WAI-ARIA tabs pattern
// (arrow keys, Home and End move between tabs; the selected one's panel shows). On a wide screen
// every panel stays shown and a tab scrolls its panel into view; on a narrow one (a phone) only
// the selected panel shows, and unread chat messages are counted on the Chat tab.

import { $ } from "./dom.js";

const WIDE = window.matchMedia("(min-width: 64rem)");

export function createTabs() {
  const tabs = [...document.querySelectorAll("#panel-tabs [role=tab]")];
  let unread = 0;

  function panelOf(tab) { return $(tab.getAttribute("aria-controls")); }

  function select(tab, focus = false) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      panelOf(t).dataset.active = String(on);
    }
    if (focus) tab.focus();
    if (WIDE.matches) panelOf(tab).scrollIntoView({ block: "start", behavior: "smooth" });
    if (tab.id === "tab-chat") { unread = 0; showUnread(); }
  }

  function showUnread() {
    $("chat-unread").hidden = unread === 0;
    $("chat-unread").textContent = String(unread);
    $("chat-unread").setAttribute("aria-label", `${unread} unread`);
  }

  function chatVisible() {
    return WIDE.matches || $("tab-chat").getAttribute("aria-selected") === "true";
  }

  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(tab);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      select(tabs[(next + tabs.length) % tabs.length], true);
    });
  }
  select(tabs[0]);

  return {
    chatArrived() { if (!chatVisible()) { unread += 1; showUnread(); } },
  };
}
