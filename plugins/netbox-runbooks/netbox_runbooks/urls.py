"""The web UI's routes. ``change`` and ``run`` (and the two lists) are the names the API's
``display_url``, notifications and search results link to."""

from __future__ import annotations

from django.urls import include, path
from utilities.urls import get_model_urls

from netbox_runbooks import views  # noqa: F401 - registers the model views listed here

urlpatterns = [
    path("changes/", include(get_model_urls("netbox_runbooks", "change", detail=False))),
    path("changes/<int:pk>/", include(get_model_urls("netbox_runbooks", "change"))),
    path("runs/", include(get_model_urls("netbox_runbooks", "run", detail=False))),
    path("runs/<int:pk>/", include(get_model_urls("netbox_runbooks", "run"))),
]
