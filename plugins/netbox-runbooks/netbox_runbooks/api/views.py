"""The REST API (`/api/plugins/runbooks/`, see the plugin's README): reads as NetBox's own
(view permissions, filters, ``brief``, ``fields``, ``omit``), and writes only through the
operations of `netbox_runbooks.changes`/`runs`. There is no PUT, PATCH or DELETE: a change's
plan and hash, its signatures, runs and record entries are never rewritten.

A write needs an authenticated user (with a write-enabled token, when a token is used); the
rules decide everything else, and their refusals answer 403 with one sentence."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from netbox.api.authentication import TokenPermissions, TokenWritePermission
from netbox.api.viewsets import BaseViewSet, NetBoxReadOnlyModelViewSet
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from runbooks_rules.policy import AUTHORITIES

from netbox_runbooks import changes, records, renders, runs
from netbox_runbooks import sheet as record_sheet
from netbox_runbooks.api import serializers as s
from netbox_runbooks.errors import Invalid, RunbooksError
from netbox_runbooks.filtersets import ChangeFilterSet, RunFilterSet
from netbox_runbooks.identity import identity_of
from netbox_runbooks.models import Change, RecordEntry, Run
from netbox_runbooks.tokens import carries_token

__all__ = ("ChangeViewSet", "RenderConfigsView", "RunViewSet", "WhoAmIView")


class WriteByRules(BasePermission):
    """A write: an authenticated user, whose token (if one is used) may write, and whose body
    holds no API token. Which writes they may make is for the rules (403 with a sentence)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if getattr(request.auth, "write_enabled", True) is False:
            raise PermissionDenied("this API token is read-only: writing needs a write-enabled one")
        auth = request.META.get("HTTP_AUTHORIZATION", "")
        if carries_token(request.body, auth):
            raise ParseError(
                "the request carries an API token: secrets are never stored, mask it first"
            )
        return True


class RulesViewSet(NetBoxReadOnlyModelViewSet):
    """Reads as NetBox's; writes by `WriteByRules`; service errors as status + ``detail``."""

    list_omits: tuple[str, ...] = ()

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method in SAFE_METHODS:
            return [TokenPermissions()]
        return [WriteByRules()]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RunbooksError):
            return Response({"detail": str(exc)}, status=exc.status)
        return super().handle_exception(exc)

    @cached_property
    def field_kwargs(self) -> dict[str, Any]:
        """A list leaves out the heavy fields unless ``fields``/``omit``/``brief`` ask."""
        params = self.request.query_params
        explicit = params.get("fields") or params.get("omit") or self.brief
        if self.action == "list" and self.list_omits and not explicit:
            return {"omit": list(self.list_omits)}
        return BaseViewSet.field_kwargs.func(self)  # type: ignore[attr-defined,no-any-return]

    def visible(self, model: type[Any], pk: Any) -> Any:
        """The object for an action: one the user may view (404 otherwise). The viewset's own
        queryset is restricted to *adding* on a POST, which is not the question here."""
        return get_object_or_404(model.objects.restrict(self.request.user, "view"), pk=pk)

    def entries_page(self, queryset: QuerySet[RecordEntry]) -> Response:
        """A chain's entries in order, paginated as NetBox's lists (``limit``, ``offset``);
        ``?after=<seq>`` starts after that position."""
        after = self.request.query_params.get("after", "")
        qs = queryset.select_related("recorded_by").order_by("seq")
        if after.isdigit():
            qs = qs.filter(seq__gt=int(after))
        page = self.paginate_queryset(qs)
        rows = [s.entry_dict(e) for e in (qs if page is None else page)]
        return Response(rows) if page is None else self.get_paginated_response(rows)

    def body(self, serializer_class: type[Any]) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class ChangeViewSet(RulesViewSet):
    queryset = Change.objects.select_related("preparer", "scheduled_by").prefetch_related(
        "signatures__user", "runs", "tags"
    )
    serializer_class = s.ChangeSerializer
    filterset_class = ChangeFilterSet
    list_omits = (
        "instruction",
        "params",
        "plan",
        "signatures",
        "runs",
        "scheduled_by",
        "confirm_manual",
    )

    def get_queryset(self) -> QuerySet[Change]:
        qs = super().get_queryset()
        if "plan" not in self.response_fields:
            qs = qs.defer("plan", "params")  # a plan can hold whole configurations
        return qs

    def answer(self, change: Change, code: int = status.HTTP_200_OK) -> Response:
        """The change as it is now (signatures and runs included)."""
        visible = type(self).queryset.restrict(self.request.user, "view")
        fresh = get_object_or_404(visible, pk=change.pk)
        return Response(s.ChangeSerializer(fresh, context={"request": self.request}).data, code)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = self.body(s.ChangeCreateSerializer)
        spec = changes.ChangeSpec(
            runbook=body["runbook"],
            plan=body["plan"],
            instruction=body.get("instruction", ""),
            params=body.get("params"),
            window_start=body.get("window_start"),
            window_end=body.get("window_end"),
            unreviewed=body["unreviewed"],
        )
        change = changes.create_change(request.user, spec)
        return self.answer(change, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def sign(self, request: Request, pk: Any = None) -> Response:
        change = self.visible(Change, pk)
        body = self.body(s.SignSerializer)
        changes.sign(
            request.user,
            change.pk,
            body["authority"],
            body["hash"],
            note=body["note"],
            current_hash=body.get("current_hash") or None,
            drift=body["drift"],
            check_only=body["check_only"],
        )
        if body["check_only"]:
            return self.answer(change)
        return self.answer(change, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def schedule(self, request: Request, pk: Any = None) -> Response:
        change = self.visible(Change, pk)
        body = self.body(s.ScheduleSerializer)
        changes.schedule(request.user, change.pk, body["confirm_manual"])
        return self.answer(change)

    @action(detail=True, methods=["post"], url_path="runs")
    def start_run(self, request: Request, pk: Any = None) -> Response:
        change = self.visible(Change, pk)
        body = self.body(s.RunStartSerializer)
        if body["check_only"]:
            emergency = runs.check_start(request.user, change.pk, body["scheduled"])
            return Response({"emergency": emergency}, status=status.HTTP_200_OK)
        if not body.get("plan_hash"):
            raise Invalid("plan_hash is required: the plan as your client recomputed it now")
        run = runs.start_run(
            request.user,
            change.pk,
            body["plan_hash"],
            drift=body["drift"],
            scheduled=body["scheduled"],
            worker=body["worker"] or "",
            run_id=body["run_id"],
        )
        data = s.RunSerializer(run, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def entries(self, request: Request, pk: Any = None) -> Response:
        change = self.get_object()
        return self.entries_page(RecordEntry.objects.filter(chain=change.name))

    @action(detail=True, methods=["get"])
    def verify(self, request: Request, pk: Any = None) -> Response:
        report, problems = records.verify_change(self.get_object())
        return Response(records.report_dict(report, problems))


class RunViewSet(RulesViewSet):
    queryset = Run.objects.select_related("change", "operator").prefetch_related(
        "signatures__user", "tags"
    )
    serializer_class = s.RunSerializer
    filterset_class = RunFilterSet

    @action(detail=True, methods=["get", "post"])
    def entries(self, request: Request, pk: Any = None) -> Response:
        if request.method == "GET":
            return self.entries_page(self.get_object().entries.all())
        run = self.visible(Run, pk)
        body = self.body(s.EntriesSerializer)
        posted = runs.post_entries(request.user, run.pk, body["entries"])
        return Response(
            {"length": posted.length, "head": posted.head}, status=status.HTTP_201_CREATED
        )

    @action(detail=True, methods=["get"])
    def verify(self, request: Request, pk: Any = None) -> Response:
        return Response(records.report_dict(records.verify_run(self.get_object())))

    @action(detail=True, methods=["post"])
    def signoff(self, request: Request, pk: Any = None) -> Response:
        run = self.visible(Run, pk)
        body = self.body(s.SignoffSerializer)
        signature = runs.sign_off(request.user, run.pk, body["note"])
        data = {"run_id": run.run_id, "role": signature.authority}
        data |= s.SignatureSerializer(signature).data
        return Response(data, status=status.HTTP_201_CREATED)

    @action(
        detail=True,
        methods=["get"],
        renderer_classes=record_sheet.RENDERERS,
        content_negotiation_class=record_sheet.Download,
    )
    def sheet(self, request: Request, pk: Any = None) -> HttpResponse:
        run = self.get_object()
        fmt = request.query_params.get("format", "html")
        if fmt not in record_sheet.FORMATS:
            return HttpResponse("format: html or md\n", status=400, content_type="text/plain")
        return record_sheet.download(run, fmt)


class WhoAmIView(APIView):
    """The authenticated user as the rules see them."""

    def get(self, request: Request) -> Response:
        who = identity_of(request.user)
        groups = sorted(request.user.groups.values_list("name", flat=True))
        authorities = [a for a in AUTHORITIES if who.holds(a)]
        return Response({"username": who.username, "authorities": authorities, "groups": groups})

    permission_classes = (IsAuthenticated,)


class RenderConfigsView(APIView):
    """``POST {"devices": [id, ...]}``: each device's configuration as NetBox's render-config
    renders it, in one request (`netbox_runbooks.renders`). Allowed as render-config is: token
    authentication with a write-enabled token (its permission class); only devices the user
    may render and view."""

    permission_classes = (TokenWritePermission,)

    def post(self, request: Request) -> Response:
        ids = request.data.get("devices") if isinstance(request.data, dict) else None
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        ):
            raise Invalid("devices: a list of device ids (integers) is required")
        if len(ids) > renders.MAX_DEVICES:
            raise Invalid(f"devices: at most {renders.MAX_DEVICES} in one request")
        answers = renders.render_configs(request.user, ids)
        return Response({"devices": {str(pk): answer for pk, answer in answers.items()}})

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RunbooksError):
            return Response({"detail": str(exc)}, status=exc.status)
        return super().handle_exception(exc)
