// ldmatrix's grid (harness/html_grid.py): filters and folding. The page reads without it.
(function () {
  "use strict";
  const cells = Array.from(document.querySelectorAll("table.grid td.cell"));
  const form = document.querySelector("form.filters");
  const selects = Array.from(form.querySelectorAll("select[data-axis]"));
  const words = form.querySelector("input[data-words]");
  const showing = form.querySelector(".showing");
  const wanted = { outcome: new Set(), mark: new Set() };

  function keep(td) {
    if (wanted.outcome.size && !wanted.outcome.has(td.dataset.outcome)) return false;
    if (wanted.mark.size && !wanted.mark.has(td.dataset.mark)) return false;
    for (const select of selects) {
      const key = select.dataset.axis.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
      if (select.value && td.dataset[key] !== select.value) return false;
    }
    const needles = words.value.trim().split(/\s+/).filter(Boolean);
    return needles.every((w) => td.dataset.cell.includes(w));
  }

  function apply() {
    let shown = 0;
    for (const td of cells) {
      const ok = keep(td);
      td.classList.toggle("dim", !ok);
      shown += ok ? 1 : 0;
    }
    for (const tr of document.querySelectorAll("table.grid tr.row")) {
      tr.classList.toggle("hidden", !tr.querySelector("td.cell:not(.dim)"));
    }
    for (const group of document.querySelectorAll("table.grid tbody.group")) {
      group.classList.toggle("hidden", !group.querySelector("tr.row:not(.hidden)"));
    }
    for (const el of document.querySelectorAll("[data-filter-outcome]")) {
      el.classList.toggle("active", wanted.outcome.has(el.dataset.filterOutcome));
    }
    for (const el of document.querySelectorAll("[data-filter-mark]")) {
      el.classList.toggle("active", wanted.mark.has(el.dataset.filterMark));
    }
    showing.textContent = shown === cells.length ? `${cells.length} cells` : `showing ${shown} of ${cells.length} cells`;
  }

  function toggle(set, value) {
    if (set.has(value)) set.delete(value); else set.add(value);
    apply();
  }

  for (const el of document.querySelectorAll("[data-filter-outcome]")) {
    el.addEventListener("click", (e) => { e.preventDefault(); toggle(wanted.outcome, el.dataset.filterOutcome); });
  }
  for (const el of document.querySelectorAll("[data-filter-mark]")) {
    el.addEventListener("click", (e) => { e.preventDefault(); toggle(wanted.mark, el.dataset.filterMark); });
  }
  for (const select of selects) select.addEventListener("change", apply);
  words.addEventListener("input", apply);
  form.querySelector("[data-reset]").addEventListener("click", () => {
    wanted.outcome.clear(); wanted.mark.clear();
    for (const select of selects) select.value = "";
    words.value = "";
    apply();
  });
  for (const button of document.querySelectorAll("button.fold")) {
    button.addEventListener("click", () => button.closest("tbody.group").classList.toggle("folded"));
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && location.hash.startsWith("#cell-")) location.hash = "";
  });
  apply();
})();
