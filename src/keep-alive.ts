/** Watches a stream for silence: `touch()` on every write, `stop()` when the stream ends. */
export interface SilenceTimer {
  touch(): void;
  stop(): void;
}

/**
 * Calls `onSilence` each time `silenceMs` pass with no `touch()`. One timer, never reset on a write: a write
 * only records the time, and the timer, when it fires early, sleeps for the rest of the silence. So a busy
 * stream pays a `Date.now()` per write instead of a `clearTimeout` and a `setTimeout`.
 */
export function silenceTimer(silenceMs: number, onSilence: () => void): SilenceTimer {
  let lastWrite = Date.now();
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined = setTimeout(check, silenceMs);

  function check(): void {
    timer = undefined;
    const quietMs = Date.now() - lastWrite;
    if (quietMs >= silenceMs) {
      onSilence();
      lastWrite = Date.now();
    }
    // onSilence may have ended the stream; a timer armed after that would outlive it.
    if (!stopped) timer = setTimeout(check, quietMs >= silenceMs ? silenceMs : silenceMs - quietMs);
  }

  return {
    touch() {
      lastWrite = Date.now();
    },
    stop() {
      stopped = true;
      // Workers type clearTimeout's argument as number | null, not undefined.
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
