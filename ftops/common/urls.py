from django.urls import path

from ftops.common import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
]
