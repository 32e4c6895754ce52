"""The admin's forms. An uploaded file is checked here, so a bad one is refused on the form
with one sentence and nothing is saved; a file the upload handlers stopped (over a limit) is
missing, and the form says why instead of asking for it."""

from django import forms
from django.contrib.admin.widgets import AdminFileWidget
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from transcoding.captions import subtitles
from transcoding.conf import settings
from transcoding.ingest import direct_uploads, upload_handlers
from transcoding.models import Subtitle, Video


class RequestForm(forms.ModelForm):
    """A form that knows its request (`for_request`), to show why the upload handlers stopped
    one of its files (`upload_handlers.LimitedUploadHandler`): the file is then missing, and
    the form says why instead of asking for it."""

    request = None

    @classmethod
    def for_request(cls, request):
        return type(cls.__name__, (cls,), {"request": request})

    def refusal(self, name: str) -> str | None:
        return upload_handlers.refusals(self.request).get(self.add_prefix(name)) if self.request else None

    def _clean_fields(self):
        for name in self.files_refused():
            self.fields[name].required = False  # the refusal is the error, not "required"
        super()._clean_fields()
        for name in self.files_refused():
            self.add_error(name, self.refusal(name))

    def files_refused(self) -> list[str]:
        return [n for n, f in self.fields.items() if isinstance(f, forms.FileField) and self.refusal(n)]


class StoredFileInput(AdminFileWidget):
    """The admin's file input, naming the stored file without linking to it."""

    template_name = "transcoding/widgets/stored_file_input.html"


class VideoForm(RequestForm):
    class Meta:
        model = Video
        fields = [
            "title", "description", "source", "preset", "poster_time", "published", "private",
            "speech_language",
        ]  # fmt: skip
        widgets = {"source": StoredFileInput}  # downloaded from "Original", never opened here

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"].required = False
        self.fields["title"].help_text = "Leave empty to use the file name."
        self.fields["source"].help_text = "Choosing a new file replaces the original and reprocesses."
        if self.instance.import_url and not self.instance.source:
            self.fields["source"].required = False  # still being imported: the details stay editable
        if self.instance.pk is None and direct_uploads.enabled():
            self.fields["source"].help_text = (
                "Sent straight to storage in parts; if the upload is interrupted, choose the same file "
                "again to resume it. Subtitles can be added once the video is saved."
            )

    def clean_source(self):
        source = self.cleaned_data.get("source")
        if isinstance(source, UploadedFile) and source.size > settings.MAX_UPLOAD_BYTES:
            limit = filesizeformat(settings.MAX_UPLOAD_BYTES)
            raise forms.ValidationError(f"The file is larger than the {limit} limit.")
        return source

    def clean_speech_language(self):
        code = self.cleaned_data.get("speech_language", "")
        try:
            return subtitles.validate_language(code) if code else ""
        except subtitles.SubtitleInvalid as exc:
            raise forms.ValidationError(str(exc))

    def clean(self):
        cleaned = super().clean()
        if self.files_refused():
            return cleaned
        if not cleaned.get("title") and not isinstance(cleaned.get("source"), UploadedFile):
            self.add_error("title", "A title is required.")
        return cleaned


class SubtitleForm(RequestForm):
    """An uploaded track is parsed here, so a broken file is refused on the form with one
    sentence and nothing is saved. A file over the limit is stopped while it uploads."""

    class Meta:
        model = Subtitle
        fields = ["language", "label", "kind", "is_default", "file"]
        widgets = {"file": StoredFileInput}

    def clean_language(self):
        try:
            return subtitles.validate_language(self.cleaned_data.get("language", ""))
        except subtitles.SubtitleInvalid as exc:
            raise forms.ValidationError(str(exc))

    def clean_label(self):
        try:
            return subtitles.validate_label(self.cleaned_data.get("label", ""))
        except subtitles.SubtitleInvalid as exc:
            raise forms.ValidationError(str(exc))

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if isinstance(upload, UploadedFile):
            try:
                subtitles.check_size(upload.size)  # before reading it
                subtitles.parse(upload.read(), self.cleaned_data.get("language", ""))
            except subtitles.SubtitleInvalid as exc:
                raise forms.ValidationError(str(exc))
            finally:
                upload.seek(0)
        elif not upload and not self.instance.pk and not self.refusal("file"):
            raise forms.ValidationError("Choose an SRT or WebVTT file.")
        return upload
