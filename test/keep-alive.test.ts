import fc from "fast-check";
import { afterEach, describe, expect, test, vi } from "vitest";
import { silenceTimer } from "../src/keep-alive.ts";

afterEach(() => {
  vi.useRealTimers();
});

describe("silenceTimer", () => {
  test("calls onSilence once each silenceMs without a touch", async () => {
    vi.useFakeTimers();
    const onSilence = vi.fn();
    const timer = silenceTimer(1_000, onSilence);
    await vi.advanceTimersByTimeAsync(999);
    expect(onSilence).toHaveBeenCalledTimes(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(onSilence).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(onSilence).toHaveBeenCalledTimes(4);
    timer.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  test("a touch restarts the silence, however late in it", async () => {
    vi.useFakeTimers();
    const onSilence = vi.fn();
    const timer = silenceTimer(1_000, onSilence);
    await vi.advanceTimersByTimeAsync(900);
    timer.touch();
    await vi.advanceTimersByTimeAsync(999);
    expect(onSilence).toHaveBeenCalledTimes(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(onSilence).toHaveBeenCalledTimes(1);
    timer.stop();
  });

  test("keeps one timer however many touches, and none after stop", async () => {
    vi.useFakeTimers();
    const timer = silenceTimer(1_000, () => {});
    for (let i = 0; i < 100; i++) timer.touch();
    expect(vi.getTimerCount()).toBe(1);
    timer.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  test("arms no new timer when onSilence itself stops it", async () => {
    vi.useFakeTimers();
    const timer = silenceTimer(1_000, () => timer.stop());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("silenceTimer: many streams", () => {
  test("streams share one timer, and each still hears its own silence exactly", async () => {
    vi.useFakeTimers();
    const calls: string[] = [];
    const first = silenceTimer(1_000, () => calls.push(`first at ${Date.now() - start}`));
    const start = Date.now();
    await vi.advanceTimersByTimeAsync(300);
    const second = silenceTimer(1_000, () => calls.push(`second at ${Date.now() - start}`));
    const third = silenceTimer(500, () => calls.push(`third at ${Date.now() - start}`));
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(400);
    first.touch();
    await vi.advanceTimersByTimeAsync(1_300);
    expect(calls).toEqual(["third at 800", "second at 1300", "third at 1300", "first at 1700", "third at 1800"]);
    first.stop();
    second.stop();
    expect(vi.getTimerCount()).toBe(1);
    third.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  test("a stream stopped from inside a heartbeat leaves the others on time", async () => {
    vi.useFakeTimers();
    const calls: string[] = [];
    const others: ReturnType<typeof silenceTimer>[] = [];
    const quitter = silenceTimer(1_000, () => {
      calls.push("quitter");
      quitter.stop();
    });
    for (let i = 0; i < 5; i++) others.push(silenceTimer(1_000, () => calls.push(`other ${i}`)));
    await vi.advanceTimersByTimeAsync(2_000);
    expect(calls.filter((call) => call === "quitter")).toHaveLength(1);
    expect(calls.filter((call) => call.startsWith("other"))).toHaveLength(10);
    for (const other of others) other.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("silenceTimer: against a model", () => {
  type Step =
    | { kind: "start"; silenceMs: number }
    | { kind: "touch"; which: number }
    | { kind: "stop"; which: number }
    | { kind: "wait"; ms: number };
  // Weighted so that runs hold many streams at once: a heap shows its bugs only when it has depth.
  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant("start" as const), silenceMs: fc.integer({ min: 1, max: 50 }) }),
    },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("touch" as const), which: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("stop" as const), which: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 120 }) }) },
  );

  test("any mix of streams, writes, stops and waits gets a heartbeat exactly silenceMs after each last write", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 30, maxLength: 120 }), async (steps) => {
        vi.useFakeTimers();
        const start = Date.now();
        const heard: string[] = [];
        const expected: string[] = [];
        const streams: { timer: ReturnType<typeof silenceTimer>; silenceMs: number; lastWrite: number; on: boolean }[] =
          [];
        let now = 0;
        for (const s of steps) {
          if (s.kind === "start") {
            const index = streams.length;
            const timer = silenceTimer(s.silenceMs, () => heard.push(`${index}@${Date.now() - start}`));
            streams.push({ timer, silenceMs: s.silenceMs, lastWrite: now, on: true });
          } else if (s.kind === "wait") {
            for (const [index, stream] of streams.entries()) {
              while (stream.on && stream.lastWrite + stream.silenceMs <= now + s.ms) {
                stream.lastWrite += stream.silenceMs;
                expected.push(`${index}@${stream.lastWrite}`);
              }
            }
            await vi.advanceTimersByTimeAsync(s.ms);
            now += s.ms;
          } else {
            const stream = streams[s.which % Math.max(1, streams.length)];
            if (stream === undefined || !stream.on) continue;
            if (s.kind === "touch") {
              stream.timer.touch();
              stream.lastWrite = now;
            } else {
              stream.timer.stop();
              stream.on = false;
            }
          }
        }
        for (const stream of streams) stream.timer.stop();
        const timersLeft = vi.getTimerCount();
        vi.useRealTimers();
        expect(heard.sort()).toEqual(expected.sort());
        expect(timersLeft).toBe(0);
      }),
      { numRuns: 500 },
    );
  });
});

describe("silenceTimer: on workerd", () => {
  test("each stream keeps a timer of its own, since workerd ties a timer to its request", async () => {
    vi.stubGlobal("navigator", { userAgent: "Cloudflare-Workers" });
    vi.resetModules();
    try {
      const workerd = await import("../src/keep-alive.ts");
      vi.useFakeTimers();
      const calls: string[] = [];
      const start = Date.now();
      const first = workerd.silenceTimer(1_000, () => calls.push(`first at ${Date.now() - start}`));
      const second = workerd.silenceTimer(1_000, () => calls.push(`second at ${Date.now() - start}`));
      expect(vi.getTimerCount()).toBe(2);
      await vi.advanceTimersByTimeAsync(600);
      second.touch();
      await vi.advanceTimersByTimeAsync(1_100);
      expect(calls).toEqual(["first at 1000", "second at 1600"]);
      first.stop();
      second.stop();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.unstubAllGlobals();
      vi.resetModules();
    }
  });
});
