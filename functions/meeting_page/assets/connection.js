// The connection to the meeting: the join through the portal, the MCU's signalling socket (and
// the lobby's door on it), one publish connection per source (camera, shared screen), one
// subscribe connection per remote participant and source, and reconnection after network drops
// (failing over when the portal confirms our MCU is dead).

import { $ } from "./dom.js";
import { attach, videoOf } from "./grid.js";
import { RECEIVE, SEND, message } from "./signalling.js";

const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000]; // then 8 s until it works
const FATAL = new Set(["not_found", "license_invalid", "meeting_full", "invalid_request", "removed", "meeting_locked", "rejected", "lobby_full"]);
const SHARE_REFUSED = new Set(["screen_busy", "not_presenter"]);

export function createConnection(ctx, portal, hooks) {
  let ws = null;
  let iceServers = [];
  let attempts = 0;
  let connectedAt = 0; // when the MCU last said "joined": backoff resets only after a while up
  const STABLE_MS = 10000;
  let reconnectTimer = null;
  let joinedHere = false; // the current socket reached "joined": its MCU works
  const RESUME_WAIT_MS = 3000; // a socket back to the same MCU that is not in by then: ask the portal

  function setState(text) { $("connection-state").textContent = text; }

  function send(type, fields) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(message(type, fields)); }

  function waitForIce(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000); // send what we have: the MCU does not trickle
    });
  }

  // one publish per source: the camera (and microphone), or a shared screen (and its audio)
  async function publish(source, stream) {
    const pc = new RTCPeerConnection({ iceServers });
    ctx.pubPcs[source] = pc;
    if (source === "camera") ctx.pubPc = pc;
    for (const track of stream.getTracks()) {
      const init = { direction: "sendonly", streams: [stream] };
      // video in three temporal layers (VP8 L1T3): the MCU sends a subscriber on a thin link
      // fewer frames of it instead of none
      if (track.kind === "video") {
        try { pc.addTransceiver(track, { ...init, sendEncodings: [{ scalabilityMode: "L1T3" }] }); continue; } catch (e) { /* no temporal layers here */ }
      }
      pc.addTransceiver(track, init);
    }
    pc.onconnectionstatechange = () => {
      if (ctx.pubPcs[source] === pc && pc.connectionState === "failed") { ctx.failedMcu = ctx.mcuId; reconnect("media connection failed"); }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc);
    send(SEND.publish, { sdp: pc.localDescription.sdp, source });
  }

  function closeScreenPublish() {
    if (ctx.pubPcs.screen) { ctx.pubPcs.screen.close(); delete ctx.pubPcs.screen; }
  }

  async function subscribe(msg) {
    const screen = msg.source === "screen";
    const subs = screen ? ctx.screens : ctx.subs;
    const old = subs.get(msg.publisher_id);
    if (old) old.pc.close();
    const pc = new RTCPeerConnection({ iceServers });
    const stream = new MediaStream();
    subs.set(msg.publisher_id, { pc, stream });
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      if (screen) { hooks.onScreenTrack(msg.publisher_id, stream); return; }
      const video = videoOf(msg.publisher_id);
      if (video) attach(video, stream, e.track.kind === "video");
    };
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await waitForIce(pc);
    send(SEND.subscribe_answer, { publisher_id: msg.publisher_id, sdp: pc.localDescription.sdp, source: msg.source });
  }

  function dropSubscription(id) {
    const sub = ctx.subs.get(id);
    if (sub) { sub.pc.close(); ctx.subs.delete(id); }
    dropScreen(id);
  }

  function dropScreen(id) {
    const sub = ctx.screens.get(id);
    if (sub) { sub.pc.close(); ctx.screens.delete(id); }
  }

  async function onMessage(event) {
    const msg = JSON.parse(event.data);
    switch (msg.type) {
      case RECEIVE.lobby_waiting:
        attempts = 0;
        iceServers = [];
        setState("waiting for the organizer");
        hooks.onWaiting();
        break;
      case RECEIVE.lobby_state:
        hooks.onLobby(msg);
        break;
      case RECEIVE.lobby_rejected:
        stop("The organizer did not let you in.", { rejected: true });
        break;
      case RECEIVE.joined:
        joinedHere = true;
        connectedAt = Date.now();
        ctx.joins += 1;
        ctx.me = msg.participant_id;
        // the MCU's own list, and the TURN relay the portal gave us credentials for (networks
        // that block UDP, or allow only TCP/TLS out)
        iceServers = [...(msg.ice_servers || []), ...ctx.turnServers];
        ctx.people.clear();
        for (const p of msg.participants) ctx.people.set(p.id, p);
        hooks.render();
        setState("connected");
        hooks.onRecording(Boolean(msg.recording));
        hooks.onLock(Boolean(msg.locked));
        hooks.onChatHistory(msg.chat);
        hooks.onLobbyEnabled(Boolean(msg.lobby));
        hooks.onAdmitted();
        await publish("camera", ctx.localStream);
        hooks.onJoined();
        break;
      case RECEIVE.recording:
        hooks.onRecording(Boolean(msg.active));
        break;
      case RECEIVE.publish_answer:
        await ctx.pubPcs[msg.source]?.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        break;
      case RECEIVE.subscribe_offer:
        // a stream this browser cannot take fails alone: no reconnect into the same failure
        await subscribe(msg).catch(() => {
          const subs = msg.source === "screen" ? ctx.screens : ctx.subs;
          subs.get(msg.publisher_id)?.pc.close();
          subs.delete(msg.publisher_id);
          setState(`connected (a stream of ${msg.name} could not be played here)`);
        });
        break;
      case RECEIVE.participant_joined:
      case RECEIVE.participant_updated:
        // a share that ended: the MCU closed its side (a new share comes with a new offer)
        if (ctx.people.get(msg.participant.id)?.screen && !msg.participant.screen) dropScreen(msg.participant.id);
        ctx.people.set(msg.participant.id, msg.participant);
        if (msg.participant.id === ctx.me) hooks.onSelf(msg.participant); // the organizer may have muted us
        hooks.render();
        break;
      case RECEIVE.video_paused: {
        // the MCU paused this person's video for our link, or as they are not among the last
        // speakers of a large meeting (audio goes on): their tile says so
        const video = msg.source === "screen"
          ? document.querySelector(`video[data-screen-of="${CSS.escape(msg.publisher_id)}"]`)
          : document.querySelector(`video[data-participant-id="${CSS.escape(msg.publisher_id)}"]`);
        if (video) {
          if (msg.paused) video.dataset.paused = msg.reason === "speakers" ? "speakers" : "bandwidth";
          else delete video.dataset.paused;
          video.parentElement?.classList.toggle("video-paused", msg.paused);
        }
        break;
      }
      case RECEIVE.lock_state:
        hooks.onLock(msg.locked);
        break;
      case RECEIVE.removed:
        stop("The organizer removed you from this meeting.", { removed: true });
        break;
      case RECEIVE.participant_left:
        ctx.people.delete(msg.participant_id);
        dropSubscription(msg.participant_id);
        hooks.render();
        break;
      case RECEIVE.chat_message:
        hooks.onChat(msg);
        break;
      case RECEIVE.reaction:
        hooks.onReaction(msg);
        break;
      case RECEIVE.content_changed:
        hooks.onContentChanged(msg);
        break;
      case RECEIVE.error:
        setState(msg.message);
        if (SHARE_REFUSED.has(msg.code)) hooks.onShareRefused();
        if (FATAL.has(msg.code)) stop(msg.message, { removed: msg.code === "removed", rejected: msg.code === "rejected" });
        break;
    }
  }

  function teardown() {
    if (ws) { ws.onclose = null; ws.onmessage = null; ws.close(); ws = null; }
    for (const pc of Object.values(ctx.pubPcs)) pc.close();
    ctx.pubPcs = {};
    ctx.pubPc = null;
    hooks.onTeardown();
    for (const id of [...ctx.subs.keys(), ...ctx.screens.keys()]) dropSubscription(id);
  }

  // ``resume``: the socket of a working MCU dropped (a network change, an outage): straight back
  // to that MCU with the token we hold, at once; the MCU keeps our place (role, hand) meanwhile
  function reconnect(why, { resume = false } = {}) {
    if (ctx.leaving || reconnectTimer) return;
    if (connectedAt && Date.now() - connectedAt > STABLE_MS) attempts = 0; // it held: start the backoff over
    teardown();
    setState(`reconnecting (${why})`);
    if (resume) { reconnectTimer = setTimeout(() => { reconnectTimer = null; resumeHere(); }, 0); return; }
    const delay = RECONNECT_DELAYS_MS[Math.min(attempts, RECONNECT_DELAYS_MS.length - 1)];
    attempts += 1;
    reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
  }

  async function resumeHere() {
    let token;
    try { token = await portal.token(); } catch (e) { token = null; } // fresh if ours is old
    if (ctx.leaving || ws) return;
    if (!token || !ctx.mcuUrl) { ctx.failedMcu = ctx.mcuId; return reconnect("connection lost"); }
    openSocket(ctx.mcuUrl, token);
    const mine = ws;
    setTimeout(() => {
      if (ws === mine && !joinedHere && !ctx.leaving) { ctx.failedMcu = ctx.mcuId; reconnect("MCU unreachable"); }
    }, RESUME_WAIT_MS);
  }

  function openSocket(url, token) {
    joinedHere = false;
    ws = new WebSocket(url);
    ws.onopen = () => ws.send(message(SEND.join, { token, meeting_key: ctx.meetingKey }));
    ws.onmessage = (e) => onMessage(e).catch((err) => reconnect(String(err)));
    ws.onclose = () => {
      if (joinedHere) { reconnect("connection lost", { resume: true }); return; }
      ctx.failedMcu = ctx.mcuId; // never got in there: the portal decides (failing over if it is dead)
      reconnect("connection lost");
    };
  }

  async function connect() {
    let resp;
    try {
      resp = await portal.join({ failed_mcu_id: ctx.failedMcu });
    } catch (e) {
      return reconnect("portal unreachable");
    }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const err = body.error || { code: "unknown", message: `error ${resp.status}` };
      if (FATAL.has(err.code)) return stop(err.message);
      return reconnect(err.message);
    }
    ctx.rejoinSecret = body.rejoin_secret;
    ctx.turnServers = body.ice_servers || [];
    ctx.me = body.participant_id;
    ctx.mcuId = body.mcu_id;
    ctx.token = body.token;
    ctx.tokenAt = Date.now();
    ctx.role = body.role;
    hooks.onRole(ctx.role);
    ctx.mcuUrl = body.mcu_url;
    ctx.failedMcu = null;
    openSocket(body.mcu_url, body.token);
  }

  function stop(reason, { removed = false, rejected = false } = {}) {
    ctx.leaving = true;
    teardown();
    ctx.people.clear();
    hooks.render();
    $("meeting").hidden = true;
    $("lobby-screen").hidden = true;
    if (removed) { $("removed-screen").hidden = false; return; } // that tab does not come back
    if (rejected) { $("lobby-rejected").hidden = false; return; }
    $("left-screen").hidden = false;
    $("left-reason").textContent = reason || "";
  }

  function leave() { send(SEND.leave); stop("You left the meeting."); }

  function online() { if (!ctx.leaving && !ws) reconnect("network back"); }

  function restart() { attempts = 0; return connect(); }

  return {
    send, restart, leave, online, dropScreen, closeScreenPublish,
    publishScreen: (stream) => publish("screen", stream),
  };
}
