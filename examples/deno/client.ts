/**
 * Reads an event stream with Deno's own `EventSource` and prints one JSON line per thing that happens
 * (`open`, each event, `error`), so a test or a person can watch it: `deno run --allow-net client.ts URL [TYPES]`.
 * TYPES is a comma-separated list of event types to listen for besides `message`.
 */
const [url, types = ""] = Deno.args;
if (url === undefined) throw new TypeError("client.ts: pass the stream's URL as the first argument");

const source = new EventSource(url);
const say = (line: Record<string, unknown>): void => console.log(JSON.stringify(line));
source.onopen = () => say({ kind: "open" });
source.onerror = () => say({ kind: "error", readyState: source.readyState });
for (const type of ["message", ...types.split(",").filter(Boolean)]) {
  source.addEventListener(type, (event) => {
    const { data, lastEventId } = event as MessageEvent<string>;
    say({ kind: "event", type, data, lastEventId });
  });
}
// Closing stdin (or ending the process) closes the stream: the server sees the client leave.
for await (const _ of Deno.stdin.readable);
source.close();
say({ kind: "closed" });
