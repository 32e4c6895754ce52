from django.apps import AppConfig


class TranscodingConfig(AppConfig):
    name = "transcoding"
    verbose_name = "Video transcoding"

    def ready(self):
        from transcoding import checks  # noqa: F401  (registers the system checks)
        from transcoding.status import events
        from transcoding.webhooks import events as webhook_events

        # Webhook events are written inside the transition's transaction (status/ knows
        # nothing of webhooks: they hang on its signals here).
        events.status_changing.connect(webhook_events.on_status_changing, dispatch_uid="webhooks")
        events.video_created.connect(webhook_events.on_video_created, dispatch_uid="webhooks")
