"""The videos resource: the list (filters, cursor pages, a fixed number of queries), one
document (the old status document's keys and more), changes, reprocessing, cancelling and
deleting, and every error as one problem shape."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.support.api import key_client, make_user
from tests.support.rows import ready_rows
from transcoding.jobs.dispatch.recording import outbox
from transcoding.models import ProcessingJob, Video

pytestmark = pytest.mark.django_db

OLD_KEYS = {
    "id", "title", "status", "playable", "progress", "error", "duration", "width", "height", "source",
    "renditions", "audio", "hls_url", "dash_url", "poster_url", "storyboard", "subtitles",
}  # fmt: skip


def test_a_page_of_100_videos_costs_as_many_queries_as_a_page_of_3(api, django_assert_max_num_queries):
    source = Video.objects.create(title="source", published=True)
    ready_rows(3, linked_to=source)
    api.get("/api/v1/videos/?page_size=3")  # the key's last use is written once a minute
    with CaptureQueriesContext(connection) as few:
        assert len(api.get("/api/v1/videos/?page_size=3").json()["results"]) == 3
    ready_rows(100, linked_to=source)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = api.get("/api/v1/videos/?page_size=100").json()
    assert len(page["results"]) == 100 and page["next"]
    assert all(set(v) >= OLD_KEYS for v in page["results"])


def test_the_list_pages_by_cursor_without_repeats_or_gaps(api):
    ids = set(ready_rows(7))
    seen, url = [], "/api/v1/videos/?page_size=3"
    while url:
        page = api.get(url).json()
        seen += [v["id"] for v in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == 7 and set(seen) == ids


def test_the_list_filters(api, editor):
    old = Video.objects.create(title="Old cat video", status="ready", published=True)
    Video.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    draft = Video.objects.create(title="Dog draft", status="failed", private=True)
    new = Video.objects.create(title="New cat", status="ready", published=True, private=False)

    def ids(query):
        response = api.get(f"/api/v1/videos/?{query}")
        assert response.status_code == 200, response.json()
        return {v["id"] for v in response.json()["results"]}

    assert ids("status=ready") == {old.pk, new.pk}
    assert ids("published=false") == {draft.pk}
    assert ids("private=true") == {draft.pk}
    assert ids("search=cat") == {old.pk, new.pk} and ids("search=old+CAT") == {old.pk}
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(f"created_after={since.replace('+', '%2B')}") == {draft.pk, new.pk}
    assert ids(f"created_before={since.replace('+', '%2B')}") == {old.pk}


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=nonsense", "status"),
        ("published=maybe", "published"),
        ("created_after=yesterday", "created_after"),
        ("search=" + "x" * 201, "search"),
        ("cursor=garbage", None),
    ],
)
def test_bad_list_parameters_are_400_problems(api, query, field):
    response = api.get(f"/api/v1/videos/?{query}")
    assert response.status_code in (400, 404)
    body = response.json()
    assert response["Content-Type"] == "application/problem+json" and "\n" not in body["detail"]
    if field:
        assert response.status_code == 400 and field in body["errors"]


def test_one_document_keeps_the_old_status_documents_keys(api, client):
    (pk,) = ready_rows(1)
    document = api.get(f"/api/v1/videos/{pk}/").json()
    old = client.get(f"/api/videos/{pk}/").json()
    assert set(old) == OLD_KEYS and set(document) >= OLD_KEYS
    assert {k: document[k] for k in OLD_KEYS} == old
    assert document["download_urls"] == {} and document["published"] is True


def test_changing_details(api):
    video = Video.objects.create(title="before", published=False)
    response = api.patch(
        f"/api/v1/videos/{video.pk}/",
        {"title": "after", "description": "d", "published": True, "private": True, "poster_time": 2.5},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["title"] == "after" and response.json()["poster_time"] == 2.5
    video.refresh_from_db()
    assert (video.title, video.description, video.published, video.private) == ("after", "d", True, True)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": ""}, "title"),
        ({"poster_time": -1}, "poster_time"),
        ({"poster_time": 1e30}, "poster_time"),
        ({"preset": "no-such-preset"}, "preset"),
        ({"speech_language": "../../etc"}, "speech_language"),
        ({"published": "perhaps"}, "published"),
    ],
)
def test_bad_changes_are_refused_field_by_field(api, body, field):
    video = Video.objects.create(title="same")
    response = api.patch(f"/api/v1/videos/{video.pk}/", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]
    assert response.json()["detail"].startswith(f"{field}: ")
    assert Video.objects.get(pk=video.pk).title == "same"


def test_reprocess_and_cancel(api, django_capture_on_commit_callbacks):
    video = Video.objects.create(title="v", source="originals/x.mp4")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/videos/{video.pk}/reprocess/", {"parts": ["poster"]}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    job = ProcessingJob.objects.get(video=video)
    assert job.parts == ["poster"] and outbox == [job.pk]

    assert (
        api.post(f"/api/v1/videos/{video.pk}/reprocess/", {"parts": ["bogus"]}, format="json").status_code
        == 400
    )
    response = api.post(f"/api/v1/videos/{video.pk}/cancel/")
    assert response.status_code == 200
    assert ProcessingJob.objects.get(pk=job.pk).state == "cancelled"


def test_delete_removes_the_video(api):
    video = Video.objects.create(title="gone")
    assert api.delete(f"/api/v1/videos/{video.pk}/").status_code == 204
    assert not Video.objects.filter(pk=video.pk).exists()
    response = api.get(f"/api/v1/videos/{video.pk}/")
    assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"


def test_unknown_endpoints_and_methods_are_problems(api):
    response = api.get("/api/v1/nothing-here/")
    assert response.status_code == 404 and response.json()["title"] == "Not Found"
    response = api.put("/api/v1/videos/", {}, format="json")
    assert response.status_code == 405 and "Allow" in response


def test_writes_are_rate_limited_per_key(editor, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"write": "3/min"}}
    video = Video.objects.create(title="t")
    first, second = key_client(editor), key_client(editor)
    codes = [
        first.patch(f"/api/v1/videos/{video.pk}/", {"title": "x"}, format="json").status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    limited = first.patch(f"/api/v1/videos/{video.pk}/", {"title": "x"}, format="json")
    assert int(limited["Retry-After"]) > 0 and "throttled" in limited.json()["detail"].lower()
    assert first.get(f"/api/v1/videos/{video.pk}/").status_code == 200  # reads are not limited
    assert second.patch(f"/api/v1/videos/{video.pk}/", {"title": "y"}, format="json").status_code == 200


def test_downloads_are_refused_for_a_video_without_renditions_and_for_bad_rungs(api):
    video = Video.objects.create(title="new", source="originals/x.mp4")
    response = api.post(f"/api/v1/videos/{video.pk}/downloads/", {"rungs": ["720p"]}, format="json")
    assert response.status_code == 400 and "not" in response.json()["detail"]
    for rungs in (["../../etc/passwd"], "720p", [1] * 21, []):
        response = api.post(f"/api/v1/videos/{video.pk}/downloads/", {"rungs": rungs}, format="json")
        assert response.status_code == 400 and "\n" not in response.json()["detail"]
    assert not ProcessingJob.objects.filter(video=video).exists()


def test_an_import_is_refused_for_an_internal_address_and_creates_nothing(api, canary):
    """The API's door to the URL import (the attacks themselves: tests/ingest/test_url_import.py)."""
    for url in (
        canary.url("/v.mp4"),
        canary.url("/v.mp4", "https"),
        "https://127.0.0.1/x.mp4",
        "https://169.254.169.254/latest/",
        "https://[::1]/v.mp4",
    ):
        response = api.post("/api/v1/videos/import/", {"url": url}, format="json")
        assert response.status_code == 400, url
        assert "\n" not in response.json()["detail"]
    assert canary.hits == [] and not Video.objects.exists()


def test_an_import_needs_the_add_permission(db, canary):
    client = key_client(make_user("viewer", "view_video", "change_video"))
    response = client.post("/api/v1/videos/import/", {"url": "https://example.com/v.mp4"}, format="json")
    assert response.status_code == 403 and "add_video" in response.json()["detail"]
