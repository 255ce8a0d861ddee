"""ImportJob becomes a core ``Job`` (data): "state" -> "status" ("done" -> "completed"), progress
rounded to an integer percent, the human-readable error is ``error`` (the technical one is kept as
``error_detail``), failed jobs get an error code. The column types change in 0004: PostgreSQL refuses
an ALTER TABLE after row updates in the same transaction."""

from django.db import migrations, models


def forwards(apps, schema_editor):
    ImportJob = apps.get_model("marketdata", "ImportJob")
    ImportJob.objects.filter(status="done").update(status="completed")
    for job in ImportJob.objects.exclude(progress=0).only("id", "progress"):
        ImportJob.objects.filter(id=job.id).update(progress=max(0, min(100, int(job.progress))))
    ImportJob.objects.filter(status="failed", error_code="").update(error_code="error")


def backwards(apps, schema_editor):
    ImportJob = apps.get_model("marketdata", "ImportJob")
    ImportJob.objects.filter(status="completed").update(status="done")
    ImportJob.objects.filter(status="cancelled").update(status="failed")


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0002_candle_market_no_index_no_constraint"),
    ]

    operations = [
        migrations.RenameField("importjob", "state", "status"),
        migrations.RenameField("importjob", "error", "error_detail"),
        migrations.RenameField("importjob", "human_readable_error", "error"),
        migrations.AddField(
            model_name="importjob",
            name="error_code",
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.RunPython(forwards, backwards),
    ]
