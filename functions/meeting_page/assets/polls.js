// Polls: the organizer's polls (create, edit, delete, run), the session's runs with live
// results, one vote each, and the organizer's PDF report of a run.

import { $, button } from "./dom.js";

export function createPolls(ctx, portal, changed) {
  const refresh = () => changed("polls"); // runs go with a deleted poll: the others fetch theirs too
  function renderPolls(polls) {
    $("poll-list").replaceChildren(...polls.map((p) => {
      const li = document.createElement("li");
      const run = button("Run", "run-poll", () => portal.api(`/polls/${p.id}/run`, { method: "POST" }).then(() => changed("polls")));
      const edit = button("Edit", "edit-poll", () => {
        const form = $("poll-form");
        form.dataset.editing = p.id;
        form.elements.question.value = p.question;
        form.elements.options.value = p.options.join(", ");
      });
      const remove = button("Delete", "delete-poll", () => portal.api(`/polls/${p.id}`, { method: "DELETE" }).then(refresh));
      li.dataset.testid = "poll";
      li.append(`${p.question} `, run, edit, remove);
      return li;
    }));
  }

  async function download(runId) {
    const resp = await portal.api(`/runs/${runId}/report.pdf`);
    if (!resp.ok) return;
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await resp.blob());
    a.download = "poll-results.pdf";
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  function renderRuns(runs) {
    $("poll-runs").replaceChildren(...runs.map((r) => {
      const box = document.createElement("div");
      box.className = "poll";
      box.dataset.runId = r.run_id;
      const q = document.createElement("strong");
      q.textContent = r.question;
      box.append(q);
      r.results.forEach((res, i) => {
        const row = document.createElement("div");
        row.dataset.testid = "poll-result";
        row.textContent = `${res.option}: ${res.votes} (${res.percent} %)`;
        if (r.my_vote === null || r.my_vote === undefined) {
          const vote = button("Vote", `vote-${i}`, () => portal.api(`/runs/${r.run_id}/vote`, portal.json("POST", { option: i })).then(() => changed("polls")));
          row.append(" ", vote);
        }
        box.append(row);
      });
      if (ctx.role === "organizer") box.append(button("PDF report", "poll-report", () => download(r.run_id)));
      return box;
    }));
  }

  async function show() {
    const runs = await portal.api("/runs");
    if (runs.ok) renderRuns((await runs.json()).runs);
    if (ctx.role === "organizer") {
      const polls = await portal.api("/polls");
      if (polls.ok) renderPolls((await polls.json()).polls);
    }
  }

  $("poll-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const options = String(form.get("options")).split(",").map((s) => s.trim()).filter(Boolean);
    const editing = e.target.dataset.editing;
    await portal.api(editing ? `/polls/${editing}` : "/polls",
      portal.json(editing ? "PUT" : "POST", { question: String(form.get("question")).trim(), options }));
    delete e.target.dataset.editing;
    e.target.reset();
    refresh();
  });

  return { show };
}
