from django.urls import URLPattern, URLResolver, path

from registry import views

app_name = "registry"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.version_list, name="models"),
    path("<int:version_id>/", views.version_detail, name="version"),
    path("<int:version_id>/approve", views.version_approve, name="approve"),
    path("<int:version_id>/override", views.version_override, name="override"),
    path("<int:version_id>/reject", views.version_reject, name="reject"),
    path("<int:version_id>/promote", views.version_promote, name="promote"),
    path("<int:version_id>/promote-partial", views.version_promote_partial, name="promote_partial"),
    path("<int:version_id>/rollback", views.version_rollback, name="rollback"),
    path("<int:version_id>/evaluate", views.version_evaluate, name="evaluate"),
    path("runs/<int:run_id>/", views.run_version, name="run"),
    path("runs/<int:run_id>/register", views.run_register, name="run_register"),
    path("examples/<int:example_id>/", views.example_versions, name="example"),
]
