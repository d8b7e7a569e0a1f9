from django.urls import path

from . import views

app_name = "coding"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("encounters/<uuid:encounter_id>/", views.review, name="review"),
    path("encounters/<uuid:encounter_id>/accept-all/", views.accept_all, name="accept_all"),
    path("lines/<int:line_id>/accept/", views.accept_line, name="accept_line"),
    path("rules/<str:rule_id>/", views.rule, name="rule"),
]
