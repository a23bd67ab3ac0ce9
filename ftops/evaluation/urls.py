from django.urls import URLPattern, URLResolver, path

from ftops.evaluation import views

app_name = "evaluation"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.run_list, name="runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/failures/", views.run_failures, name="failures"),
    path("compare/", views.run_compare, name="compare"),
    path("runs/<int:run_id>/failures/<int:failure_id>/review", views.failure_send_to_review, name="failure-review"),
    path("runs/<int:run_id>/failures/<int:failure_id>/example", views.failure_make_example, name="failure-example"),
]
