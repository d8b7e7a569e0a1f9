from django.urls import path

from . import views, views_clinical, views_scan

app_name = "charting"

urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("encounters/open/", views.open_encounter, name="open_encounter"),
    path("encounters/<uuid:pk>/", views.encounter, name="encounter"),
    path("encounters/<uuid:pk>/ready/", views.ready_panel, name="ready_panel"),
    path("encounters/<uuid:pk>/access-sites/", views.add_access_site, name="add_access_site"),
    path("encounters/<uuid:pk>/administrations/", views.add_administration, name="add_administration"),
    path("encounters/<uuid:pk>/sign/", views.sign_encounter, name="sign_encounter"),
    path("encounters/<uuid:pk>/answer/", views.answer_query, name="answer_query"),
    # The site / E-M service is a POSTed id inside the encounter (PHI-1: URLs name records by uuid).
    path("encounters/<uuid:pk>/access-sites/edit/", views.edit_access_site, name="edit_access_site"),
    path("encounters/<uuid:pk>/access-sites/check/", views.check_access_site, name="check_access_site"),
    path("encounters/<uuid:pk>/em-note/", views.document_em_service, name="document_em_service"),
    # Vitals, reactions, dosing help (issue #8): charting/views_clinical.py.
    path("encounters/<uuid:pk>/vitals/", views_clinical.record_vitals, name="record_vitals"),
    path("encounters/<uuid:pk>/vitals/correct-time/", views_clinical.correct_vitals_time, name="correct_vitals_time"),
    path("encounters/<uuid:pk>/vitals/entered-in-error/", views_clinical.strike_vitals, name="strike_vitals"),
    path("encounters/<uuid:pk>/reactions/", views_clinical.record_reaction, name="record_reaction"),
    path("encounters/<uuid:pk>/reactions/outcome/", views_clinical.reaction_outcome, name="reaction_outcome"),
    path("encounters/<uuid:pk>/reactions/entered-in-error/", views_clinical.strike_reaction, name="strike_reaction"),
    path("administrations/<uuid:pk>/dosing/", views_clinical.dosing_help, name="dosing_help"),
    path("administrations/<uuid:pk>/start/", views.administration_action, {"action": "start"}, name="start_administration"),
    path("administrations/<uuid:pk>/pause/", views.pause_administration, name="pause_administration"),
    path("administrations/<uuid:pk>/resume/", views.administration_action, {"action": "resume"}, name="resume_administration"),
    path("administrations/<uuid:pk>/stop/", views.administration_action, {"action": "stop"}, name="stop_administration"),
    path("administrations/<uuid:pk>/undo/", views.undo_administration, name="undo_administration"),
    path("administrations/<uuid:pk>/correct-time/", views.correct_time, name="correct_time"),
    path("administrations/<uuid:pk>/vials/", views.record_vials, name="record_vials"),
    path("administrations/<uuid:pk>/waste/", views.confirm_waste, name="confirm_waste"),
    path("administrations/<uuid:pk>/vials/remove/", views.remove_vials, name="remove_vials"),
    # Barcode scanning (issue #8): a scan fills the Vials form; the wristband confirms the patient.
    path("administrations/<uuid:pk>/vials/scan/", views_scan.scan_vial, name="scan_vial"),
    path("encounters/<uuid:pk>/wristband/", views_scan.check_wristband, name="check_wristband"),
    path("administrations/<uuid:pk>/amend/", views.amend_administration, name="amend_administration"),
    path("administrations/<uuid:pk>/edit/", views.edit_administration, name="edit_administration"),
    path("administrations/<uuid:pk>/entered-in-error/", views.enter_in_error, name="enter_in_error"),
]
