/* Live status for the Video admin: changelist rows and the change page.
 *
 * The admin marks up what can change with data attributes:
 *   data-tc-video="<id>" data-tc-field="status|progress|parts|error|playable|duration|
 *       resolution|poster|player|storyboard-sheets"   one value of one video
 *   data-tc-video="<id>" data-tc-part="<name>"          one part's chip (720p, audio, poster...)
 *   data-tc-video="<id>" data-tc-progress-of="<name>"   one part's progress as text
 *   data-tc-video="<id>" data-tc-field="finished"       shown once the video is ready or failed
 *   data-tc-live data-tc-api="/api/videos/" data-tc-interval="2000"   where and how often to ask
 * While any video shown is neither ready nor failed, this asks the status API for those videos
 * (`?ids=1,2,3`, the schema of selectors.video_status) and redraws them. The preview player
 * starts as soon as a video becomes playable: native HLS where the browser has it, hls.js
 * (loaded on demand from data-tc-hls-script) elsewhere. A static file with no inline script, so
 * it runs under a strict Content-Security-Policy.
 */
(function () {
  "use strict";

  var LABELS = {
    uploaded: "Uploaded", queued: "Queued", processing: "Processing", ready: "Ready",
    failed: "Failed", pending: "Pending", running: "Running", skipped: "Skipped"
  };
  var DONE = { ready: true, failed: true };
  var ACTIVE = { queued: true, running: true };
  var HLS_TYPE = "application/vnd.apple.mpegurl";
  var MAX_IDS = 100;

  var config = { api: "/api/videos/", interval: 2000 };
  var timer = null;
  var failures = 0;
  var gone = {};
  var hlsLoading = null;

  function all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  function quote(value) {
    return '"' + (window.CSS && CSS.escape ? CSS.escape(String(value)) : String(value)) + '"';
  }

  function field(id, name) {
    return all("[data-tc-video=" + quote(id) + "][data-tc-field=" + quote(name) + "]");
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    var total = Math.round(seconds);
    var hours = Math.floor(total / 3600);
    var minutes = Math.floor((total % 3600) / 60);
    var secs = ("0" + (total % 60)).slice(-2);
    return hours ? hours + ":" + ("0" + minutes).slice(-2) + ":" + secs : minutes + ":" + secs;
  }

  // --- part chips: the same markup as admin._chip ---------------------------------------------

  function chipText(status, progress) {
    return { ready: "✓", failed: "✗", skipped: "–", pending: "…" }[status] || progress + "%";
  }

  function setChip(el, part) {
    el.className = "tc-chip tc-chip--" + part.status;
    el.setAttribute("data-tc-state", part.status);
    el.title = part.name + ": " + (LABELS[part.status] || part.status) + ", " + part.progress + "%" +
      (part.error ? " – " + part.error : "");
    var text = el.querySelector("b");
    if (text) text.textContent = chipText(part.status, part.progress);
  }

  function makeChip(part) {
    var el = document.createElement("span");
    el.setAttribute("data-tc-name", part.name);
    el.appendChild(document.createTextNode(part.name + " "));
    el.appendChild(document.createElement("b"));
    setChip(el, part);
    return el;
  }

  function shownState(id, name) {
    var chip = document.querySelector(
      "[data-tc-video=" + quote(id) + "][data-tc-field=parts] [data-tc-name=" + quote(name) + "]," +
      "[data-tc-video=" + quote(id) + "][data-tc-part=" + quote(name) + "]");
    return chip ? chip.getAttribute("data-tc-state") : null;
  }

  /* The API gives every rendition's status and progress, the audio's and storyboard's status,
   * and the poster only as a URL once it is ready. Parts of one job share its progress, so the
   * running renditions' progress stands for the others; a poster that was waiting (or ready and
   * now requeued) follows the video until its URL appears. */
  function parts(video) {
    var running = video.renditions.filter(function (r) { return r.status === "running"; });
    var jobProgress = running.length
      ? Math.max.apply(null, running.map(function (r) { return r.progress; }))
      : video.progress;
    function derived(name, status) {
      var progress = status === "ready" ? 100 : status === "running" ? jobProgress : 0;
      return { name: name, status: status, progress: progress, error: "" };
    }
    var list = video.renditions.map(function (r) {
      return { name: r.name, status: r.status, progress: r.progress || 0, error: r.error || "" };
    });
    if (video.audio) list.push(derived("audio", video.audio.status));
    if (video.storyboard) list.push(derived("storyboard", video.storyboard.status));
    var poster = shownState(video.id, "poster");
    if (video.poster_url) {
      poster = "ready";
    } else if (poster && (ACTIVE[poster] || poster === "ready")) {
      poster = video.status === "processing" ? "running" : video.status === "queued" ? "queued" : "failed";
    }
    if (poster) list.push(derived("poster", poster));
    return list;
  }

  // --- the preview player -----------------------------------------------------------------------

  function loadHls(url) {
    if (window.Hls) return Promise.resolve(window.Hls);
    if (!hlsLoading) {
      hlsLoading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = url;
        script.onload = function () { resolve(window.Hls); };
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    return hlsLoading;
  }

  function startPlayer(el) {
    var src = el.getAttribute("data-tc-hls-src");
    var video = el.querySelector("video");
    if (!src || !video || el.getAttribute("data-tc-started")) return;
    el.setAttribute("data-tc-started", "1");
    var note = el.querySelector(".tc-player-note");
    function say(text) { if (note) note.textContent = text; }
    say("");
    if (video.canPlayType(HLS_TYPE)) {
      video.src = src;
      return;
    }
    loadHls(el.getAttribute("data-tc-hls-script")).then(function (Hls) {
      if (!Hls || !Hls.isSupported()) {
        say("This browser cannot play HLS.");
        return;
      }
      // No worker: it would need a blob: URL, which a strict CSP forbids. CMAF needs no transmuxing.
      var hls = new Hls({ enableWorker: false });
      hls.on(Hls.Events.ERROR, function (event, data) {
        if (data.fatal) say("Playback error: " + data.details);
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    }, function () {
      say("Could not load the player script.");
    });
  }

  // --- applying one video's status -------------------------------------------------------------

  function update(video) {
    var id = video.id;
    var list = parts(video);
    field(id, "status").forEach(function (el) {
      el.className = "tc-badge tc-badge--" + video.status;
      el.setAttribute("data-tc-state", video.status);
      el.textContent = LABELS[video.status] || video.status;
    });
    field(id, "progress").forEach(function (el) {
      var bar = el.querySelector("progress");
      var text = el.querySelector(".tc-progress-text");
      if (bar) bar.value = video.progress;
      if (text) text.textContent = video.progress + "%";
    });
    field(id, "error").forEach(function (el) {
      el.textContent = video.error || "";
      el.title = video.error || "";
    });
    field(id, "playable").forEach(function (el) { el.textContent = video.playable ? "Yes" : "No"; });
    field(id, "duration").forEach(function (el) { el.textContent = duration(video.duration); });
    field(id, "resolution").forEach(function (el) {
      el.textContent = video.width ? video.width + "×" + video.height : "–";
    });
    field(id, "poster").forEach(function (el) {
      if (!video.poster_url) return;
      if (el.getAttribute("src") !== video.poster_url) el.src = video.poster_url;
      el.hidden = false;
    });
    field(id, "storyboard-sheets").forEach(function (el) {
      var sheets = video.storyboard && video.storyboard.status === "ready" ? video.storyboard.image_urls.length : 0;
      el.textContent = sheets ? sheets + (sheets === 1 ? " sheet" : " sheets") : "";
    });
    field(id, "parts").forEach(function (el) {
      el.textContent = "";
      list.forEach(function (part, i) {
        if (i) el.appendChild(document.createTextNode(" "));
        el.appendChild(makeChip(part));
      });
    });
    list.forEach(function (part) {
      all("[data-tc-video=" + quote(id) + "][data-tc-part=" + quote(part.name) + "]").forEach(function (el) {
        setChip(el, part);
      });
      all("[data-tc-video=" + quote(id) + "][data-tc-progress-of=" + quote(part.name) + "]").forEach(function (el) {
        el.textContent = part.progress + "%";
      });
    });
    if (DONE[video.status]) {
      // What the API does not carry (job log, measured bitrates) is as of page load: say so.
      field(id, "finished").forEach(function (el) { el.hidden = false; });
    }
    field(id, "player").forEach(function (el) {
      if (video.playable && video.hls_url && !el.getAttribute("data-tc-started")) {
        el.setAttribute("data-tc-hls-src", video.hls_url);
        startPlayer(el);
      }
    });
  }

  // --- polling ---------------------------------------------------------------------------------

  function unfinishedIds() {
    var ids = [];
    all("[data-tc-field=status][data-tc-video]").forEach(function (el) {
      var id = el.getAttribute("data-tc-video");
      if (!DONE[el.getAttribute("data-tc-state")] && !gone[id] && ids.indexOf(id) < 0) ids.push(id);
    });
    return ids.slice(0, MAX_IDS);
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = null;
    if (!unfinishedIds().length || document.hidden) return;
    timer = setTimeout(poll, delay);
  }

  function poll() {
    timer = null;
    var ids = unfinishedIds();
    if (!ids.length) return;
    var url = config.api + (config.api.indexOf("?") < 0 ? "?" : "&") + "ids=" + ids.join(",");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        var seen = {};
        (data.videos || []).forEach(function (video) {
          seen[video.id] = true;
          update(video);
        });
        ids.forEach(function (id) { if (!seen[id]) gone[id] = true; });
        schedule(config.interval);
      })
      .catch(function () {
        failures += 1;
        schedule(Math.min(config.interval * Math.pow(2, failures), 30000));
      });
  }

  function init() {
    var live = document.querySelector("[data-tc-live]");
    if (live) {
      config.api = live.getAttribute("data-tc-api") || config.api;
      config.interval = parseInt(live.getAttribute("data-tc-interval"), 10) || config.interval;
    }
    all("[data-tc-field=player][data-tc-hls-src]").forEach(startPlayer);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && !timer) poll();
    });
    schedule(config.interval);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
