// Review pages: keyboard shortcuts and the help overlay. Everything here is an enhancement;
// each action also has a visible button or link that works without JavaScript.
(function () {
  "use strict";

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function helpDialog() { return document.getElementById("shortcut-help"); }

  function toggleHelp() {
    var dialog = helpDialog();
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr[data-row]")); }

  function focusRow(step) {
    var all = rows();
    if (!all.length) return false;
    var current = all.findIndex(function (row) { return row.contains(document.activeElement); });
    var next = current < 0 ? 0 : Math.min(all.length - 1, Math.max(0, current + step));
    var link = all[next].querySelector("a.row-link");
    if (link) { link.focus(); all[next].scrollIntoView({block: "nearest"}); }
    return true;
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link) window.location.assign(link.href);
  }

  function submitCorrection() {
    var form = document.getElementById("correction-form");
    var button = document.getElementById("submit-correction");
    if (form && button && !button.disabled) form.requestSubmit(button);
  }

  function edit() {
    var claim = document.getElementById("claim-form");
    if (claim) { claim.requestSubmit(); return; }
    var form = document.getElementById("correction-form");
    if (!form) return;
    var field = form.querySelector("[aria-invalid=true]") ||
      form.querySelector("fieldset.call input:not([type=hidden]), fieldset.call select, fieldset.call textarea");
    if (field) field.focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (document.getElementById("correction-form")) { event.preventDefault(); submitCorrection(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var dialog = helpDialog();
    if (dialog && dialog.open && event.key !== "?") return;
    switch (event.key) {
      case "?": event.preventDefault(); toggleHelp(); break;
      case "j": event.preventDefault(); if (!focusRow(1)) follow("next-item"); break;
      case "k": event.preventDefault(); if (!focusRow(-1)) follow("prev-item"); break;
      case "x": {
        var row = rows().find(function (r) { return r.contains(document.activeElement); });
        var box = row && row.querySelector("input[type=checkbox]");
        if (box) { event.preventDefault(); box.checked = !box.checked; }
        break;
      }
      case "e": event.preventDefault(); edit(); break;
      case "a": {
        var accept = document.getElementById("accept-suggested");
        if (accept && !accept.disabled) { event.preventDefault(); accept.click(); }
        break;
      }
      case "s": {
        var skip = document.getElementById("skip-form");
        if (skip) { event.preventDefault(); skip.requestSubmit(); }
        break;
      }
      default: break;
    }
  });

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest("[data-help-toggle]");
    if (toggle) toggleHelp();
    // "Accept the suggested fix" submits the correction form as it stands (it starts from the fix)
    // through the form's own submit button, so htmx posts it like any submit.
    var accept = event.target.closest && event.target.closest("#accept-suggested");
    if (accept) { event.preventDefault(); submitCorrection(); }
    var link = event.target.closest && event.target.closest("[data-focus-field]");
    if (link) { event.preventDefault(); focusField(link.getAttribute("data-focus-field")); }
  });

  // Error summary: each entry links to its field; the first field gets the focus when it appears.
  function focusField(id) {
    var el = document.getElementById(id);
    if (!el) return false;
    el.scrollIntoView({block: "center"});
    el.focus();
    return true;
  }
  function focusFirstError() {
    var summary = document.getElementById("error-summary");
    // Once per summary: a new one comes with each refused submit; a field checked as it is left
    // swaps only that field and keeps the focus where the reviewer is.
    if (!summary || summary.dataset.focused) return;
    summary.dataset.focused = "1";
    var first = summary.querySelector("[data-focus-field]");
    if (!first || !focusField(first.getAttribute("data-focus-field"))) summary.focus();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", focusFirstError); else focusFirstError();
  document.addEventListener("htmx:afterSettle", focusFirstError);

  // Queue: bulk "Reject" asks first, with the count; the server sees the confirmed count and
  // skips its own confirmation page (which is what a browser without JavaScript gets).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.id !== "bulk-form") return;
    var action = form.querySelector("select[name=action]");
    var confirmed = form.querySelector("[data-bulk-confirmed]");
    if (!action || !confirmed) return;
    confirmed.value = "";
    if (action.value !== "reject") return;
    var n = form.querySelectorAll("input[type=checkbox][name=items]:checked").length;
    if (!n) return;  // the server says "select at least one item first"
    if (window.confirm("Reject " + n + " selected item" + (n === 1 ? "" : "s") + "? They are closed without a training example.")) {
      confirmed.value = String(n);
    } else {
      event.preventDefault();
    }
  });

  // Queue: the header checkbox selects every row of the page; it shows "mixed" when only some are.
  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = target && target.form;
    if (!form || form.id !== "bulk-form") return;
    var boxes = Array.prototype.slice.call(form.querySelectorAll("input[type=checkbox][name=items]"));
    var all = form.querySelector("[data-select-all]");
    if (!all) return;
    if (target === all) {
      boxes.forEach(function (box) { box.checked = all.checked; });
      all.indeterminate = false;
      return;
    }
    var checked = boxes.filter(function (box) { return box.checked; }).length;
    all.checked = checked === boxes.length && checked > 0;
    all.indeterminate = checked > 0 && checked < boxes.length;
  });
})();
