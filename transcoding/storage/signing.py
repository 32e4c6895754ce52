"""Signed URLs for stored files: S3 presigned URLs (`S3Presigner`, fast enough for an MPD that
names every segment of a long video), local `/media/` URLs carrying an HMAC of the key and an
expiry (`local_signed_url`, checked by `web.media_views`), and `UrlSigner`, which signs only
keys under the prefixes it was given: a video's signer (`video_signer`) covers the video's own
prefix and, for a video playing another's outputs, that one's, so nothing a video's rows or
manifests name can reach any other video's files.
"""

import functools
import hashlib
import hmac
import math
import posixpath
import time
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import content_disposition_header

from transcoding.conf import settings
from transcoding.models import Video
from transcoding.storage.backends import S3Store, store_for
from transcoding.storage.content_types import DOWNLOAD_TYPE
from transcoding.storage.objects import video_prefix

MAX_EXPIRY = 7 * 24 * 3600  # the longest a SigV4 presigned URL may be valid


class KeyOutsideVideo(PermissionDenied):
    """A signer was asked for a key outside the video's prefixes (a 403 if it reaches a view)."""


def signed_url_seconds() -> int:
    return max(1, int(settings.SIGNED_URL_SECONDS))


# --- local storage: signed /media/ URLs ---------------------------------------------------------
def local_signature(key: str, expires: int) -> str:
    """HMAC (SECRET_KEY) of a stored key and its expiry, for `/media/` URLs on local storage."""
    return salted_hmac("transcoding.media", f"{key}\n{expires}", algorithm="sha256").hexdigest()


# Expiry times are rounded up to this many seconds, so the same key signed twice within that
# window gives the same URL (cacheable, and stable across two reads of a status document).
LOCAL_EXPIRY_STEP = 300


def signed_query(key: str, seconds: int) -> str:
    """`expires=...&signature=...` for a stored key: what `/media/` and the download view check."""
    expires = math.ceil((time.time() + seconds) / LOCAL_EXPIRY_STEP) * LOCAL_EXPIRY_STEP
    return urlencode({"expires": expires, "signature": local_signature(key, expires)})


def local_signed_url(storage, key: str, seconds: int) -> str:
    return f"{storage.url(key)}?{signed_query(key, seconds)}"


def local_signature_valid(key: str, expires: str, signature: str) -> bool:
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        return False
    if expires_at < time.time():
        return False
    return constant_time_compare(signature or "", local_signature(key, expires_at))


# --- signing ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _session_credentials(profile, access_key, secret_key, token):
    import boto3

    if profile:
        return boto3.Session(profile_name=profile).get_credentials()
    return boto3.Session(
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, aws_session_token=token
    ).get_credentials()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


class S3Presigner:
    """SigV4 query-string signing (what botocore's `generate_presigned_url` does) for many keys
    at once. botocore takes about 0.7 ms a URL, which is seconds for an MPD naming every
    segment of every rung of a long video; here each URL is two hashes. The host, path style,
    bucket, location, credential scope and date are taken from one URL botocore presigned,
    so only the key and the expiry differ. `for_storage` returns None (callers then use the
    storage's `url()` per key) for anything but plain SigV4 query signing with the same
    credentials the storage's client uses."""

    PROBE = "presign-probe/key"
    KNOWN = {
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
        "X-Amz-Signature", "X-Amz-Security-Token",
    }  # fmt: skip

    def __init__(self, *, scheme, netloc, path_prefix, credential, date, token, secret):
        self.scheme, self.netloc, self.path_prefix = scheme, netloc, path_prefix
        self.credential, self.date, self.token = credential, date, token
        _, day, region, service, _ = credential.split("/")
        self.scope = f"{day}/{region}/{service}/aws4_request"
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (region, service, "aws4_request"):
            key = _hmac(key, part)
        self.signing_key = key

    @classmethod
    def for_storage(cls, storage) -> "S3Presigner | None":
        if (
            not isinstance(store_for(storage), S3Store)
            or storage.custom_domain
            or not storage.querystring_auth
        ):
            return None
        probe = urlsplit(storage.url(cls.PROBE, expire=60))
        query = dict(parse_qsl(probe.query, keep_blank_values=True))
        if set(query) - cls.KNOWN or query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            return None
        if query.get("X-Amz-SignedHeaders") != "host" or query.get("X-Amz-Credential", "").count("/") != 4:
            return None
        tail = quote(cls.PROBE, safe="/~")
        if not probe.path.endswith(tail):
            return None
        try:
            credentials = _session_credentials(
                storage.session_profile, storage.access_key, storage.secret_key, storage.security_token
            )
            frozen = credentials.get_frozen_credentials() if credentials else None
        except Exception:
            return None
        if frozen is None or query["X-Amz-Credential"].split("/")[0] != frozen.access_key:
            return None
        if query.get("X-Amz-Security-Token") != frozen.token:
            return None
        return cls(
            scheme=probe.scheme,
            netloc=probe.netloc,
            path_prefix=probe.path[: -len(tail)],
            credential=query["X-Amz-Credential"],
            date=query["X-Amz-Date"],
            token=frozen.token,
            secret=frozen.secret_key,
        )

    def url(self, key: str, expires: int) -> str:
        path = self.path_prefix + quote(key, safe="/~")
        params = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", self.credential),
            ("X-Amz-Date", self.date),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if self.token:
            params.append(("X-Amz-Security-Token", self.token))
        query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params))
        canonical = f"GET\n{path}\n{query}\nhost:{self.netloc}\n\nhost\nUNSIGNED-PAYLOAD"
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{self.date}\n{self.scope}\n{digest}"
        signature = hmac.new(self.signing_key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"{self.scheme}://{self.netloc}{path}?{query}&X-Amz-Signature={signature}"


class UrlSigner:
    """`signer(key, at)`: a URL for a stored key under one of `prefixes`, valid for
    `seconds` after `at` seconds from now (`at`: when the player may first need the file, see
    `playback`). Keys outside the prefixes raise KeyOutsideVideo. On local storage a
    `/media/` URL carrying its expiry and an HMAC (`local_signed_url`)."""

    def __init__(self, prefixes, *, seconds: int | None = None, storage=None):
        self.prefixes = tuple(p.strip("/") + "/" for p in prefixes)
        self.seconds = seconds or signed_url_seconds()
        self.storage = storage or default_storage
        self._presigner = None
        self._presigner_ready = False

    def check(self, key: str) -> None:
        if not key or posixpath.normpath(key) != key or not key.startswith(self.prefixes):
            raise KeyOutsideVideo(f"{key!r} is not under {', '.join(self.prefixes)}")

    def expiry(self, at: float = 0.0) -> int:
        return min(MAX_EXPIRY, self.seconds + math.ceil(max(0.0, at)))

    def __call__(self, key: str, at: float = 0.0) -> str:
        return self.url(key, at=at)

    def url(self, key: str, *, at: float = 0.0, parameters: dict | None = None) -> str:
        self.check(key)
        expire = self.expiry(at)
        if not store_for(self.storage).remote:
            return local_signed_url(self.storage, key, expire)
        if parameters:
            return self.storage.url(key, parameters=parameters, expire=expire)
        if not self._presigner_ready:
            self._presigner, self._presigner_ready = S3Presigner.for_storage(self.storage), True
        if self._presigner is not None:
            return self._presigner.url(key, expire)
        return self.storage.url(key, expire=expire)


def video_signer(video: Video) -> UrlSigner:
    """Signs keys under the video's own prefix and, when it plays another video's outputs
    (`output_prefix`, set by the link and kept when that video is deleted, cleared when this
    one is encoded on its own), under that prefix: nothing else its rows might name."""
    prefixes = [video_prefix(video.pk)]
    if video.output_prefix and video.output_prefix != prefixes[0]:
        prefixes.append(video.output_prefix)
    return UrlSigner(prefixes)


def original_url(video: Video) -> str:
    """S3: a short-lived URL that downloads the original as an attachment under its client
    name, with a neutral content type whatever the object says (S3 answers with these)."""
    name = video.source.name
    signer = UrlSigner([posixpath.dirname(name)])
    parameters = {
        "ResponseContentDisposition": download_disposition(video),
        "ResponseContentType": DOWNLOAD_TYPE,
    }
    return signer.url(name, parameters=parameters)


def download_disposition(video: Video) -> str:
    filename = video.original_filename or posixpath.basename(video.source.name)
    return content_disposition_header(as_attachment=True, filename=filename)
