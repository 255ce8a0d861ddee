"""Runs and optimizations become ``apps.core.jobs.Job`` subclasses.

``error_message`` is renamed to the core job's ``error`` (rows keep their
messages), and the backtests-only reaper schedule is removed: the one core
reaper (``apps.core.tasks.reap_stale_jobs``) covers every job model.
"""

from django.db import migrations, models

OLD_REAPER = "backtests: reap runs of dead workers"


def drop_old_reaper_schedule(apps, schema_editor):
    try:
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    except LookupError:
        return
    PeriodicTask.objects.filter(name=OLD_REAPER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backtests", "0003_equity_preview"),
        ("django_celery_beat", "0001_initial"),
    ]

    operations = [
        migrations.RenameField(model_name="backtestrun", old_name="error_message", new_name="error"),
        migrations.RenameField(model_name="optimization", old_name="error_message", new_name="error"),
        migrations.AlterField(
            model_name="backtestrun",
            name="error",
            field=models.TextField(blank=True, help_text="human-readable, shown to the user"),
        ),
        migrations.AlterField(
            model_name="optimization",
            name="error",
            field=models.TextField(blank=True, help_text="human-readable, shown to the user"),
        ),
        migrations.AlterField(
            model_name="backtestrun",
            name="progress",
            field=models.PositiveSmallIntegerField(default=0, help_text="0 to 100"),
        ),
        migrations.AlterField(
            model_name="optimization",
            name="progress",
            field=models.PositiveSmallIntegerField(default=0, help_text="0 to 100"),
        ),
        migrations.RunPython(drop_old_reaper_schedule, migrations.RunPython.noop),
    ]
