from django.urls import path

from ftops.common import notification_views, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("notifications/", notification_views.notification_list, name="notifications"),
    path("notifications/preferences/", notification_views.notification_preferences,
         name="notification_preferences"),
]
