from django.apps import AppConfig


class TranscodingConfig(AppConfig):
    name = "transcoding"
    verbose_name = "Video transcoding"

    def ready(self):
        from transcoding import checks  # noqa: F401  (registers the system checks)
