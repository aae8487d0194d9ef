/**
 * The one schedule of every stream's silence checks: heartbeats, and deadlines (a deadline is a silence that nothing
 * breaks). 10,000 idle streams cost one timer, and each heartbeat still comes exactly `silenceMs` after the stream's
 * last write.
 * @module
 */
import { report } from "./errors.ts";
import { timersOutliveTheirRequest } from "./runtime.ts";

/**
 * A stream as the schedule sees it. A stream is its own entry, with these fields and `onSilence` a method, so an idle
 * stream holds no watch object and no closures for its keep-alive.
 */
export interface Watched {
  /** 0 while not watched. */
  silenceMs: number;
  lastWrite: number;
  due: number;
  /** Its place in the schedule's heap; -1 while not in one. */
  index: number;
  schedule: Schedule | undefined;
  /** Only where timers cannot be shared: this stream's own timer. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Called each time `silenceMs` pass with no write. */
  onSilence(): void;
  /** `onSilence` threw: this stream, and only it, has failed. It is no longer watched. */
  onWatchFailed(error: unknown): void;
}

type SetTimer = typeof setTimeout;

/** Every watch that shares one timer API, in a min-heap by `due`, behind one timer set for the earliest. */
export interface Schedule {
  setTimer: SetTimer;
  clearTimer: typeof clearTimeout;
  heap: Watched[];
  timer: ReturnType<typeof setTimeout> | undefined;
  timerDue: number;
}

// Keyed by the setTimeout in force when a stream starts, so that a test's fake timers get a schedule of their own and
// never share one with streams started under real timers.
const schedules = new Map<SetTimer, Schedule>();

/** Starts watching: `onSilence` is called each time `silenceMs` pass with no `touch`. */
export function watch(watched: Watched, silenceMs: number): void {
  const now = Date.now();
  watched.silenceMs = silenceMs;
  watched.lastWrite = now;
  watched.due = now + silenceMs;
  if (!timersOutliveTheirRequest) {
    watched.timer = setTimeout(ownCheck, silenceMs, watched);
    return;
  }
  const schedule = scheduleFor(setTimeout);
  watched.schedule = schedule;
  add(schedule, watched);
}

/** Stops watching; harmless when not watched. */
export function unwatch(watched: Watched): void {
  if (watched.index !== -1 && watched.schedule !== undefined) remove(watched.schedule, watched);
  if (watched.timer !== undefined) {
    clearTimeout(watched.timer);
    watched.timer = undefined;
  }
  watched.silenceMs = 0;
}

/** A write only records the time: no timer is reset, so a busy stream pays one clock read per write. */
export function touch(watched: Watched, now = Date.now()): void {
  watched.lastWrite = now;
}

/** A stream's own timer, never reset on a write: when it fires early, it sleeps for the rest of the silence. */
function ownCheck(watched: Watched): void {
  watched.timer = undefined;
  if (!check(watched, Date.now())) return;
  // onSilence may have ended the stream; a timer armed after that would outlive it.
  if (watched.silenceMs !== 0) watched.timer = setTimeout(ownCheck, watched.due - Date.now(), watched);
}

/**
 * Writes a heartbeat if the stream has been silent long enough, and sets when to look next. A throw fails that stream
 * alone; false then.
 */
function check(watched: Watched, now: number): boolean {
  try {
    if (now - watched.lastWrite >= watched.silenceMs) {
      watched.onSilence();
      watched.lastWrite = now;
    }
    watched.due = watched.lastWrite + watched.silenceMs;
    return true;
  } catch (error) {
    unwatch(watched);
    try {
      watched.onWatchFailed(error);
    } catch (alsoFailed) {
      report(alsoFailed);
    }
    return false;
  }
}

function scheduleFor(setTimer: SetTimer): Schedule {
  let schedule = schedules.get(setTimer);
  if (schedule === undefined) {
    schedule = { setTimer, clearTimer: clearTimeout, heap: [], timer: undefined, timerDue: Number.POSITIVE_INFINITY };
    schedules.set(setTimer, schedule);
  }
  return schedule;
}

function add(schedule: Schedule, watched: Watched): void {
  watched.index = schedule.heap.push(watched) - 1;
  siftUp(schedule.heap, watched.index);
  arm(schedule);
}

function remove(schedule: Schedule, watched: Watched): void {
  const { heap } = schedule;
  const last = heap.pop() as Watched;
  if (last !== watched) {
    heap[watched.index] = last;
    last.index = watched.index;
    siftDown(heap, siftUp(heap, last.index));
  }
  watched.index = -1;
  if (heap.length === 0) {
    // No stream left: no timer left, and no schedule kept for a timer API that may be gone (a test's fake one).
    if (schedule.timer !== undefined) schedule.clearTimer(schedule.timer);
    schedule.timer = undefined;
    schedules.delete(schedule.setTimer);
  }
}

/** Sets the timer for the earliest check, unless it is already set for that time or earlier. */
function arm(schedule: Schedule): void {
  const first = schedule.heap[0];
  if (first === undefined || (schedule.timer !== undefined && schedule.timerDue <= first.due)) return;
  if (schedule.timer !== undefined) schedule.clearTimer(schedule.timer);
  schedule.timerDue = first.due;
  schedule.timer = schedule.setTimer(fire, Math.max(0, first.due - Date.now()), schedule);
}

function fire(schedule: Schedule): void {
  schedule.timer = undefined;
  const { heap } = schedule;
  const now = Date.now();
  for (let first = heap[0]; first !== undefined && first.due <= now; first = heap[0]) {
    // check may have stopped this stream, or others; only a watch still in the heap is moved.
    if (check(first, now) && first.index !== -1) siftDown(heap, first.index);
  }
  arm(schedule);
}

function siftUp(heap: Watched[], index: number): number {
  const watched = heap[index] as Watched;
  while (index > 0) {
    const parentIndex = (index - 1) >> 1;
    const parent = heap[parentIndex] as Watched;
    if (parent.due <= watched.due) break;
    heap[index] = parent;
    parent.index = index;
    index = parentIndex;
  }
  heap[index] = watched;
  watched.index = index;
  return index;
}

function siftDown(heap: Watched[], index: number): void {
  const watched = heap[index] as Watched;
  for (;;) {
    const left = 2 * index + 1;
    if (left >= heap.length) break;
    const right = left + 1;
    const child = right < heap.length && (heap[right] as Watched).due < (heap[left] as Watched).due ? right : left;
    const next = heap[child] as Watched;
    if (watched.due <= next.due) break;
    heap[index] = next;
    next.index = index;
    index = child;
  }
  heap[index] = watched;
  watched.index = index;
}

/** Watches a stream for silence through a callback: `touch()` on every write, `stop()` when the stream ends. */
export interface SilenceTimer {
  touch(): void;
  stop(): void;
}

/** A watch whose `onSilence` is a callback, for what is not a stream (a deadline, a channel's log wait). */
class CallbackWatch implements Watched, SilenceTimer {
  silenceMs = 0;
  lastWrite = 0;
  due = 0;
  index = -1;
  schedule: Schedule | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  readonly #onSilence: () => void;
  constructor(onSilence: () => void) {
    this.#onSilence = onSilence;
  }
  onSilence(): void {
    this.#onSilence();
  }
  onWatchFailed(error: unknown): void {
    report(error);
  }
  touch(): void {
    touch(this);
  }
  stop(): void {
    unwatch(this);
  }
}

/** Calls `onSilence` each time `silenceMs` pass with no `touch()`. */
export function silenceTimer(silenceMs: number, onSilence: () => void): SilenceTimer {
  const timer = new CallbackWatch(onSilence);
  watch(timer, silenceMs);
  return timer;
}

/**
 * Calls `onDue` once, `ms` from now, on the shared schedule, so 10,000 streams with a `maxDuration` still cost one
 * timer. Returns how to cancel it.
 */
export function deadline(ms: number, onDue: () => void): () => void {
  const timer = silenceTimer(ms, () => {
    timer.stop();
    onDue();
  });
  return () => timer.stop();
}
