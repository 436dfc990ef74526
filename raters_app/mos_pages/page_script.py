"""The script every rater page installs once: keys 1–5, answers that never get lost silently, and stimuli
shown pixel for pixel (see the comment on `PAGE_SCRIPT`)."""

from __future__ import annotations

import json

from mos_pages.common import SCORE_BUTTONS

#: How long the page waits for the server to take an answer before asking the rater to answer again.
ANSWER_TIMEOUT_MS = 10_000

# Installed once per browser page (scripts of st.html run again whenever their element is redrawn):
# * the answer buttons of an item are hidden until its image is decoded and drawn (`data-loaded`), and keys
#   1..5 click the visible button with that score's text (so a key press goes through exactly the same path as a
#   click), once per drawn item, ignoring held keys, modifier combinations and typing in inputs;
# * an answer that does not reach the server is never lost silently. After an answer, the page must be redrawn
#   with another item (or another page). If the same item is drawn again instead without the server saying
#   why (a server restarted while the page stayed open has dropped the click), or nothing comes back within
#   ANSWER_TIMEOUT_MS, or a key is pressed while Streamlit has the buttons disabled (the connection is down),
#   a banner asks the rater to answer again, and keys work again at once;
# * every stimulus is sized to its pixel size divided by devicePixelRatio, so that one image pixel is one
#   screen pixel whatever the display density or browser zoom, and the too-small warning is shown when the
#   image does not fit the window at that size (it is never scaled down).
PAGE_SCRIPT = """
<script>
(() => {
  const labels = __LABELS__;
  const texts = new Set(Object.values(labels));
  if (!window.__srevalRater) {
    window.__srevalRater = true;
    let answered = null;  // the render whose answer was sent
    let pending = null;  // {item, page, timer} of the answer sent and not yet settled by a new page
    let last = null;  // {item, render} of the last rating stage seen
    const stage = () => document.querySelector(".sreval-stage[data-item]");
    const banner = () => {
      let node = document.getElementById("sreval-not-saved");
      if (!node) {
        node = document.createElement("div");
        node.id = "sreval-not-saved";
        node.setAttribute("role", "alert");
        node.style.cssText = "display:none;position:fixed;bottom:0;left:0;right:0;z-index:1000002;"
          + "padding:.8rem 1rem;background:#f8d7da;color:#58151c;border-top:1px solid #f1aeb5;font-weight:600";
        document.body.appendChild(node);
      }
      return node;
    };
    const notSaved = (text) => {
      if (pending) clearTimeout(pending.timer);
      pending = null;
      answered = null;
      const node = banner();
      node.textContent = text;
      node.style.display = "block";
    };
    // The id of the last whole page: each run of a rater page ends with its marker (see app.py).
    const pageId = () => {
      const markers = document.querySelectorAll("[data-sreval-page]");
      return markers.length ? markers[markers.length - 1].dataset.srevalPage : null;
    };
    const sent = () => {
      if (!last) return;
      if (pending) clearTimeout(pending.timer);
      answered = last.render;
      banner().style.display = "none";
      pending = {item: last.item, page: pageId(), timer: setTimeout(
        // Unconfirmed is all the page knows: the server may have stored the answer and gone away before replying.
        // Answering again is safe either way (an answer the study already has is not stored twice).
        () => notSaved("The study server has not confirmed your answer. Please answer again."), __TIMEOUT__)};
    };
    // Decides about the pending answer once a whole new page has arrived (its marker): the same item drawn
    // again means the answer was not saved, unless the server says why (a refusal of its own, shown); another
    // item or a page without items (feedback, thanks) means it was saved. Runs that are cut short (a reconnect
    // clears the page first; an answer taken during the run draws the page again) end with no marker.
    const settle = () => {
      if (!pending) return;
      const page = pageId();
      if (!page || page === pending.page) return;
      clearTimeout(pending.timer);
      const current = document.querySelector(`.sreval-stage[data-item][data-page="${page}"]`);
      const refused = document.querySelector(`[data-sreval-refused="${page}"]`);
      if (current && current.dataset.item === pending.item && !refused) {
        notSaved("Your answer was not saved. Please answer again.");
      } else {
        pending = null;
      }
    };
    document.addEventListener("click", (event) => {
      const button = event.target instanceof Element ? event.target.closest("button") : null;
      if (button && texts.has(button.innerText.trim())) sent();
    }, true);
    document.addEventListener("keydown", (event) => {
      if (event.repeat || event.ctrlKey || event.altKey || event.metaKey || !(event.key in labels)) return;
      const target = event.target;
      const typing = target instanceof HTMLElement
        && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
      if (typing) return;
      const current = stage();
      if (!current || current.dataset.render === answered) return;  // no item here, or its answer is on its way
      event.preventDefault();
      const button = Array.from(document.querySelectorAll("button"))
        .find((b) => b.innerText.trim() === labels[event.key] && b.checkVisibility());
      if (current.dataset.loaded !== "yes" || !button) {
        notSaved("Your answer was not sent: the image is not shown yet. Please answer once you see it.");
      } else if (button.disabled) {
        notSaved("The connection to the study server is interrupted: your answer was not sent. "
          + "Please wait a moment and answer again.");
      } else {
        button.click();
      }
    });
    window.__srevalFit = () => {
      const ratio = window.devicePixelRatio || 1;
      for (const stage of document.querySelectorAll(".sreval-stage")) {
        const img = stage.querySelector("img");
        if (!img) continue;
        if (img.complete && img.naturalWidth > 0) stage.dataset.loaded = "yes";
        else img.addEventListener("load", () => window.__srevalFit(), {once: true});
        const width = Number(img.dataset.width) / ratio, height = Number(img.dataset.height) / ratio;
        img.style.width = `${width}px`;
        img.style.height = `${height}px`;
        const left = stage.getBoundingClientRect().left;
        const small = left + width > document.documentElement.clientWidth || height > window.innerHeight;
        stage.dataset.fits = small ? "no" : "yes";
        const warning = stage.querySelector(".sreval-too-small");
        if (warning) warning.style.display = small ? "block" : "none";
      }
      const current = stage();
      if (current) last = {item: current.dataset.item, render: current.dataset.render};
      settle();
    };
    window.addEventListener("resize", () => window.__srevalFit());
    new MutationObserver(() => window.__srevalFit()).observe(document.body, {childList: true, subtree: true});
  }
  window.__srevalFit();
})();
</script>
""".replace("__LABELS__", json.dumps({str(score): text for score, text in SCORE_BUTTONS.items()})).replace(
    "__TIMEOUT__", str(ANSWER_TIMEOUT_MS)
)
