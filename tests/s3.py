"""A real S3 endpoint for tests: moto's server mode over HTTP on 127.0.0.1, and fixtures that
switch Django's default storage to django-storages' S3 backend against it. Nothing patched:
boto3 and django-storages talk HTTP to it as they would to AWS.

Use: `from tests.s3 import moto_endpoint, s3  # noqa: F401` in a test module, then take the
`s3` fixture (a `Bucket` with the client, name and endpoint)."""

import os
import uuid
from dataclasses import dataclass

import boto3
import pytest

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Bucket:
    client: object
    name: str
    endpoint: str

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def storage_settings(bucket: str, endpoint: str, **options) -> dict:
    return {
        "BACKEND": "transcoding.storage.s3.MediaS3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "region_name": REGION,
            "endpoint_url": endpoint,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": True,
            "addressing_style": "path",
            "signature_version": "s3v4",
            **options,
        },
    }


@pytest.fixture
def s3(moto_endpoint, settings):
    """A fresh private bucket as Django's default storage, CORS open to any origin so the
    browser tests can upload and play from it."""
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    name = f"videos-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    client.put_bucket_cors(
        Bucket=name,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": ["*"],
                    "AllowedMethods": ["GET", "PUT", "POST", "HEAD"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )
    settings.STORAGES = {**settings.STORAGES, "default": storage_settings(name, moto_endpoint)}
    settings.STORAGE = "s3"
    settings.TRANSCODING_SERVE_MEDIA = False
    yield Bucket(client=client, name=name, endpoint=moto_endpoint)
