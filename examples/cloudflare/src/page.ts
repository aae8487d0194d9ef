/**
 * The page at `GET /`: what the example shows, its routes, and a live room in the browser's own `EventSource`, with
 * a box to publish into it and buttons that drop the connection or restart the room's object.
 */

/** An icon in the page itself, so the browser asks for no /favicon.ico. */
const ICON =
  "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%23f38020'/%3E%3Cpath d='M3 11h2M7 8h2v3M11 5h2v6' stroke='white' stroke-width='1.6' fill='none'/%3E%3C/svg%3E";

/** The page, for a Worker whose rooms keep `historyLimit` events. */
export function page(historyLimit: number): string {
  return `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>eventsource-server on Cloudflare Workers</title>
<link rel="icon" href="${ICON}">
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1d2433; }
  h1 { font-size: 1.6rem; margin-bottom: 0.25rem; }
  h2 { font-size: 1.15rem; margin-top: 2rem; }
  code, pre, #log { font-family: ui-monospace, monospace; font-size: 14px; }
  pre { background: #f4f5f7; padding: 0.75rem 1rem; overflow-x: auto; border-radius: 6px; }
  table { border-collapse: collapse; width: 100%; font-size: 15px; }
  td:first-child { white-space: nowrap; }
  td, th { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid #e3e5e8; vertical-align: top; }
  .live { border: 1px solid #d6d9de; border-radius: 8px; padding: 1rem; }
  .row { display: flex; gap: 0.5rem; flex-wrap: wrap; align-items: center; margin-bottom: 0.75rem; }
  input[type=text] { flex: 1; min-width: 10rem; padding: 0.35rem 0.5rem; font: inherit; }
  button { font: inherit; padding: 0.35rem 0.8rem; cursor: pointer; }
  #status { font-weight: 600; }
  #status.open { color: #17803d; }
  #status.closed { color: #b42318; }
  #log { list-style: none; padding: 0; margin: 0; max-height: 18rem; overflow-y: auto; }
  #log li { padding: 0.15rem 0; border-bottom: 1px dotted #e3e5e8; }
  #log .type { display: inline-block; min-width: 4.5rem; font-weight: 600; }
  #log .reset .type { color: #b42318; }
  #log .note { color: #5b6472; font-style: italic; }
</style>
<h1>eventsource-server on Cloudflare Workers</h1>
<p>This Worker sends <a href="https://html.spec.whatwg.org/multipage/server-sent-events.html">Server-Sent Events</a>
with <code>eventsource-server</code>. Each chat room is one Durable Object holding an <code>EventChannel</code>: every
event published to the room reaches every open stream. The room keeps its last ${historyLimit} events in the
object's <em>storage</em>, so a browser that reconnects with its <code>Last-Event-ID</code> receives exactly what it
missed, even when the object was restarted in between. An id older than that gets a <code>reset</code> event.</p>

<h2>A room, live</h2>
<div class="live">
  <div class="row">
    <label for="room">Room</label> <input type="text" id="room" value="lobby">
    <span>Status: <span id="status">connecting…</span></span>
    <span>Last id: <code id="last">none</code></span>
  </div>
  <form class="row" id="publish">
    <input type="text" id="message" placeholder="Say something to everyone in the room" autocomplete="off">
    <button type="submit">Publish</button>
  </form>
  <div class="row">
    <button type="button" id="drop">Drop the connection and resume</button>
    <button type="button" id="restart">Restart the room's object</button>
  </div>
  <ul id="log"></ul>
</div>
<p>Open this page in a second tab: what one tab publishes, the other receives. <strong>Drop</strong> closes the
stream and opens a new one with <code>?lastEventId=</code> (a new <code>EventSource</code> cannot send the header);
<strong>Restart</strong> throws the room's object away (<code>ctx.abort()</code>): its streams end, the browser
reconnects by itself with the <code>Last-Event-ID</code> header, and a new object replays the missed events from
storage. Publish from the other tab in between, and nothing is lost or doubled.</p>

<h2>The code</h2>
<pre>export class Room extends DurableObject&lt;Env&gt; {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // The log, in the object's storage: the newest HISTORY_LIMIT events, and the last id given.
    this.#events = new StoredEvents(ctx.storage, Number(env.HISTORY_LIMIT));
    void ctx.blockConcurrencyWhile(() =&gt; this.#events.load());
    this.#channel = new EventChannel({
      history: this.#events, // after(id): the stored events after id, or null
      onHistoryLost: (lastEventId) =&gt; ({ event: "reset", data: { lastEventId } }),
    });
  }
  override fetch(request: Request): Response {
    return this.#channel.response(request, { retry: 2_000, keepAlive });
  }
  async publish(data: unknown): Promise&lt;string&gt; {
    const event = await this.#events.append(data); // stored first, then sent
    this.#channel.emit(event);
    return event.id;
  }
}</pre>

<h2>Routes</h2>
<table>
  <tr><th>Route</th><th>What it does</th></tr>
  <tr><td><code>GET /</code></td><td>This page.</td></tr>
  <tr><td><code>GET <a href="/ticks">/ticks</a></code></td><td>A <code>tick</code> event every second, with ids; a reconnect resumes the count.</td></tr>
  <tr><td><code>GET <a href="/ticks/stats">/ticks/stats</a></code></td><td><code>{ open, closed }</code>: tick streams of this isolate.</td></tr>
  <tr><td><code>GET /rooms/:room/events</code></td><td>The room's events; with <code>Last-Event-ID</code>, first what was missed.</td></tr>
  <tr><td><code>POST /rooms/:room/publish</code></td><td>Stores the body as the next event and sends it to the room; answers <code>{ id }</code>.</td></tr>
  <tr><td><code>GET /rooms/:room/subscribers</code></td><td><code>{ subscribers }</code>: open streams in the room.</td></tr>
  <tr><td><code>POST /rooms/:room/restart</code></td><td>Restarts the room's object (a demo of resuming; leave it out of a real room).</td></tr>
</table>

<script>
  const roomInput = document.getElementById("room");
  const status = document.getElementById("status");
  const lastShown = document.getElementById("last");
  const log = document.getElementById("log");
  let source = null;
  let lastId = "";

  function room() { return encodeURIComponent(roomInput.value.trim() || "lobby"); }

  function line(type, text, className) {
    const item = document.createElement("li");
    if (className) item.className = className;
    const label = document.createElement("span");
    label.className = "type";
    label.textContent = type;
    item.append(label, " ", text);
    log.prepend(item);
    while (log.children.length > 50) log.lastElementChild.remove();
  }

  function setStatus(text, className) { status.textContent = text; status.className = className; }

  function connect(resumeAfter) {
    const query = resumeAfter ? "?lastEventId=" + encodeURIComponent(resumeAfter) : "";
    source = new EventSource("/rooms/" + room() + "/events" + query);
    source.addEventListener("open", () => setStatus("open", "open"));
    source.addEventListener("error", () => setStatus("reconnecting… (will resume after #" + (lastId || "nothing") + ")", "closed"));
    source.addEventListener("message", (event) => {
      lastId = event.lastEventId;
      lastShown.textContent = lastId;
      line("#" + event.lastEventId, event.data);
    });
    source.addEventListener("reset", (event) => {
      line("reset", "the room no longer keeps the events after #" + JSON.parse(event.data).lastEventId + "; showing new ones from here", "reset");
    });
  }

  function reconnect(resumeAfter) {
    source.close();
    connect(resumeAfter);
  }

  document.getElementById("publish").addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = document.getElementById("message");
    const text = message.value;
    if (text === "") return;
    message.value = "";
    const response = await fetch("/rooms/" + room() + "/publish", { method: "POST", body: text });
    if (!response.ok) line("error", "publish answered " + response.status, "reset");
  });

  document.getElementById("drop").addEventListener("click", () => {
    line("dropped", "a new connection resumes after #" + (lastId || "nothing"), "note");
    reconnect(lastId);
  });

  document.getElementById("restart").addEventListener("click", async () => {
    line("restart", "the room's object is thrown away; the browser reconnects with Last-Event-ID " + (lastId || "(none)"), "note");
    const response = await fetch("/rooms/" + room() + "/restart", { method: "POST" });
    if (!response.ok) line("error", "restart answered " + response.status, "reset");
  });

  roomInput.addEventListener("change", () => {
    lastId = "";
    lastShown.textContent = "none";
    log.replaceChildren();
    reconnect("");
  });

  connect("");
</script>
`;
}
