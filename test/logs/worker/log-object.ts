/**
 * The Worker test/logs/cloudflare.test.ts runs in Miniflare: one Durable Object per name, each with a
 * `durableObjectLog` over its own storage and an `EventChannel` fed by it, driven over RPC (publish, after, what the
 * channel was emitted) and read over HTTP (`GET /<name>/events`, the channel's stream).
 */
import { DurableObject } from "cloudflare:workers";
import { EventChannel, type EventInput, type EventLog, type ServerSentEvent } from "eventsource-server";
import { durableObjectLog } from "eventsource-server/cloudflare";

export interface Env {
  LOGS: DurableObjectNamespace<LogObject>;
}

/** How a log is made: the options of durableObjectLog, and whether its channel is fed at once. */
export interface Settings {
  keep?: number;
  prefix?: string;
  feed?: boolean;
  /** Counts serialize calls and marks its output with the count. */
  countSerialize?: boolean;
}

/** An error, as RPC can carry it and a test can check it. */
export interface Failure {
  name: string;
  message: string;
}

export class LogObject extends DurableObject<Env> {
  #log: EventLog | undefined;
  #channel: EventChannel | undefined;
  #emitted: ServerSentEvent[] = [];
  #transactions = 0;
  #serialized = 0;
  /** Which object this is: a restarted one is another. */
  readonly #born = crypto.randomUUID();

  born(): string {
    return this.#born;
  }

  /** Makes the log and its channel; `feed` feeds the channel from it. */
  open(settings: Settings = {}): void {
    const storage = this.ctx.storage;
    // The object's own storage, counting transactions.
    const counting = {
      get: (key: string) => storage.get(key),
      list: (options: DurableObjectListOptions) => storage.list(options),
      delete: (keys: string[]) => storage.delete(keys),
      transaction: <T>(closure: (txn: DurableObjectTransaction) => Promise<T>) => {
        this.#transactions += 1;
        return storage.transaction(closure);
      },
    };
    const log = durableObjectLog(counting, {
      ...(settings.keep === undefined ? {} : { keep: settings.keep }),
      ...(settings.prefix === undefined ? {} : { prefix: settings.prefix }),
      ...(settings.countSerialize
        ? { serialize: (data: unknown) => `${JSON.stringify(data)} #${++this.#serialized}` }
        : {}),
    });
    const channel = new EventChannel({ history: log, onHistoryLost: (id) => ({ event: "reset", data: id }) });
    const emit = channel.emit.bind(channel);
    channel.emit = (input) => {
      emit(input);
      this.#emitted.push(input as ServerSentEvent);
    };
    if (settings.feed !== false) log.feed(channel);
    this.#log = log;
    this.#channel = channel;
  }

  #opened(): { log: EventLog; channel: EventChannel } {
    if (this.#log === undefined || this.#channel === undefined) this.open();
    return { log: this.#log as EventLog, channel: this.#channel as EventChannel };
  }

  feed(): void {
    const { log, channel } = this.#opened();
    log.feed(channel);
  }

  /** Publishes each input in turn, all at once; each answer is an id or the error. */
  async publish(...inputs: unknown[]): Promise<(string | Failure)[]> {
    const { log } = this.#opened();
    return Promise.all(
      inputs.map((input) =>
        log.publish(input as EventInput).catch((error: Error) => ({ name: error.name, message: error.message })),
      ),
    );
  }

  /** Publishes data of this many bytes: more than storage takes fails the write. */
  async publishLarge(bytes: number): Promise<string | Failure> {
    const { log } = this.#opened();
    return log.publish("x".repeat(bytes)).catch((error: Error) => ({ name: error.name, message: error.message }));
  }

  /** What `after(id)` answers, read whole; the error when it fails. */
  async after(id: string): Promise<ServerSentEvent[] | null | Failure> {
    const { log } = this.#opened();
    try {
      const answer = await log.after(id, { signal: new AbortController().signal });
      if (answer === null) return null;
      const events: ServerSentEvent[] = [];
      for await (const event of answer as AsyncIterable<ServerSentEvent>) events.push(event);
      return events;
    } catch (error) {
      return { name: (error as Error).name, message: (error as Error).message };
    }
  }

  emitted(): ServerSentEvent[] {
    return this.#emitted;
  }

  counts(): { transactions: number; serialized: number } {
    return { transactions: this.#transactions, serialized: this.#serialized };
  }

  /** Everything the object's storage holds. */
  async stored(): Promise<Record<string, unknown>> {
    return Object.fromEntries(await this.ctx.storage.list());
  }

  async put(entries: Record<string, unknown>): Promise<void> {
    await this.ctx.storage.put(entries);
  }

  closeChannel(): void {
    this.#opened().channel.close();
  }

  async closeLog(): Promise<void> {
    await this.#opened().log.close();
  }

  subscribers(): number {
    return this.#channel?.subscribers ?? 0;
  }

  /** Throws the object away, as an eviction or a deploy would; a new one answers the next call. */
  restart(): void {
    setTimeout(() => {
      try {
        this.ctx.abort("restarted by the test");
      } catch {}
    }, 0);
  }

  override fetch(request: Request): Response {
    return this.#opened().channel.response(request, { retry: 100 });
  }
}

export default {
  fetch(request, env): Response | Promise<Response> {
    const name = /^\/([^/]+)\/events$/.exec(new URL(request.url).pathname)?.[1];
    if (name === undefined) return new Response("not found\n", { status: 404 });
    return env.LOGS.getByName(name).fetch(request);
  },
} satisfies ExportedHandler<Env>;
