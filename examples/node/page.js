// @ts-check
/** The demo page: the browser's own EventSource, listing each event as it arrives. */
export const page = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>eventsource-server demo</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #status { font-weight: bold; }
  #status.open { color: #17803d; }
  #status.closed { color: #b42318; }
  li { font-family: ui-monospace, monospace; font-size: 14px; }
</style>
<h1>eventsource-server</h1>
<p>Status: <span id="status">connecting…</span> · events: <span id="count">0</span></p>
<ul id="events"></ul>
<script>
  const status = document.getElementById("status");
  const count = document.getElementById("count");
  const list = document.getElementById("events");
  const source = new EventSource("/events");
  let received = 0;
  function show(event) {
    received += 1;
    count.textContent = String(received);
    const item = document.createElement("li");
    item.textContent = event.type + (event.lastEventId ? " #" + event.lastEventId : "") + ": " + event.data;
    list.prepend(item);
    while (list.children.length > 20) list.lastElementChild.remove();
  }
  source.addEventListener("open", () => { status.textContent = "open"; status.className = "open"; });
  source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.className = "closed"; });
  source.addEventListener("tick", show);
  source.addEventListener("stats", show);
  source.addEventListener("message", show);
</script>
`;
