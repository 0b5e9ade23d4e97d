from django.urls import path
from netbox.api.routers import NetBoxRouter

from netbox_runbooks.api import views

router = NetBoxRouter()
router.register("changes", views.ChangeViewSet)
router.register("runs", views.RunViewSet)

urlpatterns = [
    path("whoami/", views.WhoAmIView.as_view(), name="whoami"),
    path("render-configs/", views.RenderConfigsView.as_view(), name="render-configs"),
    *router.urls,
]
