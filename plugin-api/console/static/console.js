// keyd console: small improvements over plain forms. Everything works
// without this file.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: copy the text of the element named by data-copy.
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    var target = document.getElementById(btn.getAttribute("data-copy"));
    if (!target || !navigator.clipboard) {
      return;
    }
    btn.hidden = false;
    btn.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        btn.textContent = "✓ Copied";
        btn.classList.add("copied");
        setTimeout(function () {
          btn.textContent = "Copy";
          btn.classList.remove("copied");
        }, 2500);
      });
    });
  });

  // Confirmations as native dialogs: a link with data-confirm opens the
  // dialog of that id instead of the confirmation page, its form posting
  // to data-action; text goes in with textContent, never as HTML.
  document.querySelectorAll("a[data-confirm]").forEach(function (link) {
    var dialog = document.getElementById(link.getAttribute("data-confirm"));
    if (!dialog || typeof dialog.showModal !== "function") {
      return;
    }
    link.addEventListener("click", function (ev) {
      ev.preventDefault();
      var form = dialog.querySelector("form");
      form.setAttribute("action", link.getAttribute("data-action"));
      dialog.querySelectorAll("[data-fill]").forEach(function (el) {
        el.textContent = "“" + (link.getAttribute("data-" + el.getAttribute("data-fill")) || "") + "”";
      });
      dialog.showModal();
    });
  });
  document.querySelectorAll("dialog [data-close]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      btn.closest("dialog").close();
    });
  });
});
