from django.urls import URLPattern, URLResolver, path

from ftops.training import views

app_name = "training"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.run_list, name="runs"),
    path("new", views.run_new, name="new"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/cancel", views.run_cancel, name="cancel"),
    path("runs/<int:run_id>/artifact", views.run_artifact, name="artifact"),
]
