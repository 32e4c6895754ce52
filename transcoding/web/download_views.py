"""`/videos/<id>/download/<rung>.mp4`: a video's MP4 download as an attachment, for a video
whose files are not handed out by plain URLs (`video_urls.served_signed`: private, unpublished,
or on a bucket that only signs).

Allowed with the signature the API document carries (`video_urls.VideoUrls.download`: an HMAC
of the stored key and an expiry), to a user Django's permissions let view every video, and for
a public video; everyone else gets 404, as for a video that does not exist. The rung is only
ever looked up among the video's download rows: a name that is not one (`../`, anything long)
matches no URL or no row. With S3 the answer is a redirect to a presigned URL that makes S3
send the file as an attachment (`ResponseContentDisposition`), so the bytes never pass through
Django; on local storage Django streams the file.
"""

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_cache_control

from transcoding import access
from transcoding.models import RUNG_NAME, Download, PartStatus, Video
from transcoding.storage import signing
from transcoding.storage.backends import media_store
from transcoding.storage.content_types import DOWNLOAD_MEDIA_TYPE, attachment_disposition
from transcoding.web.media_views import protect

# A presigned redirect only needs to outlive the client following it.
REDIRECT_SECONDS = 60


def _allowed(request, video: Video, download: Download) -> bool:
    query = request.GET
    if "signature" in query:
        return signing.local_signature_valid(download.path, query.get("expires"), query.get("signature"))
    return access.is_public(video) or access.sees_every_video(request.user)


def download(request, pk, name):
    if not RUNG_NAME.match(name):
        raise Http404("No such download.")
    video = get_object_or_404(Video.objects.select_related("outputs_from"), pk=pk)
    row = Download.objects.filter(video=video, name=name, status=PartStatus.READY).exclude(path="").first()
    if row is None or not _allowed(request, video, row):
        raise Http404("No such download.")
    signer = signing.video_signer(video)
    signer.check(row.path)  # only ever a file under the video's own prefixes
    disposition = attachment_disposition(video.title, row.name)
    if media_store().remote:
        parameters = {"ResponseContentDisposition": disposition, "ResponseContentType": DOWNLOAD_MEDIA_TYPE}
        response = HttpResponseRedirect(
            signing.UrlSigner(signer.prefixes, seconds=REDIRECT_SECONDS).url(row.path, parameters=parameters)
        )
    else:
        try:
            handle = default_storage.open(row.path, "rb")
        except FileNotFoundError:
            raise Http404("The download is missing from storage.")
        response = FileResponse(handle, content_type=DOWNLOAD_MEDIA_TYPE)
        response.headers["Content-Disposition"] = disposition
        protect(response)
    patch_cache_control(response, private=True, no_store=True)
    return response
