from django.contrib import admin
from django.urls import include, path

from . import accounts, views

# PHI-3: a generic error page carrying the request id (audit.middleware).
handler500 = "infusion_site.views.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz/", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", accounts.LogoutView.as_view(), name="logout"),
    path("accounts/two-factor/", accounts.two_factor, name="two_factor"),
    path("accounts/two-factor/setup/", accounts.two_factor_setup, name="two_factor_setup"),
    path("nurse/", include("charting.urls")),
    path("coder/", include("coding.urls")),
    path("reports/", include("reports.urls")),
    path("admin/", admin.site.urls),
]
