from django.urls import URLPattern, URLResolver, path

from ftops.catalog import views

app_name = "catalog"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.services, name="services"),
    path("<slug:service>/", views.service_detail, name="service"),
    path("<slug:service>/tools/<str:tool>/", views.tool_detail, name="tool"),
]
