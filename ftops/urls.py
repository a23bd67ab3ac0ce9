"""Root URLs. Each app owns ``urls.py`` (pages) and ``api_urls.py`` (``/api/v1/`` routes)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_v1: list[URLPattern | URLResolver] = [
    path("", include("ftops.common.api_urls")),
    path("", include("ftops.catalog.api_urls")),
    path("", include("ftops.interactions.api_urls")),
    path("", include("ftops.datasets.api_urls")),
    path("", include("ftops.training.api_urls")),
    path("", include("ftops.evaluation.api_urls")),
    path("", include("review.api_urls")),
    path("", include("registry.api_urls")),
    path("", include("ftops.loop.api_urls")),
    path("schema", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="openapi-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="auth/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_v1)),
    path("", include("ftops.discovery.urls")),
    path("catalog/", include("ftops.catalog.urls")),
    path("interactions/", include("ftops.interactions.urls")),
    path("datasets/", include("ftops.datasets.urls")),
    path("training/", include("ftops.training.urls")),
    path("evaluation/", include("ftops.evaluation.urls")),
    path("review/", include("review.urls")),
    path("registry/", include("registry.urls")),
    path("loop/", include("ftops.loop.urls")),
    path("gateway/", include("ftops.gateway.urls")),
    path("reports/", include("ftops.reports.urls")),
    path("", include("ftops.home.urls")),
    path("", include("ftops.common.urls")),
]

# Error answers: the JSON envelope under /api/, the app's pages elsewhere (ftops.common.views).
handler400 = "ftops.common.views.bad_request"
handler403 = "ftops.common.views.permission_denied"
handler404 = "ftops.common.views.page_not_found"
handler500 = "ftops.common.views.server_error"
