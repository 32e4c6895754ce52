"""A client for the direct-upload endpoints (docs/s3-uploads.md), doing what the admin's
script does: create, sign, PUT each part to its presigned URL with `requests`, complete."""

import json
from pathlib import Path

import requests
from django.urls import reverse


def call(client, name, payload=None, method="post"):
    url = reverse(f"transcoding:upload-{name}")
    if method == "get":
        return client.get(url, payload or {})
    return client.post(url, json.dumps(payload or {}), content_type="application/json")


def keys(upload: dict) -> dict:
    return {"key": upload["key"], "upload_id": upload["upload_id"]}


def put_parts(client, upload: dict, data: bytes, numbers) -> list[dict]:
    """Sign and PUT the given parts as the browser does; returns [{PartNumber, ETag}]."""
    signed = call(client, "sign", {**keys(upload), "part_numbers": list(numbers)})
    assert signed.status_code == 200, signed.content
    size = upload["part_size"]
    sent = []
    for n in numbers:
        url = signed.json()["urls"][str(n)]
        response = requests.put(url, data=data[(n - 1) * size : n * size], timeout=30)
        assert response.status_code == 200, response.text
        sent.append({"PartNumber": n, "ETag": response.headers["ETag"]})
    return sent


def start(client, path: Path, **extra) -> dict:
    response = call(
        client,
        "create",
        {"filename": path.name, "size": path.stat().st_size, "content_type": "video/mp4", **extra},
    )
    assert response.status_code == 201, response.content
    return response.json()


def upload_file(
    client, path: Path, *, filename: str | None = None, content_type: str = "video/mp4", **details
):
    """The whole upload of one small file (one part); returns the `complete` response."""
    data = path.read_bytes()
    upload = start(client, path, filename=filename or path.name, content_type=content_type)
    parts = put_parts(client, upload, data, range(1, upload["parts"] + 1))
    return call(client, "complete", {**keys(upload), "parts": parts, **details})
