// The meeting page's entry module: the join screen, the controls, and the concerns wired
// together (connection, media grid, files, documents, polls, recording, dial-in, invitations:
// one module each). No cookies, no storage: what this tab knows lives in `ctx`, in memory.

import { createChat } from "./chat.js";
import { createConnection } from "./connection.js";
import { showDialIn } from "./dialin.js";
import { createDocuments } from "./documents.js";
import { $, button } from "./dom.js";
import { createFiles } from "./files.js";
import { render } from "./grid.js";
import { createHands } from "./hands.js";
import { bindInvitations } from "./invitations.js";
import { createPolls } from "./polls.js";
import { createPortal } from "./portal.js";
import { createPrejoin } from "./prejoin.js";
import { createQuality } from "./quality.js";
import { createLobby } from "./lobby.js";
import { createRecording } from "./recording.js";
import { createScreen } from "./screen.js";
import { createSpeaker } from "./speaker.js";
import { SEND } from "./signalling.js";
import { createTabs } from "./tabs.js";

const app = document.getElementById("app");
const ctx = {
  meetingKey: app.dataset.meetingKey,
  organizerSecret: new URLSearchParams(location.hash.slice(1)).get("organizer"),
  displayName: "",
  rejoinSecret: null,
  mcuId: null, // the MCU we are on
  failedMcu: null, // the MCU whose connection broke: the portal checks it and moves us if it is dead
  token: null, // the current join token: also proves our role to the portal
  tokenAt: 0,
  role: "participant",
  me: null,
  pubPc: null, // the camera's publish connection
  pubPcs: {}, // source -> publish connection (camera, screen)
  localStream: null,
  sinkId: "", // the chosen speaker, where the browser can choose
  locked: false,
  leaving: false,
  turnServers: [], // the MCU's TURN relay with this join's credentials
  joins: 0, // how often this tab entered the meeting (1 unless it had to reconnect)
  subs: new Map(), // publisher id -> {pc, stream}
  screens: new Map(), // sharer's id -> {pc, stream}: their shared screen
  people: new Map(), // participant id -> public info
};

const portal = createPortal(ctx);
const parts = {};
function renderRoom() {
    // the organizer lowers a raised hand from the participant list
    render(ctx, (p) => {
      if (ctx.role !== "organizer" || p.id === ctx.me) return [];
      const tools = [];
      if (p.hand) tools.push(parts.hands.lowerButton(p));
      if (p.audio !== false) tools.push(button("Mute", "mute-participant", () => connection.send(SEND.moderate, { action: "mute", participant_id: p.id })));
      if (p.video !== false) tools.push(button("Stop video", "stop-video-participant", () => connection.send(SEND.moderate, { action: "stop_video", participant_id: p.id })));
      if (p.screen) tools.push(button("Stop share", "stop-screen-participant", () => connection.send(SEND.moderate, { action: "stop_screen", participant_id: p.id })));
      const presenter = p.role === "presenter";
      tools.push(button(presenter ? "Make participant" : "Make presenter", presenter ? "demote-participant" : "promote-participant",
        () => connection.send(SEND.moderate, { action: presenter ? "demote" : "promote", participant_id: p.id })));
      tools.push(button("Remove", "remove-participant", () => connection.send(SEND.moderate, { action: "remove", participant_id: p.id })));
      for (const t of tools) t.setAttribute("aria-label", `${t.textContent}: ${p.name}`);
      return tools;
    }, (id) => parts.quality?.of(id));
    parts.chat.people();
    parts.hands.show();
    parts.speaker.show();
    parts.screen.show();
    parts.lobby.show();
    if (ctx.sinkId) for (const v of document.querySelectorAll("video[data-participant-id]")) if (v.sinkId !== ctx.sinkId) v.setSinkId?.(ctx.sinkId).catch(() => {});
}

const connection = createConnection(ctx, portal, {
  render: renderRoom,
  onJoined() {
    sendMediaState(); // what the prejoin screen chose (camera or microphone off)
    fetchShared();
    if (ctx.role === "organizer") showDialIn(ctx, portal);
  },
  onContentChanged(msg) { fetchShared(msg.what); },
  onWaiting() { parts.lobby.waiting(); },
  onAdmitted() { parts.lobby.admitted(); },
  onLobby(msg) { parts.lobby.show(msg); },
  onLobbyEnabled(enabled) { parts.lobby.setEnabled(enabled); },
  onScreenTrack(id, stream) { parts.screen.attach(id, stream); },
  onShareRefused() { parts.screen.reset(); parts.screen.show(); },
  onTeardown() { parts.screen.reset(); },
  onRecording(active) { parts.recording.show(active); },
  onLock(locked) {
    ctx.locked = locked;
    $("lock-meeting").textContent = locked ? "Unlock meeting" : "Lock meeting";
    $("lock-meeting").setAttribute("aria-pressed", String(locked));
    $("locked-indicator").hidden = !locked;
  },
  onSelf(me) { // the organizer turned our microphone or camera off: follow (turning it on again is ours)
    parts.screen.self(me);
    for (const [kind, on] of [["audio", me.audio], ["video", me.video]]) {
      if (on === false && enabled(kind)) for (const t of kind === "audio" ? ctx.localStream.getAudioTracks() : ctx.localStream.getVideoTracks()) t.enabled = false;
    }
    showMediaState();
  },
  onChat(msg) { parts.chat.show(msg); if (msg.sender !== ctx.me) parts.tabs.chatArrived(); },
  onChatHistory(messages) { parts.chat.history(messages); },
  onReaction(msg) { parts.hands.reaction(msg); },
  onRole(role) {
    for (const id of ["poll-form", "pdf-input", "invite-form", "record", "lock-meeting", "mute-all"]) $(id).hidden = role !== "organizer";
  },
});

// Shared lists are fetched when they change, never polled: once on (re)joining, when the MCU says
// someone changed one, and after one's own change (which the others are then told about).
function fetchShared(what) {
  if (ctx.leaving || !ctx.token) return;
  const lists = { files: parts.files, documents: parts.documents, polls: parts.polls };
  for (const [name, part] of Object.entries(lists)) if (!what || what === name) part.show().catch(() => {});
}
function changed(what) {
  fetchShared(what);
  connection.send(SEND.changed, { what });
}
parts.files = createFiles(ctx, portal, changed);
parts.documents = createDocuments(ctx, portal, changed);
parts.polls = createPolls(ctx, portal, changed);
parts.recording = createRecording(ctx, portal, connection.send);
parts.chat = createChat(ctx, connection.send);
parts.hands = createHands(ctx, connection.send);
parts.speaker = createSpeaker(ctx);
parts.screen = createScreen(ctx, connection);
parts.lobby = createLobby(ctx, connection.send);
parts.tabs = createTabs();
parts.quality = createQuality(ctx, renderRoom);
bindInvitations(ctx, portal);

const prejoin = createPrejoin(ctx);
prejoin.start();

function enabled(kind) {
  const tracks = kind === "audio" ? ctx.localStream.getAudioTracks() : ctx.localStream.getVideoTracks();
  return tracks.every((t) => t.enabled);
}

function showMediaState() {
  const audio = enabled("audio");
  const video = enabled("video");
  $("toggle-audio").textContent = audio ? "Mute" : "Unmute";
  $("toggle-audio").setAttribute("aria-pressed", String(!audio));
  $("toggle-video").textContent = video ? "Stop video" : "Start video";
  $("toggle-video").setAttribute("aria-pressed", String(!video));
}

function sendMediaState() {
  connection.send(SEND.mute, { audio: enabled("audio"), video: enabled("video") });
}

async function start(event) {
  event.preventDefault();
  ctx.displayName = new FormData($("join-form")).get("display_name").trim();
  if (!ctx.displayName) return;
  await prejoin.start();
  if (!ctx.localStream) return; // no camera or microphone: the prejoin screen says why
  prejoin.done();
  parts.speaker.resume(); // audio may start only after a gesture: the join click is one
  $("self-view").srcObject = ctx.localStream;
  showMediaState();
  $("join-screen").hidden = true;
  $("left-screen").hidden = true;
  $("meeting").hidden = false;
  ctx.leaving = false;
  await connection.restart();
}

function toggle(kind) {
  const on = !enabled(kind);
  const tracks = kind === "audio" ? ctx.localStream.getAudioTracks() : ctx.localStream.getVideoTracks();
  tracks.forEach((t) => { t.enabled = on; });
  showMediaState();
  sendMediaState();
}

$("join-form").addEventListener("submit", start);
$("toggle-audio").addEventListener("click", () => toggle("audio"));
$("toggle-video").addEventListener("click", () => toggle("video"));
$("leave").addEventListener("click", () => connection.leave());
$("lock-meeting").addEventListener("click", () => connection.send(SEND.lock, { locked: !ctx.locked }));
$("mute-all").addEventListener("click", () => connection.send(SEND.mute_all));
$("rejoin").addEventListener("click", (e) => { ctx.rejoinSecret = null; start(e); });
window.addEventListener("online", () => connection.online());
// a closed tab says goodbye (otherwise the MCU holds its place a few seconds, as for a network drop)
window.addEventListener("pagehide", () => connection.send(SEND.leave));

// Connection statistics, per remote participant (also what the browser tests read).
window.webmeeting = {
  participantId() { return ctx.me; },
  joins() { return ctx.joins; },
  quality() { return parts.quality.all(); }, // participant id -> good | fair | poor
  playout() { return parts.quality.playout(); }, // participant id -> the hold on its video (ms) while it is repaired
  // how each of our connections goes: the candidate types of its selected pair (host, srflx, prflx, relay)
  async routes() {
    const pcs = [ctx.pubPc, ...[...ctx.subs.values()].map((s) => s.pc)].filter(Boolean);
    const out = [];
    for (const pc of pcs) {
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          const local = stats.get(s.localCandidateId);
          out.push({ local: local?.candidateType, protocol: local?.relayProtocol || local?.protocol });
        }
      });
    }
    return out;
  },
  audioLevels() { return parts.speaker.levels(); },
  async stats() {
    const out = {};
    for (const [id, sub] of ctx.subs) {
      const report = await sub.pc.getStats();
      const entry = { video: null, audio: null };
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") {
          entry.video = {
            framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
            bytes: s.bytesReceived || 0, lost: s.packetsLost || 0, keyframes: s.keyFramesDecoded ?? null,
            retransmittedBytes: s.retransmittedBytesReceived ?? null, nacks: s.nackCount ?? null,
            freezes: s.freezeCount ?? null, freezeSeconds: s.totalFreezesDuration ?? null,
          };
        }
        if (s.type === "inbound-rtp" && s.kind === "audio") {
          entry.audio = {
            packets: s.packetsReceived || 0, samples: s.totalSamplesReceived || 0, bytes: s.bytesReceived || 0,
            concealed: s.concealedSamples ?? null, lost: s.packetsLost || 0,
          };
        }
      });
      out[id] = entry;
    }
    return out;
  },
  localSettings() {
    return ctx.localStream ? ctx.localStream.getVideoTracks()[0].getSettings() : null;
  },
  // what this page's encoder sends now (it may scale down under CPU or bandwidth limits)
  async sent() {
    if (!ctx.pubPc) return null;
    let out = null;
    (await ctx.pubPc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        out = {
          me: ctx.me, width: s.frameWidth || 0, height: s.frameHeight || 0, limitation: s.qualityLimitationReason || "none",
          fps: s.framesPerSecond ?? null, targetBitrate: s.targetBitrate ?? null, scalabilityMode: s.scalabilityMode ?? null,
        };
      }
    });
    return out;
  },
};
