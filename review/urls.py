from django.urls import path

from review import views

app_name = "review"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("next", views.claim_next, name="next"),
    path("bulk", views.bulk, name="bulk"),
    path("stats", views.stats, name="stats"),
    path("<int:item_id>/", views.item_detail, name="item"),
    path("by-interaction/<int:interaction_id>/", views.by_interaction, name="by-interaction"),
    path("<int:item_id>/validate", views.validate_field, name="validate"),
    path("<int:item_id>/claim", views.claim, name="claim"),
    path("<int:item_id>/release", views.release, name="release"),
    path("<int:item_id>/reject", views.reject, name="reject"),
    path("<int:item_id>/skip", views.skip, name="skip"),
]
