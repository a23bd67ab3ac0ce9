from django.urls import URLPattern, URLResolver, path

from ftops.gateway import views

app_name = "gateway"
urlpatterns: list[URLPattern | URLResolver] = [
    path("deployments/<str:service>/", views.deployments, name="deployments"),
    path("canaries/<int:deployment_id>/<str:action>", views.canary_action, name="canary-action"),
    path("shadows/<str:service>/start", views.shadow_start_view, name="shadow-start"),
    path("shadows/<int:shadow_id>/stop", views.shadow_stop_view, name="shadow-stop"),
]
