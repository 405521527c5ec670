// kie gallery: what HTML and htmx do not do. No framework and no inline script (the CSP forbids it).
(() => {
  "use strict";

  const token = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  document.addEventListener("htmx:configRequest", (event) => {
    event.detail.headers["X-CSRF-Token"] = token();
  });

  // Filters live in the URL: a select or checkbox applies at once, the search box after a pause.
  let typing = null;
  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches("form.filters .auto")) target.form.requestSubmit();
    if (target.matches(".compare-pick")) picked(target);
  });
  document.addEventListener("input", (event) => {
    const target = event.target;
    if (target.matches("form.filters input.search")) {
      clearTimeout(typing);
      typing = setTimeout(() => target.form.requestSubmit(), 600);
    }
    if (target.matches(".compare-slider")) clip(target);
  });
  // Empty fields stay out of the URL, so a shared view names only what it filters on.
  document.addEventListener("formdata", (event) => {
    if (!event.target.matches("form.filters")) return;
    for (const [name, value] of Array.from(event.formData.entries())) {
      if (value === "") event.formData.delete(name);
    }
  });
  document.addEventListener("DOMContentLoaded", () => {
    const search = document.querySelector("form.filters input.search");
    if (search && search.value) {
      search.focus();
      search.setSelectionRange(search.value.length, search.value.length);
    }
    const slider = document.querySelector(".compare-slider");
    if (slider) clip(slider);
    stage();
  });

  // Two cards picked for compare: the newest two win.
  const picks = [];
  function picked(box) {
    const at = picks.indexOf(box.value);
    if (box.checked && at < 0) picks.push(box.value);
    if (!box.checked && at >= 0) picks.splice(at, 1);
    while (picks.length > 2) {
      const dropped = picks.shift();
      const other = document.querySelector(`.compare-pick[value="${dropped}"]`);
      if (other) other.checked = false;
    }
    const go = document.querySelector(".compare-go");
    if (!go) return;
    const ready = picks.length === 2;
    go.classList.toggle("disabled", !ready);
    go.setAttribute("aria-disabled", ready ? "false" : "true");
    go.href = ready ? `/compare?a=${encodeURIComponent(picks[0])}&b=${encodeURIComponent(picks[1])}` : "/compare";
  }
  document.addEventListener("click", (event) => {
    const go = event.target.closest(".compare-go.disabled");
    if (go) event.preventDefault();
  });

  // The compare slider reveals A over B; wheel zoom and drag pan move both images together.
  function clip(slider) {
    const top = document.querySelector(".compare-stage .top");
    if (top) top.style.clipPath = `inset(0 ${100 - Number(slider.value)}% 0 0)`;
  }
  function stage() {
    const area = document.querySelector(".compare-stage");
    if (!area) return;
    const view = { scale: 1, x: 0, y: 0 };
    let drag = null;
    const apply = () => {
      for (const image of area.querySelectorAll(".zoomable")) {
        image.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
      }
    };
    area.addEventListener("wheel", (event) => {
      event.preventDefault();
      view.scale = Math.min(8, Math.max(1, view.scale * Math.pow(1.1, -event.deltaY / 100)));
      if (view.scale === 1) { view.x = 0; view.y = 0; }
      apply();
    }, { passive: false });
    area.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX - view.x, y: event.clientY - view.y };
      area.setPointerCapture(event.pointerId);
    });
    area.addEventListener("pointermove", (event) => {
      if (!drag) return;
      view.x = event.clientX - drag.x;
      view.y = event.clientY - drag.y;
      apply();
    });
    area.addEventListener("pointerup", () => { drag = null; });
    for (const button of document.querySelectorAll(".modes .mode")) {
      button.addEventListener("click", () => {
        for (const other of document.querySelectorAll(".modes .mode")) other.classList.toggle("active", other === button);
        area.classList.toggle("side", button.dataset.mode === "side");
        area.classList.toggle("slider", button.dataset.mode === "slider");
        const slider = document.querySelector(".compare-slider");
        if (slider) slider.hidden = button.dataset.mode === "side";
        const top = area.querySelector(".top");
        if (top && button.dataset.mode === "side") top.style.clipPath = "none";
        else if (slider) clip(slider);
      });
    }
  }

  // Copy buttons, and the cancel button of a quote.
  document.addEventListener("click", (event) => {
    const copy = event.target.closest("button[data-copy]");
    if (copy) {
      const source = document.querySelector(copy.dataset.copy);
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(() => {
          copy.textContent = "copied";
          setTimeout(() => { copy.textContent = "copy"; }, 1200);
        });
      }
    }
    const clear = event.target.closest("button[data-clear]");
    if (clear) {
      const slot = document.querySelector(clear.dataset.clear);
      if (slot) slot.textContent = "";
    }
    const open = event.target.closest(".card .open");
    if (open) {
      for (const card of document.querySelectorAll(".card.selected")) card.classList.remove("selected");
      open.closest(".card").classList.add("selected");
    }
  });

  // Keyboard: j/k move between cards, Enter opens, s stars the open result, Esc closes, / searches.
  document.addEventListener("keydown", (event) => {
    const typingHere = event.target.matches("input, textarea, select");
    if (event.key === "Escape") {
      const panel = document.querySelector("#panel:not(.full)");
      if (panel) panel.textContent = "";
      if (typingHere) event.target.blur();
      return;
    }
    if (typingHere || event.metaKey || event.ctrlKey || event.altKey) return;
    const cards = Array.from(document.querySelectorAll(".card"));
    const at = cards.indexOf(document.activeElement);
    if (event.key === "j" || event.key === "k") {
      const next = cards[Math.max(0, Math.min(cards.length - 1, at + (event.key === "j" ? 1 : -1)))];
      if (next) next.focus();
    } else if (event.key === "Enter" && at >= 0) {
      cards[at].querySelector(".open").click();
    } else if (event.key === "s") {
      const star = document.querySelector("#panel [data-testid=star]");
      if (star) star.click();
    } else if (event.key === "/") {
      const search = document.querySelector("form.filters input.search");
      if (search) { event.preventDefault(); search.focus(); }
    }
  });
})();
