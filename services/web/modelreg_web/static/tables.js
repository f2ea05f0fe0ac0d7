// Click (or Enter/Space on) a column header to sort the rows shown, again to reverse. This sorts
// the current page only; the server's order (order_by links, keyset pages) is unchanged.
export function makeSortable(table) {
  const headers = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
  headers.forEach((header, index) => {
    if (!header.textContent.trim()) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.append(...header.childNodes);
    header.append(button);
    header.setAttribute("aria-sort", "none");
    button.addEventListener("click", () => sortBy(table, headers, index, header.dataset.type === "number"));
  });
}

function cellValue(row, index, numeric) {
  const cell = row.cells[index];
  if (!cell) return numeric ? -Infinity : "";
  const raw = cell.dataset.value ?? cell.textContent.trim();
  if (!numeric) return raw.toLowerCase();
  const value = parseFloat(raw.replace(/^v/, ""));
  return Number.isNaN(value) ? -Infinity : value;
}

function sortBy(table, headers, index, numeric) {
  const header = headers[index];
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  headers.forEach((h) => h.setAttribute("aria-sort", "none"));
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).filter((row) => row.cells.length > 1);
  rows.sort((a, b) => {
    const x = cellValue(a, index, numeric);
    const y = cellValue(b, index, numeric);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return ascending ? order : -order;
  });
  body.append(...rows);
}

// An alias's history is a page of its own (reading the trail is slow on some stores); opening
// the <details> on the model page loads its list in place. Same-origin HTML the server escaped.
export function loadHistories(root) {
  root.querySelectorAll("details[data-history]").forEach((details) => {
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "true";
      try {
        const response = await fetch(details.dataset.history, { credentials: "same-origin" });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const list = page.querySelector("[data-testid=alias-history-list]");
        if (list) details.append(document.importNode(list, true));
      } catch {
        // the link to the history page stays
      }
    });
  });
}
