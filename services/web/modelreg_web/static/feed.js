// The live activity feed: Server-Sent Events from /events/stream. EventSource reconnects by itself
// and sends Last-Event-ID, so the server resumes after the last event shown. Text goes in with
// textContent only: nothing a user named can become markup.
const MAX_ITEMS = 50;

export function startFeed(list) {
  const status = document.querySelector("[data-testid=feed-status]");
  const say = (text) => { if (status) status.textContent = text; };
  const source = new EventSource(list.dataset.feed);
  source.addEventListener("open", () => say("live"));
  source.addEventListener("error", () => say("reconnecting…"));
  source.addEventListener("outage", () => say("registry unreachable, retrying…"));
  source.addEventListener("registry", (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch { return; }
    list.prepend(renderItem(event));
    while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
    say("live");
  });
}

function renderItem(event) {
  const item = document.createElement("li");
  item.className = "new";
  item.dataset.testid = "activity-item";
  item.dataset.sequence = String(event.sequence);
  const time = document.createElement("time");
  time.dateTime = event.time;
  time.textContent = event.time.replace("T", " ").replace(/\.\d+Z$/, "Z");
  const action = document.createElement("strong");
  action.textContent = ` ${event.action} `;
  const target = event.link ? document.createElement("a") : document.createElement("span");
  if (event.link) target.href = event.link;
  target.textContent = event.resource;
  const actor = document.createElement("span");
  actor.className = "muted";
  actor.textContent = ` by ${event.actor}`;
  item.append(time, action, target, actor);
  return item;
}
