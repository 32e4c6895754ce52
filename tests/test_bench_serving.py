"""B8's quick variant (bench/b8.py): the site under gunicorn with its own database, a local
worker encoding, a few viewers for a few seconds over every endpoint B8 drives. Zero errors,
and the queries of each request the same at 3 and at 8 videos and under load."""

import pytest

from bench import b8, load, site


@pytest.mark.slow  # ffmpeg encodes the videos the viewers watch
def test_a_few_viewers_while_a_video_encodes_get_no_errors_and_constant_queries(tmp_path):
    result = b8.measure(tmp_path / "b8", b8.QUICK)

    assert result["errors"] == 0, result["error_examples"]
    assert set(result["endpoints"]) == set(load.ENDPOINTS)
    assert b8.queries_constant(result), (result["queries_few"], result["queries_many"], result["endpoints"])
    assert b8.encoding_while_served(result), result["encoding_before"]
    assert result["videos"] == b8.QUICK.videos and result["gunicorn_workers"] >= 1
    # every request reached gunicorn's access log (query counting and quiet-site requests too)
    assert result["access_log_lines"] >= result["requests"]
    if "PostgreSQL" in result["database"]:  # dropped after the run
        name = result["database"].split("database ")[1].split(",")[0]
        import psycopg

        with psycopg.connect(f"{site.PG_DSN} dbname=postgres") as conn:
            assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchall()


def test_percentiles_are_values_that_were_measured():
    assert load.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert load.percentile([float(i) for i in range(1, 101)], 0.95) == 95.0
    assert load.percentile([7.0], 0.95) == 7.0


def test_playlist_checks():
    master = (
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,URI="/videos/3/play/audio/index.m3u8"\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=1\n/videos/3/play/360p/index.m3u8\n"
    )
    assert load.check_master(master, 3) == [
        "/videos/3/play/audio/index.m3u8",
        "/videos/3/play/360p/index.m3u8",
    ]
    with pytest.raises(load.BadResponse):
        load.check_master(master, 4)  # another video's views
    load.check_media(
        '#EXTM3U\n#EXT-X-MAP:URI="/media/i.mp4?expires=1&signature=a"\n/media/s.m4s?signature=b\n'
    )
    with pytest.raises(load.BadResponse):
        load.check_media("#EXTM3U\n/media/videos/3/360p/seg_00001.m4s\n")  # unsigned


def test_summary_counts_errors_and_keeps_every_query_count():
    outcome = load.Outcome(
        samples=[
            load.Sample(load.STATUS_API, 0.010, 4, cpu=0.002),
            load.Sample(load.STATUS_API, 0.030, 4, cpu=0.004),
            load.Sample(load.V1_LIST, 0.050, 8, at=1.5),
            load.Sample(load.V1_LIST, 0.040, 7, error="HTTP 500", at=1.6),
            load.Sample("viewer", 0.0, None, error="KeyError: 'x'"),
        ],
        wall=2.0,
    )
    summary = load.summarize(outcome)
    assert (summary["requests"], summary["errors"], summary["rps"]) == (5, 2, 2.5)
    assert summary["endpoints"][load.STATUS_API]["p50_ms"] == pytest.approx(10.0)
    assert summary["endpoints"][load.V1_LIST]["queries"] == [7, 8]
    assert summary["endpoints"][load.V1_LIST]["errors"] == 1
    assert summary["cpu_seconds"] == pytest.approx(0.006)
    assert summary["per_second"] == [3, 2, 0]
