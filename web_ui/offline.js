// The views a person has open are kept for reading offline (cache.js): when opened, and again a
// moment after each change while open. A copy is consistent with the realtime log up to the seq
// the stream had applied when it was saved (a copy shown from the cache keeps the seq it came
// with until it has caught up), so that the stream can resume from there when it is opened again
// offline and the connection returns (store.js catchUp, realtime.js).
import { effect } from "./deps.js";
import * as state from "./state.js";
import { lastEventSeq } from "./realtime.js";
import { touch, saveThread, saveChannel } from "./cache.js";

const SAVE_AFTER_MS = 800;

function consistentSeq(model) {
  if (model.stale) return model.stale.seq;
  return state.connection.value === "connected" ? lastEventSeq() : null;
}

function follow(kind, model, ready, save) {
  touch(kind, model.id);
  let timer = null;
  const saveNow = () => {
    clearTimeout(timer);
    timer = null;
    if (ready(model)) save(model, consistentSeq(model));
  };
  const stop = effect(() => {
    model.version.value; // every change of the model
    clearTimeout(timer);
    timer = setTimeout(saveNow, SAVE_AFTER_MS);
  });
  return () => {
    stop();
    if (timer) saveNow(); // leaving the view with a change not yet saved
  };
}

/** Keep an open thread (its newest messages, when the view is at its live end). */
export const keepThread = (model) =>
  follow("thread", model, (m) => m.loaded && !m.loading && m.atLiveEnd && m.thread && m.items.length > 0, saveThread);

/** Keep an open channel's thread list. */
export const keepChannel = (model) => follow("channel", model, (m) => m.loaded && !m.loading, saveChannel);
