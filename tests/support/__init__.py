"""What the tests share, never a test module itself. Fixtures are pytest plugins
(tests/conftest.py); helpers are imported.

    fixtures.py       media isolation, clips, flaky storage          (plugin)
    s3.py             moto's server behind a presigned-URL check    (plugin)
    canary.py         an HTTP server counting requests              (plugin)
    browser.py        Debian's Chromium through Playwright          (plugin)
    services.py       PostgreSQL, Redis and celery worker scenarios (plugin)
    own_services.py   a PostgreSQL and a Redis of the test's own, to kill and restart (plugin)
    processes.py      `manage.py worker` subprocesses, waiting, process groups
    media.py          clips made with the ffmpeg wheel; the Big Buck Bunny clip
    checks.py         assertions on outputs: playlists parse, frames decode, keyframes align
    direct_upload.py  the S3 multipart upload API driven as the browser does
"""
