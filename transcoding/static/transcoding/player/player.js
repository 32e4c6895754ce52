// Attach the HLS master to each [data-player]: native HLS where the browser has it, hls.js
// over MSE otherwise. Until the video is playable, poll the status API and show progress.
(function () {
  "use strict";

  function attach(root, url) {
    var video = root.querySelector("video");
    if (video.dataset.attached) return;
    video.dataset.attached = "1";
    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
    } else if (window.Hls && window.Hls.isSupported()) {
      var hls = new window.Hls();
      hls.loadSource(url);
      hls.attachMedia(video);
      root.hls = hls;
    }
  }

  function poll(root) {
    fetch(root.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        var note = root.querySelector("[data-processing]");
        if (s.playable && s.hls_url) {
          note.hidden = true;
          if (s.poster_url) root.querySelector("video").poster = s.poster_url;
          attach(root, s.hls_url);
          return;
        }
        note.hidden = false;
        note.textContent = s.status === "failed"
          ? "This video could not be processed: " + s.error
          : "Processing " + s.progress + "%";
        if (s.status !== "failed") setTimeout(function () { poll(root); }, 2000);
      })
      .catch(function () { setTimeout(function () { poll(root); }, 5000); });
  }

  document.querySelectorAll("[data-player]").forEach(function (root) {
    if (root.dataset.playable === "true" && root.dataset.hlsUrl) attach(root, root.dataset.hlsUrl);
    else poll(root);
  });
})();
