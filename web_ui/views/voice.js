// Voice memos (docs/voice.md): the composer's record button (MediaRecorder, a level meter, the
// elapsed time, Cancel, and the live transcript from WS /v1/voice/live while recording; Send
// uploads with progress), and one player for memos and spoken replies: waveform, 0.5x-2x,
// keyboard control, and the transcript under it, where clicking a word seeks to it.
import { h, signal, useState, useEffect, useRef } from "../deps.js";
import { get, post, newKey } from "../api.js";
import { onEvent } from "../realtime.js";
import * as state from "../state.js";
import { html, Icon } from "./ui.js";

export const voiceStatus = signal(null); // GET /v1/voice, once signed in
let asked = false;

function loadStatus() {
  if (asked) return;
  asked = true;
  get("/v1/voice").then(
    (body) => (voiceStatus.value = body.voice),
    () => (asked = false),
  );
}

const clock = (seconds) => {
  const s = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

// --- spoken replies while they stream: sentence clips by message -----------------------------

const speech = new Map(); // message_id -> {memoId, clips: [{index, url, duration_ms, text}]}
const speechVersion = signal(0);
const voiceThreads = new Map(); // thread_id -> when this page last sent a memo there (autoplay)
const listening = new Set(); // message ids whose Listen button was pressed here (autoplay)
const spoken = new Map(); // message_id -> its finished speech memo, before message.updated says so
const transcripts = new Map(); // memo_id -> transcript (fetched once)

onEvent((event) => {
  const p = event.payload || {};
  if (event.event_type === "voice.memo.created" && p.memo && p.memo.kind === "speech") {
    speech.set(p.memo.message_id, { memoId: p.memo.id, clips: [] });
    speechVersion.value++;
  } else if (event.event_type === "voice.memo.speech") {
    const entry = speech.get(p.message_id) || { memoId: p.memo_id, clips: [] };
    if (!entry.clips.some((c) => c.index === p.clip.index)) entry.clips.push(p.clip);
    speech.set(p.message_id, entry);
    speechVersion.value++;
    const sent = voiceThreads.get(event.thread_id);
    if (listening.has(p.message_id) || (sent && Date.now() - sent < 10 * 60_000)) playClips(p.message_id);
  } else if (event.event_type === "voice.memo.transcribed" && p.memo) {
    transcripts.set(p.memo.id, { ...p.transcript, status: "transcribed" });
    if (p.memo.kind === "speech") spoken.set(p.memo.message_id, p.memo);
    speechVersion.value++;
  }
});

// One sound at a time, page-wide.
let current = null;
function claim(player) {
  if (current && current !== player) current.pause();
  current = player;
}

const queued = { messageId: null, next: 0, audio: null };
function playClips(messageId) {
  if (queued.messageId === messageId && queued.audio && !queued.audio.paused) return;
  if (queued.messageId !== messageId) queued.next = 0;
  queued.messageId = messageId;
  playNextClip();
}

function playNextClip() {
  const entry = speech.get(queued.messageId);
  const clip = entry && entry.clips.find((c) => c.index === queued.next);
  if (!clip) return;
  const audio = new Audio(clip.url);
  queued.audio = audio;
  claim({ pause: () => audio.pause() });
  audio.addEventListener("ended", () => {
    queued.next++;
    playNextClip();
  });
  audio.play().catch(() => {});
}

// --- the player -----------------------------------------------------------------------------

const SPEEDS = [0.5, 1, 1.5, 2];

export function VoiceNote({ message }) {
  speechVersion.value; // re-render when a spoken reply's sentences or a transcript arrive
  const voice = (message.metadata && message.metadata.voice) || spoken.get(message.id);
  const live = speech.get(message.id);
  if (!voice && !live) {
    const readable = message.author.kind === "agent" && message.state === "completed" && message.text;
    return readable ? h(ListenButton, { message }) : null;
  }
  if (!voice || voice.status === "speaking") {
    return html`<div class="voice-note speaking" data-voice="speaking">
      <button type="button" class="icon-button" aria-label="Play the spoken reply" onClick=${() => playClips(message.id)}>
        <${Icon} name="play" />
      </button>
      <span class="meta">Speaking… ${live ? live.clips.length : 0} sentence(s) ready</span>
    </div>`;
  }
  return h(Player, { voice, label: message.author.kind === "agent" ? "spoken reply" : "voice memo" });
}

function Player({ voice, label }) {
  const audio = useRef(null);
  const [playing, setPlaying] = useState(false);
  const [time, setTime] = useState(0);
  const [speed, setSpeed] = useState(1);
  const [transcript, setTranscript] = useState(transcripts.get(voice.id) || null);
  const duration = (voice.duration_ms || 0) / 1000;
  const url = `/v1/voice/memos/${encodeURIComponent(voice.id)}`; // built here, never taken from the message

  useEffect(() => {
    const known = transcripts.get(voice.id);
    if (known) setTranscript(known);
    else if (voice.status === "transcribed") {
      get(`${url}/transcript`).then((body) => {
        transcripts.set(voice.id, body.transcript);
        setTranscript(body.transcript);
      }, () => {});
    }
  }, [voice.id, voice.status, speechVersion.value]);

  function element() {
    if (!audio.current) {
      const el = new Audio(url);
      el.preload = "metadata";
      el.addEventListener("timeupdate", () => setTime(el.currentTime));
      el.addEventListener("play", () => setPlaying(true));
      el.addEventListener("pause", () => setPlaying(false));
      el.addEventListener("ended", () => setPlaying(false));
      audio.current = el;
    }
    audio.current.playbackRate = speed;
    return audio.current;
  }
  useEffect(() => () => audio.current && audio.current.pause(), []);

  function toggle() {
    const el = element();
    if (el.paused) {
      claim({ pause: () => el.pause() });
      el.play().catch(() => {});
    } else el.pause();
  }
  function seek(to) {
    const el = element();
    el.currentTime = Math.min(Math.max(0, to), duration || el.duration || 0);
    setTime(el.currentTime);
  }
  function changeSpeed(value) {
    setSpeed(value);
    if (audio.current) audio.current.playbackRate = value;
  }
  function keyDown(event) {
    const moves = { ArrowRight: 5, ArrowUp: 5, ArrowLeft: -5, ArrowDown: -5 };
    if (event.key in moves) seek(time + moves[event.key]);
    else if (event.key === "Home") seek(0);
    else if (event.key === "End") seek(duration);
    else if (event.key === " " || event.key === "Enter") toggle();
    else return;
    event.preventDefault();
  }
  function clickWave(event) {
    const box = event.currentTarget.getBoundingClientRect();
    seek(((event.clientX - box.left) / box.width) * duration);
  }

  const peaks = voice.peaks && voice.peaks.length ? voice.peaks : Array(100).fill(0.1);
  const at = duration ? time / duration : 0;
  const words = transcript && transcript.segments ? transcript.segments.flatMap((s) => s.words || []) : [];
  return html`<div class="voice-note" data-voice=${voice.status} data-memo-id=${voice.id}
    data-playing=${playing ? "true" : "false"} data-speed=${String(speed)} data-time=${time.toFixed(2)}>
    <div class="voice-controls">
      <button type="button" class="icon-button voice-play" aria-label=${(playing ? "Pause " : "Play ") + label} onClick=${toggle}>
        <${Icon} name=${playing ? "pause" : "play"} />
      </button>
      <div class="waveform" role="slider" tabindex="0" aria-label=${"Position in the " + label}
        aria-valuemin="0" aria-valuemax=${Math.round(duration)} aria-valuenow=${Math.round(time)}
        aria-valuetext=${`${clock(time)} of ${clock(duration)}`} onKeyDown=${keyDown} onClick=${clickWave}>
        ${peaks.map((peak, i) => html`<span key=${i} class=${"bar" + (i / peaks.length < at ? " done" : "")}
          style=${{ height: `${Math.max(8, peak * 100)}%` }}></span>`)}
      </div>
      <span class="voice-time" aria-hidden="true">${clock(time)} / ${clock(duration)}</span>
      <select class="voice-speed" aria-label="Playback speed" value=${String(speed)}
        onChange=${(e) => changeSpeed(Number(e.currentTarget.value))}>
        ${SPEEDS.map((s) => html`<option key=${s} value=${String(s)}>${s}x</option>`)}
      </select>
    </div>
    ${voice.status === "transcribing" && html`<p class="voice-status meta" role="status">Transcribing…</p>`}
    ${voice.status === "failed" &&
    html`<p class="voice-status failure" role="note">Transcription failed: ${voice.error || "unknown error"}. The recording still plays.</p>`}
    ${words.length > 0 &&
    html`<p class="voice-transcript" aria-label=${"Transcript of the " + label}>
      ${words.map((w, i) => html`<span key=${i} class=${"word" + (time >= w.start && time < w.end ? " now" : "")}
        data-start=${w.start} onClick=${() => seek(w.start)}>${w.text} </span>`)}
    </p>`}
  </div>`;
}

/** Read a finished agent reply aloud on request: POST /v1/voice/speech, then its sentences
 * play as they are synthesized (voice.memo.speech), and the player replaces the button. */
function ListenButton({ message }) {
  loadStatus();
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState(null);
  const status = voiceStatus.value;
  if (!status || !status.available) return null;

  async function listen() {
    setAsking(true);
    setError(null);
    listening.add(message.id);
    try {
      const body = await post("/v1/voice/speech", { message_id: message.id });
      const memo = body.memo;
      if (memo.status === "transcribed") spoken.set(message.id, memo);
      else if (!speech.has(message.id)) speech.set(message.id, { memoId: memo.id, clips: [] });
      speechVersion.value++;
      if (memo.status === "speaking") playClips(message.id);
    } catch (failure) {
      listening.delete(message.id);
      setError("It could not be read aloud: " + ((failure && failure.message) || "unknown error"));
    } finally {
      setAsking(false);
    }
  }

  return html`<div class="voice-listen">
    <button type="button" class="small secondary" aria-label="Listen to this reply" disabled=${asking} onClick=${listen}>
      <${Icon} name="play" /> Listen
    </button>
    ${error && html`<span class="voice-error" role="alert">${error}</span>`}
  </div>`;
}

// --- recording --------------------------------------------------------------------------------

/** The composer's microphone button and, while recording, its panel. */
export function RecordButton({ channelId, threadId, onSent }) {
  loadStatus();
  const [rec, setRec] = useState(null); // {phase, elapsed, level, text, error, progress}
  const session = useRef(null);
  const status = voiceStatus.value;
  if (!status || !status.available) return null;

  const update = (patch) => setRec((old) => ({ ...(old || {}), ...patch }));

  async function start() {
    if (session.current) return;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      const name = error && error.name;
      const refused = name === "NotAllowedError" || name === "SecurityError";
      update({
        phase: "error",
        error: refused
          ? "Microphone access was refused. Allow the microphone for this site in your browser's settings to record a voice memo."
          : name === "NotFoundError"
            ? "No microphone was found. Connect one and try again."
            : "The microphone could not be opened: " + ((error && error.message) || "unknown error"),
      });
      return;
    }
    const type = MediaRecorder.isTypeSupported("audio/webm;codecs=opus") ? "audio/webm;codecs=opus" : "";
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const chunks = [];
    const where = threadId ? `thread_id=${encodeURIComponent(threadId)}` : `channel_id=${encodeURIComponent(channelId)}`;
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/voice/live?${where}`);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "partial") update({ text: data.text });
    };
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Uint8Array(analyser.fftSize);
    const began = performance.now();
    const s = { recorder, stream, socket, context, chunks, type: recorder.mimeType || "audio/webm", frame: 0, cancelled: false };
    session.current = s;
    const tick = () => {
      analyser.getByteTimeDomainData(samples);
      let sum = 0;
      for (const v of samples) sum += (v - 128) * (v - 128);
      const level = Math.min(1, Math.sqrt(sum / samples.length) / 40);
      update({ elapsed: (performance.now() - began) / 1000, level });
      const limit = voiceStatus.value.limits.max_seconds;
      if ((performance.now() - began) / 1000 >= limit) stop(true);
      else s.frame = requestAnimationFrame(tick);
    };
    recorder.ondataavailable = (event) => {
      if (!event.data.size) return;
      chunks.push(event.data);
      if (socket.readyState === WebSocket.OPEN) event.data.arrayBuffer().then((b) => socket.readyState === 1 && socket.send(b));
    };
    recorder.onstop = () => s.done && s.done();
    recorder.start(250);
    update({ phase: "recording", elapsed: 0, level: 0, text: "", error: null, progress: null });
    s.frame = requestAnimationFrame(tick);
  }

  function release(s) {
    cancelAnimationFrame(s.frame);
    s.stream.getTracks().forEach((t) => t.stop());
    s.context.close().catch(() => {});
    if (s.socket.readyState <= 1) {
      if (s.socket.readyState === 1) s.socket.send(JSON.stringify({ type: "cancel" }));
      s.socket.close();
    }
    session.current = null;
  }

  function cancel() {
    const s = session.current;
    if (!s) return setRec(null);
    s.done = null;
    s.recorder.stop();
    release(s);
    setRec(null);
    state.announce("Recording discarded");
  }

  function stop(send = true) {
    const s = session.current;
    if (!s || s.recorder.state === "inactive") return;
    s.done = () => {
      release(s);
      if (send) upload(new Blob(s.chunks, { type: s.type }));
    };
    s.recorder.stop();
  }

  function upload(blob) {
    const form = new FormData();
    form.append(threadId ? "thread_id" : "channel_id", threadId || channelId);
    form.append("file", blob, "voice-memo.webm");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/voice/memos");
    xhr.setRequestHeader("Idempotency-Key", newKey("memo"));
    const me = state.me.value;
    if (me && me.csrf_token) xhr.setRequestHeader("X-CSRF-Token", me.csrf_token);
    xhr.upload.onprogress = (event) => event.lengthComputable && update({ progress: event.loaded / event.total });
    xhr.onload = () => {
      if (xhr.status === 201) {
        const body = JSON.parse(xhr.responseText);
        voiceThreads.set(body.thread.id, Date.now());
        setRec(null);
        state.announce("Voice memo sent");
        if (onSent) onSent(body);
      } else {
        let message = `the upload failed (${xhr.status})`;
        try {
          message = JSON.parse(xhr.responseText).error.message;
        } catch {}
        update({ phase: "error", error: "The voice memo was not sent: " + message, progress: null });
      }
    };
    xhr.onerror = () => update({ phase: "error", error: "The voice memo was not sent: the server cannot be reached.", progress: null });
    update({ phase: "uploading", progress: 0 });
    xhr.send(form);
  }

  if (!rec) {
    return html`<button type="button" class="icon-button voice-record" aria-label="Record a voice memo" onClick=${start}>
      <${Icon} name="mic" />
    </button>`;
  }
  return html`<div class="voice-recorder" role="group" aria-label="Voice memo">
    ${rec.phase === "error"
      ? html`<p class="voice-error" role="alert">${rec.error}</p>
          <button type="button" class="small secondary" onClick=${() => setRec(null)}>Dismiss</button>`
      : html`<div class="voice-recorder-row">
            <span class="voice-dot" aria-hidden="true"></span>
            <span class="voice-elapsed" role="timer" aria-label="Recording time">${clock(rec.elapsed)}</span>
            <meter class="voice-level" min="0" max="1" value=${rec.level || 0} aria-label="Microphone level"></meter>
            ${rec.phase === "uploading"
              ? html`<progress class="voice-progress" max="1" value=${rec.progress || 0} aria-label="Uploading the voice memo"></progress>`
              : html`<button type="button" class="small secondary" aria-label="Cancel recording" onClick=${cancel}>Cancel</button>
                  <button type="button" class="small" data-action="send-voice" aria-label="Send voice memo" onClick=${() => stop(true)}>
                    Send
                  </button>`}
          </div>
          <p class="voice-live" aria-live="polite" aria-label="Live transcript">${rec.text || (rec.phase === "recording" ? "Listening…" : "")}</p>`}
  </div>`;
}
