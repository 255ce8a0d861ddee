"""ImportJob becomes a core ``Job`` (schema): the status choices, an integer percent, heartbeat,
cancel request, worker, task id, start time and the outcome message."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0003_importjob_core_job_data"),
    ]

    operations = [
        migrations.AlterField(
            model_name="importjob",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("running", "Running"),
                    ("completed", "Completed"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="pending",
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="importjob",
            name="progress",
            field=models.PositiveSmallIntegerField(default=0, help_text="0 to 100"),
        ),
        migrations.AlterField(
            model_name="importjob",
            name="error",
            field=models.TextField(blank=True, help_text="human-readable, shown to the user"),
        ),
        migrations.AlterField(
            model_name="importjob",
            name="error_detail",
            field=models.TextField(blank=True, help_text="technical detail of a failure, for admins"),
        ),
        migrations.AddField(
            model_name="importjob",
            name="message",
            field=models.TextField(blank=True, help_text="the outcome in words (what was stored)"),
        ),
        migrations.AddField(
            model_name="importjob",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="importjob",
            name="cancel_requested",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="importjob",
            name="worker",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="importjob",
            name="task_id",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="importjob",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
