from django.urls import URLPattern, URLResolver, path

from ftops.loop import views

app_name = "loop"
urlpatterns: list[URLPattern | URLResolver] = [
    path("triggers/", views.trigger_list, name="triggers"),
]
