from django.urls import path

from . import views

app_name = "charting"

urlpatterns = [
    path("", views.worklist, name="worklist"),
]
