import { isWorkerd } from "./runtime.ts";

/** Watches a stream for silence: `touch()` on every write, `stop()` when the stream ends. */
export interface SilenceTimer {
  touch(): void;
  stop(): void;
}

type SetTimer = typeof setTimeout;
type Handle = ReturnType<typeof setTimeout>;

/**
 * A stream watched for silence: when it last wrote, and when its silence is next checked. A stream that extends
 * it is its own entry in the schedule, with `onSilence` a method: an idle stream then holds no object and no
 * closures for its keep-alive (measured on Node 20 with 10,000 idle streams: about 80 bytes of heap less per
 * stream than a watch object with an `onSilence` closure). `silenceTimer` wraps a callback in one.
 */
export abstract class Watch implements SilenceTimer {
  silenceMs = 0;
  lastWrite = 0;
  due = 0;
  /** Its place in the schedule's heap; -1 while not in one. */
  index = -1;
  schedule: Schedule | undefined;
  /** On workerd only: this stream's own timer. */
  timer: Handle | undefined;

  /** Called each time `silenceMs` pass with no `touch()`. */
  abstract onSilence(): void;

  /** Starts watching: `onSilence` is called each time `silenceMs` pass with no `touch()`. */
  watch(silenceMs: number): void {
    const now = Date.now();
    this.silenceMs = silenceMs;
    this.lastWrite = now;
    this.due = now + silenceMs;
    if (!sharesTimers) {
      this.timer = setTimeout(ownCheck, silenceMs, this);
      return;
    }
    this.schedule = scheduleFor(setTimeout);
    add(this.schedule, this);
  }

  touch(): void {
    // A stream that is not watched (no keep-alive, or not yet read) does not pay for a clock read per write.
    if (this.silenceMs !== 0) this.lastWrite = Date.now();
  }

  stop(): void {
    if (this.index !== -1 && this.schedule !== undefined) remove(this.schedule, this);
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.silenceMs = 0;
  }
}

/** A watch whose `onSilence` is a callback. */
class CallbackWatch extends Watch {
  readonly #onSilence: () => void;
  constructor(onSilence: () => void) {
    super();
    this.#onSilence = onSilence;
  }
  onSilence(): void {
    this.#onSilence();
  }
}

/** Every watch that shares one timer API, in a min-heap by `due`, behind one timer set for the earliest. */
interface Schedule {
  setTimer: SetTimer;
  clearTimer: typeof clearTimeout;
  heap: Watch[];
  timer: Handle | undefined;
  timerDue: number;
}

// workerd ties a timer, like a stream, to the request that made it: a timer shared by the streams of many
// requests would write into other requests' streams (an error there) and die with the first request. So there,
// each stream keeps a timer of its own.
const sharesTimers = !isWorkerd;

// Keyed by the setTimeout in force when a stream starts, so that a test's fake timers get a schedule of their
// own and never share one with streams started under real timers.
const schedules = new Map<SetTimer, Schedule>();

/**
 * Calls `onSilence` each time `silenceMs` pass with no `touch()`.
 *
 * A write only records the time: no timer is reset, so a busy stream pays one `Date.now()` per write. Where
 * timers may be shared, every stream waits in one heap behind one timer, set for the earliest check; when a
 * check finds a stream that wrote in the meantime, it moves that stream's check to the end of its new
 * silence. 10,000 idle streams cost one timer, and each heartbeat still comes exactly `silenceMs` after the
 * last write.
 */
export function silenceTimer(silenceMs: number, onSilence: () => void): SilenceTimer {
  const watch = new CallbackWatch(onSilence);
  watch.watch(silenceMs);
  return watch;
}

/** A stream's own timer, never reset on a write: when it fires early, it sleeps for the rest of the silence. */
function ownCheck(watch: Watch): void {
  watch.timer = undefined;
  checkSilence(watch, Date.now());
  // onSilence may have ended the stream; a timer armed after that would outlive it.
  if (watch.silenceMs !== 0) watch.timer = setTimeout(ownCheck, watch.due - Date.now(), watch);
}

/** Writes a heartbeat if the stream has been silent long enough, and sets when to look next. */
function checkSilence(watch: Watch, now: number): void {
  if (now - watch.lastWrite >= watch.silenceMs) {
    watch.onSilence();
    watch.lastWrite = now;
  }
  watch.due = watch.lastWrite + watch.silenceMs;
}

function scheduleFor(setTimer: SetTimer): Schedule {
  let schedule = schedules.get(setTimer);
  if (schedule === undefined) {
    schedule = { setTimer, clearTimer: clearTimeout, heap: [], timer: undefined, timerDue: Number.POSITIVE_INFINITY };
    schedules.set(setTimer, schedule);
  }
  return schedule;
}

function add(schedule: Schedule, watch: Watch): void {
  watch.index = schedule.heap.push(watch) - 1;
  siftUp(schedule.heap, watch.index);
  arm(schedule);
}

function remove(schedule: Schedule, watch: Watch): void {
  const { heap } = schedule;
  const last = heap.pop() as Watch;
  if (last !== watch) {
    heap[watch.index] = last;
    last.index = watch.index;
    siftDown(heap, siftUp(heap, last.index));
  }
  watch.index = -1;
  if (heap.length === 0) {
    // No stream left: no timer left, and no schedule kept for a timer API that may be gone (a test's fake one).
    if (schedule.timer !== undefined) schedule.clearTimer(schedule.timer);
    schedules.delete(schedule.setTimer);
  }
}

/** Sets the timer for the earliest check, unless it is already set for that time or earlier. */
function arm(schedule: Schedule): void {
  const first = schedule.heap[0];
  if (first === undefined || (schedule.timer !== undefined && schedule.timerDue <= first.due)) return;
  if (schedule.timer !== undefined) schedule.clearTimer(schedule.timer);
  schedule.timerDue = first.due;
  schedule.timer = schedule.setTimer(() => fire(schedule), Math.max(0, first.due - Date.now()));
}

function fire(schedule: Schedule): void {
  schedule.timer = undefined;
  const { heap } = schedule;
  const now = Date.now();
  for (let first = heap[0]; first !== undefined && first.due <= now; first = heap[0]) {
    checkSilence(first, now);
    // onSilence may have stopped this stream, or others; only a watch still in the heap is moved.
    if (first.index !== -1) siftDown(heap, first.index);
  }
  arm(schedule);
}

function siftUp(heap: Watch[], index: number): number {
  const watch = heap[index] as Watch;
  while (index > 0) {
    const parentIndex = (index - 1) >> 1;
    const parent = heap[parentIndex] as Watch;
    if (parent.due <= watch.due) break;
    heap[index] = parent;
    parent.index = index;
    index = parentIndex;
  }
  heap[index] = watch;
  watch.index = index;
  return index;
}

function siftDown(heap: Watch[], index: number): void {
  const watch = heap[index] as Watch;
  for (;;) {
    const left = 2 * index + 1;
    if (left >= heap.length) break;
    const right = left + 1;
    const child = right < heap.length && (heap[right] as Watch).due < (heap[left] as Watch).due ? right : left;
    const next = heap[child] as Watch;
    if (watch.due <= next.due) break;
    heap[index] = next;
    next.index = index;
    index = child;
  }
  heap[index] = watch;
  watch.index = index;
}

/**
 * Calls `onDue` once, `ms` from now, on the same shared schedule as the silence timers (a deadline is a silence
 * that nothing breaks), so 10,000 streams with a `maxDuration` still cost one timer. Returns how to cancel it.
 */
export function deadline(ms: number, onDue: () => void): () => void {
  const timer = silenceTimer(ms, () => {
    timer.stop();
    onDue();
  });
  return () => timer.stop();
}
