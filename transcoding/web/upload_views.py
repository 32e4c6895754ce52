"""JSON endpoints for direct uploads to S3, used by the admin's add form
(`static/transcoding/admin-s3-upload.js`). Thin: `uploads` does the work.

Staff who may add videos only (403 JSON otherwise, never a login redirect); every POST is
CSRF-protected, and the script sends the form's token in `X-CSRFToken`. Errors are
`{"error": one sentence, "resumable": bool}` with a status that says why: 400 refused,
403 not yours or not started here, 404 gone, 409 being completed.
"""

import json
from functools import wraps

from django import forms
from django.contrib import messages
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from transcoding import services
from transcoding.conf import settings
from transcoding.ingest import direct_uploads
from transcoding.models import Video


class UploadDetailsForm(forms.ModelForm):
    """What the add form says about the video, sent with `complete`."""

    class Meta:
        model = Video
        fields = ["title", "description", "preset", "poster_time", "published", "private", "speech_language"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"].required = False  # the file name then


def _error(message: str, status: int = 400, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _payload(request) -> dict:
    if request.method == "GET":
        return request.GET.dict()
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise direct_uploads.UploadError("The request is not JSON.")
    if not isinstance(data, dict):
        raise direct_uploads.UploadError("The request is not a JSON object.")
    return data


def upload_endpoint(*methods):
    """Staff with the add-video permission, S3 storage, a JSON object in; UploadError out as
    JSON. CSRF is checked before anything else (also by the middleware)."""

    def decorate(view):
        @wraps(view)
        def wrapper(request):
            user = request.user
            if not (user.is_active and user.is_staff and user.has_perm("transcoding.add_video")):
                return _error("Only staff who may add videos can upload.", 403)
            if not direct_uploads.enabled():
                return _error("Direct uploads need S3 storage (STORAGE=s3).", 404)
            try:
                return view(request, _payload(request))
            except direct_uploads.UploadError as exc:
                return _error(str(exc), exc.status, resumable=exc.resumable)

        return csrf_protect(require_http_methods(list(methods))(wrapper))

    return decorate


def _pending(request, data):
    return direct_uploads.pending_upload(request.user, data.get("key"), data.get("upload_id"))


@upload_endpoint("POST")
def create(request, data):
    upload = direct_uploads.upload_create(
        user=request.user,
        filename=str(data.get("filename") or ""),
        size=data.get("size"),
    )
    return JsonResponse(
        {
            "key": upload.key,
            "upload_id": upload.upload_id,
            "part_size": upload.part_size,
            "parts": direct_uploads.part_count(upload),
        },
        status=201,
    )


@upload_endpoint("POST")
def sign(request, data):
    urls = direct_uploads.upload_sign(_pending(request, data), data.get("part_numbers"))
    return JsonResponse(
        {"urls": {str(n): url for n, url in urls.items()}, "expires_in": settings.UPLOAD_URL_SECONDS}
    )


@upload_endpoint("GET", "POST")
def list_parts(request, data):
    upload = _pending(request, data)
    return JsonResponse(
        {
            "key": upload.key,
            "upload_id": upload.upload_id,
            "size": upload.size,
            "part_size": upload.part_size,
            "part_count": direct_uploads.part_count(upload),
            "parts": direct_uploads.upload_parts(upload),
        }
    )


@upload_endpoint("POST")
def abort(request, data):
    direct_uploads.upload_abort(_pending(request, data))
    return JsonResponse({"aborted": True})


@upload_endpoint("POST")
def complete(request, data):
    upload = _pending(request, data)
    details = {
        name: "" if data.get(name) is None else data[name]
        for name in UploadDetailsForm._meta.fields
        if name in data
    }
    form = UploadDetailsForm(details)
    if not form.is_valid():
        errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
        name, first = next(iter(errors.items()))
        label = form.fields[name].label if name in form.fields else ""
        return _error(f"{label}: {first[0]}" if label else first[0], 400, resumable=True, errors=errors)
    video = direct_uploads.upload_complete(
        upload, video=form.save(commit=False), parts=data.get("parts"), then=services.video_request_processing
    )
    messages.success(request, f"The video “{video.title}” was added successfully; processing is queued.")
    return JsonResponse(
        {
            "video_id": video.pk,
            "admin_url": reverse("admin:transcoding_video_change", args=[video.pk]),
            "status": video.status,
        },
        status=201,
    )
