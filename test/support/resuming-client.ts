/**
 * An SSE client with the reconnect loop of an EventSource behind a load balancer: `fetch` and the independent
 * parser (eventsource-parser), the `Last-Event-ID` header on every reconnect, the server's `retry` honoured,
 * and each new connection sent to the next instance, so a stream that ends, fails or is moved on purpose
 * resumes on another one. It records every event and every connection, for the fault tests to judge.
 */
import { createParser } from "eventsource-parser";
import { deferred } from "../helpers.ts";

/** How a connection ended: the server ended the stream, it failed (reset, refused), the test moved it, or stopped it. */
export type End = "ended" | "failed" | "moved" | "stopped";

export interface Connection {
  origin: string;
  /** The `Last-Event-ID` this connection sent, `null` for none. */
  sentId: string | null;
  /** Whether its first chunk arrived: the server had subscribed this client. */
  opened: boolean;
  /** When it was opened, by `performance.now()`. */
  openedAt?: number;
  end?: End;
  endedAt?: number;
  /** The last event id received when it ended. */
  lastId?: string | null;
  error?: string;
}

export interface Received {
  id: string;
  event: string | undefined;
  data: string;
}

/** A client must not need more connections than this in one test: a loop that keeps failing fails loudly. */
const MAX_CONNECTIONS = 200;

export class ResumingClient {
  /** Events with an id, in the order they arrived. */
  readonly received: Received[] = [];
  /** Events without an id (such as a reset notice). */
  readonly notices: Received[] = [];
  readonly connections: Connection[] = [];
  /** For each reconnect: ms from losing an open stream to the next stream's first chunk. */
  readonly gaps: number[] = [];
  lastEventId: string | null;
  #index: number;
  #retryMs = 1_000;
  #controller: AbortController | undefined;
  /** Moves asked for and not yet made. */
  #moves = 0;
  #stopped = false;
  #opened = deferred();
  #waiting: { id: string; done: () => void } | undefined;

  readonly name: string;
  readonly origins: string[];

  constructor(name: string, origins: string[], first: number, lastEventId: string | null = null) {
    this.name = name;
    this.origins = origins;
    this.#index = first % origins.length;
    this.lastEventId = lastEventId;
  }

  /** Resolves once the first connection has received its first chunk. */
  get opened(): Promise<void> {
    return this.#opened.promise;
  }

  /** The connection now open or opening. */
  get current(): Connection | undefined {
    return this.connections.at(-1);
  }

  /** Resolves once the event with this id has arrived (the ids of one stream only grow). */
  reached(id: string): Promise<void> {
    if (this.received.some((event) => event.id === id)) return Promise.resolve();
    const done = deferred();
    this.#waiting = { id, done: () => done.resolve() };
    return done.promise;
  }

  /**
   * Drops the current connection and reconnects at once to the next instance, as a load balancer might. Asked
   * between two connections, it drops the next one as soon as it is open.
   */
  move(): void {
    this.#moves += 1;
    if (this.current?.opened === true && this.current.end === undefined) this.#controller?.abort();
  }

  stop(): void {
    this.#stopped = true;
    this.#controller?.abort();
  }

  /** Connects, and reconnects after every end, until `stop()`; rejects past `deadline` (a `performance.now()`). */
  async run(deadline: number): Promise<void> {
    let lostAt: number | undefined;
    while (!this.#stopped) {
      if (performance.now() > deadline) throw new Error(`${this.name} was still running at its deadline`);
      if (this.connections.length >= MAX_CONNECTIONS)
        throw new Error(`${this.name} needed ${MAX_CONNECTIONS} connections`);
      const origin = this.origins[this.#index] as string;
      const connection: Connection = { origin, sentId: this.lastEventId, opened: false };
      this.connections.push(connection);
      const controller = new AbortController();
      this.#controller = controller;
      try {
        const headers: Record<string, string> = this.lastEventId === null ? {} : { "last-event-id": this.lastEventId };
        const response = await fetch(`${origin}/events`, { headers, signal: controller.signal });
        if (response.status !== 200 || response.body === null) throw new Error(`status ${response.status}`);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const parser = createParser({
          onEvent: ({ id, event, data }) => this.#dispatch({ id: id ?? "", event, data }, id !== undefined),
          onRetry: (ms) => {
            this.#retryMs = ms;
          },
        });
        for (;;) {
          const { done, value } = await reader.read();
          if (!connection.opened) {
            connection.opened = true;
            connection.openedAt = performance.now();
            if (lostAt !== undefined) this.gaps.push(connection.openedAt - lostAt);
            lostAt = undefined;
            this.#opened.resolve();
            if (this.#moves > 0) controller.abort();
          }
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
        }
        connection.end = "ended";
      } catch (error) {
        connection.end = this.#stopped ? "stopped" : this.#moves > 0 && connection.opened ? "moved" : "failed";
        connection.error = String(error);
      }
      if (connection.end === "moved") this.#moves -= 1;
      connection.endedAt = performance.now();
      connection.lastId = this.lastEventId;
      if (connection.opened) lostAt = connection.endedAt;
      if (this.#stopped) return;
      this.#index = (this.#index + 1) % this.origins.length;
      // EventSource waits `retry` before reconnecting; a move on purpose reconnects at once.
      if (connection.end !== "moved") await new Promise((resolve) => setTimeout(resolve, this.#retryMs));
    }
  }

  #dispatch(event: Received, hasId: boolean): void {
    if (!hasId) {
      this.notices.push(event);
      return;
    }
    this.received.push(event);
    this.lastEventId = event.id;
    if (this.#waiting?.id === event.id) this.#waiting.done();
  }
}
