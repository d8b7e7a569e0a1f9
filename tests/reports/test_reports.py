"""The five admin reports on known data (tests/reports/seed.py): every figure
asserted, the other clinic never counted, and each page's query count the
same for a few rows and for many."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import write
from charting.models import Administration, Pause
from coding.documentation import administration_minutes
from reports import reports
from reports.reports import Filters
from tests.factories import AdministrationFactory, EncounterFactory, PatientFactory, UserFactory

from .seed import LA, NY, at, decide_bulk, more_rows, seed, seed_reviews

pytestmark = pytest.mark.django_db

JUNE = {"date_from": "2025-06-01", "date_to": "2025-06-30"}


@pytest.fixture
def data(clinic, other_clinic):
    return seed(clinic, other_clinic)


@pytest.fixture
def june(clinic, data):
    return Filters(clinics=(clinic,), date_from=dt.date(2025, 6, 1), date_to=dt.date(2025, 6, 30))


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


# --- 1. completeness ------------------------------------------------------------------------


def test_completeness_counts_signing_on_time_and_flags_per_nurse(june):
    result = reports.completeness(june)
    assert result["by_nurse"] == [
        # clinic, nurse, encounters, signed, on time, late, unsigned, on time %, flags opened, resolved, open
        ("Riverside Infusion", "Nina Night", 1, 0, 0, 0, 1, Decimal("0.0"), 2, 0, 2),
        ("Riverside Infusion", "Nora Nurse", 2, 2, 1, 1, 0, Decimal("50.0"), 1, 1, 0),
    ]
    assert result["flags_by_kind"] == [
        ("Riverside Infusion", "Dose or unit missing", 1, 1, 0, Decimal("2.0")),
        ("Riverside Infusion", "Not signed by the end of the day", 1, 0, 1, None),
        ("Riverside Infusion", "Stop time missing", 1, 0, 1, None),
    ]


def test_signed_on_time_is_before_midnight_in_the_clinics_zone(clinic, data):
    # Signed 23:59 New York time on the day of service = 03:59 UTC the next day: still on time.
    nurse = data["nora"]
    e = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2025, 7, 1), status="signed", signed_by=nurse, signed_at=dt.datetime(2025, 7, 1, 23, 59, tzinfo=NY))
    EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2025, 7, 1), status="signed", signed_by=nurse, signed_at=dt.datetime(2025, 7, 2, 0, 0, tzinfo=NY))
    rows = reports.completeness(Filters(clinics=(clinic,), date_from=dt.date(2025, 7, 1), date_to=dt.date(2025, 7, 1)))["by_nurse"]
    assert e.signed_at.astimezone(dt.UTC).date() == dt.date(2025, 7, 2)
    assert rows == [("Riverside Infusion", "Nora Nurse", 2, 2, 1, 1, 0, Decimal("50.0"), 0, 0, 0)]


def test_the_other_clinic_has_its_own_figures(other_clinic, data):
    rows = reports.completeness(Filters(clinics=(other_clinic,), date_from=dt.date(2025, 6, 1), date_to=dt.date(2025, 6, 30)))["by_nurse"]
    assert rows == [("Hilltop Infusion", "Olga Other", 1, 1, 0, 1, 0, Decimal("0.0"), 1, 0, 1)]


# --- 2. coding --------------------------------------------------------------------------------


def test_coding_code_mix_units_and_not_billed(june):
    result = reports.coding(june)
    assert result["period"] == "week"
    assert result["code_mix"] == [
        ("2025-06-02", "96361", 1, 1),
        ("2025-06-02", "96365", 1, 1),
        ("2025-06-02", "96413", 1, 1),
        ("2025-06-02", "96415", 1, 1),
        ("2025-06-02", "J1745", 3, 80),
    ]
    assert ("J1745", 3, 2, 80, Decimal("26.67"), 45) in result["units_per_code"]
    assert ("96365", 1, 1, 1, Decimal("1.00"), 1) in result["units_per_code"]
    assert len(result["units_per_code"]) == 5
    assert [r[:4] for r in result["not_billed"]] == [("R29", reports.RULE_TITLES["R29"], 1, 1), ("R39", reports.RULE_TITLES["R39"], 1, 1)]
    assert result["not_billed"][1][4] == "99211 nurse visit"
    assert (result["lines"], result["accepted"], result["accepted_pct"]) == (7, 1, Decimal("14.3"))
    # no coder has decided a line in June: 7 suggested, no decisions, no rate
    overrides = result["overrides"]
    assert (overrides["suggested"], overrides["decided"], overrides["decisions"], overrides["overridden"], overrides["rate"]) == (7, 0, 0, 0, None)
    assert overrides["rows"][:3] == [("Lines", "Suggested", 7, None), ("Lines", "Suggested and decided", 0, None), ("Lines", "Suggested, not yet decided", 7, None)]
    assert overrides["by_reason"] == [] and overrides["by_reason_action"] == {}


JULY = {"date_from": "2025-07-01", "date_to": "2025-07-31"}
# seed_reviews: 10 suggested lines, 8 decided (5 accepted, 2 changed, 1 deleted), 1 added
OVERRIDE_ROWS = [
    ("Lines", "Suggested", 10, None),
    ("Lines", "Suggested and decided", 8, None),
    ("Lines", "Suggested, not yet decided", 2, None),
    ("Lines", "Decisions (decided + added)", 9, Decimal("100.0")),
    ("Lines", "Overridden (changed, deleted or added)", 4, Decimal("44.4")),
    ("Action", "Accepted", 5, Decimal("55.6")),
    ("Action", "Changed", 2, Decimal("22.2")),
    ("Action", "Deleted", 1, Decimal("11.1")),
    ("Action", "Added", 1, Decimal("11.1")),
    ("Reason", "Units do not match the documented time or dose", 2, Decimal("22.2")),
    ("Reason", "Service not documented", 1, Decimal("11.1")),
    ("Reason", "Documented service missing from the suggestion", 1, Decimal("11.1")),
]


@pytest.fixture
def reviewed(clinic, other_clinic, coder, data):
    return seed_reviews(clinic, other_clinic, coder)


def test_override_rate_and_reasons_from_the_coders_current_decisions(clinic, reviewed):
    july = Filters(clinics=(clinic,), date_from=dt.date(2025, 7, 1), date_to=dt.date(2025, 7, 31))
    result = reports.overrides(july)
    assert (result["suggested"], result["decided"], result["added"], result["decisions"], result["overridden"], result["rate"]) == (10, 8, 1, 9, 4, Decimal("44.4"))
    assert result["rows"] == OVERRIDE_ROWS
    assert result["by_action"] == [row[1:] for row in OVERRIDE_ROWS if row[0] == "Action"]
    assert result["by_reason"] == [row[1:] for row in OVERRIDE_ROWS if row[0] == "Reason"]
    assert result["by_reason_action"] == {
        "Units do not match the documented time or dose": {"Changed": 2, "Deleted": 0, "Added": 0},
        "Service not documented": {"Changed": 0, "Deleted": 1, "Added": 0},
        "Documented service missing from the suggestion": {"Changed": 0, "Deleted": 0, "Added": 1},
    }
    # the page's coding figures carry the same dict
    assert reports.coding(july)["overrides"] == result


def test_overrides_of_another_clinic_or_month_stay_there(clinic, other_clinic, reviewed):
    hilltop = reports.overrides(Filters(clinics=(other_clinic,), date_from=dt.date(2025, 7, 1), date_to=dt.date(2025, 7, 31)))
    assert (hilltop["suggested"], hilltop["decided"], hilltop["overridden"], hilltop["rate"]) == (1, 1, 1, Decimal("100.0"))
    assert hilltop["by_reason"] == [("Payer-specific rule", 1, Decimal("100.0"))]
    august = reports.overrides(Filters(clinics=(clinic,), date_from=dt.date(2025, 8, 1), date_to=dt.date(2025, 8, 31)))
    assert august["by_action"][2] == ("Deleted", 1, Decimal("100.0"))
    both = reports.overrides(Filters(clinics=(clinic, other_clinic), date_from=dt.date(2025, 7, 1), date_to=dt.date(2025, 8, 31)))
    assert (both["suggested"], both["decisions"], both["overridden"]) == (12, 11, 6)
    assert [r[:2] for r in both["by_reason"]] == [("Units do not match the documented time or dose", 2), ("Payer-specific rule", 2), ("Service not documented", 1), ("Documented service missing from the suggestion", 1)]


def test_a_re_code_drops_the_decisions_on_the_replaced_suggestion(clinic, reviewed):
    from coding.models import FinalLine, Suggestion

    _, e5 = reviewed["encounters"]
    july = Filters(clinics=(clinic,), date_from=dt.date(2025, 7, 2), date_to=dt.date(2025, 7, 2))
    assert reports.overrides(july)["rows"][:5] == [
        ("Lines", "Suggested", 4, None),
        ("Lines", "Suggested and decided", 2, None),
        ("Lines", "Suggested, not yet decided", 2, None),
        ("Lines", "Decisions (decided + added)", 3, Decimal("100.0")),
        ("Lines", "Overridden (changed, deleted or added)", 1, Decimal("33.3")),
    ]
    # the replaced suggestion's delete (duplicate_line) is stored, and never counted
    assert FinalLine.objects.filter(suggestion__encounter=e5, suggestion__is_current=False, is_current=True, reason__code="duplicate_line").exists()
    # re-coded once more: the current suggestion has no decision yet
    Suggestion.objects.filter(encounter=e5).update(is_current=False)
    from .seed import suggestion

    suggestion(e5, [("96413", 1, ()), ("J9312", 70, ())])
    again = reports.overrides(july)
    assert (again["suggested"], again["decided"], again["decisions"], again["rate"]) == (2, 0, 0, None)


def test_code_mix_goes_monthly_over_long_ranges(clinic, data):
    filters = Filters(clinics=(clinic,), date_from=dt.date(2025, 1, 1), date_to=dt.date(2025, 12, 31))
    assert reports.period_kind(filters) == "month"
    assert {r[0] for r in reports.code_mix_rows(filters)} == {"2025-06-01"}


# --- 3. timing ---------------------------------------------------------------------------------


def test_timing_distribution_and_near_threshold_list(june):
    result = reports.timing(june)
    # inf1 16, saline 45, inf2 102 - 10 paused = 92, rituximab 151; KVO and a running drug are not timed
    assert result["distribution"] == [(16, 1), (45, 1), (92, 1), (151, 1)]
    assert result["near_counts"] == {"15/16": 1, "30/31": 0, "90/91": 1, "150/151": 1}
    assert [(r[2], r[4], r[8], r[9]) for r in result["near"]] == [
        ("RPT-0001", "infliximab", 16, "15/16"),
        ("RPT-0002", "infliximab", 92, "90/91"),
        ("RPT-0003", "rituximab", 151, "150/151"),
    ]
    first = result["near"][0]
    assert first[:2] == ("2025-06-02", "Riverside Infusion")
    assert first[3] == "Alpha, Ada"
    assert (first[6], first[7], first[10]) == ("2025-06-02 09:00 -0400", "2025-06-02 09:16 -0400", "nora")
    assert result["near_more"] is False


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(15, None), (16, (15, 16)), (17, (15, 16)), (18, None), (30, None), (31, (30, 31)), (32, (30, 31)), (90, None), (91, (90, 91)), (92, (90, 91)), (93, None), (150, None), (151, (150, 151)), (152, (150, 151)), (153, None), (None, None)],
)
def test_near_threshold_is_the_first_two_minutes_that_qualify(minutes, expected):
    assert reports.near_threshold(minutes) == expected


@pytest.mark.parametrize(
    ("start", "stop", "pauses"),
    [
        (dt.datetime(2025, 6, 2, 9, 0, tzinfo=NY), dt.datetime(2025, 6, 2, 9, 16, 59, tzinfo=NY), []),
        (dt.datetime(2025, 6, 2, 9, 0, tzinfo=NY), dt.datetime(2025, 6, 2, 10, 42, tzinfo=NY), [(9, 30, 9, 40)]),
        (dt.datetime(2025, 6, 2, 9, 0, tzinfo=NY), dt.datetime(2025, 6, 2, 12, 0, tzinfo=NY), [(9, 10, 9, 20), (10, 0, None, None)]),  # never resumed: paused until the stop
        (dt.datetime(2025, 6, 2, 9, 0, tzinfo=NY), dt.datetime(2025, 6, 2, 10, 0, tzinfo=NY), [(8, 50, 9, 5)]),  # charted before the start: clipped
        # fall back, New York: 01:10 EDT -> 01:50 EST is 100 minutes (R24)
        (dt.datetime(2025, 11, 2, 1, 10, tzinfo=NY), dt.datetime(2025, 11, 2, 1, 50, fold=1, tzinfo=NY), []),
        (dt.datetime(2025, 3, 9, 1, 40, tzinfo=NY), dt.datetime(2025, 3, 9, 3, 20, tzinfo=NY), []),  # spring forward: 40 minutes
    ],
)
def test_sql_minutes_equal_the_engines(clinic, start, stop, pauses):
    adm = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=start.date()), started_at=start, stopped_at=stop)
    for h1, m1, h2, m2 in pauses:
        Pause.objects.create(administration=adm, paused_at=start.replace(hour=h1, minute=m1), resumed_at=start.replace(hour=h2, minute=m2) if h2 is not None else None)
    filters = Filters(clinics=(clinic,), date_from=start.date(), date_to=start.date())
    sql_minutes = reports.timed_administrations(filters).get(pk=adm.pk).minutes
    engine_minutes = administration_minutes(Administration.objects.prefetch_related("pauses").select_related("drug").get(pk=adm.pk))
    assert sql_minutes == engine_minutes


# --- 4. vials ----------------------------------------------------------------------------------


def test_vials_reconcile_per_lot_and_list_the_mismatch(june):
    result = reports.vials(june)
    assert result["lots"] == [
        # drug, HCPCS, NDC, lot, unit, adms, containers, opened, opened units, billed, JW, difference, mismatches
        ("infliximab", "J1745", "57894-030-01", "A1", "10 mg", 1, 5, Decimal(500), Decimal(50), 45, 5, Decimal(0), 0),
        ("infliximab", "J1745", "57894-030-01", "B2", "10 mg", 1, 4, Decimal(400), Decimal(40), 30, 0, Decimal(10), 1),
    ]
    assert result["mismatches"] == [
        ("2025-06-03", "Riverside Infusion", "RPT-0002", "infliximab", "J1745", "57894-030-01", "B2", 4, Decimal(400), "mg", Decimal(300), Decimal(0), Decimal(40), 30, 0, Decimal(10)),
    ]


def test_an_encounter_drawing_on_two_lots_is_one_row(clinic, data, june):
    from charting.models import VialUse

    adm = Administration.objects.get(label="inf1")
    VialUse.objects.create(administration=adm, ndc="57894-030-01", lot="A2", size_value=Decimal(100), size_unit="mg", count=1)
    lots = reports.vials(june)["lots"]
    assert [(r[3], r[6], r[7], r[11]) for r in lots] == [("A1 + A2", 6, Decimal(600), Decimal(10)), ("B2", 4, Decimal(400), Decimal(10))]


def test_drugs_and_vials_struck_as_entered_in_error_are_not_counted(clinic, data, june):
    """REC-4: a struck drug (or vial row) stays in the table, out of every count."""
    from charting.models import VialUse
    from tests.factories import amending

    before = reports.vials(june)
    e1 = data["encounters"][0]
    wrong = AdministrationFactory(encounter=e1, drug=Administration.objects.get(label="inf1").drug, label="wrong", started_at=at(2, 9), stopped_at=at(2, 9, 30), dose_value=Decimal(100), dose_unit="mg")
    VialUse.objects.create(administration=wrong, ndc="57894-030-01", lot="A1", size_value=Decimal(100), size_unit="mg", count=1)
    struck_vial = VialUse.objects.create(administration=Administration.objects.get(label="inf2"), ndc="57894-030-01", lot="ZZ", size_value=Decimal(100), size_unit="mg", count=9)
    with amending():  # arranging the strikes on signed encounters
        Administration.objects.filter(pk=wrong.pk).update(entered_in_error_at=at(2, 12), entered_in_error_reason="Wrong patient")
        VialUse.all_objects.filter(pk=struck_vial.pk).update(entered_in_error_at=at(3, 12), entered_in_error_reason="Wrong lot")
    assert reports.vials(june) == before


# --- 5. access log -------------------------------------------------------------------------------


def _event(actor, action, patient, when, addr="10.0.0.7"):
    # Audit rows are append-only (AUD-4): made with their time, on the chain.
    write(AuditEvent(actor=actor, action=action, object_type="charting.encounter", object_id="x", patient_id=patient.pk, remote_addr=addr, at=when))


def test_access_log_lists_who_opened_or_changed_which_chart(clinic, data, june):
    p1, p2, _ = data["patients"]
    _event(data["nora"], "charting.encounter.viewed", p1, at(2, 9, 5))
    _event(data["nina"], "charting.administration.stopped", p2, at(3, 10, 0), "10.0.0.8")
    _event(data["nora"], "charting.encounter.viewed", p1, at(1, 0, 30))  # 00:30 New York on June 1: in range
    _event(data["nora"], "charting.encounter.viewed", p1, dt.datetime(2025, 6, 1, 3, 59, tzinfo=dt.UTC))  # 23:59 on May 31 in New York: out
    _event(data["olga"], "charting.encounter.viewed", data["other_patient"], at(3, 12, tz=LA))  # the other clinic: out
    rows = reports.access_log(june)["events"]
    assert rows == [
        ("2025-06-03 10:00 -0400", "nina", "changed", "charting.administration.stopped", "charting.encounter x", str(p2.pk), "RPT-0002", "Beta, Ben", "10.0.0.8"),
        ("2025-06-02 09:05 -0400", "nora", "opened", "charting.encounter.viewed", "charting.encounter x", str(p1.pk), "RPT-0001", "Alpha, Ada", "10.0.0.7"),
        ("2025-06-01 00:30 -0400", "nora", "opened", "charting.encounter.viewed", "charting.encounter x", str(p1.pk), "RPT-0001", "Alpha, Ada", "10.0.0.7"),
    ]
    by_user = reports.access_log(Filters(clinics=june.clinics, date_from=june.date_from, date_to=june.date_to, user_id=data["nina"].pk))["events"]
    assert [r[1] for r in by_user] == ["nina"]
    by_patient = reports.access_log(Filters(clinics=june.clinics, date_from=june.date_from, date_to=june.date_to, patient_id=p1.pk))["events"]
    assert [r[6] for r in by_patient] == ["RPT-0001", "RPT-0001"]


# --- pages: role, scope, audit, query budgets ----------------------------------------------------

PAGES = ("completeness", "coding", "timing", "vials", "access")


@pytest.mark.parametrize("page", PAGES)
def test_each_page_shows_its_figures_and_writes_one_audit_row(admin_client, admin, data, page):
    before = AuditEvent.objects.count()
    response = admin_client.get(reverse(f"reports:{page}"), JUNE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Hilltop" not in html and "HILL-0001" not in html
    expected = {"completeness": "Nora Nurse", "coding": "J1745", "timing": "RPT-0003", "vials": "B2", "access": "Nothing in this range."}[page]
    assert expected in html
    rows = AuditEvent.objects.filter(pk__gt=0).order_by("-pk")[: AuditEvent.objects.count() - before]
    assert [(r.action, r.actor_id, r.detail["filters"]["clinics"]) for r in rows] == [(f"reports.{page}.viewed", admin.pk, [data["patients"][0].clinic_id])]


def test_the_coding_page_shows_the_override_rate_table_and_plot(admin_client, reviewed):
    html = admin_client.get(reverse("reports:coding"), JULY).content.decode()
    rate = html[html.index('data-testid="override-rate"') :]
    assert "<strong>44.4 %</strong> (4 of 9 current decisions changed, deleted or added a line); 8 of 10 suggested lines decided." in rate[: rate.index("</p>")]
    table = html[html.index('data-testid="table-overrides"') :]
    table = table[: table.index("</section>")]
    assert "Override rate and reasons" in table and 'data-testid="csv-overrides"' in table and 'data-testid="xlsx-overrides"' in table
    assert "<td>Reason</td><td>Units do not match the documented time or dose</td><td>2</td><td>22.2</td>" in table
    assert "<td>Action</td><td>Added</td><td>1</td><td>11.1</td>" in table
    assert "Payer-specific rule" not in html and "Duplicate line" not in html  # Hilltop's, August's, the replaced suggestion's
    figure = html[html.index('data-testid="plot-overrides"') :]
    svg = figure[figure.index("<svg") : figure.index("</svg>")]
    assert 'aria-label="Overridden lines per reason, by what the coder did"' in svg
    assert "style=" not in svg and "<style" not in svg
    assert 'fill="#fd7e14"' in svg and 'fill="#dc3545"' in svg and 'fill="#198754"' in svg  # changed, deleted, added


def test_the_coding_page_without_decisions_says_so_and_has_no_override_plot(admin_client, data):
    html = admin_client.get(reverse("reports:coding"), JUNE).content.decode()
    assert "Override rate: <strong>no decisions yet</strong>; 0 of 7 suggested lines decided." in html
    assert 'data-testid="plot-overrides"' not in html and html.count("<svg") == 1  # the code mix alone
    assert "<td>Lines</td><td>Suggested</td><td>7</td><td></td>" in html


@pytest.mark.parametrize("page", ("timing", "coding", "completeness"))
def test_plots_are_inline_svg_without_inline_styles(admin_client, data, page):
    html = admin_client.get(reverse(f"reports:{page}"), JUNE).content.decode()
    start = html.index("<svg")
    svg = html[start : html.index("</svg>", start)]
    assert 'class="report-plot"' in svg and "<path" in svg
    assert "style=" not in svg and "<style" not in svg  # CSP style-src 'self' would drop them
    assert 'fill="#0d6efd"' in svg or 'fill="#198754"' in svg  # colours survive as attributes
    assert "<script" not in html.replace('<script src="/static/vendor/htmx/htmx.min.js" defer></script>', "")


def test_another_clinic_in_the_filter_is_404(admin_client, other_clinic, data):
    for page in PAGES:
        assert admin_client.get(reverse(f"reports:{page}"), {**JUNE, "clinic": other_clinic.pk}).status_code == 404
    assert admin_client.get(reverse("reports:export", args=["timing", "near_threshold", "csv"]), {"clinic": other_clinic.pk}).status_code == 404


def test_an_admin_of_two_clinics_sees_both_or_one(client, clinic, other_clinic, data):
    both = UserFactory(username="admin2", roles=["admin"], clinics=[clinic, other_clinic])
    client.force_login(both)
    html = client.get(reverse("reports:timing"), JUNE).content.decode()
    assert "HILL-0001" in html and "RPT-0001" in html  # Hilltop's 17 minutes are just above 15/16
    html = client.get(reverse("reports:timing"), {**JUNE, "clinic": clinic.pk}).content.decode()
    assert "HILL-0001" not in html and "RPT-0001" in html
    html = client.get(reverse("reports:vials"), JUNE).content.decode()
    assert "H9" in html and "B2" in html
    html = client.get(reverse("reports:vials"), {**JUNE, "clinic": clinic.pk}).content.decode()
    assert "H9" not in html and "B2" in html


def test_bad_dates_re_render_the_form_with_400(admin_client, data):
    response = admin_client.get(reverse("reports:timing"), {"date_from": "2025-06-30", "date_to": "2025-06-01"})
    assert response.status_code == 400
    assert "The start date is after the end date." in response.content.decode()
    # One row per request (AUD-1), the refusal marked as such: no figures were shown.
    assert list(AuditEvent.objects.filter(action__startswith="reports.").values_list("action", "outcome")) == [("reports.timing.viewed", "failure")]


@pytest.mark.parametrize("bad", [{"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}, {"date_from": "0001-01-01", "date_to": "0001-01-02"}])
def test_far_dates_are_refused_not_a_500(admin_client, data, bad):
    """VAL-1: the access log with date_to=9999-12-31 overflowed into a 500 (fresh-clone review)."""
    for name in ("reports:access", "reports:timing"):
        response = admin_client.get(reverse(name), bad)
        assert response.status_code == 400
        assert "Dates must fall between" in response.content.decode()
    export = admin_client.get(reverse("reports:export", args=["access", "events", "csv"]), bad)
    assert export.status_code == 400


@pytest.mark.parametrize("who", ["nurse", "coder"])
def test_only_admins_see_reports(client, request, who, data):
    client.force_login(request.getfixturevalue(who))
    for page in ("index", *PAGES):
        assert client.get(reverse(f"reports:{page}")).status_code == 403
    assert client.get(reverse("reports:export", args=["access", "events", "csv"])).status_code == 403


def _queries(client, url, params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params).status_code == 200
    return len(ctx.captured_queries)


# Every page: session, user, the admin role, the admin's clinics (filter form),
# the audit row, the clinic <select>'s options when the form renders (6), then
# the report's own queries: completeness 4 (encounters by nurse, flags by
# nurse, nurse names, flags by kind), coding 5 (totals, code mix, units per
# code, not billed, overrides), timing 2 (distribution, list), vials 2 (lots, mismatches),
# access 1 (events) + the user <select>'s options; + the PHI request's one
# audit row on the chain (audit/phi.py): savepoint, role, chain-head lock, head
# move, release (the insert was counted before) = +5.
# + the session's two-factor check (roles.needs_two_factor) = +1.
BUDGETS = {"completeness": 16, "coding": 17, "timing": 14, "vials": 14, "access": 14}


@pytest.mark.parametrize("page", PAGES)
def test_query_count_does_not_grow_with_rows(admin_client, clinic, coder, data, page, django_assert_num_queries):
    url = reverse(f"reports:{page}")
    params = {**JUNE, "date_from": "2025-06-04", "date_to": "2025-06-04"}
    more_rows(clinic, 1)
    assert decide_bulk(coder, 4) == {"accept": 1, "change": 1, "delete": 0, "add": 1}
    with django_assert_num_queries(BUDGETS[page]):
        admin_client.get(url, params)
    more_rows(clinic, 60, day=4)
    assert decide_bulk(coder, 4) == {"accept": 60, "change": 40, "delete": 20, "add": 30}
    with django_assert_num_queries(BUDGETS[page]):
        response = admin_client.get(url, params)
    assert response.status_code == 200
    # the many rows are on the page (lists: a patient of the last ones; tables: the totals)
    marker = {"completeness": "<td>61</td>", "coding": "<td>J1745</td><td>61</td>", "timing": "BULK-60-0058", "vials": "BULK-60-0059", "access": "BULK-60-0059"}[page]
    assert marker in response.content.decode()
    if page == "coding":  # the decisions too: 61 accepted, 41 changed, 20 deleted, 31 added of 122 suggested
        assert "<td>Lines</td><td>Overridden (changed, deleted or added)</td><td>92</td><td>60.1</td>" in response.content.decode()


def test_the_index_lists_the_export_log(admin_client, admin, data):
    admin_client.get(reverse("reports:export", args=["vials", "lots", "csv"]), JUNE).getvalue()
    html = admin_client.get(reverse("reports:index")).content.decode()
    assert 'data-testid="export-log"' in html
    assert ">lots<" in html and ">csv<" in html and ">2<" in html
