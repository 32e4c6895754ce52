/* Upload progress for the Video add/change form.
 *
 * When a file is chosen, the form is sent with XMLHttpRequest and FormData: the browser streams
 * the file from disk (nothing is read into page memory, so multi-GB files are fine) and
 * reports how much has been sent, shown in the [data-tc-upload] box. Django streams the upload
 * to a temporary file on the server. Afterwards the page shows what a normal submit would have
 * shown: the page redirected to, or the form again with its errors. Without a file chosen, or
 * without JavaScript, the form submits as usual.
 */
(function () {
  "use strict";

  var MB = 1024 * 1024;

  function megabytes(bytes) {
    return (bytes / MB).toLocaleString(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  }

  function remaining(seconds) {
    if (!isFinite(seconds) || seconds <= 0) return "";
    if (seconds < 60) return Math.ceil(seconds) + " s left";
    if (seconds < 3600) return Math.ceil(seconds / 60) + " min left";
    return (seconds / 3600).toFixed(1) + " h left";
  }

  /* Show the response as the new page, at the address it came from, as a normal submit would.
   * Reading it again with a GET would lose the one-time "was added successfully" message. */
  function showResponse(xhr, postedTo, fileName) {
    var html = xhr.responseText;
    try {
      sessionStorage.setItem("tc-upload-sent", fileName); // for the form shown again with errors
    } catch (e) {}
    if (!html) {
      window.location.assign(xhr.responseURL || postedTo);
      return;
    }
    if (xhr.responseURL && xhr.responseURL !== postedTo) {
      window.history.replaceState(null, "", xhr.responseURL);
    }
    document.open();
    document.write(html);
    document.close();
  }

  function init() {
    var box = document.querySelector("[data-tc-upload]");
    var form = box && box.closest("form");
    var input = form && form.querySelector('input[type="file"][name="source"]');
    if (!input || !window.FormData || !window.XMLHttpRequest) return;
    var bar = box.querySelector("progress");
    var text = box.querySelector("[data-tc-upload-text]");
    var cancel = box.querySelector("[data-tc-upload-cancel]");
    var maxBytes = parseInt(box.getAttribute("data-tc-max-bytes"), 10) || 0;
    var buttons = function () { return form.querySelectorAll('input[type="submit"], button[type="submit"]'); };
    var xhr = null;

    function setBusy(busy) {
      Array.prototype.forEach.call(buttons(), function (button) { button.disabled = busy; });
      if (cancel) cancel.hidden = !busy;
    }

    function say(message, isError) {
      box.hidden = false;
      text.textContent = message;
      box.classList.toggle("tc-upload--error", !!isError);
    }

    function warnOnLeave(event) {
      event.preventDefault();
      event.returnValue = "";
    }

    function finish() {
      window.removeEventListener("beforeunload", warnOnLeave);
      xhr = null;
      setBusy(false);
    }

    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (file && maxBytes && file.size > maxBytes) {
        say(file.name + " is " + megabytes(file.size) + " MB, over the " + megabytes(maxBytes) + " MB limit.", true);
      } else if (file) {
        bar.value = 0;
        say(file.name + ": " + megabytes(file.size) + " MB, sent when you save.");
      }
    });

    var sent = null;
    try {
      sent = sessionStorage.getItem("tc-upload-sent");
      sessionStorage.removeItem("tc-upload-sent");
    } catch (e) {}
    if (sent && document.querySelector(".errornote")) {
      say("Choose " + sent + " again after correcting the form: a file is not kept when the form has errors.", true);
    }

    if (cancel) {
      cancel.hidden = true;
      cancel.addEventListener("click", function () { if (xhr) xhr.abort(); });
    }

    form.addEventListener("submit", function (event) {
      var file = input.files && input.files[0];
      if (!file) return; // nothing large to send: a normal submit
      event.preventDefault();
      if (xhr) return;
      if (maxBytes && file.size > maxBytes) {
        say(file.name + " is over the " + megabytes(maxBytes) + " MB limit.", true);
        return;
      }
      var submitter = event.submitter;
      var data = new FormData(form);
      // Which button was pressed decides where Django goes next ("Save and continue"...).
      if (submitter && submitter.name && !data.has(submitter.name)) data.append(submitter.name, submitter.value);

      var postedTo = form.action || window.location.href;
      var started = Date.now();
      xhr = new XMLHttpRequest();
      xhr.open("POST", postedTo);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var percent = Math.floor((e.loaded / e.total) * 100);
        var rate = e.loaded / Math.max((Date.now() - started) / 1000, 0.001);
        bar.value = percent;
        say(percent + "% · " + megabytes(e.loaded) + " of " + megabytes(e.total) + " MB sent · " +
          megabytes(rate) + " MB/s " + remaining((e.total - e.loaded) / rate));
      });
      xhr.upload.addEventListener("load", function () {
        bar.value = 100;
        say("Upload complete; saving…");
      });
      xhr.addEventListener("load", function () {
        var request = xhr;
        finish();
        showResponse(request, postedTo, file.name);
      });
      xhr.addEventListener("error", function () {
        finish();
        say("The upload failed (network error). Try again.", true);
      });
      xhr.addEventListener("abort", function () {
        finish();
        bar.value = 0;
        say("Upload cancelled.", true);
      });
      window.addEventListener("beforeunload", warnOnLeave);
      setBusy(true);
      bar.value = 0;
      say("Starting upload of " + megabytes(file.size) + " MB…");
      xhr.send(data);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
