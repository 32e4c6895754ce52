/* Direct uploads to S3 for the Video add form (STORAGE=s3: the page has a [data-tc-s3-upload]
 * box naming the endpoints). On Lambda a request body is capped at 6 MB, so the file never goes
 * through Django:
 *
 *   create    the server starts a multipart upload under a key it chooses, and says the part size
 *   sign      presigned URLs, each good for one part of that key, asked for a few at a time
 *   PUT       the parts go straight to S3, CONCURRENCY at a time, each retried with backoff;
 *             the progress bar adds up every part's progress
 *   complete  with the parts' ETags and the form's fields: the server checks the object (size,
 *             probe) and creates the video; the page goes where Save goes
 *
 * The file is read in order, a part at a time, and each part is sent from its buffer, so at
 * most CONCURRENCY parts are in memory. No hash is computed here: the server would not trust
 * one a browser sends (it could name another video's content). {key, upload_id, name, size,
 * lastModified} is kept in localStorage: choosing the same file again after a reload or a
 * dropped connection resumes the upload (the server lists the parts S3 holds; those are not
 * sent again). No inline script; the JSON requests send the form's CSRF token. Without
 * JavaScript the form posts the file to Django as usual.
 */
(function () {
  "use strict";

  var MB = 1024 * 1024;
  var CONCURRENCY = 4; // parts in flight (and in memory) at once
  var MAX_ATTEMPTS = 6; // per part; then the upload stops, and saving again resumes it
  var SIGN_BATCH = 8; // part URLs asked for at once
  var STORE_PREFIX = "tc-s3-upload:";
  var STORE_DAYS = 7;

  function megabytes(bytes) {
    return (bytes / MB).toLocaleString(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  }

  function remaining(seconds) {
    if (!isFinite(seconds) || seconds <= 0) return "";
    if (seconds < 60) return Math.ceil(seconds) + " s left";
    if (seconds < 3600) return Math.ceil(seconds / 60) + " min left";
    return (seconds / 3600).toFixed(1) + " h left";
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  /* 1 s, 2 s, 4 s... up to 30 s, with jitter so parallel retries spread out. */
  function backoff(attempt) {
    var base = Math.min(30000, 1000 * Math.pow(2, attempt - 1));
    return base / 2 + Math.random() * (base / 2);
  }

  function whenOnline() {
    if (navigator.onLine !== false) return Promise.resolve();
    return new Promise(function (resolve) { window.addEventListener("online", resolve, { once: true }); });
  }

  function failure(message, fields) {
    var error = new Error(message);
    Object.keys(fields || {}).forEach(function (name) { error[name] = fields[name]; });
    return error;
  }

  // --- what survives a reload: which upload this file belongs to ------------------------------
  function storeKey(file) {
    return STORE_PREFIX + [file.name, file.size, file.lastModified].join("|");
  }

  function recall(file) {
    try {
      var saved = JSON.parse(localStorage.getItem(storeKey(file)) || "null");
      if (saved && saved.key && saved.upload_id && saved.size === file.size &&
          saved.lastModified === file.lastModified && saved.saved > Date.now() - STORE_DAYS * 864e5) {
        return saved;
      }
    } catch (e) {}
    return null;
  }

  function remember(file, upload) {
    try {
      localStorage.setItem(storeKey(file), JSON.stringify({
        key: upload.key, upload_id: upload.upload_id, name: file.name, size: file.size,
        lastModified: file.lastModified, saved: Date.now()
      }));
    } catch (e) {}
  }

  function forget(file) {
    try { localStorage.removeItem(storeKey(file)); } catch (e) {}
  }

  function init() {
    var box = document.querySelector("[data-tc-s3-upload]");
    var form = box && box.closest("form");
    var input = form && form.querySelector('input[type="file"][name="source"]');
    if (!input || !window.fetch || !window.Promise || !window.XMLHttpRequest || !Blob.prototype.arrayBuffer) return;
    var endpoints = {
      create: box.getAttribute("data-tc-create-url"),
      sign: box.getAttribute("data-tc-sign-url"),
      parts: box.getAttribute("data-tc-parts-url"),
      complete: box.getAttribute("data-tc-complete-url"),
      abort: box.getAttribute("data-tc-abort-url")
    };
    var changelist = box.getAttribute("data-tc-changelist-url");
    var maxBytes = parseInt(box.getAttribute("data-tc-max-bytes"), 10) || 0;
    var bar = box.querySelector("progress");
    var text = box.querySelector("[data-tc-upload-text]");
    var cancel = box.querySelector("[data-tc-upload-cancel]");
    var token = form.querySelector('input[name="csrfmiddlewaretoken"]');
    var current = null; // the upload running now

    function say(message, isError) {
      box.hidden = false;
      text.textContent = message;
      box.classList.toggle("tc-upload--error", !!isError);
    }

    function setState(state) {
      box.setAttribute("data-tc-state", state);
    }

    function setBusy(busy) {
      var buttons = form.querySelectorAll('input[type="submit"], button[type="submit"]');
      Array.prototype.forEach.call(buttons, function (button) { button.disabled = busy; });
      if (cancel) cancel.hidden = !busy;
    }

    function warnOnLeave(event) {
      event.preventDefault();
      event.returnValue = "";
    }

    /* POST JSON to one of our endpoints; rejects with the server's one sentence. */
    function api(url, body) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.value : "" },
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.ok) return data;
          var message = data.error || (response.status === 403
            ? "Permission denied, or the page is out of date: reload it."
            : "The server answered " + response.status + ".");
          throw failure(message, { status: response.status, resumable: !!data.resumable, data: data });
        });
      }, function () {
        throw failure("Network error: the server cannot be reached.", { network: true });
      });
    }

    function field(name) {
      var element = form.elements.namedItem(name);
      if (!element) return undefined;
      return element.type === "checkbox" ? element.checked : element.value;
    }

    /* Send every part not yet at S3; resolves with what `complete` needs. `run` is this
     * upload's state, which Cancel stops. */
    async function transfer(file, run) {
      var upload = null;
      var done = {}; // part number -> ETag
      var saved = recall(file);
      if (saved) {
        say("Checking the earlier upload of " + file.name + "…");
        try {
          var listed = await api(endpoints.parts, { key: saved.key, upload_id: saved.upload_id });
          upload = { key: saved.key, upload_id: saved.upload_id, part_size: listed.part_size, parts: listed.part_count };
          listed.parts.forEach(function (part) {
            if (part.Size === partLength(upload, part.PartNumber)) done[part.PartNumber] = part.ETag;
          });
        } catch (error) {
          if (error.network) throw error;
          forget(file); // gone (aborted, expired) or not ours: start again
          upload = null;
          done = {};
        }
      }
      if (!upload) {
        say("Starting the upload of " + megabytes(file.size) + " MB…");
        upload = await api(endpoints.create, { filename: file.name, size: file.size });
        remember(file, upload);
      }
      run.upload = upload;
      var count = upload.parts;
      var skipped = Object.keys(done).length;
      box.setAttribute("data-tc-parts", String(count));
      box.setAttribute("data-tc-resumed", String(skipped));

      function partLength(up, n) {
        return Math.min(up.part_size, file.size - (n - 1) * up.part_size);
      }

      // Progress: whole parts done plus what each part in flight has sent.
      var loaded = {};
      var started = Date.now();
      var resumedBytes = 0;
      Object.keys(done).forEach(function (n) { resumedBytes += partLength(upload, +n); });
      var note = skipped ? " · resumed: " + skipped + " of " + count + " parts were already sent" : "";
      var retryNote = "";
      function render() {
        var sent = 0;
        Object.keys(done).forEach(function (n) { sent += partLength(upload, +n); });
        Object.keys(loaded).forEach(function (n) { sent += loaded[n]; });
        var rate = (sent - resumedBytes) / Math.max((Date.now() - started) / 1000, 0.001);
        var percent = Math.min(100, Math.floor((sent / file.size) * 100));
        bar.value = percent;
        say(percent + "% · " + megabytes(sent) + " of " + megabytes(file.size) + " MB sent · " +
          megabytes(rate) + " MB/s " + remaining((file.size - sent) / rate) + note + retryNote);
      }
      render();

      // Part URLs, signed a batch at a time; a promise per part number.
      var signed = {};
      function partUrl(n) {
        if (!signed[n]) {
          var batch = [n];
          for (var m = n + 1; m <= count && batch.length < SIGN_BATCH; m++) {
            if (!done[m] && !signed[m]) batch.push(m);
          }
          var request = api(endpoints.sign, { key: upload.key, upload_id: upload.upload_id, part_numbers: batch })
            .then(function (data) { return data.urls; });
          batch.forEach(function (m) {
            signed[m] = request.then(function (urls) { return urls[String(m)]; });
            signed[m].catch(function () { delete signed[m]; });
          });
        }
        return signed[n];
      }

      function put(url, buffer, n) {
        return new Promise(function (resolve, reject) {
          var xhr = new XMLHttpRequest();
          run.xhrs.add(xhr);
          xhr.open("PUT", url);
          xhr.upload.addEventListener("progress", function (e) { loaded[n] = e.loaded; render(); });
          xhr.addEventListener("load", function () {
            run.xhrs.delete(xhr);
            if (xhr.status >= 200 && xhr.status < 300) {
              resolve(xhr.getResponseHeader("ETag") || ""); // empty if CORS hides it: the server lists parts
            } else {
              // 403: the URL expired (or the clock is off): sign again. 404: the upload is gone.
              reject(failure("storage answered " + xhr.status, { status: xhr.status, expired: xhr.status === 403 }));
            }
          });
          xhr.addEventListener("error", function () { run.xhrs.delete(xhr); reject(failure("network error")); });
          xhr.addEventListener("abort", function () { run.xhrs.delete(xhr); reject(failure("cancelled")); });
          xhr.send(buffer);
        });
      }

      async function sendPart(n, buffer) {
        for (var attempt = 1; ; attempt++) {
          await whenOnline();
          if (run.stopped) throw failure("cancelled");
          try {
            var url = await partUrl(n);
            done[n] = await put(url, buffer, n);
            delete loaded[n];
            render();
            return;
          } catch (error) {
            delete loaded[n];
            if (run.stopped) throw error;
            if (error.expired) delete signed[n];
            var permanent = error.status === 404 || (error.status && !error.expired && error.status < 500 &&
              error.status !== 408 && error.status !== 429);
            if (permanent || attempt >= MAX_ATTEMPTS) {
              throw failure("Part " + n + " of " + count + " failed" + (permanent ? "" : " " + attempt + " times") +
                " (" + error.message + ").", { status: error.status, resumable: error.status !== 404 });
            }
            var wait = backoff(attempt);
            retryNote = " · part " + n + " failed (" + error.message + "), retrying in " + Math.ceil(wait / 1000) + " s";
            render();
            await sleep(wait);
            retryNote = "";
          }
        }
      }

      // Read in order and send each slice from its buffer. Slots bound memory.
      var free = CONCURRENCY;
      var waiting = [];
      function take() {
        if (free > 0) { free--; return Promise.resolve(); }
        return new Promise(function (resolve) { waiting.push(resolve); });
      }
      function give() {
        var next = waiting.shift();
        if (next) next(); else free++;
      }
      var tasks = [];
      var firstError = null;
      function fail(error) {
        if (!firstError) {
          firstError = error;
          run.stop();
        }
      }
      for (var n = 1; n <= count; n++) {
        if (done[n]) continue;
        await take();
        if (firstError || run.stopped) { give(); break; }
        var start = (n - 1) * upload.part_size;
        var buffer;
        try {
          buffer = await file.slice(start, start + partLength(upload, n)).arrayBuffer();
        } catch (e) {
          give();
          fail(failure("The file cannot be read any more (was it moved or changed?).", { resumable: true }));
          break;
        }
        tasks.push(sendPart(n, buffer).catch(fail).then(give));
      }
      await Promise.all(tasks);
      if (firstError) throw firstError;
      if (run.stopped) throw failure("cancelled");
      var parts = [];
      for (var p = 1; p <= count; p++) parts.push({ PartNumber: p, ETag: done[p] });
      return { upload: upload, parts: parts };
    }

    function start(file, submitter) {
      var run = {
        file: file, stopped: false, cancelled: false, upload: null, xhrs: new Set(),
        stop: function () {
          this.stopped = true;
          this.xhrs.forEach(function (xhr) { xhr.abort(); });
        }
      };
      current = run;
      setBusy(true);
      setState("uploading");
      bar.value = 0;
      window.addEventListener("beforeunload", warnOnLeave);
      function finish() {
        window.removeEventListener("beforeunload", warnOnLeave);
        if (current === run) current = null;
        setBusy(false);
      }
      transfer(file, run).then(function (sent) {
        bar.value = 100;
        setState("completing");
        if (cancel) cancel.hidden = true; // the parts are all at S3: completing cannot be cancelled
        say("Upload complete; checking the file…");
        return api(endpoints.complete, {
          key: sent.upload.key, upload_id: sent.upload.upload_id, parts: sent.parts,
          title: field("title"), description: field("description"), preset: field("preset"),
          poster_time: field("poster_time"), published: field("published"), private: field("private"),
          speech_language: field("speech_language")
        });
      }).then(function (data) {
        forget(file);
        finish();
        setState("done");
        say("Saved.");
        if (submitter === "_continue") window.location.assign(data.admin_url);
        else if (submitter === "_addanother") window.location.assign(window.location.pathname);
        else window.location.assign(changelist);
      }).catch(function (error) {
        finish();
        if (run.cancelled) return;
        setState("error");
        var resumable = error.network || error.resumable;
        if (!resumable && error.status) forget(file); // refused for good, or gone: nothing to resume
        say(error.message + (resumable ? " Save again to resume: the parts already sent are kept." : ""), true);
      });
    }

    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (!file) return;
      bar.value = 0;
      if (maxBytes && file.size > maxBytes) {
        say(file.name + " is " + megabytes(file.size) + " MB, over the " + megabytes(maxBytes) + " MB limit.", true);
      } else if (recall(file)) {
        say(file.name + ": " + megabytes(file.size) + " MB; the earlier upload of this file resumes when you save.");
      } else {
        say(file.name + ": " + megabytes(file.size) + " MB, sent to storage when you save.");
      }
    });

    if (cancel) {
      cancel.hidden = true;
      cancel.addEventListener("click", function () {
        var run = current;
        if (!run) return;
        run.cancelled = true;
        run.stop();
        if (run.upload) api(endpoints.abort, { key: run.upload.key, upload_id: run.upload.upload_id }).catch(function () {});
        forget(run.file);
        bar.value = 0;
        setState("cancelled");
        say("Upload cancelled.", true);
      });
    }

    form.addEventListener("submit", function (event) {
      var file = input.files && input.files[0];
      if (!file) return; // nothing to send: a normal submit (Django asks for the file)
      event.preventDefault();
      if (current) return;
      if (maxBytes && file.size > maxBytes) {
        say(file.name + " is over the " + megabytes(maxBytes) + " MB limit.", true);
        return;
      }
      start(file, event.submitter ? event.submitter.name : "_save");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
