"""A real S3 endpoint for tests: moto's server mode over HTTP on 127.0.0.1, and fixtures that
switch Django's default storage to django-storages' S3 backend against it. Nothing patched:
boto3 and django-storages talk HTTP to it as they would to AWS. In front of moto, a check
refuses presigned URLs whose signature does not match or that expired, as S3 does (moto does
not check them), so a URL signed wrongly fails here as it would in production.

A pytest plugin (tests/conftest.py): take the `s3` fixture (a fresh bucket as the default
storage; a `Bucket` with the client, name and endpoint) or `moto_endpoint` (the URL)."""

import datetime
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl

import boto3
import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

REGION = "us-east-1"


class PresignedUrlCheck:
    """WSGI middleware: refuse a presigned (SigV4 query) request whose signature does not match
    or that has expired, with S3's 403, as S3 does; pass everything else to moto."""

    def __init__(self, app, secret: str):
        self.app, self.secret = app, secret

    def __call__(self, environ, start_response):
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        path, _, query = raw.partition("?")
        params = dict(parse_qsl(query, keep_blank_values=True))
        problem = self.problem(environ, path, query, params) if "X-Amz-Signature" in params else None
        if problem is None:
            return self.app(environ, start_response)
        body = f"<Error><Code>{problem[0]}</Code><Message>{problem[1]}</Message></Error>".encode()
        start_response(
            "403 Forbidden",
            [
                ("Content-Type", "application/xml"),
                ("Access-Control-Allow-Origin", "*"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    def problem(self, environ, path, query, params):
        signed_at = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.UTC
        )
        if datetime.datetime.now(datetime.UTC) > signed_at + datetime.timedelta(
            seconds=int(params["X-Amz-Expires"])
        ):
            return "AccessDenied", "Request has expired"
        pairs = sorted(
            p.partition("=")[::2] for p in query.split("&") if not p.startswith("X-Amz-Signature=")
        )
        canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
        headers = params["X-Amz-SignedHeaders"].split(";")
        values = {"host": environ.get("HTTP_HOST", "")}
        canonical_headers = "".join(
            f"{h}:{values.get(h, environ.get('HTTP_' + h.upper().replace('-', '_'), ''))}\n" for h in headers
        )
        canonical = "\n".join(
            [
                environ["REQUEST_METHOD"],
                path,
                canonical_query,
                canonical_headers,
                ";".join(headers),
                "UNSIGNED-PAYLOAD",
            ]
        )
        _, day, region, service, _ = params["X-Amz-Credential"].split("/")
        scope = f"{day}/{region}/{service}/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{params['X-Amz-Date']}\n{scope}\n{digest}"
        key = f"AWS4{self.secret}".encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None


class CheckedMotoServer(ThreadedMotoServer):
    """moto's threaded server with `PresignedUrlCheck` in front of its WSGI app."""

    def _server_entry(self):
        app = PresignedUrlCheck(
            DomainDispatcherApplication(create_backend_app), os.environ["AWS_SECRET_ACCESS_KEY"]
        )
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="session")
def moto_endpoint():
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    server = CheckedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
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
