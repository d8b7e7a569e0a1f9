"""Known data for the report tests: every figure the tests assert follows from
the rows made here (invented patients only).

Riverside Infusion (America/New_York), dates of service 2025-06-02..2025-06-05:

| encounter | nurse | signed | drug, minutes | vials / lines |
| E1 2025-06-02 | Nora | 2025-06-02 16:00 EDT (on time) | infliximab 16 min; saline hydration 45 min | 5 x 100 mg lot A1, dose 450, waste 50; J1745 x45 + J1745-JW x5 (ok) |
| E2 2025-06-03 | Nora | 2025-06-04 01:00 EDT (late) | infliximab 102 - 10 paused = 92 min | 4 x 100 mg lot B2, dose 300, waste 0; J1745 x30 JZ (mismatch: 10 units) |
| E3 2025-06-05 | Nina (charted, draft) | - | rituximab 151 min | none |

Flags: E1 dose_missing resolved after 2 h; E3 not_signed open; E3 still_running open.
Suggestions (E1, E2): 96365 x1 + 96361 x1 (E1), 96413 x1 + 96415 x1 (E2), drug lines as above;
E1 did not bill 99211 (R39) and a KVO bag (R29).
Hilltop Infusion (the other clinic) has one encounter whose numbers must never show:
a 17-minute infusion, a signed-late encounter, a flag, an audit row.

`seed_reviews` adds the coders' decisions of July for the override report
(see its docstring); `decide_bulk` decides many lines at once for the query budgets.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from audit.services import write
from charting.models import AdminFamily, Administration, DocumentationFlag, FlagKind, Pause, Purpose, VialUse
from coding import services as coding_services
from coding.models import EncounterReview, FinalAction, FinalLine, OverrideReason, ReviewStatus, SuggestedLine, Suggestion
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory, amending

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")


def at(day: int, hour: int, minute: int = 0, tz=NY) -> dt.datetime:
    return dt.datetime(2025, 6, day, hour, minute, tzinfo=tz)


def suggestion(encounter, lines, not_billed=()):
    s = Suggestion.objects.create(encounter=encounter, ruleset_version="test", engine_input={}, not_billed=list(not_billed), is_current=True)
    for position, (code, units, modifiers) in enumerate(lines, start=1):
        SuggestedLine.objects.create(suggestion=s, position=position, code=code, units=units, modifiers=list(modifiers), explanation="seeded", date_of_service=encounter.date_of_service)
    return s


def infusion(encounter, drug, start, minutes, *, recorded_by, label, dose=None, purpose=Purpose.TREATMENT, route="iv_infusion"):
    adm = AdministrationFactory(
        encounter=encounter,
        label=label,
        drug=drug,
        route=route,
        purpose=purpose,
        started_at=start,
        stopped_at=start + dt.timedelta(minutes=minutes) if minutes is not None else None,
        dose_value=dose,
        dose_unit="mg" if dose else "",
        recorded_by=recorded_by,
    )
    return adm


def vials(adm, *, lot, count, size, waste):
    """Vials and waste charted before signing (the rows are arranged after the
    encounter is saved as signed, so as an amendment would: REC-1)."""
    VialUse.objects.create(administration=adm, ndc="57894-030-01", lot=lot, size_value=Decimal(size), size_unit="mg", count=count)
    with amending():
        Administration.objects.filter(pk=adm.pk).update(container_type="single_dose", wasted_value=Decimal(waste), wasted_unit="mg", waste_confirmed_at=adm.stopped_at)


def seed(clinic, other_clinic):
    """Make the dataset above; returns a dict of its people, patients and encounters."""
    nora = UserFactory(username="nora", first_name="Nora", last_name="Nurse", roles=["nurse"], clinics=[clinic])
    nina = UserFactory(username="nina", first_name="Nina", last_name="Night", roles=["nurse"], clinics=[clinic])
    olga = UserFactory(username="olga", first_name="Olga", last_name="Other", roles=["nurse"], clinics=[other_clinic])
    infliximab = DrugFactory(name="infliximab", hcpcs="J1745", billing_unit_value=Decimal(10), billing_unit_unit="mg", admin_family=AdminFamily.CHEMO_COMPLEX)
    rituximab = DrugFactory(name="rituximab", hcpcs="J9312", billing_unit_value=Decimal(10), billing_unit_unit="mg", admin_family=AdminFamily.CHEMO_COMPLEX)
    saline = DrugFactory(name="sodium chloride 0.9%", hcpcs="J7050", billing_unit_value=Decimal(250), billing_unit_unit="mL", admin_family=AdminFamily.HYDRATION)

    p1 = PatientFactory(clinic=clinic, mrn="RPT-0001", given_name="Ada", family_name="Alpha")
    p2 = PatientFactory(clinic=clinic, mrn="RPT-0002", given_name="Ben", family_name="Beta")
    p3 = PatientFactory(clinic=clinic, mrn="RPT-0003", given_name="Cy", family_name="Gamma")
    e1 = EncounterFactory(patient=p1, date_of_service=dt.date(2025, 6, 2), status="signed", signed_by=nora, signed_at=at(2, 16))
    e2 = EncounterFactory(patient=p2, date_of_service=dt.date(2025, 6, 3), status="signed", signed_by=nora, signed_at=at(4, 1))
    e3 = EncounterFactory(patient=p3, date_of_service=dt.date(2025, 6, 5))

    a1 = infusion(e1, infliximab, at(2, 9), 16, recorded_by=nora, label="inf1", dose=Decimal(450))
    infusion(e1, saline, at(2, 10), 45, recorded_by=nora, label="ns1", purpose=Purpose.HYDRATION)
    infusion(e1, saline, at(2, 8), 12, recorded_by=nora, label="kvo", purpose=Purpose.KVO)  # never timed (R29)
    a2 = infusion(e2, infliximab, at(3, 9), 102, recorded_by=nora, label="inf2", dose=Decimal(300))
    Pause.objects.create(administration=a2, paused_at=at(3, 9, 30), resumed_at=at(3, 9, 40), reason="pump alarm")
    infusion(e3, rituximab, at(5, 9), 151, recorded_by=nina, label="rtx", dose=Decimal(700))
    infusion(e3, rituximab, at(5, 13), None, recorded_by=nina, label="rtx2", dose=Decimal(100))  # still running: no minutes
    vials(a1, lot="A1", count=5, size=100, waste=50)
    vials(a2, lot="B2", count=4, size=100, waste=0)

    DocumentationFlag.objects.create(encounter=e1, administration=a1, kind=FlagKind.DOSE_MISSING, message="dose", created_at=at(2, 9, 20), resolved_at=at(2, 11, 20))
    DocumentationFlag.objects.create(encounter=e3, kind=FlagKind.NOT_SIGNED, message="not signed", created_at=at(6, 0, 5))
    still = Administration.objects.get(label="rtx2")
    DocumentationFlag.objects.create(encounter=e3, administration=still, kind=FlagKind.STILL_RUNNING, message="running", created_at=at(5, 20))

    suggestion(
        e1,
        [("96365", 1, ()), ("96361", 1, ()), ("J1745", 45, ()), ("J1745", 5, ("JW",))],
        not_billed=[
            {"description": "99211 nurse visit", "administrations": [], "rules": ["R39"], "reason": "bundled"},
            {"description": "KVO saline", "administrations": [str(a1.pk)], "rules": ["R29"], "reason": "not therapy"},
        ],
    )
    suggestion(e2, [("96413", 1, ()), ("96415", 1, ()), ("J1745", 30, ("JZ",))])
    SuggestedLine.objects.filter(suggestion__encounter=e1, code="96365").update(accepted_by=nora, accepted_at=at(6, 9))

    # The other clinic: none of this may show in Riverside's reports.
    po = PatientFactory(clinic=other_clinic, mrn="HILL-0001", given_name="Zed", family_name="Zulu")
    eo = EncounterFactory(patient=po, date_of_service=dt.date(2025, 6, 3), status="signed", signed_by=olga, signed_at=at(5, 12, tz=LA))
    ao = infusion(eo, infliximab, at(3, 9, tz=LA), 17, recorded_by=olga, label="hill", dose=Decimal(100))
    vials(ao, lot="H9", count=3, size=100, waste=0)
    DocumentationFlag.objects.create(encounter=eo, administration=ao, kind=FlagKind.DOSE_MISSING, message="dose", created_at=at(3, 12, tz=LA))
    suggestion(eo, [("96413", 1, ()), ("J1745", 10, ())])
    site = AccessSiteFactory(encounter=eo, label="Z")
    return {"nora": nora, "nina": nina, "olga": olga, "patients": (p1, p2, p3), "other_patient": po, "encounters": (e1, e2, e3), "other_encounter": eo, "other_site": site}


def more_rows(clinic, n: int, *, day: int = 4):
    """`n` more encounters on 2025-06-`day`, each signed on time with a
    31-minute hydration, an infliximab line, a flag, a not-billed item and an
    audit row: more rows in every table, for the query budgets."""
    from audit.models import AuditEvent

    nurse = UserFactory(username=f"bulk{n}", roles=["nurse"], clinics=[clinic])
    saline = DrugFactory(name="sodium chloride 0.9%", hcpcs="J7050", billing_unit_value=Decimal(250), billing_unit_unit="mL", admin_family=AdminFamily.HYDRATION)
    drug = DrugFactory(name="infliximab", hcpcs="J1745")
    for i in range(n):
        patient = PatientFactory(clinic=clinic, mrn=f"BULK-{n}-{i:04d}", given_name=f"Given{i}", family_name=f"Bulk{n}")
        e = EncounterFactory(patient=patient, date_of_service=dt.date(2025, 6, day), status="signed", signed_by=nurse, signed_at=at(day, 15))
        a = infusion(e, saline, at(day, 9, i % 60), 31 + i % 3, recorded_by=nurse, label=f"b{i}", purpose=Purpose.HYDRATION)
        d = infusion(e, drug, at(day, 11), 60, recorded_by=nurse, label=f"d{i}", dose=Decimal(200))
        vials(d, lot=f"L{i % 4}", count=2, size=100, waste=0)
        DocumentationFlag.objects.create(encounter=e, administration=a, kind=FlagKind.LATE_ENTRY, message="late", created_at=at(day, 10))
        suggestion(e, [(f"9636{i % 3}", 1, ()), ("J1745", 20 + i % 2, ("JZ",))], not_billed=[{"description": "supplies", "administrations": [], "rules": [f"R4{i % 2}"], "reason": "x"}])
        # Audit rows are append-only (AUD-4): made with their time, on the chain.
        write(AuditEvent(actor=nurse, action="charting.encounter.viewed", object_type="charting.encounter", object_id=str(e.pk), patient_id=patient.pk, remote_addr="10.1.2.3", at=at(day, 12)))


def seed_reviews(clinic, other_clinic, coder):
    """The coders' decisions of July 2025, made through the review workflow
    (coding.services), on encounters of their own (the June figures stay as
    they are). In Riverside, on the current suggestions, 10 suggested lines:

    | encounter | current suggestion | decisions (current) |
    | E4 2025-07-01 | 6 lines | accept 1-3; line 4 accepted, then changed (units_miscounted); change 5 (units_miscounted); delete 6 (service_not_documented) |
    | E5 2025-07-02 | 4 lines (re-coded) | accept 1-2; 3-4 undecided; add a line (service_missing); another added, then withdrawn |

    so 8 decided, 5 accepted, 2 changed, 1 deleted, 1 added: 9 decisions, 4
    overridden (44.4 %). Never counted: E5's replaced suggestion (a line
    deleted as duplicate_line, one accepted), a Hilltop encounter (a line
    changed, payer_rule) and a Riverside one in August (a line deleted,
    payer_rule).
    """
    nell = UserFactory(username="nell", first_name="Nell", last_name="Nurse", roles=["nurse"], clinics=[clinic, other_clinic])

    def signed(where, day, month=7):
        patient = PatientFactory(clinic=where)
        return EncounterFactory(patient=patient, date_of_service=dt.date(2025, month, day), status="signed", signed_by=nell, signed_at=dt.datetime(2025, month, day, 15, tzinfo=NY))

    def lines(s):
        return list(s.lines.order_by("position"))

    e4, e5 = signed(clinic, 1), signed(clinic, 2)
    s4 = lines(suggestion(e4, [("96365", 1, ()), ("96366", 2, ()), ("96361", 1, ()), ("J1745", 40, ()), ("J1745", 5, ("JW",)), ("96375", 1, ())]))
    for line in s4[:4]:
        coding_services.accept_line(line, actor=coder)
    coding_services.change_line(s4[3], code="J1745", units=45, modifiers=[], reason="units_miscounted", actor=coder, version=None)
    coding_services.change_line(s4[4], code="J1745", units=4, modifiers=["JW"], reason="units_miscounted", actor=coder, version=None)
    coding_services.delete_line(s4[5], reason="service_not_documented", actor=coder, version=None)

    old = suggestion(e5, [("96413", 1, ()), ("96413", 1, ()), ("J9312", 70, ())])
    replaced = lines(old)
    coding_services.delete_line(replaced[1], reason="duplicate_line", actor=coder, version=None)
    coding_services.accept_line(replaced[0], actor=coder)
    Suggestion.objects.filter(pk=old.pk).update(is_current=False)  # re-coded (an amendment): a new suggestion
    s5 = lines(suggestion(e5, [("96413", 1, ()), ("96415", 1, ()), ("J9312", 70, ()), ("96361", 1, ())]))
    for line in s5[:2]:
        coding_services.accept_line(line, actor=coder)
    coding_services.add_line(e5, code="96523", units=1, modifiers=[], reason="service_missing", actor=coder, version=None)
    withdrawn = coding_services.add_line(e5, code="96374", units=1, modifiers=[], reason="other", reason_text="typo", actor=coder, version=None)
    coding_services.withdraw_added_line(withdrawn, actor=coder, version=None)

    hilltop = signed(other_clinic, 1)
    coding_services.change_line(lines(suggestion(hilltop, [("96413", 1, ())]))[0], code="96365", units=1, modifiers=[], reason="payer_rule", actor=coder, version=None)
    august = signed(clinic, 1, month=8)
    coding_services.delete_line(lines(suggestion(august, [("96413", 1, ())]))[0], reason="payer_rule", actor=coder, version=None)
    return {"encounters": (e4, e5), "hilltop": hilltop, "august": august}


def decide_bulk(coder, day: int):
    """Decide every line of the current suggestions of 2025-06-`day` that has
    no decision yet, in bulk (reviews and final lines written directly, as the
    workflow stores them): the first line of each encounter accepted, the
    others changed (one more unit, units_miscounted) or, in every third
    encounter, deleted (not_separately_reportable), and a line added to every
    other encounter (service_missing). Returns the counts made."""
    reasons = dict(OverrideReason.objects.filter(code__in=["units_miscounted", "not_separately_reportable", "service_missing"]).values_list("code", "pk"))
    when = at(day, 18)
    pending = list(
        SuggestedLine.objects.filter(suggestion__is_current=True, suggestion__encounter__date_of_service=dt.date(2025, 6, day))
        .exclude(final_lines__is_current=True)
        .select_related("suggestion")
        .order_by("suggestion__encounter_id", "position")
    )
    encounter_ids = sorted({line.suggestion.encounter_id for line in pending})
    existing = set(EncounterReview.objects.filter(encounter_id__in=encounter_ids).values_list("encounter_id", flat=True))
    EncounterReview.objects.bulk_create(
        EncounterReview(encounter_id=e, status=ReviewStatus.IN_REVIEW, version=1, updated_by=coder, updated_at=when) for e in encounter_ids if e not in existing
    )
    reviews = dict(EncounterReview.objects.filter(encounter_id__in=encounter_ids).values_list("encounter_id", "pk"))
    finals, seen, accepted = [], [], []
    counts = dict.fromkeys(["accept", "change", "delete", "add"], 0)
    for line in pending:
        encounter_id = line.suggestion.encounter_id
        common = {"review_id": reviews[encounter_id], "suggestion_id": line.suggestion_id, "decided_by": coder, "decided_at": when, "version": 1}
        suggested = {**common, "suggested_line": line, "position": line.position, "code": line.code, "units": line.units, "modifiers": line.modifiers}
        if seen and seen[-1] == encounter_id:
            if len(seen) % 3 == 0:
                finals.append(FinalLine(**suggested, action=FinalAction.DELETE, reason_id=reasons["not_separately_reportable"]))
                counts["delete"] += 1
            else:
                finals.append(FinalLine(**{**suggested, "units": line.units + 1}, action=FinalAction.CHANGE, reason_id=reasons["units_miscounted"]))
                counts["change"] += 1
            continue
        seen.append(encounter_id)
        finals.append(FinalLine(**suggested, action=FinalAction.ACCEPT))
        accepted.append(line.pk)
        counts["accept"] += 1
        if len(seen) % 2:
            finals.append(FinalLine(**common, action=FinalAction.ADD, position=99, code="96523", units=1, modifiers=[], reason_id=reasons["service_missing"]))
            counts["add"] += 1
    FinalLine.objects.bulk_create(finals)
    SuggestedLine.objects.filter(pk__in=accepted).update(accepted_by=coder, accepted_at=when)  # as accept_line marks them
    return counts
