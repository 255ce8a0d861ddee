"""Operations API (``/api/v1/ops/``, staff only) and a user's own jobs (``/api/v1/jobs/``).

Staff endpoints answer a non-staff user 403 (``permission_denied``): they are not anyone's
objects, so there is nothing to hide behind a 404.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import NotFound
from apps.ops import selectors, services
from apps.ops.api import serializers as s

MAX_ID = 2**63 - 1


def _id(pk: str) -> int:
    """A path id as a database id; anything else (or past bigint) is simply not found."""
    try:
        value = int(pk)
    except (TypeError, ValueError):
        raise NotFound() from None
    if not 0 < value <= MAX_ID:
        raise NotFound()
    return value


def _query(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _no_body(request: Request) -> None:
    s.NoInputSerializer(data=request.data).is_valid(raise_exception=True)


class StaffView:
    permission_classes = [IsAdminUser]
    filter_backends: list = []


class JobsOverviewView(StaffView, APIView):
    @extend_schema(responses=s.JobsOverviewSerializer, summary="Workers, queue lengths, pending dead letters")
    def get(self, request: Request) -> Response:
        return Response(s.JobsOverviewSerializer(selectors.jobs_overview()).data)


class WorkersView(StaffView, APIView):
    @extend_schema(responses=s.WorkersSerializer, summary="Celery workers: their queues and running tasks")
    def get(self, request: Request) -> Response:
        return Response(s.WorkersSerializer(selectors.workers_overview()).data)


class QueuesView(StaffView, APIView):
    @extend_schema(responses=s.QueuesSerializer, summary="Messages waiting per queue")
    def get(self, request: Request) -> Response:
        return Response(s.QueuesSerializer(selectors.queue_lengths()).data)


class ScheduleViewSet(StaffView, viewsets.GenericViewSet):
    """Beat schedules (django-celery-beat): last run, next run, last outcome; pause and resume."""

    serializer_class = s.ScheduleSerializer
    lookup_value_regex = r"\d+"

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.schedule_list())
        return self.get_paginated_response(s.ScheduleSerializer(page, many=True).data)

    def _set(self, request: Request, pk: str, enabled: bool) -> Response:
        _no_body(request)
        task = services.schedule_set_enabled(pk=_id(pk), enabled=enabled)
        row = next(row for row in selectors.schedule_list() if row["id"] == task.pk)
        return Response(s.ScheduleSerializer(row).data)

    @extend_schema(request=None, responses=s.ScheduleSerializer, summary="Pause a schedule (beat skips it)")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return self._set(request, pk, False)

    @extend_schema(request=None, responses=s.ScheduleSerializer, summary="Resume a paused schedule")
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._set(request, pk, True)


class TaskResultViewSet(StaffView, viewsets.GenericViewSet):
    """Recent task results (django-celery-results), failures with their tracebacks; retry a failure."""

    serializer_class = s.TaskResultSerializer
    lookup_value_regex = r"\d+"

    @extend_schema(parameters=[s.TaskResultFilterSerializer])
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(
            selectors.task_result_list(**_query(s.TaskResultFilterSerializer, request))
        )
        return self.get_paginated_response(s.TaskResultSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.TaskResultSerializer(selectors.task_result_get(pk=_id(pk))).data)

    @extend_schema(
        request=None,
        responses={202: s.RetriedSerializer},
        summary="Send a failed task again with its recorded arguments (409 if not failed or not recorded)",
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        _no_body(request)
        task_id = services.task_result_retry(result=selectors.task_result_get(pk=_id(pk)))
        return Response({"task_id": task_id}, status=202)


class DeadLetterViewSet(StaffView, viewsets.GenericViewSet):
    """Tasks that failed after their retries, with arguments and error; replay one (once)."""

    serializer_class = s.DeadLetterSerializer
    lookup_value_regex = r"\d+"

    @extend_schema(parameters=[s.DeadLetterFilterSerializer])
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(
            selectors.dead_letter_list(**_query(s.DeadLetterFilterSerializer, request))
        )
        return self.get_paginated_response(s.DeadLetterSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.DeadLetterSerializer(selectors.dead_letter_get(pk=_id(pk))).data)

    @extend_schema(
        request=None,
        responses={202: s.DeadLetterSerializer},
        summary="Send the task again with the same arguments and mark the letter replayed (409 if it was)",
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        _no_body(request)
        letter = services.dead_letter_replay(letter=selectors.dead_letter_get(pk=_id(pk)))
        return Response(s.DeadLetterSerializer(letter).data, status=202)


class CacheView(StaffView, APIView):
    @extend_schema(
        responses=s.CacheOverviewSerializer, summary="Redis cache: health, memory, hit ratio, keys"
    )
    def get(self, request: Request) -> Response:
        return Response(s.CacheOverviewSerializer(selectors.cache_overview()).data)


class CacheClearView(StaffView, APIView):
    @extend_schema(
        request=s.CacheClearInputSerializer,
        responses=s.CacheClearedSerializer,
        summary="Delete one cache family's keys (never Celery's or Channels'); 503 in embedded mode",
    )
    def post(self, request: Request) -> Response:
        serializer = s.CacheClearInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(
            s.CacheClearedSerializer(services.cache_clear_group(**serializer.validated_data)).data
        )


class UserJobViewSet(viewsets.GenericViewSet):
    """Your jobs of every kind (backtests, optimizations, imports, downloads, bot replays), newest first."""

    serializer_class = s.UserJobSerializer
    filter_backends: list = []

    @extend_schema(parameters=[s.UserJobFilterSerializer])
    def list(self, request: Request) -> Response:
        index = selectors.user_job_index(user=request.user, **_query(s.UserJobFilterSerializer, request))
        page = self.paginate_queryset(index)
        return self.get_paginated_response(s.UserJobSerializer(selectors.user_job_rows(page), many=True).data)
