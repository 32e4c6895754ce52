"""The data, one module per concern; every model is importable from `transcoding.models`.

- `videos`: Video, Preset and its rungs, the status vocabulary (VideoStatus, PartStatus, PartKind).
- `parts`: what a video is made of (Rendition, Storyboard, Poster, Subtitle), with shared status fields.
- `jobs`: ProcessingJob, the unit of dispatched work.
- `uploads`: uploads in progress (PendingUpload, and the parts of local ones: UploadPart).
- `api_keys`: ApiKey, a program acting for a user through /api/v1/.
- `downloads`: MP4 downloads of chosen rungs (Download).
- `webhooks`: endpoints, events, deliveries and their attempts (docs/webhooks.md).
"""

from transcoding.models.api_keys import ApiKey  # noqa: F401
from transcoding.models.downloads import RUNG_NAME, Download  # noqa: F401
from transcoding.models.jobs import (  # noqa: F401
    ACTIVE_JOB_STATES,
    JobState,
    ProcessingJob,
    ProcessingJobQuerySet,
    stuck_q,
)
from transcoding.models.parts import PartMixin, Poster, Rendition, Storyboard, Subtitle  # noqa: F401
from transcoding.models.uploads import PendingUpload, UploadPart  # noqa: F401
from transcoding.models.videos import (  # noqa: F401
    ENCODE_PARTS,
    LANGUAGE_CODE,
    PART_DONE,
    DownloadRungs,
    PartKind,
    PartStatus,
    Preset,
    PresetRung,
    Video,
    VideoStatus,
    download_rungs_default,
    generates_subtitles,
    preset_spec,
    private_default,
    source_upload_to,
    subtitle_upload_to,
    validate_language_code,
    validate_one_line,
)
from transcoding.models.webhooks import (  # noqa: F401
    EVENT_TYPES,
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    due_q,
)
