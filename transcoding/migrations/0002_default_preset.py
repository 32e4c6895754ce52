"""The default ladder, as data: editable in the admin afterwards."""

from django.db import migrations

# (short side, bitrate cap in bits/s, CRF): caps in line with common streaming ladders.
DEFAULT_RUNGS = [
    (1080, 6_000_000, 23),
    (720, 3_000_000, 23),
    (480, 1_500_000, 24),
    (360, 800_000, 25),
    (240, 400_000, 26),
]


def create(apps, schema_editor):
    Preset = apps.get_model("transcoding", "Preset")
    PresetRung = apps.get_model("transcoding", "PresetRung")
    preset, created = Preset.objects.get_or_create(
        name="Default",
        defaults={
            "description": "1080p to 240p, H.264 High, AAC-LC 128 kb/s stereo.",
            "is_default": True,
        },
    )
    if created:
        for height, bitrate, crf in DEFAULT_RUNGS:
            PresetRung.objects.create(preset=preset, height=height, max_bitrate=bitrate, crf=crf)


def remove(apps, schema_editor):
    apps.get_model("transcoding", "Preset").objects.filter(name="Default").delete()


class Migration(migrations.Migration):
    dependencies = [("transcoding", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
