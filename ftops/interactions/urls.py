from django.urls import URLPattern, URLResolver, path

from ftops.interactions import views

app_name = "interactions"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.interaction_list, name="list"),
    path("<str:external_id>/", views.interaction_detail, name="detail"),
]
