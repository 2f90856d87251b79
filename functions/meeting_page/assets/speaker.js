// The active speaker: each page measures the audio it plays (Web Audio, every 200 ms) and marks
// who speaks, in the participant list (`data-speaking`) and on the tiles; the speaker layout
// shows the latest speaker large.

import { $ } from "./dom.js";

const EVERY_MS = 200;
const THRESHOLD = 0.01; // RMS of the signal, 0..1 (silence here: below 0.001; speech and tones: above 0.01)
const HANGOVER_MS = 600; // speaking stays shown this long after the level drops

export function createSpeaker(ctx) {
  let audio = null;
  const meters = new Map(); // participant id -> {track id, analyser, samples}
  const lastLoud = new Map(); // participant id -> time
  let latest = null;

  function meter(id, track) {
    const known = meters.get(id);
    if (known && known.track === track.id) return;
    audio = audio || new AudioContext();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 2048; // about 43 ms of audio per reading
    audio.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    meters.set(id, { track: track.id, analyser, samples: new Float32Array(analyser.fftSize) });
  }

  function level(m) {
    m.analyser.getFloatTimeDomainData(m.samples);
    let sum = 0;
    for (const s of m.samples) sum += s * s;
    return Math.sqrt(sum / m.samples.length);
  }

  function tick() {
    if (ctx.leaving) return;
    for (const [id, sub] of ctx.subs) {
      const track = sub.stream.getAudioTracks()[0];
      if (track) meter(id, track);
    }
    const own = ctx.localStream?.getAudioTracks()[0];
    if (own && ctx.me) meter(ctx.me, own);
    const now = performance.now();
    for (const [id, m] of meters) {
      const person = ctx.people.get(id);
      if (!person) { meters.delete(id); continue; }
      const muted = person.audio === false || (id === ctx.me && own && !own.enabled);
      if (!muted && level(m) > THRESHOLD) { lastLoud.set(id, now); latest = id; }
    }
    show(now);
  }

  function speaking(id, now) { return now - (lastLoud.get(id) ?? -Infinity) < HANGOVER_MS; }

  function show(now = performance.now()) {
    for (const li of document.querySelectorAll("[data-testid=participant]")) {
      li.dataset.speaking = String(speaking(li.dataset.participantId, now));
    }
    for (const video of document.querySelectorAll("video[data-participant-id]")) {
      const id = video.dataset.participantId;
      video.parentElement.classList.toggle("speaking", speaking(id, now));
      video.parentElement.classList.toggle("main", id === latest);
    }
    $("self-view").parentElement.classList.toggle("speaking", Boolean(ctx.me) && speaking(ctx.me, now));
  }

  $("layout").addEventListener("click", () => {
    const speakerLayout = !$("grid").classList.contains("speaker-layout");
    $("grid").classList.toggle("speaker-layout", speakerLayout);
    $("layout").textContent = speakerLayout ? "Grid view" : "Speaker view";
    $("layout").setAttribute("aria-pressed", String(speakerLayout));
  });

  setInterval(tick, EVERY_MS);
  function levels() { // what the meters read now (also for the browser tests)
    return Object.fromEntries([...meters].map(([id, m]) => [id, level(m)]).concat([["state", audio?.state ?? "none"]]));
  }

  return { show, levels, resume() { audio = audio || new AudioContext(); audio.resume().catch(() => {}); } };
}
