from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("", views.index, name="index"),
    path("completeness/", views.completeness, name="completeness"),
    path("coding/", views.coding, name="coding"),
    path("timing/", views.timing, name="timing"),
    path("vials/", views.vials, name="vials"),
    path("access/", views.access_log, name="access"),
    path("<slug:report>/<slug:table>.<slug:fmt>", views.export, name="export"),
]
