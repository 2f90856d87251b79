// Chat: to everyone or privately to one person, through the MCU (never stored anywhere: the
// MCU keeps the session's last messages in memory for late joiners). Rendered as text, never HTML.

import { $ } from "./dom.js";
import { MAX_CHAT_CHARS, SEND } from "./signalling.js";

export function createChat(ctx, send) {
  const seen = new Set();

  function show(msg) {
    if (seen.has(msg.id)) return; // the history again after a reconnect
    seen.add(msg.id);
    const li = document.createElement("li");
    li.dataset.testid = "chat-message";
    li.dataset.from = msg.sender;
    if (msg.to) li.dataset.private = "true";
    const who = document.createElement("strong");
    const to = msg.to ? ` → ${msg.to === ctx.me ? "you" : (ctx.people.get(msg.to)?.name || "someone")} (private)` : "";
    who.textContent = `${msg.sender === ctx.me ? "You" : msg.name}${to}: `;
    const text = document.createElement("span");
    text.textContent = msg.text;
    li.append(who, text);
    $("chat-log").append(li);
    li.scrollIntoView({ block: "nearest" });
  }

  function history(messages) { for (const m of messages || []) show(m); }

  // who one can write to: everyone, or one of the others in the room
  function people() {
    const select = $("chat-to");
    const chosen = select.value;
    const options = [new Option("Everyone", "")];
    for (const p of ctx.people.values()) if (p.id !== ctx.me) options.push(new Option(p.name, p.id));
    select.replaceChildren(...options);
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
  }

  $("chat-input").maxLength = MAX_CHAT_CHARS;
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("chat-input").value;
    if (!text.trim()) return;
    const to = $("chat-to").value;
    send(SEND.chat, to ? { text, to } : { text });
    $("chat-input").value = "";
  });
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("chat-form").requestSubmit(); }
  });

  return { show, history, people };
}
