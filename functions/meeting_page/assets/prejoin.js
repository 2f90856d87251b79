// The prejoin screen: a camera preview, a microphone level meter, camera / microphone (and,
// where the browser can, speaker) pickers, and joining with the camera or the microphone off.
// Nothing is kept beyond the tab: the choice lives in `ctx` (no storage, no cookies).

import { $ } from "./dom.js";

const VIDEO = { width: 640, height: 360, frameRate: 30 };

export function createPrejoin(ctx) {
  let meter = null; // {audio context, analyser, frame request}

  function status(text) { $("join-status").textContent = text; }

  async function open(constraints) {
    return navigator.mediaDevices.getUserMedia(constraints);
  }

  async function devices() {
    const all = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, current) => {
      const options = all.filter((d) => d.kind === kind).map((d, i) => new Option(d.label || `${kind} ${i + 1}`, d.deviceId));
      select.replaceChildren(...options);
      if (current) select.value = current;
      return options.length;
    };
    fill($("camera-select"), "videoinput", ctx.localStream?.getVideoTracks()[0]?.getSettings().deviceId);
    fill($("mic-select"), "audioinput", ctx.localStream?.getAudioTracks()[0]?.getSettings().deviceId);
    const speakers = "setSinkId" in HTMLMediaElement.prototype ? fill($("speaker-select"), "audiooutput", ctx.sinkId) : 0;
    $("speaker-picker").hidden = speakers === 0;
  }

  function measure() {
    stopMeter();
    const track = ctx.localStream?.getAudioTracks()[0];
    if (!track) return;
    const audio = new AudioContext();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 512;
    audio.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const samples = new Uint8Array(analyser.fftSize);
    const tick = () => {
      analyser.getByteTimeDomainData(samples);
      let peak = 0;
      for (const s of samples) peak = Math.max(peak, Math.abs(s - 128) / 128);
      const level = track.enabled ? Math.min(1, peak * 1.5) : 0;
      $("mic-level").value = level;
      $("mic-level").dataset.level = level.toFixed(2);
      meter.frame = requestAnimationFrame(tick);
    };
    meter = { audio, frame: requestAnimationFrame(tick) };
    // a browser may hold Web Audio until the person interacts with the page: the first click or
    // key starts the meter then
    if (audio.state === "suspended") {
      const wake = () => audio.state === "suspended" && audio.resume().catch(() => {});
      for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, wake, { once: true, capture: true });
    }
  }

  function stopMeter() {
    if (!meter) return;
    cancelAnimationFrame(meter.frame);
    meter.audio.close().catch(() => {});
    meter = null;
  }

  let starting = null;

  // one camera and microphone for the tab: a join clicked while the preview still starts waits
  // for it (a failed start may be tried again)
  function start() {
    starting = starting || (async () => {
      status("Starting camera and microphone…");
      try {
        ctx.localStream = await open({ audio: true, video: VIDEO });
      } catch (e) {
        status(`Camera or microphone unavailable: ${e.message}`);
        starting = null;
        return;
      }
      $("preview").srcObject = ctx.localStream;
      status("");
      await devices();
      measure();
    })();
    return starting;
  }

  // a new camera or microphone replaces that track of the stream (before joining: nothing is sent yet)
  async function use(kind, deviceId) {
    const fresh = await open(kind === "video" ? { video: { ...VIDEO, deviceId: { exact: deviceId } } } : { audio: { deviceId: { exact: deviceId } } });
    const track = kind === "video" ? fresh.getVideoTracks()[0] : fresh.getAudioTracks()[0];
    const old = kind === "video" ? ctx.localStream.getVideoTracks()[0] : ctx.localStream.getAudioTracks()[0];
    track.enabled = old ? old.enabled : true;
    if (old) { ctx.localStream.removeTrack(old); old.stop(); }
    ctx.localStream.addTrack(track);
    $("preview").srcObject = ctx.localStream;
    if (kind === "audio") measure();
  }

  function setEnabled(kind, on) {
    const tracks = kind === "video" ? ctx.localStream?.getVideoTracks() : ctx.localStream?.getAudioTracks();
    for (const t of tracks || []) t.enabled = on;
  }

  $("camera-select").addEventListener("change", (e) => use("video", e.target.value));
  $("mic-select").addEventListener("change", (e) => use("audio", e.target.value));
  $("speaker-select").addEventListener("change", (e) => {
    ctx.sinkId = e.target.value;
    for (const v of document.querySelectorAll("video[data-participant-id]")) v.setSinkId?.(ctx.sinkId).catch(() => {});
  });
  $("prejoin-camera").addEventListener("change", (e) => setEnabled("video", e.target.checked));
  $("prejoin-mic").addEventListener("change", (e) => setEnabled("audio", e.target.checked));
  navigator.mediaDevices.addEventListener?.("devicechange", () => devices().catch(() => {}));

  // joining: the preview is done with, the stream goes into the meeting as chosen
  function done() { stopMeter(); $("preview").srcObject = null; }

  return { start, done };
}
