from django.urls import URLPattern, URLResolver, path

from ftops.home import views

# No namespace: "home" is the name every page's header and LOGIN_REDIRECT_URL use.
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
]
