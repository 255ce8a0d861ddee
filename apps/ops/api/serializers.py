"""Serializers of the operations API (staff) and of a user's job list."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api.serializers import ModelSerializer, StrictSerializer
from apps.core.jobs import JobStatus
from apps.ops.cachekeys import CLEARABLE_GROUPS
from apps.ops.models import DeadLetter
from apps.ops.selectors import USER_JOB_KINDS


class ActiveTaskSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField(allow_null=True)
    args = serializers.CharField(allow_null=True)
    kwargs = serializers.CharField(allow_null=True)
    started = serializers.FloatField(allow_null=True, help_text="epoch seconds")


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())
    active = ActiveTaskSerializer(many=True)
    reserved = serializers.IntegerField(help_text="tasks prefetched, waiting in the worker")


class WorkersSerializer(serializers.Serializer):
    mode = serializers.CharField(help_text="redis, or embedded (no REDIS_URL: an in-process worker)")
    available = serializers.BooleanField()
    detail = serializers.CharField(allow_blank=True, help_text="why something is unavailable")
    workers = WorkerSerializer(many=True)


class QueuesSerializer(serializers.Serializer):
    available = serializers.BooleanField()
    detail = serializers.CharField(allow_blank=True)
    queues = serializers.DictField(child=serializers.IntegerField(), help_text="queue -> messages waiting")


class JobsOverviewSerializer(serializers.Serializer):
    mode = serializers.CharField(help_text="redis, or embedded (no REDIS_URL: an in-process worker)")
    workers = WorkersSerializer()
    queues = QueuesSerializer()
    dead_letters_pending = serializers.IntegerField()
    ms = serializers.FloatField(help_text="time taken to gather this")


class OutcomeSerializer(serializers.Serializer):
    task_id = serializers.CharField(allow_null=True)
    state = serializers.CharField()
    result = serializers.CharField(allow_blank=True, help_text="the result's repr, cut at 500 characters")
    at = serializers.CharField(allow_null=True, help_text="ISO-8601")


class ScheduleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    task = serializers.CharField()
    enabled = serializers.BooleanField()
    declared_in_code = serializers.BooleanField(help_text="false: added in admin (or Celery's own)")
    schedule = serializers.CharField()
    queue = serializers.CharField(allow_blank=True)
    last_run_at = serializers.DateTimeField(allow_null=True)
    total_run_count = serializers.IntegerField()
    next_run_at = serializers.DateTimeField(
        allow_null=True,
        help_text="when beat sends it next (never run: an interval from its last change or start_time, "
        "a crontab at its next match); null when paused",
    )
    last_outcome = OutcomeSerializer(allow_null=True)


class TaskResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    task_id = serializers.CharField()
    task_name = serializers.CharField(allow_null=True)
    periodic_task_name = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    worker = serializers.CharField(allow_null=True)
    task_args = serializers.CharField(allow_null=True)
    task_kwargs = serializers.CharField(allow_null=True)
    result = serializers.CharField(allow_null=True)
    traceback = serializers.CharField(allow_null=True)
    date_created = serializers.DateTimeField(allow_null=True)
    date_done = serializers.DateTimeField(allow_null=True)


class RetriedSerializer(serializers.Serializer):
    task_id = serializers.CharField(help_text="the id of the task sent again")


class DeadLetterSerializer(ModelSerializer):
    class Meta:
        model = DeadLetter
        fields = [
            "id", "task_id", "task_name", "args", "kwargs", "queue", "retries", "worker", "exception_type",
            "error", "traceback", "failed_at", "replayed", "replayed_at", "replay_task_id", "replay_count",
        ]  # fmt: skip


class CacheGroupSerializer(serializers.Serializer):
    key = serializers.CharField()
    prefix = serializers.CharField()
    description = serializers.CharField()
    clearable = serializers.BooleanField()
    keys = serializers.IntegerField()


class CacheOverviewSerializer(serializers.Serializer):
    available = serializers.BooleanField()
    backend = serializers.CharField()
    detail = serializers.CharField(allow_blank=True)
    ping_ms = serializers.FloatField(required=False)
    memory = serializers.DictField(required=False)
    hits = serializers.IntegerField(required=False)
    misses = serializers.IntegerField(required=False)
    hit_ratio = serializers.FloatField(required=False, allow_null=True, help_text="hits / (hits + misses)")
    keyspace = serializers.DictField(required=False)
    db_keys = serializers.IntegerField(required=False, help_text="every key of the database (broker too)")
    cache_key_prefix = serializers.CharField(required=False)
    groups = CacheGroupSerializer(many=True, required=False)
    other_prefixes = serializers.DictField(child=serializers.IntegerField(), required=False)
    cache_keys_scanned = serializers.IntegerField(required=False)
    truncated = serializers.BooleanField(required=False, help_text="the scan stopped at its cap")


class NoInputSerializer(StrictSerializer):
    """The body of an action that takes none: empty, or ``{}``; anything else is a 400."""


class CacheClearInputSerializer(StrictSerializer):
    group = serializers.ChoiceField(choices=CLEARABLE_GROUPS)


class CacheClearedSerializer(serializers.Serializer):
    group = serializers.CharField()
    prefix = serializers.CharField()
    deleted = serializers.IntegerField()
    protected_skipped = serializers.IntegerField()


class TaskResultFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"], required=False
    )
    task_name = serializers.CharField(required=False, max_length=255)


class DeadLetterFilterSerializer(serializers.Serializer):
    replayed = serializers.BooleanField(required=False, allow_null=True, default=None)
    task_name = serializers.CharField(required=False, max_length=255)


class UserJobFilterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=USER_JOB_KINDS, required=False)
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)


class UserJobSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=USER_JOB_KINDS)
    id = serializers.IntegerField()
    title = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    progress = serializers.IntegerField(help_text="0 to 100")
    attempt = serializers.IntegerField(help_text="1, then one more for each automatic re-run after a fault")
    error = serializers.DictField(allow_null=True, help_text="code and message (and more per kind)")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    url = serializers.CharField(allow_null=True, help_text="the dashboard page that shows it")
