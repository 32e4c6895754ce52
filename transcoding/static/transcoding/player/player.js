// The player page: Shaka Player UI over the HLS master (or the DASH MPD with ?format=dash).
// Until the video is playable, poll the status API, show "Processing n%", then start playing.
// No inline script and nothing from another origin: it runs under the page's strict CSP.
(function () {
  "use strict";

  var UI_CONFIG = {
    overflowMenuButtons: ["quality", "captions", "playback_rate", "language", "picture_in_picture"],
    playbackRates: [0.5, 0.75, 1, 1.25, 1.5, 2],
    enableKeyboardPlaybackControls: true,
    addSeekBar: true,
    // Keep the controls visible briefly after load so viewers see what they can do.
    fadeDelay: 1,
  };

  function absolute(url) {
    return new URL(url, location.href).href;
  }

  function manifestUrl(root, status) {
    var dash = root.dataset.format === "dash";
    return (dash ? status.dash_url : status.hls_url) || status.hls_url;
  }

  function start(root, status) {
    if (root.player) return Promise.resolve(root.player);
    var video = root.querySelector("video");
    var frame = root.querySelector("[data-player-frame]");
    if (status.poster_url) video.poster = status.poster_url;
    var player = new shaka.Player();
    var dash = root.dataset.format === "dash";
    // Shaka 5.2 drops segmented WebVTT cues from an HLS master after a track switch (hls.js
    // and Safari show the same playlists fine), so with HLS the page side-loads each track's
    // whole WebVTT file, the one the DASH MPD names, instead of the master's text group.
    player.configure({ manifest: { disableText: !dash } });
    root.player = player;
    var ui = new shaka.ui.Overlay(player, frame, video);
    // Menus show our track labels ("Français", "English (auto-generated)"), not language names.
    var byLabel = shaka.ui.Overlay.TrackLabelFormat.LABEL;
    ui.configure(Object.assign({ trackLabelFormat: byLabel, textTrackLabelFormat: byLabel }, UI_CONFIG));
    root.ui = ui;
    player.addEventListener("error", function (event) {
      root.dataset.error = event.detail && event.detail.code;
    });
    return player
      .attach(video)
      // While the video is still being encoded its playlists are HLS EVENT playlists, which
      // Shaka treats as live and would join at the live edge: start at the beginning instead.
      // The playlists grow as chunks land, and end (VOD) when the encode is done.
      .then(function () {
        return player.load(manifestUrl(root, status), status.status === "ready" ? null : 0);
      })
      .then(function () {
        if (dash) return;
        return Promise.all((status.subtitles || []).filter(function (s) {
          return s.status === "ready" && s.vtt_url;
        }).map(function (s) {
          var kind = s.kind === "captions" ? "caption" : "subtitle";
          return player.addTextTrackAsync(absolute(s.vtt_url), s.language, kind, "text/vtt", "", s.label);
        }));
      })
      .then(function () {
        var chosen = (status.subtitles || []).filter(function (s) { return s.default; })[0];
        var track = chosen && player.getTextTracks().filter(function (t) {
          return t.language === chosen.language;
        })[0];
        if (track) player.selectTextTrack(track);
        var vtt = status.storyboard && status.storyboard.vtt_url;
        if (vtt) return player.addThumbnailsTrack(absolute(vtt), "text/vtt");
      })
      .then(function () {
        root.dataset.ready = "true";
        return player;
      })
      .catch(function (error) {
        root.dataset.error = (error && error.code) || String(error);
        throw error;
      });
  }

  function autoplay(root) {
    var video = root.querySelector("video");
    video.play().catch(function () {
      // Browsers refuse sound without a gesture: start muted rather than not at all.
      video.muted = true;
      return video.play();
    }).catch(function () {});
  }

  function showProgress(root, status) {
    var note = root.querySelector("[data-processing]");
    note.hidden = false;
    note.textContent = status.status === "failed"
      ? "This video could not be processed: " + status.error
      : "Processing " + status.progress + "%";
  }

  // Playing while the rest is still being encoded: say so, and follow the status until the
  // video is ready (the playlists end then, and the seek bar covers the whole video).
  function followEncoding(root, status) {
    var note = root.querySelector("[data-encoding]");
    if (!note) return;
    if (status.status === "ready" || status.status === "failed") {
      note.hidden = true;
      return;
    }
    note.hidden = false;
    note.textContent = "Still encoding (" + status.progress + "%): the rest of the video follows as it is ready.";
    setTimeout(function () {
      fetch(root.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (next) { followEncoding(root, next); })
        .catch(function () { followEncoding(root, status); });
    }, 4000);
  }

  function poll(root) {
    fetch(root.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (status) {
        if (status.playable && status.hls_url) {
          root.querySelector("[data-processing]").hidden = true;
          start(root, status).then(function () { autoplay(root); });
          followEncoding(root, status);
          return;
        }
        showProgress(root, status);
        if (status.status !== "failed") setTimeout(function () { poll(root); }, 2000);
      })
      .catch(function () { setTimeout(function () { poll(root); }, 5000); });
  }

  function init() {
    shaka.polyfill.installAll();
    document.querySelectorAll("[data-player]").forEach(function (root) {
      if (!shaka.Player.isBrowserSupported()) {
        showProgress(root, { status: "failed", error: "this browser cannot play adaptive video." });
        return;
      }
      if (root.dataset.playable === "true") {
        // The page carries the status document as JSON data (not script): no request needed.
        var status = JSON.parse(document.getElementById(root.dataset.statusId).textContent);
        start(root, status);
        followEncoding(root, status);
      } else {
        poll(root);
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
