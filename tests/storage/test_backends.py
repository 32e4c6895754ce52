"""The media store, local disk or S3 (moto over HTTP), through one interface: the same calls
list and delete the same files, and each says what it can do instead of callers asking
whether it is S3."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from transcoding.storage.backends import LocalStore, S3Store, media_store, serve_media

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["local", "s3"])
def store(request):
    if request.param == "s3":
        request.getfixturevalue("s3")
    return media_store()


def put(*names: str) -> None:
    for name in names:
        default_storage.save(name, ContentFile(b"x" * 10))


def test_capabilities_are_the_stores_not_the_callers(store, settings):
    expected = {LocalStore: (False, False, False), S3Store: (True, True, True)}[type(store)]
    assert (store.signs_urls, store.direct_uploads, store.remote) == expected
    assert serve_media() is (not store.remote)  # Django serves /media/ only for local files
    settings.TRANSCODING_SERVE_MEDIA = True
    assert serve_media() is True


def test_listing_and_deleting_a_prefix_touch_nothing_beside_it(store):
    put("videos/1/a.m4s", "videos/1/hls/b.m4s", "videos/10/c.m4s", "videos/2/d.m4s")

    listed = sorted(o.key for o in store.list_objects("videos/1"))
    assert listed == ["videos/1/a.m4s", "videos/1/hls/b.m4s"]  # not videos/10/
    assert all(o.size == 10 for o in store.list_objects("videos/1"))

    assert store.delete_prefix("videos/1") == 2
    assert sorted(o.key for p in ("videos/1", "videos/10", "videos/2") for o in store.list_objects(p)) == [
        "videos/10/c.m4s",
        "videos/2/d.m4s",
    ]


def test_deleting_keys_in_batches_past_one_request(store):
    """S3's DeleteObjects takes 1000 keys a request: 1001 keys take two requests (keys that do
    not exist are deleted quietly, as S3 does), and every stored one goes."""
    stored = [f"videos/3/seg_{i:04d}.m4s" for i in range(3)]
    put(*stored)
    names = [*stored, *(f"videos/3/gone_{i:04d}.m4s" for i in range(998))]
    requests = []
    if isinstance(store, S3Store):
        events = store.storage.bucket.meta.client.meta.events
        events.register(
            "before-parameter-build.s3.DeleteObjects", lambda params, **kw: requests.append(params)
        )

    assert store.delete_keys([*names, names[0]]) == 1001  # a repeated key counts once
    assert list(store.list_objects("videos/3")) == []
    if isinstance(store, S3Store):
        assert [len(r["Delete"]["Objects"]) for r in requests] == [1000, 1]


def test_an_s3_location_prefix_is_applied_and_stripped(s3, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "location": "site"},
        },
    }
    store = media_store()
    put("videos/4/a.m4s")

    assert s3.keys() == ["site/videos/4/a.m4s"]
    assert [o.key for o in store.list_objects("videos/4")] == ["videos/4/a.m4s"]
    assert (store.key("videos/4/a.m4s"), store.name("elsewhere/x")) == ("site/videos/4/a.m4s", None)
    assert store.delete_prefix("videos/4") == 1 and s3.keys() == []
