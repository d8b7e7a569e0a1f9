from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

# PHI-3: a generic error page carrying the request id (audit.middleware).
handler500 = "infusion_site.views.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz/", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("nurse/", include("charting.urls")),
    path("coder/", include("coding.urls")),
    path("reports/", include("reports.urls")),
    path("admin/", admin.site.urls),
]
