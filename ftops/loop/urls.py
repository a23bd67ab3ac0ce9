from django.urls import URLPattern, URLResolver, path

from ftops.loop import views

app_name = "loop"
urlpatterns: list[URLPattern | URLResolver] = [
    path("triggers/", views.trigger_list, name="triggers"),
    path("cycles/", views.cycle_list, name="cycles"),
    path("cycles/start", views.cycle_start_view, name="start"),
    path("cycles/<int:cycle_id>/", views.cycle_detail, name="cycle"),
]
