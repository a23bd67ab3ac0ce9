"""A URL conf for error-handler tests: the project's routes plus views that fail on purpose."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.errors import NotFound, NotFoundCrossTenant
from ftops.urls import handler400, handler403, handler404, handler500, urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


@require_GET
def plain_get_only(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


class HiddenApi(APIView):
    """Object 1 exists but belongs to someone else; others do not exist."""

    def get(self, request: Request, object_id: int) -> Response:
        if object_id == 1:
            raise NotFoundCrossTenant(f"no thing {object_id}", object_type="thing", object_id=object_id)
        raise NotFound(f"no thing {object_id}")


urlpatterns = [
    path("api/v1/hidden/<int:object_id>", HiddenApi.as_view()),
    path("api/v1/boom", boom),
    path("boom", boom),
    path("api/v1/plain-get-only", plain_get_only),
    *urlpatterns,
]
