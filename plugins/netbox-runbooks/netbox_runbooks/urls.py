"""The web UI's routes. The pages are built on these models by the UI's own views; until
they land, a change's and a run's page name (which the API's `display_url`, notifications
and search results link to) lead to the object in the API."""

from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView


def _to_api(name: str) -> RedirectView:
    return RedirectView.as_view(pattern_name=f"plugins-api:netbox_runbooks-api:{name}")


urlpatterns = [
    path("changes/", _to_api("change-list"), name="change_list"),
    path("changes/<int:pk>/", _to_api("change-detail"), name="change"),
    path("runs/", _to_api("run-list"), name="run_list"),
    path("runs/<int:pk>/", _to_api("run-detail"), name="run"),
]
