from django.urls import URLPattern, URLResolver, path

from ftops.gateway import views

app_name = "gateway"
urlpatterns: list[URLPattern | URLResolver] = [
    path("deployments/<str:service>/", views.deployments, name="deployments"),
    path("canaries/<int:deployment_id>/<str:action>", views.canary_action, name="canary-action"),
]
