// modelreg web UI: the few behaviours that need a script. Pages work without it (forms, links);
// these add the live feed, client-side sorting, charts and copy buttons.
import { startFeed } from "./feed.js";
import { loadHistories, makeSortable } from "./tables.js";
import { drawCharts } from "./charts.js";
import { enableCopyButtons } from "./copy.js";

function start() {
  document.querySelectorAll("[data-feed]").forEach(startFeed);
  document.querySelectorAll("table[data-sortable]").forEach(makeSortable);
  loadHistories(document);
  drawCharts(document);
  enableCopyButtons(document);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
