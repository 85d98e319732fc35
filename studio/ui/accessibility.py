"""What the page adds for screen readers on top of Gradio's markup.

Gradio draws its icons (dropdown arrows, "fullscreen", "copy", upload clouds) as inline SVGs with no text;
Chromium exposes each one as an unnamed image, so a screen reader reads "image, image, image" next to
controls that already have a name. They are decoration: hide them from assistive technology. Pictures that
carry meaning (the studio's charts) have role="img" and an aria-label, and are left alone."""

from __future__ import annotations

DECORATIVE_ICONS_HEAD = """<script>
(function () {
  var ICON = 'svg:not([role]):not([aria-label]):not([aria-hidden])';
  function hideOne(svg) { if (!svg.querySelector('title')) svg.setAttribute('aria-hidden', 'true'); }
  function hide(root) {
    if (root.matches && root.matches(ICON)) hideOne(root);
    root.querySelectorAll(ICON).forEach(hideOne);
  }
  function start() {
    hide(document);
    // Gradio renders (and re-renders) components after load: hide new icons as they appear.
    new MutationObserver(function (changes) {
      changes.forEach(function (c) {
        c.addedNodes.forEach(function (n) { if (n.nodeType === 1) hide(n); });
      });
    }).observe(document.body, {childList: true, subtree: true});
  }
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
})();
</script>"""
