from django.urls import URLPattern, URLResolver, path

from ftops.datasets import views

app_name = "datasets"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.version_list, name="versions"),
    path("build", views.version_build, name="build"),
    path("diff", views.version_diff, name="diff"),
    path("examples/", views.example_list, name="examples"),
    path("examples/<int:example_id>/", views.example_detail, name="example"),
    path("<int:number>/", views.version_detail, name="version"),
]
