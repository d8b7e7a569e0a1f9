from django.urls import path

from . import views

app_name = "coding"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("encounters/<uuid:encounter_id>/", views.review, name="review"),
    path("encounters/<uuid:encounter_id>/accept-all/", views.accept_all, name="accept_all"),
    path("encounters/<uuid:encounter_id>/lines/add/", views.add_line, name="add_line"),
    path("encounters/<uuid:encounter_id>/queries/", views.open_query, name="open_query"),
    path("encounters/<uuid:encounter_id>/finalise/", views.finalise, name="finalise"),
    path("lines/<int:line_id>/accept/", views.accept_line, name="accept_line"),
    path("lines/<int:line_id>/change/", views.change_line, name="change_line"),
    path("lines/<int:line_id>/delete/", views.delete_line, name="delete_line"),
    path("final-lines/<int:final_id>/withdraw/", views.withdraw_line, name="withdraw_line"),
    path("queries/<int:query_id>/close/", views.close_query, name="close_query"),
    path("export/", views.export, name="export"),
    path("export/download/", views.export_download, name="export_download"),
    path("rules/<str:rule_id>/", views.rule, name="rule"),
]
