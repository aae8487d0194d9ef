/**
 * API.md, "Operating it": what `onClose` is told, field by field, for a source's stream and a channel subscriber.
 * Why each reason comes is tested where each way of ending is (response, channel, operating, isolation).
 */
import { afterEach, describe, expect, test, vi } from "vitest";
import { EventChannel, eventSourceResponse, type StreamEnd } from "../src/index.ts";
import { readerOf } from "./helpers.ts";

const withId = (id: string) => new Request("http://localhost/events", { headers: { "last-event-id": id } });
const utf8 = (text: string) => new TextEncoder().encode(text).byteLength;

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("onClose: what a stream is told when it ends", () => {
  test("events counts bare strings and inputs with data or an event type; an id, retry or comment alone is none", async () => {
    const ends: StreamEnd[] = [];
    const inputs = ["a", { event: "tick" }, { data: 1 }, { id: "7" }, { retry: 10 }, { comment: "c" }];
    const response = eventSourceResponse(inputs, { onClose: (end) => ends.push(end) });
    const text = await response.text();
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({ reason: "done", events: 3, bytes: utf8(text), lastEventId: "7" });
  });

  test("lastEventId is the last id written, else the request's, else null", async () => {
    const ends: StreamEnd[] = [];
    const onClose = (end: StreamEnd) => ends.push(end);
    await eventSourceResponse(["no id"], { request: withId("41"), onClose }).text();
    await eventSourceResponse([{ id: "42", data: "x" }], { request: withId("41"), onClose }).text();
    await eventSourceResponse(["no id"], { onClose }).text();
    expect(ends.map((end) => end.lastEventId)).toEqual(["41", "42", null]);
  });

  test("bytes counts the first chunk and every heartbeat", async () => {
    vi.useFakeTimers();
    const ends: StreamEnd[] = [];
    const reader = readerOf(
      eventSourceResponse(
        (async function* () {
          await new Promise(() => {});
        })(),
        { retry: 1_000, keepAlive: 100, onClose: (end) => ends.push(end) },
      ),
    );
    let read = "";
    const reading = (async () => {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
        read += new TextDecoder().decode(chunk.value);
    })();
    await vi.advanceTimersByTimeAsync(350);
    await reader.cancel();
    await reading;
    expect(read).toBe("retry: 1000\n\n:\n\n:\n\n:\n\n");
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({ reason: "client", events: 0, bytes: utf8("retry: 1000\n\n") + 3 * utf8(":\n\n") });
  });

  test("duration is the ms from the response's creation to its end", async () => {
    vi.useFakeTimers();
    const ends: StreamEnd[] = [];
    const controller = new AbortController();
    const response = eventSourceResponse([], { signal: controller.signal, onClose: (end) => ends.push(end) });
    await vi.advanceTimersByTimeAsync(250);
    controller.abort();
    await response.text();
    expect(ends).toEqual([expect.objectContaining({ reason: "signal", duration: 250 })]);
  });

  test("a channel subscriber is told the events and bytes it was sent, and its last id", async () => {
    const ends: StreamEnd[] = [];
    const channel = new EventChannel();
    const response = channel.response(withId("3"), { onClose: (end) => ends.push(end) });
    channel.emit({ id: "4", data: "four" });
    channel.emit({ comment: "not an event" });
    channel.close();
    const text = await response.text();
    expect(ends).toEqual([
      expect.objectContaining({ reason: "closed", events: 1, bytes: utf8(text), lastEventId: "4" }),
    ]);
  });

  test("a throw and a rejection from onClose are reported, once each, and change nothing", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const thrown = eventSourceResponse(["a"], {
      onClose: () => {
        throw new Error("thrown by onClose");
      },
    });
    const rejected = eventSourceResponse(["b"], { onClose: () => Promise.reject(new Error("rejected by onClose")) });
    expect(await thrown.text()).toBe(":\n\ndata: a\n\n");
    expect(await rejected.text()).toBe(":\n\ndata: b\n\n");
    await new Promise((resolve) => setTimeout(resolve, 0));
    const lines = errors.mock.calls.map((call) => String(call[0]));
    expect(lines.filter((line) => line.includes("thrown by onClose"))).toHaveLength(1);
    expect(lines.filter((line) => line.includes("rejected by onClose"))).toHaveLength(1);
  });
});
