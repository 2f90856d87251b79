// The meeting page: join screen, one publish connection to the MCU, one subscribe connection
// per remote participant, reconnection after network drops. No cookies, no storage: the
// rejoin secret lives in memory for this tab only.
"use strict";

(() => {
  const app = document.getElementById("app");
  const meetingKey = app.dataset.meetingKey;
  const organizerSecret = new URLSearchParams(location.hash.slice(1)).get("organizer");
  const $ = (id) => document.getElementById(id);

  const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000]; // then 8 s until it works
  const FATAL = new Set(["not_found", "license_invalid", "meeting_full", "invalid_request"]);

  let displayName = "";
  let rejoinSecret = null;
  let mcuId = null; // the MCU we are on
  let token = null; // the current join token: also proves our role to the portal
  let role = "participant";
  let failedMcu = null; // the MCU whose connection broke: the portal checks it and moves us if it is dead
  let me = null;
  let ws = null;
  let pubPc = null;
  let iceServers = [];
  let localStream = null;
  let leaving = false;
  let attempts = 0;
  let reconnectTimer = null;
  const subs = new Map(); // publisher id -> {pc, stream}
  const people = new Map(); // participant id -> public info

  function setState(text) { $("connection-state").textContent = text; }

  function render() {
    $("participant-count").textContent = String(people.size);
    const list = $("people");
    list.replaceChildren();
    for (const p of people.values()) {
      const li = document.createElement("li");
      li.textContent = p.name + (p.id === me ? " (you)" : "") + (p.role === "organizer" ? " · organizer" : "")
        + (p.audio === false ? " · muted" : "");
      li.dataset.participantId = p.id;
      list.append(li);
    }
    for (const p of people.values()) {
      if (p.id === me) continue;
      let video = document.querySelector(`video[data-participant-id="${CSS.escape(p.id)}"]`);
      if (!video) {
        const tile = document.createElement("div");
        tile.className = "tile";
        video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        video.dataset.participantId = p.id;
        const label = document.createElement("span");
        label.className = "label";
        tile.append(video, label);
        $("grid").append(tile);
        const sub = subs.get(p.id);
        if (sub) attach(video, sub.stream, true);
      }
      video.parentElement.querySelector(".label").textContent = p.name;
      video.parentElement.classList.toggle("video-off", p.video === false);
    }
    for (const video of document.querySelectorAll("video[data-participant-id]")) {
      if (!people.has(video.dataset.participantId)) video.parentElement.remove();
    }
  }

  // (Re)attach a participant's stream; re-assigning when the video track arrives makes the
  // element pick it up even if it started with the audio track alone.
  function attach(video, stream, force) {
    if (!force && video.srcObject === stream) return;
    video.srcObject = stream;
    video.play().catch(() => {}); // autoplay may still need the join click's gesture
  }

  function waitForIce(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000); // send what we have: the MCU does not trickle
    });
  }

  function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

  async function publish() {
    pubPc = new RTCPeerConnection({ iceServers });
    for (const track of localStream.getTracks()) pubPc.addTransceiver(track, { direction: "sendonly", streams: [localStream] });
    pubPc.onconnectionstatechange = () => {
      if (pubPc && pubPc.connectionState === "failed") { failedMcu = mcuId; reconnect("media connection failed"); }
    };
    await pubPc.setLocalDescription(await pubPc.createOffer());
    await waitForIce(pubPc);
    send({ type: "publish", sdp: pubPc.localDescription.sdp });
  }

  async function subscribe(msg) {
    const old = subs.get(msg.publisher_id);
    if (old) old.pc.close();
    const pc = new RTCPeerConnection({ iceServers });
    const stream = new MediaStream();
    subs.set(msg.publisher_id, { pc, stream });
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      const video = document.querySelector(`video[data-participant-id="${CSS.escape(msg.publisher_id)}"]`);
      if (video) attach(video, stream, e.track.kind === "video");
    };
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await waitForIce(pc);
    send({ type: "subscribe_answer", publisher_id: msg.publisher_id, sdp: pc.localDescription.sdp });
  }

  function dropSubscription(id) {
    const sub = subs.get(id);
    if (sub) { sub.pc.close(); subs.delete(id); }
  }

  async function onMessage(event) {
    const msg = JSON.parse(event.data);
    switch (msg.type) {
      case "joined":
        attempts = 0;
        me = msg.participant_id;
        iceServers = msg.ice_servers || [];
        people.clear();
        for (const p of msg.participants) people.set(p.id, p);
        render();
        setState("connected");
        showRecording(Boolean(msg.recording));
        await publish();
        if (role === "organizer") showDialIn(0);
        break;
      case "recording":
        showRecording(Boolean(msg.active));
        break;
      case "publish_answer":
        await pubPc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        break;
      case "subscribe_offer":
        await subscribe(msg);
        break;
      case "participant_joined":
      case "participant_updated":
        people.set(msg.participant.id, msg.participant);
        render();
        break;
      case "participant_left":
        people.delete(msg.participant_id);
        dropSubscription(msg.participant_id);
        render();
        break;
      case "error":
        setState(msg.message);
        if (FATAL.has(msg.code)) stop(msg.message);
        break;
    }
  }

  function teardown() {
    if (ws) { ws.onclose = null; ws.onmessage = null; ws.close(); ws = null; }
    if (pubPc) { pubPc.close(); pubPc = null; }
    for (const id of [...subs.keys()]) dropSubscription(id);
  }

  function reconnect(why) {
    if (leaving || reconnectTimer) return;
    teardown();
    setState(`reconnecting (${why})`);
    const delay = RECONNECT_DELAYS_MS[Math.min(attempts, RECONNECT_DELAYS_MS.length - 1)];
    attempts += 1;
    reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
  }

  async function connect() {
    let resp;
    try {
      resp = await fetch("/api/meet/v1/join", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "omit",
        body: JSON.stringify({
          meeting_key: meetingKey, display_name: displayName, organizer_secret: organizerSecret,
          rejoin_secret: rejoinSecret, failed_mcu_id: failedMcu,
        }),
      });
    } catch (e) {
      return reconnect("portal unreachable");
    }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const err = body.error || { code: "unknown", message: `error ${resp.status}` };
      if (FATAL.has(err.code)) return stop(err.message);
      return reconnect(err.message);
    }
    rejoinSecret = body.rejoin_secret;
    me = body.participant_id;
    mcuId = body.mcu_id;
    token = body.token;
    tokenAt = Date.now();
    role = body.role;
    $("poll-form").hidden = role !== "organizer";
    $("pdf-input").hidden = role !== "organizer";
    $("invite-form").hidden = role !== "organizer";
    $("record").hidden = role !== "organizer";
    failedMcu = null;
    ws = new WebSocket(body.mcu_url);
    ws.onopen = () => ws.send(JSON.stringify({ type: "join", token: body.token, meeting_key: meetingKey }));
    ws.onmessage = (e) => onMessage(e).catch((err) => reconnect(String(err)));
    ws.onclose = () => { failedMcu = mcuId; reconnect("connection lost"); };
  }

  // Dial-in numbers from the PBX: organizers only (the portal checks the token's role).
  async function showDialIn(tries) {
    const resp = await fetch("/api/meet/v1/dialin", { headers: { Authorization: `Bearer ${token}` }, credentials: "omit" });
    // 403 not_connected: the MCU has not yet told the portal we are in; ask again shortly
    const early = resp.status === 403 && (await resp.clone().json()).error?.code === "not_connected";
    if (!resp.ok && !early) return;
    const data = early ? { status: "pending" } : await resp.json();
    if (data.status === "pending" && tries < 10) { setTimeout(() => showDialIn(tries + 1), 1000); return; }
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

  // --- files, documents, polls: through the portal, with a fresh join token ---------------------
  let tokenAt = 0;
  const TOKEN_REFRESH_MS = 40000; // join tokens live 60 s

  async function apiToken() {
    if (Date.now() - tokenAt < TOKEN_REFRESH_MS) return token;
    const resp = await fetch("/api/meet/v1/join", {
      method: "POST", headers: { "Content-Type": "application/json" }, credentials: "omit",
      body: JSON.stringify({ meeting_key: meetingKey, display_name: displayName, organizer_secret: organizerSecret, rejoin_secret: rejoinSecret }),
    });
    if (resp.ok) { token = (await resp.json()).token; tokenAt = Date.now(); }
    return token;
  }

  async function api(path, options = {}) {
    const headers = { ...(options.headers || {}), Authorization: `Bearer ${await apiToken()}` };
    return fetch(`/api/meet/v1${path}`, { ...options, headers, credentials: "omit" });
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href; a.textContent = text; a.rel = "noreferrer"; a.target = "_blank";
    return a;
  }

  async function refreshShared() {
    if (leaving || !token) return;
    const [filesResp, pdfsResp, runsResp] = await Promise.all([api("/files"), api("/pdfs"), api("/runs")]);
    if (filesResp.ok) {
      const list = $("file-list");
      list.replaceChildren(...(await filesResp.json()).files.map((f) => {
        const li = document.createElement("li");
        li.dataset.fileId = f.id;
        li.append(link(f.url, f.label), ` (${Math.ceil(f.size / 1024)} KB)`);
        return li;
      }));
    }
    if (pdfsResp.ok) {
      const docs = (await pdfsResp.json()).pdfs;
      const list = $("pdf-list");
      list.replaceChildren(...docs.map((d) => {
        const li = document.createElement("li");
        const show = document.createElement("button");
        show.textContent = d.label;
        show.dataset.testid = "show-pdf";
        show.addEventListener("click", () => renderPdf(d.url));
        li.append(show);
        return li;
      }));
      if (docs.length && !renderedPdf) renderPdf(docs[0].url);
    }
    if (runsResp.ok) renderRuns((await runsResp.json()).runs);
    if (role === "organizer") {
      const pollsResp = await api("/polls");
      if (pollsResp.ok) renderPolls((await pollsResp.json()).polls);
    }
  }

  let renderedPdf = null;
  async function renderPdf(url) {
    renderedPdf = url;
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

  function renderPolls(polls) {
    $("poll-list").replaceChildren(...polls.map((p) => {
      const li = document.createElement("li");
      const run = document.createElement("button");
      run.textContent = "Run";
      run.dataset.testid = "run-poll";
      run.addEventListener("click", () => api(`/polls/${p.id}/run`, { method: "POST" }).then(refreshShared));
      const edit = document.createElement("button");
      edit.textContent = "Edit";
      edit.dataset.testid = "edit-poll";
      edit.addEventListener("click", () => {
        const form = $("poll-form");
        form.dataset.editing = p.id;
        form.elements.question.value = p.question;
        form.elements.options.value = p.options.join(", ");
      });
      const remove = document.createElement("button");
      remove.textContent = "Delete";
      remove.dataset.testid = "delete-poll";
      remove.addEventListener("click", () => api(`/polls/${p.id}`, { method: "DELETE" }).then(refreshShared));
      li.dataset.testid = "poll";
      li.append(`${p.question} `, run, edit, remove);
      return li;
    }));
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
          const vote = document.createElement("button");
          vote.textContent = "Vote";
          vote.dataset.testid = `vote-${i}`;
          vote.addEventListener("click", () => api(`/runs/${r.run_id}/vote`, {
            method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ option: i }),
          }).then(refreshShared));
          row.append(" ", vote);
        }
        box.append(row);
      });
      if (role === "organizer") {
        const report = document.createElement("button");
        report.textContent = "PDF report";
        report.dataset.testid = "poll-report";
        report.addEventListener("click", async () => {
          const resp = await api(`/runs/${r.run_id}/report.pdf`);
          if (!resp.ok) return;
          const a = document.createElement("a");
          a.href = URL.createObjectURL(await resp.blob());
          a.download = "poll-results.pdf";
          a.click();
          setTimeout(() => URL.revokeObjectURL(a.href), 10000);
        });
        box.append(report);
      }
      return box;
    }));
  }

  $("file-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const ext = file.name.includes(".") ? file.name.split(".").pop() : "";
    await api(`/files?ext=${encodeURIComponent(ext)}`, { method: "POST", body: file }); // the name never leaves the browser
    e.target.value = "";
    refreshShared();
  });
  $("pdf-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    await api("/pdfs", { method: "POST", body: file });
    e.target.value = "";
    renderedPdf = null;
    refreshShared();
  });
  $("poll-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const options = String(form.get("options")).split(",").map((s) => s.trim()).filter(Boolean);
    const editing = e.target.dataset.editing;
    await api(editing ? `/polls/${editing}` : "/polls", {
      method: editing ? "PUT" : "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question: String(form.get("question")).trim(), options }),
    });
    delete e.target.dataset.editing;
    e.target.reset();
    refreshShared();
  });
  $("invite-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const email = String(new FormData(e.target).get("email")).trim();
    const resp = await api("/invitations", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ participants: [{ name: email.split("@")[0], email }] }),
    });
    $("invite-status").textContent = resp.ok ? "Invitation sent." : "Could not invite.";
    if (resp.ok) e.target.reset();
  });
  setInterval(() => { refreshShared().catch(() => {}); }, 2000);

  function stop(reason) {
    leaving = true;
    teardown();
    people.clear();
    render();
    $("meeting").hidden = true;
    $("left-screen").hidden = false;
    $("left-reason").textContent = reason || "";
  }

  async function start(event) {
    event.preventDefault();
    displayName = new FormData($("join-form")).get("display_name").trim();
    if (!displayName) return;
    $("join-status").textContent = "Starting camera and microphone…";
    try {
      localStream = localStream || await navigator.mediaDevices.getUserMedia({
        audio: true, video: { width: 640, height: 360, frameRate: 30 },
      });
    } catch (e) {
      $("join-status").textContent = `Camera or microphone unavailable: ${e.message}`;
      return;
    }
    $("self-view").srcObject = localStream;
    $("join-screen").hidden = true;
    $("left-screen").hidden = true;
    $("meeting").hidden = false;
    leaving = false;
    attempts = 0;
    await connect();
  }

  // Recording: the organizer asks the portal (it checks role and license and signs a grant),
  // then hands the grant to the MCU; everyone sees the indicator while it records.
  let recording = false;
  function showRecording(active) {
    recording = active;
    $("recording-indicator").hidden = !active;
    $("record").textContent = active ? "Stop recording" : "Record";
    $("record").setAttribute("aria-pressed", String(active));
  }

  async function toggleRecording() {
    $("record").disabled = true;
    try {
      const resp = await api("/recording", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ action: recording ? "stop" : "start" }),
      });
      const body = await resp.json();
      if (!resp.ok) { $("record-status").textContent = body.error.message; return; }
      $("record-status").textContent = "";
      send({ type: "record", action: recording ? "stop" : "start", grant: body.grant });
    } finally {
      $("record").disabled = false;
    }
  }

  function toggle(kind, button, onText, offText) {
    const tracks = kind === "audio" ? localStream.getAudioTracks() : localStream.getVideoTracks();
    const enabled = !tracks.every((t) => t.enabled);
    tracks.forEach((t) => { t.enabled = enabled; });
    button.textContent = enabled ? onText : offText;
    button.setAttribute("aria-pressed", String(!enabled));
    send({ type: "mute", audio: localStream.getAudioTracks().every((t) => t.enabled), video: localStream.getVideoTracks().every((t) => t.enabled) });
  }

  $("join-form").addEventListener("submit", start);
  $("record").addEventListener("click", toggleRecording);
  $("toggle-audio").addEventListener("click", (e) => toggle("audio", e.target, "Mute", "Unmute"));
  $("toggle-video").addEventListener("click", (e) => toggle("video", e.target, "Stop video", "Start video"));
  $("leave").addEventListener("click", () => { send({ type: "leave" }); stop("You left the meeting."); });
  $("rejoin").addEventListener("click", (e) => { rejoinSecret = null; start(e); });
  window.addEventListener("online", () => { if (!leaving && !ws) reconnect("network back"); });

  // Connection statistics, per remote participant (also what the browser tests read).
  window.webmeeting = {
    async stats() {
      const out = {};
      for (const [id, sub] of subs) {
        const report = await sub.pc.getStats();
        const entry = { video: null, audio: null };
        report.forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") {
            entry.video = { framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0, bytes: s.bytesReceived || 0 };
          }
          if (s.type === "inbound-rtp" && s.kind === "audio") {
            entry.audio = { packets: s.packetsReceived || 0, samples: s.totalSamplesReceived || 0, bytes: s.bytesReceived || 0 };
          }
        });
        out[id] = entry;
      }
      return out;
    },
    localSettings() {
      return localStream ? localStream.getVideoTracks()[0].getSettings() : null;
    },
    // what this page's encoder sends now (it may scale down under CPU or bandwidth limits)
    async sent() {
      if (!pubPc) return null;
      let out = null;
      (await pubPc.getStats()).forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video") {
          out = { me, width: s.frameWidth || 0, height: s.frameHeight || 0, limitation: s.qualityLimitationReason || "none" };
        }
      });
      return out;
    },
  };
})();
