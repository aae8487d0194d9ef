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
