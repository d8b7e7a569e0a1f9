"""Clinical documentation: what the nurse charts at the chair.

Times are stored in UTC (aware datetimes) and shown in the clinic's IANA zone.
Clinical time (when a drug started running) and entry time (when the nurse
recorded it) are different fields. Invariants are PostgreSQL constraints;
signed documentation is corrected by amendments (TimeCorrection), never
silently changed.
"""

import contextlib
import contextvars
import datetime as dt
import re
import uuid
import zoneinfo
from decimal import Decimal

import pghistory
import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone.") from exc


# --- signed documentation is frozen (RELIABILITY REC-1) ------------------------------
#
# Once an encounter is signed, the clinical columns of it, its administrations,
# their pauses and vials change only inside an amendment: the #4 amendment
# service runs `SELECT set_config('chairside.amendment', '<amendment id>', true)`
# (transaction-local) before writing. Three guards, from the friendliest:
# the services refuse (ChartingError -> the view answers 409 with "amend");
# Model.save() refuses (SignedRecordError); a PostgreSQL trigger refuses any
# UPDATE of those columns, raw SQL and QuerySet.update() included.
#
# History: django-pghistory (trigger-based, so raw SQL and bulk updates are
# captured as well as ORM saves; django-simple-history only sees ORM saves)
# keeps a snapshot of every insert and update of these models in
# charting_<model>event: the row as first charted stays there byte for byte.

AMENDMENT_SETTING = "chairside.amendment"


class SignedRecordError(Exception):
    """A change to signed clinical documentation outside an amendment."""

    def __init__(self, message: str = "This encounter is signed: signed documentation can only be changed by an amendment."):
        super().__init__(message)
        self.message = message


# Other databases (the SQLite demo: no triggers) mark the amendment's save in
# Python, for the block of `amendment_in_progress` only.
_amending: contextvars.ContextVar[str] = contextvars.ContextVar("chairside_amendment", default="")


def in_amendment() -> bool:
    """True inside a transaction that set chairside.amendment (PostgreSQL), or
    inside `amendment_in_progress` (any database)."""
    if connection.vendor != "postgresql":
        return bool(_amending.get())
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true)", [AMENDMENT_SETTING])
        return bool(cursor.fetchone()[0])


@contextlib.contextmanager
def amendment_in_progress(amendment_id):
    """Let the writes of the block change signed documentation, as amendment
    `amendment_id` (REC-1). PostgreSQL: `set_config('chairside.amendment', id,
    true)`, transaction-local, which the triggers and `in_amendment()` read;
    elsewhere a context variable for the block."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, true)", [AMENDMENT_SETTING, str(amendment_id)])
        yield
        return
    token = _amending.set(str(amendment_id))
    try:
        yield
    finally:
        _amending.reset(token)


def _frozen_trigger(name: str, columns: tuple[str, ...], signed_sql: str) -> pgtrigger.Trigger:
    """BEFORE UPDATE trigger refusing a change of `columns` while `signed_sql`
    (a boolean SQL expression over OLD) holds, outside an amendment."""
    old = ", ".join(f"OLD.{c}" for c in columns)
    new = ", ".join(f"NEW.{c}" for c in columns)
    return pgtrigger.Trigger(
        name=name,
        operation=pgtrigger.Update,
        when=pgtrigger.Before,
        func=f"""
            IF coalesce(current_setting('{AMENDMENT_SETTING}', true), '') = '' AND ({signed_sql}) AND ROW({old}) IS DISTINCT FROM ROW({new}) THEN
                RAISE EXCEPTION 'signed documentation cannot be changed (% on %): amend it instead', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation', HINT = 'RELIABILITY REC-1: corrections after signing are amendments.';
            END IF;
            RETURN NEW;
        """,
    )


SIGNED_VIA_ADMINISTRATION = "EXISTS (SELECT 1 FROM charting_administration a JOIN charting_encounter e ON e.id = a.encounter_id WHERE a.id = OLD.administration_id AND e.status = 'signed')"


class Clinic(models.Model):
    name = models.CharField(max_length=200, unique=True)
    time_zone = models.CharField(max_length=64, validators=[validate_time_zone], help_text="IANA name, e.g. America/New_York")
    staff = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="clinics", blank=True)
    site_check_minutes = models.PositiveSmallIntegerField(
        "access site check every (minutes)", default=60, help_text="An access site not checked for longer shows “check due” on the chart."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(time_zone=""), name="clinic_time_zone_set", violation_error_message="A clinic needs a time zone."),
            models.CheckConstraint(condition=Q(site_check_minutes__gte=1), name="clinic_site_check_minutes_positive", violation_error_message="The site check interval is at least one minute."),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


@pghistory.track()
class Patient(models.Model):
    """A patient of one clinic. Demo data only: every patient here is invented."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField("MRN", max_length=40)
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic", "mrn"], name="patient_mrn_unique_per_clinic", violation_error_message="This MRN is already used in this clinic."),
            models.CheckConstraint(condition=~Q(mrn=""), name="patient_mrn_set", violation_error_message="MRN is required."),
        ]

    def __str__(self) -> str:
        return f"{self.family_name}, {self.given_name}"


class Setting(models.TextChoices):
    OFFICE = "office", "Office (POS 11)"
    FACILITY = "facility", "Hospital outpatient"


class EncounterQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Encounters of the clinics `user` works in (access control in the query)."""
        return self.filter(clinic__in=Clinic.objects.filter(staff=user))

    def for_worklist(self, user, now):
        """Today's encounters (each clinic's own local date) with counts for the worklist.

        Counts are correlated subqueries rather than joins, so two running drugs
        and three flags don't multiply each other.
        """
        today = Q(pk__in=[])
        for clinic in Clinic.objects.filter(staff=user):
            today |= Q(clinic=clinic, date_of_service=now.astimezone(clinic.tz).date())
        running = Administration.objects.running().filter(encounter=models.OuterRef("pk")).values("encounter").annotate(n=models.Count("pk")).values("n")
        return (
            self.visible_to(user)
            .filter(today)
            .select_related("patient", "clinic")
            .annotate(running_count=Coalesce(models.Subquery(running), 0))
            .with_open_flag_count()
            .order_by("clinic__name", "patient__family_name", "patient__given_name", "created_at")
        )

    def with_open_flag_count(self):
        """`open_flag_count`: the encounter's open documentation flags (a
        correlated subquery on the partial index flag_open_by_encounter)."""
        flags = DocumentationFlag.objects.open().filter(encounter=models.OuterRef("pk")).values("encounter").annotate(n=models.Count("pk")).values("n")
        return self.annotate(open_flag_count=Coalesce(models.Subquery(flags), 0))

    def with_open_flags(self):
        return self.filter(models.Exists(DocumentationFlag.objects.open().filter(encounter=models.OuterRef("pk"))))

    def with_flags_from_earlier_days(self, user, now):
        """Encounters before today (each clinic's local date) that still have open
        flags, oldest first, with `open_flag_count`: yesterday's forgotten stop
        belongs on today's worklist."""
        earlier = Q(pk__in=[])
        for clinic in Clinic.objects.filter(staff=user):
            earlier |= Q(clinic=clinic, date_of_service__lt=now.astimezone(clinic.tz).date())
        return self.visible_to(user).filter(earlier).with_open_flags().select_related("patient", "clinic").with_open_flag_count().order_by("date_of_service", "created_at")

    def for_chart(self):
        """Everything the encounter page shows, in a constant number of queries."""
        return self.select_related("patient", "clinic", "signed_by").prefetch_related(
            "access_sites",
            "other_services",
            models.Prefetch(
                "administrations",
                queryset=Administration.objects.select_related("drug", "access_site", "waste_confirmed_by").prefetch_related(
                    "pauses",
                    "vial_uses",
                    models.Prefetch("time_corrections", queryset=TimeCorrection.objects.select_related("corrected_by")),
                    models.Prefetch("flags", queryset=DocumentationFlag.objects.filter(resolved_at__isnull=True), to_attr="open_flags"),
                    models.Prefetch("amendments", queryset=Amendment.objects.select_related("author", "reason")),
                ),
            ),
        )

    def with_site_checks(self):
        """Also each access site's checks, newest first (one query), for the
        "checked 42 min ago / check due" line of the chart's site cards."""
        return self.prefetch_related(models.Prefetch("access_sites__checks", queryset=AccessSiteCheck.objects.select_related("checked_by")))


@pghistory.track()
class Encounter(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SIGNED = "signed", "Signed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="encounters")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="encounters")
    setting = models.CharField(max_length=10, choices=Setting.choices, default=Setting.OFFICE)
    payer = models.CharField(max_length=40, default="medicare", help_text="Payer policy that decides contested coding points.")
    date_of_service = models.DateField(help_text="Local date (clinic time zone) of the first administration.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    signed_at = models.DateTimeField(null=True, blank=True)
    # Scenario id for encounters stored by `import_scenarios` (idempotency key).
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EncounterQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(setting__in=Setting.values), name="encounter_setting_valid", violation_error_message="Unknown setting."),
            models.CheckConstraint(condition=Q(status__in=["draft", "signed"]), name="encounter_status_valid", violation_error_message="Unknown status."),
            models.CheckConstraint(
                condition=(Q(status="draft", signed_by__isnull=True, signed_at__isnull=True) | Q(status="signed", signed_by__isnull=False, signed_at__isnull=False)),
                name="encounter_signed_has_signer",
                violation_error_message="A signed encounter records who signed it and when; a draft has neither.",
            ),
        ]
        indexes = [models.Index(fields=["clinic", "date_of_service"])]
        triggers = [_frozen_trigger("encounter_signed_frozen", ("status", "patient_id", "clinic_id", "setting", "date_of_service", "signed_by_id", "signed_at"), "OLD.status = 'signed'")]

    def __str__(self) -> str:
        return f"{self.patient} {self.date_of_service}"

    @property
    def is_signed(self) -> bool:
        return self.status == self.Status.SIGNED

    @property
    def last_patient_scan(self) -> "PatientScan | None":
        """The latest wristband check of this encounter, with who scanned (one query)."""
        return self.patient_scans.select_related("scanned_by").order_by("-scanned_at", "-pk").first()


@pghistory.track()
class AccessSite(models.Model):
    class Kind(models.TextChoices):
        PERIPHERAL_IV = "peripheral_iv", "Peripheral IV"
        PORT = "port", "Implanted port"
        PICC = "picc", "PICC"
        CENTRAL_LINE = "central_line", "Central line"
        NONE = "none", "None (SC/IM)"

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="access_sites")
    label = models.CharField(max_length=20, help_text="Short label shown at the chair, e.g. A, B.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    location = models.CharField(max_length=100, blank=True)
    gauge = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Catheter gauge (G)")
    placed_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    separate_site_medically_required = models.BooleanField(default=False, help_text="Protocol or the patient's condition required this separate site (R10).")
    reason = models.TextField(blank=True, help_text="Why a separate site was medically required.")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label"]
        constraints = [
            models.UniqueConstraint(fields=["encounter", "label"], name="access_site_label_unique", violation_error_message="This label is already used for another site in this encounter."),
            models.CheckConstraint(condition=Q(kind__in=["peripheral_iv", "port", "picc", "central_line", "none"]), name="access_site_kind_valid", violation_error_message="Unknown access site kind."),
            models.CheckConstraint(condition=Q(removed_at__isnull=True) | Q(placed_at__isnull=True) | Q(removed_at__gte=F("placed_at")), name="access_site_removed_after_placed", violation_error_message="Removal cannot be before placement."),
            models.CheckConstraint(condition=Q(gauge__isnull=True) | Q(gauge__gte=14, gauge__lte=26), name="access_site_gauge_range", violation_error_message="Gauge must be between 14 and 26."),
        ]
        triggers = [
            _frozen_trigger(
                "access_site_signed_frozen",
                ("encounter_id", "label", "kind", "location", "gauge", "placed_at", "removed_at", "separate_site_medically_required", "reason", "recorded_at"),
                "EXISTS (SELECT 1 FROM charting_encounter e WHERE e.id = OLD.encounter_id AND e.status = 'signed')",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.get_kind_display()} {self.location}".strip()

    def check_due(self, now: dt.datetime, every_minutes: int) -> bool:
        """True when the site was last checked (or, never checked, placed or
        charted) more than `every_minutes` before `now`. Reads the prefetched
        `checks` (newest first, see EncounterQuerySet.for_chart)."""
        return (now - self.last_checked_or_placed).total_seconds() > every_minutes * 60

    @property
    def last_check(self) -> "AccessSiteCheck | None":
        return next(iter(self.checks.all()), None)

    @property
    def last_checked_or_placed(self) -> dt.datetime:
        last = self.last_check
        return last.checked_at if last is not None else (self.placed_at or self.recorded_at)


class SiteFinding(models.TextChoices):
    PATENT = "patent", "Patent, no redness or swelling"
    REDNESS_SWELLING = "redness_swelling", "Redness or swelling"
    INFILTRATION_SUSPECTED = "infiltration_suspected", "Infiltration suspected"
    OTHER = "other", "Other (see note)"


@pghistory.track()
class AccessSiteCheck(models.Model):
    """A nurse looked at an access site: when (server time), who, what was found.

    Frozen once the encounter is signed, like the other clinical rows (REC-1)."""

    site = models.ForeignKey(AccessSite, on_delete=models.PROTECT, related_name="checks")
    checked_at = models.DateTimeField(help_text="Server time of the check.")
    checked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    finding = models.CharField(max_length=30, choices=SiteFinding.choices, default=SiteFinding.PATENT)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-checked_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(finding__in=SiteFinding.values), name="access_site_check_finding_valid", violation_error_message="Unknown finding."),
            models.CheckConstraint(condition=~Q(finding="other") | ~Q(note=""), name="access_site_check_other_has_note", violation_error_message="Say what was found in the note."),
        ]
        indexes = [models.Index(fields=["site", "-checked_at"], name="site_check_latest")]
        triggers = [
            _frozen_trigger(
                "access_site_check_signed_frozen",
                ("site_id", "checked_at", "checked_by_id", "finding", "note"),
                "EXISTS (SELECT 1 FROM charting_accesssite s JOIN charting_encounter e ON e.id = s.encounter_id WHERE s.id = OLD.site_id AND e.status = 'signed')",
            )
        ]

    def __str__(self) -> str:
        return f"{self.site.label} {self.get_finding_display()}"


class TapKey(models.Model):
    """The idempotency key of one tap (RELIABILITY CON-2): a UUID the page puts
    in every write form (JS: a new one per tap, the same one for its retries;
    without JS: one per rendered form). The first request with a key does the
    write and stores what it wrote here; a retry with the same key writes
    nothing and answers with the current state of `object_id`. The unique key
    makes two simultaneous requests with one key serialise."""

    key = models.UUIDField(unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64, blank=True, help_text="The record the tap wrote (uuid or id).")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="tap_key_created")]

    def __str__(self) -> str:
        return f"{self.action} {self.key}"


class AdminFamily(models.TextChoices):
    CHEMO_COMPLEX = "chemo_complex", "Chemotherapy / complex"
    THERAPEUTIC = "therapeutic", "Therapeutic / prophylactic / diagnostic"
    HYDRATION = "hydration", "Hydration"


class DosingBasis(models.TextChoices):
    FLAT = "flat", "Flat dose (mg)"
    MG_PER_KG = "mg_per_kg", "Weight-based (mg/kg)"


class Drug(models.Model):
    """A catalog entry, seeded from shared/drug-catalog.csv (`seed_drug_catalog`).

    `verification_status` keeps the catalog's "unverified" marks; `is_verified`
    stays False until an admin confirms the entry.
    """

    name = models.CharField(max_length=200, unique=True)
    brand = models.CharField(max_length=200, blank=True)
    hcpcs = models.CharField("HCPCS", max_length=10, blank=True)
    billing_unit_value = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    billing_unit_unit = models.CharField(max_length=10, blank=True)
    admin_family = models.CharField(max_length=20, choices=AdminFamily.choices)
    single_dose = models.BooleanField(default=True, help_text="Single-dose container (JW/JZ apply).")
    usual_routes = models.CharField(max_length=200, blank=True)
    example_ndc = models.CharField("example NDC", max_length=20, blank=True)
    verification_status = models.TextField(blank=True)
    is_verified = models.BooleanField(default=False)
    notes = models.TextField(blank=True)
    # Dosing help (issue #8): the container sizes read from the catalog's
    # typical_single_dose_vial_sizes cell (mg per container, ascending; a
    # size the seed could not read is left out, never guessed: the cell
    # itself stays in `vial_sizes_text`), and how the drug is ordered.
    vial_sizes_mg = models.JSONField("container sizes (mg)", default=list, blank=True, help_text="mg per single-dose container, e.g. [100, 500]; filled by seed_drug_catalog.")
    vial_sizes_text = models.CharField("container sizes as catalogued", max_length=300, blank=True)
    dosing_basis = models.CharField(max_length=20, choices=DosingBasis.choices, default=DosingBasis.FLAT, help_text="mg/kg drugs get the Dosing help panel on their card (set by an admin).")
    # A drug billed under several "up to" codes by dose (methylprednisolone
    # sodium succinate: J2920 up to 40 mg, J2930 up to 125 mg): ascending
    # [{"hcpcs", "up_to", "unit"}], from the catalog's HCPCS cell. Charting a
    # dose picks the code (`code_for_dose`); `hcpcs` stays the first one.
    dose_tiers = models.JSONField(
        "HCPCS by dose",
        default=list,
        blank=True,
        help_text='"Up to" codes by dose, ascending, e.g. [{"hcpcs": "J2920", "up_to": "40", "unit": "mg"}, {"hcpcs": "J2930", "up_to": "125", "unit": "mg"}]; filled by seed_drug_catalog.',
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(dosing_basis__in=DosingBasis.values), name="drug_dosing_basis_valid", violation_error_message="Unknown dosing basis."),
            models.CheckConstraint(condition=Q(admin_family__in=AdminFamily.values), name="drug_admin_family_valid", violation_error_message="Unknown administration family."),
            models.CheckConstraint(condition=Q(billing_unit_value__isnull=True) | Q(billing_unit_value__gt=0), name="drug_billing_unit_positive", violation_error_message="The billing unit must be positive."),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        try:
            dose_tiers(self.dose_tiers)
        except ValueError as exc:
            raise ValidationError({"dose_tiers": str(exc)}) from exc

    def code_for_dose(self, value: Decimal | None, unit: str) -> tuple[str, Decimal, str] | None:
        """(HCPCS, billing unit value, billing unit) for a dose of this drug
        when it is billed under "up to" codes by dose (`dose_tiers`): the
        smallest code whose amount covers the dose (one unit of it pays for
        the dose, R46; 100 mg methylprednisolone = J2930 x1, not J2920 x3),
        above the largest the largest, billed in as many of its units as the
        dose needs (1 g = J2930 x8). None without tiers, without a dose, or
        for a dose whose unit does not convert to the tiers' (mg vs mL).
        Source: coding-rules R46; the catalog's notes on this row;
        shared scenario pc-28."""
        if not self.dose_tiers or value is None or not unit:
            return None
        try:
            tiers = dose_tiers(self.dose_tiers)
        except ValueError:
            return None  # not saved through the admin (Drug.clean refuses it): the catalog code stands
        for amount, tier_unit, hcpcs in tiers:
            dose = convert(value, unit, tier_unit)
            if dose is None:
                return None
            if dose <= amount:
                return hcpcs, amount, tier_unit
        amount, tier_unit, hcpcs = tiers[-1]
        return hcpcs, amount, tier_unit

    @property
    def has_unverified_facts(self) -> bool:
        return not self.is_verified and "unverified" in self.verification_status.lower()


class Route(models.TextChoices):
    IV_INFUSION = "iv_infusion", "IV infusion"
    IV_PUSH = "iv_push", "IV push"
    SUBCUTANEOUS = "subcutaneous", "Subcutaneous"
    INTRAMUSCULAR = "intramuscular", "Intramuscular"
    INTRA_ARTERIAL = "intra_arterial", "Intra-arterial"


ROUTES_NEEDING_SITE = (Route.IV_INFUSION, Route.IV_PUSH, Route.INTRA_ARTERIAL)

# The columns of an administration that are clinical documentation: frozen once
# the encounter is signed (REC-1). Everything charted about the drug, its
# timing, dose, site, containers and waste; not the row's id.
ADMINISTRATION_CLINICAL_COLUMNS = (
    "encounter_id",
    "label",
    "drug_id",
    "admin_class",
    "route",
    "access_site_id",
    "dose_value",
    "dose_unit",
    "purpose",
    "started_at",
    "stopped_at",
    "concurrent_with_id",
    "bag",
    "continuously_present",
    "visit",
    "hcpcs_override",
    "recorded_by_id",
    "recorded_at",
    "container_type",
    "wasted_value",
    "wasted_unit",
    "waste_confirmed_by_id",
    "waste_confirmed_at",
    "hcpcs_unit_value",
    "hcpcs_unit_unit",
    "entered_in_error_at",
    "entered_in_error_by_id",
    "entered_in_error_reason",
)


class Purpose(models.TextChoices):
    TREATMENT = "treatment", "Treatment"
    HYDRATION = "hydration_medically_necessary", "Hydration (medically necessary)"
    ADVERSE_REACTION = "adverse_reaction_treatment", "Treatment of an adverse reaction"
    KVO = "kvo", "Keep vein open"
    FLUSH = "flush", "Flush"
    DRUG_VEHICLE = "drug_vehicle", "Drug vehicle / diluent"


class DoseUnit(models.TextChoices):
    MG = "mg", "mg"
    MCG = "mcg", "mcg"
    G = "g", "g"
    ML = "mL", "mL"
    UNITS = "units", "units"


class ContainerType(models.TextChoices):
    SINGLE_DOSE = "single_dose", "Single-dose"
    MULTI_DOSE = "multi_dose", "Multi-dose"


# Mass units convert among themselves; mL and units only to themselves (the
# same table as the engine's, kept here so charting does not import coding).
MASS_IN_MG = {"mg": Decimal(1), "g": Decimal(1000), "mcg": Decimal("0.001")}

HCPCS_PATTERN = r"[A-Z]\d{4}"
TIER_MAX = Decimal("9999999.999")  # the billing unit column: numeric(10, 3)


def dose_tiers(value) -> list[tuple[Decimal, str, str]]:
    """`Drug.dose_tiers` checked and read: [(up_to, unit, hcpcs)] ascending
    by amount. Empty for no tiers. Raises ValueError naming what is wrong: not
    a list of at least two {"hcpcs", "up_to", "unit"}, a code that is not a
    HCPCS code (A1234) or comes twice, an amount that is not a positive number
    with at most 3 decimals below 10,000,000, a unit other than mg, g or mcg,
    two tiers of the same amount."""
    if value in (None, [], ""):
        return []
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(t, dict) for t in value):
        raise ValueError('Give a list of at least two tiers, each {"hcpcs": "J2920", "up_to": "40", "unit": "mg"}, or an empty list.')
    tiers = []
    for t in value:
        hcpcs, unit = t.get("hcpcs"), t.get("unit")
        if not isinstance(hcpcs, str) or not re.fullmatch(HCPCS_PATTERN, hcpcs):
            raise ValueError(f"{hcpcs!r} is not a HCPCS code (a capital letter and four digits, e.g. J2920).")
        if unit not in MASS_IN_MG:
            raise ValueError(f"The unit of {hcpcs} must be mg, g or mcg, not {unit!r}.")
        try:
            amount = Decimal(str(t.get("up_to")))
        except ArithmeticError:
            amount = None
        if amount is None or not amount.is_finite() or not (0 < amount <= TIER_MAX) or amount != amount.quantize(Decimal("0.001")):
            raise ValueError(f"The amount of {hcpcs} must be a positive number with at most 3 decimals, below 10,000,000 (not {t.get('up_to')!r}).")
        tiers.append((amount, unit, hcpcs))
    if len({h for _, _, h in tiers}) != len(tiers):
        raise ValueError("Each code comes once.")
    tiers.sort(key=lambda t: t[0] * MASS_IN_MG[t[1]])
    if len({a * MASS_IN_MG[u] for a, u, _ in tiers}) != len(tiers):
        raise ValueError("Two tiers have the same amount.")
    return tiers


def convert(value: Decimal, unit: str, to: str) -> Decimal | None:
    """`value` `unit` expressed in `to`, or None when the units don't convert (mg vs mL)."""
    if unit == to:
        return value
    if unit in MASS_IN_MG and to in MASS_IN_MG:
        return value * MASS_IN_MG[unit] / MASS_IN_MG[to]
    return None


# An NDC as printed on the package: 10 digits as 4-4-2, 5-3-2 or 5-4-1 with
# hyphens (the hyphens say where the zero goes in the 11-digit form, R49), or
# 11 digits, plain or 5-4-2.
NDC_PATTERN = r"^([0-9]{4}-[0-9]{4}-[0-9]{2}|[0-9]{5}-[0-9]{3}-[0-9]{2}|[0-9]{5}-[0-9]{4}-[0-9]{1,2}|[0-9]{11})$"


def opened_amount(vials, unit: str) -> Decimal | None:
    """What `vials` (VialUse rows) held, size x count summed, in `unit`; None
    without vials, with a size not charted, or in a unit that does not convert."""
    total = Decimal(0)
    for vial in vials:
        size = convert(vial.size_value, vial.size_unit, unit) if vial.size_value is not None else None
        if size is None:
            return None
        total += size * vial.count
    return total if vials else None


class AdministrationQuerySet(models.QuerySet):
    def charted(self):
        """Administrations as charted now: those struck as entered in error
        (REC-4) are left out. The checks, the coding and the running counts
        read these; the chart shows the struck ones too, crossed out."""
        return self.filter(entered_in_error_at__isnull=True)

    def running(self):
        """Started, not stopped (paused ones included), not struck as entered in error."""
        return self.filter(started_at__isnull=False, stopped_at__isnull=True, entered_in_error_at__isnull=True)

    def visible_to(self, user):
        return self.filter(encounter__clinic__in=Clinic.objects.filter(staff=user))

    def with_start_corrected(self):
        """Annotate `start_corrected`: the start was corrected with a reason
        (a TimeCorrection), which explains a late entry (one subquery, no extra query)."""
        return self.annotate(start_corrected=models.Exists(TimeCorrection.objects.filter(administration=models.OuterRef("pk"), field="started_at")))

    def for_chart(self):
        """One administration as its partial shows it (same prefetches as Encounter.for_chart)."""
        return self.select_related("drug", "access_site", "encounter__clinic", "encounter__patient", "waste_confirmed_by").prefetch_related(
            "pauses",
            "vial_uses",
            models.Prefetch("time_corrections", queryset=TimeCorrection.objects.select_related("corrected_by")),
            models.Prefetch("flags", queryset=DocumentationFlag.objects.filter(resolved_at__isnull=True), to_attr="open_flags"),
            models.Prefetch("amendments", queryset=Amendment.objects.select_related("author", "reason")),
        )


@pghistory.track()
class Administration(models.Model):
    """One drug given by one route: a bag, a push or an injection.

    `started_at`/`stopped_at` are clinical times (drip to drip, R15);
    `recorded_at` is when the row was entered. A push charted at one moment
    has started_at == stopped_at.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="administrations")
    label = models.CharField(max_length=20, blank=True, help_text="Short id within the encounter (scenario id when imported).")
    drug = models.ForeignKey(Drug, on_delete=models.PROTECT, related_name="administrations")
    admin_class = models.CharField("administration family", max_length=20, choices=AdminFamily.choices, help_text="Family applied to this drug (catalog default unless charted otherwise; D9).")
    route = models.CharField(max_length=20, choices=Route.choices)
    access_site = models.ForeignKey(AccessSite, null=True, blank=True, on_delete=models.PROTECT, related_name="administrations")
    dose_value = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    dose_unit = models.CharField(max_length=10, choices=DoseUnit.choices, blank=True)
    purpose = models.CharField(max_length=40, choices=Purpose.choices, default=Purpose.TREATMENT)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    concurrent_with = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Another administration running at the same time through the same access (own bag).")
    bag = models.CharField(max_length=20, blank=True, help_text="Same value = mixed in one container (R26).")
    continuously_present = models.BooleanField(default=False, help_text="Nurse stayed at the chair throughout (push, R18).")
    visit = models.CharField(max_length=10, default="1", help_text="Second visit the same day (patient left and came back) has another value (R13).")
    hcpcs_override = models.CharField("HCPCS", max_length=10, blank=True, help_text="When set, used instead of the catalog's HCPCS.")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    # Vials and waste (R47, R48). The containers themselves (NDC, lot, size,
    # count) are VialUse rows; their kind lives here, beside the waste, so that
    # "waste only from single-dose containers" is one CHECK on one row.
    container_type = models.CharField(max_length=20, choices=ContainerType.choices, blank=True, help_text="Kind of the containers opened; empty until vials are charted.")
    wasted_value = models.DecimalField("wasted", max_digits=12, decimal_places=3, null=True, blank=True, help_text="Amount discarded from the opened single-dose containers; 0 = none.")
    wasted_unit = models.CharField(max_length=10, choices=DoseUnit.choices, blank=True)
    waste_confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    waste_confirmed_at = models.DateTimeField(null=True, blank=True)
    # The billing unit of the charted HCPCS when it is not the catalog's (an
    # imported scenario's own `hcpcs_unit`); empty = the catalog's unit.
    hcpcs_unit_value = models.DecimalField("HCPCS billing unit", max_digits=10, decimal_places=3, null=True, blank=True)
    hcpcs_unit_unit = models.CharField(max_length=10, choices=DoseUnit.choices, blank=True)
    # "Entered in error" (REC-4): a drug charted by mistake is struck, never
    # deleted. It stays on the chart crossed out, with who, when (server
    # time) and why; the checks and the coding leave it out (`.charted()`).
    # On a signed encounter it is struck by an amendment (field
    # "entered_in_error"), which the frozen-row trigger requires.
    entered_in_error_at = models.DateTimeField(null=True, blank=True)
    entered_in_error_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    entered_in_error_reason = models.CharField(max_length=200, blank=True)

    objects = AdministrationQuerySet.as_manager()

    class Meta:
        ordering = ["started_at", "recorded_at"]
        constraints = [
            models.CheckConstraint(condition=Q(route__in=Route.values), name="administration_route_valid", violation_error_message="Unknown route."),
            models.CheckConstraint(condition=Q(purpose__in=Purpose.values), name="administration_purpose_valid", violation_error_message="Unknown purpose."),
            models.CheckConstraint(condition=Q(admin_class__in=AdminFamily.values), name="administration_family_valid", violation_error_message="Unknown administration family."),
            models.CheckConstraint(condition=Q(dose_unit="") | Q(dose_unit__in=DoseUnit.values), name="administration_dose_unit_valid", violation_error_message="Unknown dose unit."),
            models.CheckConstraint(condition=Q(dose_value__isnull=True) | Q(dose_value__gt=0), name="administration_dose_positive", violation_error_message="The dose must be positive."),
            models.CheckConstraint(condition=Q(stopped_at__isnull=True) | Q(started_at__isnull=False), name="administration_stop_needs_start", violation_error_message="A drug cannot stop before it has started."),
            models.CheckConstraint(condition=Q(stopped_at__isnull=True) | Q(stopped_at__gte=F("started_at")), name="administration_stop_after_start", violation_error_message="The stop time cannot be before the start time."),
            models.CheckConstraint(condition=~Q(concurrent_with=F("id")), name="administration_not_concurrent_with_itself", violation_error_message="An administration cannot run concurrently with itself."),
            models.CheckConstraint(condition=Q(container_type="") | Q(container_type__in=ContainerType.values), name="administration_container_type_valid", violation_error_message="Unknown container type."),
            models.CheckConstraint(condition=Q(wasted_unit="") | Q(wasted_unit__in=DoseUnit.values), name="administration_wasted_unit_valid", violation_error_message="Unknown unit of the waste."),
            models.CheckConstraint(condition=Q(wasted_value__isnull=True) | Q(wasted_value__gte=0), name="administration_wasted_not_negative", violation_error_message="The waste cannot be negative."),
            models.CheckConstraint(
                condition=Q(wasted_value__isnull=True, wasted_unit="", waste_confirmed_at__isnull=True) | (Q(wasted_value__isnull=False, waste_confirmed_at__isnull=False) & ~Q(wasted_unit="")),
                name="administration_waste_confirmed_with_unit",
                violation_error_message="Waste is an amount with its unit, confirmed at a time (0 = none).",
            ),
            models.CheckConstraint(condition=Q(wasted_value__isnull=True) | Q(container_type=ContainerType.SINGLE_DOSE), name="administration_waste_only_single_dose", violation_error_message="Only single-dose containers have waste (no JW/JZ on multi-dose vials)."),
            models.CheckConstraint(
                condition=Q(hcpcs_unit_value__isnull=True, hcpcs_unit_unit="") | Q(hcpcs_unit_value__gt=0, hcpcs_unit_unit__in=DoseUnit.values),
                name="administration_hcpcs_unit_positive_with_unit",
                violation_error_message="A billing unit is a positive amount with its unit.",
            ),
            models.CheckConstraint(
                condition=Q(entered_in_error_at__isnull=True, entered_in_error_reason="") | (Q(entered_in_error_at__isnull=False) & ~Q(entered_in_error_reason="")),
                name="administration_entered_in_error_has_reason",
                violation_error_message="Striking a drug as entered in error needs a reason.",
            ),
        ]
        triggers = [_frozen_trigger("administration_signed_frozen", ADMINISTRATION_CLINICAL_COLUMNS, "EXISTS (SELECT 1 FROM charting_encounter e WHERE e.id = OLD.encounter_id AND e.status = 'signed')")]

    def __str__(self) -> str:
        return f"{self.drug} ({self.get_route_display()})"

    def save(self, *args, **kwargs):
        """Refuses (SignedRecordError) a change of a clinical field once the
        encounter is signed, outside an amendment (REC-1; the database trigger
        administration_signed_frozen refuses it too, for every other path).

        The stored row is compared with this one; a locked, cached draft
        encounter (the charting services lock it first) costs no query."""
        if not self._state.adding and self.pk is not None:
            self._refuse_signed_change(kwargs.get("update_fields"))
        super().save(*args, **kwargs)

    def _refuse_signed_change(self, update_fields) -> None:
        fields = [f.attname for f in self._meta.concrete_fields if f.column in ADMINISTRATION_CLINICAL_COLUMNS]
        if update_fields is not None:
            names = set(update_fields)
            fields = [a for a in fields if a in names or a.removesuffix("_id") in names]
        if not fields:
            return
        cached = self._state.fields_cache.get("encounter")
        if cached is not None and cached.pk == self.encounter_id and cached.status == Encounter.Status.DRAFT:
            return
        stored = Administration.objects.filter(pk=self.pk, encounter__status=Encounter.Status.SIGNED).values(*fields).first()
        if stored is None:
            return
        changed = [a for a in fields if stored[a] != getattr(self, a)]
        if changed and not in_amendment():
            raise SignedRecordError(f"This encounter is signed: {', '.join(changed)} of {self.drug} can only be changed by an amendment.")

    @property
    def is_entered_in_error(self) -> bool:
        return self.entered_in_error_at is not None

    @property
    def needs_access_site(self) -> bool:
        return self.route in ROUTES_NEEDING_SITE

    @property
    def hcpcs(self) -> str:
        return self.hcpcs_override or self.drug.hcpcs

    # The helpers below read `self.pauses.all()`: prefetch "pauses" when listing.

    @property
    def open_pause(self) -> "Pause | None":
        return next((p for p in self.pauses.all() if p.resumed_at is None), None)

    @property
    def state(self) -> str:
        """not_started | running | paused | stopped"""
        if self.started_at is None:
            return "not_started"
        if self.stopped_at is not None:
            return "stopped"
        return "paused" if self.open_pause is not None else "running"

    def last_event(self) -> tuple[str, dt.datetime] | None:
        """The newest of the card's taps as (event, server time): "start",
        "pause", "resume" or "stop"; None before the start. Reads the
        prefetched pauses. A stop that closed a pause is the stop."""
        if self.started_at is None:
            return None
        if self.stopped_at is not None:
            return ("stop", self.stopped_at)
        event = ("start", self.started_at)
        for p in self.pauses.all():
            if p.resumed_at is not None and p.resumed_at >= event[1]:
                event = ("resume", p.resumed_at)
            elif p.resumed_at is None and p.paused_at >= event[1]:
                event = ("pause", p.paused_at)
        return event

    def late_entry_minutes(self, limit: dt.timedelta) -> int | None:
        """REC-3: when the start was charted more than `limit` after it
        happened (`recorded_at` is the server's time of the entry, never the
        client's), the whole minutes between the two; else None. The same
        condition as charting.checks' LATE_ENTRY check, which also needs the
        start to be uncorrected to ask the nurse for a reason."""
        if self.started_at is None or not self.started_at < self.recorded_at - limit:
            return None
        return int((self.recorded_at - self.started_at).total_seconds() // 60)

    def minutes_so_far(self, now) -> int | None:
        """Drip-to-drip minutes: (stop or now) - start - pauses, whole minutes rounded down.

        Aware datetimes subtract as absolute time, so a DST day counts right.
        """
        if self.started_at is None:
            return None
        end = self.stopped_at or now
        paused = sum(((p.resumed_at or end) - p.paused_at for p in self.pauses.all()), start=dt.timedelta())
        seconds = (end - self.started_at - paused).total_seconds()
        return max(0, int(seconds // 60))

    # Vials and waste: these read `self.vial_uses.all()`; prefetch "vial_uses" when listing.

    @property
    def waste_confirmed(self) -> bool:
        return self.waste_confirmed_at is not None

    @property
    def needs_waste_confirmation(self) -> bool:
        """Single-dose containers opened and the waste (or "none") not confirmed yet (R47, R48)."""
        return self.container_type == ContainerType.SINGLE_DOSE and not self.waste_confirmed

    def opened_amount(self, unit: str) -> Decimal | None:
        """What the opened containers held in `unit` (see `opened_amount`)."""
        return opened_amount(self.vial_uses.all(), unit)

    def waste_limit(self, unit: str) -> Decimal | None:
        """The most that can have been discarded, in `unit`: opened - dose (R47),
        or None when the vials or the dose are not charted in convertible units."""
        opened = self.opened_amount(unit)
        dose = convert(self.dose_value, self.dose_unit, unit) if self.dose_value is not None and self.dose_unit else None
        if opened is None or dose is None:
            return None
        return opened - dose


class ChartedVialManager(models.Manager):
    """Vials as charted now: rows struck as entered in error are left out."""

    def get_queryset(self):
        return super().get_queryset().filter(entered_in_error_at__isnull=True)


@pghistory.track()
class VialUse(models.Model):
    """Containers of one product and lot opened for an administration.

    A separate row per NDC and lot, not fields on Administration: one dose is
    often drawn from vials of two sizes (rituximab 712.5 mg = 1 x 500 mg +
    3 x 100 mg, two NDCs) or two lots, and a lot number is what a recall
    looks up. The kind of container (single/multi-dose) and the waste belong
    to the administration as a whole (Administration.container_type,
    wasted_*), as the engine's Container has one type per administration.

    `ndc` is kept as printed; the engine converts it to 11 digits (R49).
    Rows stored by `import_scenarios` may lack NDC, lot and size (a scenario's
    container without them); the nurse's service requires them.
    """

    administration = models.ForeignKey(Administration, on_delete=models.PROTECT, related_name="vial_uses")
    ndc = models.CharField("NDC", max_length=13, blank=True, help_text="As printed: 4-4-2, 5-3-2 or 5-4-1 with hyphens, or 11 digits.")
    lot = models.CharField(max_length=40, blank=True)
    expiry = models.DateField(null=True, blank=True)
    size_value = models.DecimalField("size", max_digits=12, decimal_places=3, null=True, blank=True, help_text="Amount of drug per container; empty when not charted.")
    size_unit = models.CharField(max_length=10, choices=DoseUnit.choices, blank=True)
    count = models.PositiveSmallIntegerField(default=1, help_text="Containers opened.")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    # "Entered in error" (REC-4): a row charted by mistake is struck, never
    # deleted; struck rows are left out of `VialUse.objects` (and so of
    # `adm.vial_uses`, the checks and the coding), `all_objects` sees them.
    entered_in_error_at = models.DateTimeField(null=True, blank=True)
    entered_in_error_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    entered_in_error_reason = models.CharField(max_length=200, blank=True)

    objects = ChartedVialManager()
    all_objects = models.Manager()

    class Meta:
        ordering = ["recorded_at", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(count__gte=1), name="vial_use_count_positive", violation_error_message="At least one container is opened."),
            models.CheckConstraint(condition=Q(size_value__isnull=True) | Q(size_value__gt=0), name="vial_use_size_positive", violation_error_message="The container size must be positive."),
            models.CheckConstraint(
                condition=Q(size_value__isnull=True, size_unit="") | Q(size_value__isnull=False, size_unit__in=DoseUnit.values),
                name="vial_use_size_has_unit",
                violation_error_message="A container size needs its unit.",
            ),
            models.CheckConstraint(condition=Q(ndc="") | Q(ndc__regex=NDC_PATTERN), name="vial_use_ndc_format", violation_error_message="An NDC is 4-4-2, 5-3-2 or 5-4-1 with hyphens, or 11 digits."),
            # One row per product and lot: charting the same vials again updates
            # the row instead of counting them twice (double tap, correction).
            models.UniqueConstraint(fields=["administration", "ndc", "lot"], condition=~Q(ndc="") & Q(entered_in_error_at__isnull=True), name="vial_use_one_row_per_ndc_lot", violation_error_message="These vials (NDC and lot) are already charted for this drug."),
            models.CheckConstraint(
                condition=Q(entered_in_error_at__isnull=True, entered_in_error_reason="") | (Q(entered_in_error_at__isnull=False) & ~Q(entered_in_error_reason="")),
                name="vial_use_entered_in_error_has_reason",
                violation_error_message="Striking vials needs a reason.",
            ),
        ]
        triggers = [
            _frozen_trigger(
                "vial_use_signed_frozen",
                ("administration_id", "ndc", "lot", "expiry", "size_value", "size_unit", "count", "recorded_at", "entered_in_error_at", "entered_in_error_reason"),
                SIGNED_VIA_ADMINISTRATION,
            )
        ]

    def __str__(self) -> str:
        size = f"{self.size_value.normalize():f} {self.size_unit}" if self.size_value is not None else "size not charted"
        return f"{self.count} x {size}" + (f", NDC {self.ndc}" if self.ndc else "") + (f", lot {self.lot}" if self.lot else "")


@pghistory.track()
class Pause(models.Model):
    """An interval when a drug was not running; subtracted from its minutes (R17)."""

    administration = models.ForeignKey(Administration, on_delete=models.PROTECT, related_name="pauses")
    paused_at = models.DateTimeField()
    resumed_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["paused_at"]
        constraints = [
            models.CheckConstraint(condition=Q(resumed_at__isnull=True) | Q(resumed_at__gte=F("paused_at")), name="pause_resumed_after_paused", violation_error_message="A drug cannot resume before it was paused."),
            models.UniqueConstraint(fields=["administration"], condition=Q(resumed_at__isnull=True), name="pause_one_open_per_administration", violation_error_message="This drug is already paused."),
        ]
        triggers = [_frozen_trigger("pause_signed_frozen", ("administration_id", "paused_at", "resumed_at", "reason", "recorded_at"), SIGNED_VIA_ADMINISTRATION)]


@pghistory.track()
class TimeCorrection(models.Model):
    """An amendment of a charted time: the original value is kept with who, when and why."""

    class Field(models.TextChoices):
        STARTED_AT = "started_at", "start"
        STOPPED_AT = "stopped_at", "stop"
        PAUSED_AT = "paused_at", "pause"
        RESUMED_AT = "resumed_at", "resume"

    administration = models.ForeignKey(Administration, on_delete=models.PROTECT, related_name="time_corrections")
    pause = models.ForeignKey(Pause, null=True, blank=True, on_delete=models.PROTECT, related_name="time_corrections")
    field = models.CharField(max_length=20, choices=Field.choices)
    original_value = models.DateTimeField(null=True)
    new_value = models.DateTimeField()
    reason = models.TextField()
    corrected_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    corrected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["corrected_at"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="time_correction_reason_required", violation_error_message="A correction needs a reason."),
            models.CheckConstraint(condition=Q(field__in=["started_at", "stopped_at", "paused_at", "resumed_at"]), name="time_correction_field_valid", violation_error_message="Unknown field."),
        ]


@pghistory.track()
class OtherService(models.Model):
    """A documented service other than a drug administration (E/M visit, supplies, port flush)."""

    class Kind(models.TextChoices):
        NURSE_VISIT_99211 = "nurse_visit_99211", "Nurse visit (99211)"
        EM_VISIT = "em_visit", "E/M visit"
        SUPPLIES = "supplies", "Supplies"
        PORT_FLUSH_ONLY = "port_flush_only", "Port flush only"

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="other_services")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    detail = models.TextField(blank=True)
    level = models.CharField(max_length=10, blank=True, help_text="E/M level, e.g. 99213")
    significant_separately_identifiable = models.BooleanField(default=False, help_text="Work beyond the routine pre-administration assessment (R40).")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=["nurse_visit_99211", "em_visit", "supplies", "port_flush_only"]), name="other_service_kind_valid", violation_error_message="Unknown service kind."),
        ]


class FlagKind(models.TextChoices):
    """The named checks of charting/checks.py, one flag kind each."""

    STILL_RUNNING = "still_running", "Stop time missing"
    NO_ACCESS_SITE = "no_access_site", "Access site missing"
    HYDRATION_NO_INDICATION = "hydration_no_indication", "Hydration without an indication"
    DOSE_MISSING = "dose_missing", "Dose or unit missing"
    WASTE_UNCONFIRMED = "waste_unconfirmed", "Waste not confirmed"
    NDC_LOT_MISSING = "ndc_lot_missing", "NDC or lot missing"
    PAUSE_NOT_RESUMED = "pause_not_resumed", "Pause never resumed"
    LATE_ENTRY = "late_entry", "Late entry without a reason"
    OVERLAP_SAME_SITE = "overlap_same_site", "Overlap on one site"
    SECOND_SITE_NO_REASON = "second_site_no_reason", "Second site without a reason"
    NOT_SIGNED = "not_signed", "Not signed by the end of the day"
    EM_NOT_SEPARATE = "em_not_separate", "E/M without the separate-work note"
    NEVER_STARTED = "never_started", "Drug added but never started"
    NOTHING_CHARTED = "nothing_charted", "Nothing charted on the encounter"


# What each kind of flag points at: an administration, an access site, or the
# encounter itself (a CHECK keeps the row's targets in step with its kind).
ADMINISTRATION_FLAG_KINDS = (
    FlagKind.STILL_RUNNING,
    FlagKind.NO_ACCESS_SITE,
    FlagKind.HYDRATION_NO_INDICATION,
    FlagKind.DOSE_MISSING,
    FlagKind.WASTE_UNCONFIRMED,
    FlagKind.NDC_LOT_MISSING,
    FlagKind.PAUSE_NOT_RESUMED,
    FlagKind.LATE_ENTRY,
    FlagKind.OVERLAP_SAME_SITE,
    FlagKind.NEVER_STARTED,
)
SITE_FLAG_KINDS = (FlagKind.SECOND_SITE_NO_REASON,)
ENCOUNTER_FLAG_KINDS = (FlagKind.NOT_SIGNED, FlagKind.EM_NOT_SEPARATE, FlagKind.NOTHING_CHARTED)


class DocumentationFlagQuerySet(models.QuerySet):
    def open(self):
        return self.filter(resolved_at__isnull=True)

    def visible_to(self, user):
        return self.filter(encounter__clinic__in=Clinic.objects.filter(staff=user))


class DocumentationFlag(models.Model):
    """An incomplete-record flag: a gap one of the checks (charting/checks.py) found.

    The record is an administration, an access site, or the encounter itself
    (`administration` / `access_site` set, never both; which one depends on the
    kind). `encounter` is always set, so the worklist and the coder queue count
    an encounter's flags without joins. At most one OPEN flag per (record,
    kind), enforced by the partial unique indexes below, which is what lets
    racing sweeps insert with ON CONFLICT DO NOTHING. A fixed gap is resolved
    (`resolved_at`), not deleted: the resolved rows are the flag's history, and
    a gap that comes back opens a new row.
    """

    Kind = FlagKind

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="flags")
    administration = models.ForeignKey(Administration, null=True, blank=True, on_delete=models.PROTECT, related_name="flags")
    access_site = models.ForeignKey(AccessSite, null=True, blank=True, on_delete=models.PROTECT, related_name="flags")
    kind = models.CharField(max_length=40, choices=FlagKind.choices)
    message = models.CharField(max_length=300, help_text="In the nurse's words, as the check wrote it.")
    field = models.CharField(max_length=40, blank=True, help_text="The charted field that closes the gap.")
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = DocumentationFlagQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=FlagKind.values), name="flag_kind_valid", violation_error_message="Unknown flag kind."),
            models.CheckConstraint(
                condition=(
                    Q(kind__in=ADMINISTRATION_FLAG_KINDS, administration__isnull=False, access_site__isnull=True)
                    | Q(kind__in=SITE_FLAG_KINDS, administration__isnull=True, access_site__isnull=False)
                    | Q(kind__in=ENCOUNTER_FLAG_KINDS, administration__isnull=True, access_site__isnull=True)
                ),
                name="flag_target_matches_kind",
                violation_error_message="This kind of flag points at another kind of record.",
            ),
            models.CheckConstraint(condition=Q(resolved_at__isnull=True) | Q(resolved_at__gte=F("created_at")), name="flag_resolved_after_created", violation_error_message="A flag cannot be resolved before it was raised."),
            models.UniqueConstraint(
                fields=["administration", "kind"],
                condition=Q(resolved_at__isnull=True, administration__isnull=False),
                name="flag_one_open_per_record_kind",
                violation_error_message="This record already has an open flag of this kind.",
            ),
            models.UniqueConstraint(
                fields=["access_site", "kind"],
                condition=Q(resolved_at__isnull=True, access_site__isnull=False),
                name="flag_one_open_per_site_kind",
                violation_error_message="This access site already has an open flag of this kind.",
            ),
            models.UniqueConstraint(
                fields=["encounter", "kind"],
                condition=Q(resolved_at__isnull=True, administration__isnull=True, access_site__isnull=True),
                name="flag_one_open_per_encounter_kind",
                violation_error_message="This encounter already has an open flag of this kind.",
            ),
        ]
        indexes = [
            # Worklist and coder-queue counts read open flags per encounter.
            models.Index(fields=["encounter"], condition=Q(resolved_at__isnull=True), name="flag_open_by_encounter"),
        ]

    def __str__(self) -> str:
        return self.message

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class SweepRun(models.Model):
    """One flag sweep that committed (written in the sweep's own transaction).

    A periodic sweep claims its period: `period_start` is unique, so two beat
    processes, or a task redelivered after its worker died, sweep once per
    period. A manual sweep (`manage.py sweep_flags`) has no period.
    """

    period_start = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    opened = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    still_open = models.PositiveIntegerField(default=0, help_text="Open flags after the sweep.")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["period_start"], name="sweep_run_one_per_period", violation_error_message="This period has been swept already."),
            models.CheckConstraint(condition=Q(finished_at__gte=F("started_at")), name="sweep_run_finished_after_start", violation_error_message="A sweep cannot finish before it starts."),
        ]

    def __str__(self) -> str:
        return f"sweep {self.started_at:%Y-%m-%d %H:%M} opened={self.opened} resolved={self.resolved} open={self.still_open}"



class AmendmentReason(models.Model):
    """Why signed documentation was amended: a maintained list (seeded by
    migration, edited by admins). A retired reason is made inactive, not deleted."""

    code = models.CharField(max_length=40, unique=True)
    label = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "label"]
        constraints = [
            models.CheckConstraint(condition=Q(code__regex=r"^[a-z0-9_]+$"), name="amendment_reason_code_slug", violation_error_message="A reason code is lower-case letters, digits and _."),
        ]

    def __str__(self) -> str:
        return self.label


class AmendableField(models.TextChoices):
    """Clinical fields of an administration a nurse may amend once signed."""

    DOSE_VALUE = "dose_value", "dose"
    DOSE_UNIT = "dose_unit", "dose unit"
    PURPOSE = "purpose", "purpose / indication"
    ROUTE = "route", "route"
    ACCESS_SITE = "access_site", "access site"
    STARTED_AT = "started_at", "start time"
    STOPPED_AT = "stopped_at", "stop time"
    # Not a value a nurse types: `services.enter_administration_in_error`
    # strikes the whole drug on a signed encounter (REC-4).
    ENTERED_IN_ERROR = "entered_in_error", "entered in error"


# What the Amend form offers (striking a drug has its own form).
AMEND_FORM_FIELDS = [(v, label) for v, label in AmendableField.choices if v != AmendableField.ENTERED_IN_ERROR]


class Amendment(models.Model):
    """A change to signed documentation (REC-2): the original value is kept
    here, with the new one, the author, the server time and a reason from the
    maintained list (plus optional free text). The administration row holds the
    effective value; the chart shows it marked "amended" with the original.

    `old_value`/`new_value` are JSON: decimals and datetimes as ISO strings,
    an access site as {"id", "label"}. `query` links the coder's
    DocumentationQuery the amendment answers, when there is one.
    """

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="amendments")
    administration = models.ForeignKey(Administration, null=True, blank=True, on_delete=models.PROTECT, related_name="amendments")
    field = models.CharField(max_length=20, choices=AmendableField.choices)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    reason = models.ForeignKey(AmendmentReason, on_delete=models.PROTECT, related_name="amendments")
    reason_text = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True, help_text="Server time.")
    query = models.ForeignKey("coding.DocumentationQuery", null=True, blank=True, on_delete=models.PROTECT, related_name="amendments")

    class Meta:
        ordering = ["recorded_at", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(field__in=AmendableField.values), name="amendment_field_valid", violation_error_message="This field cannot be amended."),
        ]

    def __str__(self) -> str:
        return f"{self.get_field_display()}: {self.display_old} → {self.display_new}"

    @staticmethod
    def _display(value) -> str:
        if value is None or value == "":
            return "none"
        if isinstance(value, dict):
            return str(value.get("label") or value.get("id"))
        if isinstance(value, str) and "T" in value:
            # Times are stored with the clinic's offset: show its wall clock.
            try:
                return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
            except ValueError:
                pass
        return str(value)

    @property
    def display_old(self) -> str:
        return self._display(self.old_value)

    @property
    def display_new(self) -> str:
        return self._display(self.new_value)


# --- the patient's wristband, checked at the chair (issue #8, BCMA) ------------------


class PatientScanResult(models.TextChoices):
    CONFIRMED = "confirmed", "Patient confirmed"
    MISMATCH = "mismatch", "Wristband did not match"


@pghistory.track()
class PatientScan(models.Model):
    """One check of the patient's wristband against the encounter's patient:
    who scanned, when (UTC), and whether the MRN matched. Failed checks are
    kept too (a wrong-patient near miss is worth an audit). The scanned text
    itself is never stored: on a mismatch it is another patient's MRN.

    Append-only: `charting.scanning.check_wristband` inserts, nothing updates;
    the trigger freezes the rows of a signed encounter like its other
    clinical rows (REC-1)."""

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="patient_scans")
    result = models.CharField(max_length=10, choices=PatientScanResult.choices)
    scanned_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    scanned_at = models.DateTimeField(help_text="Server time of the scan (UTC).")

    class Meta:
        ordering = ["scanned_at", "pk"]
        # The encounter page reads the latest scan of one encounter.
        indexes = [models.Index(fields=["encounter", "-scanned_at"], name="patient_scan_latest")]
        constraints = [
            models.CheckConstraint(condition=Q(result__in=PatientScanResult.values), name="patient_scan_result_valid", violation_error_message="Unknown wristband check result."),
        ]
        triggers = [
            _frozen_trigger(
                "patient_scan_signed_frozen",
                ("encounter_id", "result", "scanned_by_id", "scanned_at"),
                "EXISTS (SELECT 1 FROM charting_encounter e WHERE e.id = OLD.encounter_id AND e.status = 'signed')",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_result_display()} at {self.scanned_at:%Y-%m-%d %H:%M}Z"

    @property
    def confirmed(self) -> bool:
        return self.result == PatientScanResult.CONFIRMED


# --- vital signs and infusion reactions (issue #8) ---------------------------------
#
# Charted at any time of a draft encounter, frozen with it once signed (the
# same triggers as the drug rows), their history kept by pghistory. A row
# charted by mistake is struck as entered in error, never deleted (REC-4).

SIGNED_VIA_ENCOUNTER = "EXISTS (SELECT 1 FROM charting_encounter e WHERE e.id = OLD.encounter_id AND e.status = 'signed')"


class VitalRange:
    """A measure's physiological range: the CHECK constraint and the form
    field are both built from it, so the limit is written once."""

    def __init__(self, label: str, unit: str, low, high, decimals: int = 0):
        self.label, self.unit, self.low, self.high, self.decimals = label, unit, low, high, decimals

    @property
    def message(self) -> str:
        unit = "" if not self.unit else self.unit if self.unit == "%" else f" {self.unit}"
        return f"{self.label} must be between {self.low} and {self.high}{unit}."


# Field name -> range. Wide enough for any patient in an infusion chair
# (hypotension in a reaction, fever with rigors), narrow enough to catch a
# typo (1200 for 120, 37 typed into SpO2).
VITAL_RANGES = {
    "systolic_mmhg": VitalRange("Systolic pressure", "mmHg", 40, 300),
    "diastolic_mmhg": VitalRange("Diastolic pressure", "mmHg", 20, 200),
    "pulse_per_min": VitalRange("Pulse", "/min", 20, 250),
    "respiratory_rate_per_min": VitalRange("Respiratory rate", "/min", 4, 60),
    "temperature_c": VitalRange("Temperature", "°C", Decimal("30.0"), Decimal("45.0"), decimals=1),
    "spo2_percent": VitalRange("SpO2", "%", 50, 100),
    "weight_kg": VitalRange("Weight", "kg", Decimal("0.5"), Decimal("500.0"), decimals=1),
    "pain_score": VitalRange("Pain score", "", 0, 10),
}


def _range_constraints(prefix: str) -> list[models.CheckConstraint]:
    return [
        models.CheckConstraint(condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gte": r.low, f"{name}__lte": r.high}), name=f"{prefix}_{name}_range", violation_error_message=r.message)
        for name, r in VITAL_RANGES.items()
    ]


def _struck_has_reason(prefix: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(entered_in_error_at__isnull=True, entered_in_error_reason="") | (Q(entered_in_error_at__isnull=False) & ~Q(entered_in_error_reason="")),
        name=f"{prefix}_entered_in_error_has_reason",
        violation_error_message="Striking a record as entered in error needs a reason.",
    )


class ChartedManager(models.Manager):
    """Rows as charted now: those struck as entered in error are left out."""

    def get_queryset(self):
        return super().get_queryset().filter(entered_in_error_at__isnull=True)


@pghistory.track()
class VitalSigns(models.Model):
    """One set of vital signs. `taken_at` is when they were measured (server
    time of the entry unless the nurse gave an earlier time, with a reason in
    `taken_at_reason`; a later correction keeps the first value in
    `taken_at_original`); `recorded_at` is when the row was entered. At least
    one measure; blood pressure is systolic and diastolic together. Units are
    in the field names (mmHg, /min, °C, %, kg); pain is 0-10."""

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="vital_signs")
    taken_at = models.DateTimeField()
    taken_at_reason = models.CharField(max_length=200, blank=True, help_text="Why the time differs from the time of the entry.")
    taken_at_original = models.DateTimeField(null=True, blank=True, help_text="The time first charted, when it was corrected later.")
    systolic_mmhg = models.PositiveSmallIntegerField("systolic (mmHg)", null=True, blank=True)
    diastolic_mmhg = models.PositiveSmallIntegerField("diastolic (mmHg)", null=True, blank=True)
    pulse_per_min = models.PositiveSmallIntegerField("pulse (/min)", null=True, blank=True)
    respiratory_rate_per_min = models.PositiveSmallIntegerField("respiratory rate (/min)", null=True, blank=True)
    temperature_c = models.DecimalField("temperature (°C)", max_digits=3, decimal_places=1, null=True, blank=True)
    spo2_percent = models.PositiveSmallIntegerField("SpO2 (%)", null=True, blank=True)
    weight_kg = models.DecimalField("weight (kg)", max_digits=4, decimal_places=1, null=True, blank=True)
    pain_score = models.PositiveSmallIntegerField("pain (0-10)", null=True, blank=True)
    # The form's one-time key: a double tap or a retried POST finds the row
    # the first one made instead of charting the same vitals twice.
    client_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    entered_in_error_at = models.DateTimeField(null=True, blank=True)
    entered_in_error_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    entered_in_error_reason = models.CharField(max_length=200, blank=True)

    objects = models.Manager()
    charted = ChartedManager()

    MEASURES = tuple(VITAL_RANGES)

    class Meta:
        ordering = ["-taken_at", "-pk"]
        verbose_name = "vital signs"
        verbose_name_plural = "vital signs"
        constraints = [
            *_range_constraints("vitals"),
            models.CheckConstraint(
                condition=Q(systolic_mmhg__isnull=True, diastolic_mmhg__isnull=True) | Q(systolic_mmhg__isnull=False, diastolic_mmhg__isnull=False),
                name="vitals_blood_pressure_pair",
                violation_error_message="Blood pressure is systolic and diastolic together.",
            ),
            models.CheckConstraint(condition=Q(systolic_mmhg__isnull=True) | Q(diastolic_mmhg__lt=F("systolic_mmhg")), name="vitals_diastolic_below_systolic", violation_error_message="The diastolic pressure must be below the systolic."),
            models.CheckConstraint(
                condition=Q(systolic_mmhg__isnull=False) | Q(pulse_per_min__isnull=False) | Q(respiratory_rate_per_min__isnull=False) | Q(temperature_c__isnull=False) | Q(spo2_percent__isnull=False) | Q(weight_kg__isnull=False) | Q(pain_score__isnull=False),
                name="vitals_at_least_one_measure",
                violation_error_message="Give at least one measure.",
            ),
            _struck_has_reason("vitals"),
        ]
        indexes = [models.Index(fields=["encounter", "taken_at"], name="vitals_by_encounter")]
        triggers = [
            _frozen_trigger(
                "vitals_signed_frozen",
                ("encounter_id", "taken_at", "taken_at_reason", "taken_at_original", *VITAL_RANGES, "recorded_by_id", "recorded_at", "entered_in_error_at", "entered_in_error_by_id", "entered_in_error_reason"),
                SIGNED_VIA_ENCOUNTER,
            )
        ]

    def __str__(self) -> str:
        return f"vitals at {self.taken_at:%Y-%m-%d %H:%M}Z"

    @property
    def is_entered_in_error(self) -> bool:
        return self.entered_in_error_at is not None

    @property
    def blood_pressure(self) -> str:
        return f"{self.systolic_mmhg}/{self.diastolic_mmhg}" if self.systolic_mmhg is not None else ""


class Symptom(models.TextChoices):
    FLUSHING = "flushing", "Flushing"
    URTICARIA = "urticaria", "Urticaria"
    PRURITUS = "pruritus", "Pruritus"
    DYSPNOEA = "dyspnoea", "Dyspnoea"
    CHEST_TIGHTNESS = "chest_tightness", "Chest tightness"
    HYPOTENSION = "hypotension", "Hypotension"
    FEVER = "fever", "Fever"
    RIGORS = "rigors", "Rigors"
    NAUSEA = "nausea", "Nausea"
    OTHER = "other", "Other"


class Intervention(models.TextChoices):
    INFUSION_PAUSED = "infusion_paused", "Infusion paused"
    INFUSION_STOPPED = "infusion_stopped", "Infusion stopped"
    ANTIHISTAMINE = "antihistamine", "Antihistamine"
    CORTICOSTEROID = "corticosteroid", "Corticosteroid"
    EPINEPHRINE = "epinephrine", "Epinephrine"
    OXYGEN = "oxygen", "Oxygen"
    IV_FLUIDS = "iv_fluids", "IV fluids"
    OTHER = "other", "Other"


class ReactionOutcome(models.TextChoices):
    RESOLVED = "resolved", "Resolved"
    ONGOING = "ongoing", "Ongoing"
    TRANSFERRED_ED = "transferred_ed", "Transferred to ED"


def _list_regex(choices: type[models.TextChoices]) -> str:
    """A comma-separated list of `choices` values (one or more): what the
    multi-choice columns hold. A plain text column with a CHECK works on
    PostgreSQL and on the SQLite demo alike (an array column would not)."""
    one = "(" + "|".join(choices.values) + ")"
    return f"^{one}(,{one})*$"


@pghistory.track()
class Reaction(models.Model):
    """An infusion reaction: CTCAE grade 1-4 (grade 5, death, is not charted
    here), its symptoms and interventions (comma-separated values of Symptom
    and Intervention, "other" with its free text), the outcome and a note.

    `administrations` are the drugs it relates to (usually the running one);
    recording it paused those that were running, and the pause each one got
    is on the link row (`ReactionAdministration.pause`), so the engine leaves
    the paused minutes out (R17)."""

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="reactions")
    administrations = models.ManyToManyField(Administration, through="ReactionAdministration", related_name="reactions", blank=True)
    onset_at = models.DateTimeField()
    onset_reason = models.CharField(max_length=200, blank=True, help_text="Why the onset time differs from the time of the entry.")
    grade = models.PositiveSmallIntegerField("CTCAE grade")
    symptoms = models.CharField(max_length=300)
    symptoms_other = models.CharField("other symptom", max_length=200, blank=True)
    interventions = models.CharField(max_length=300, blank=True)
    interventions_other = models.CharField("other intervention", max_length=200, blank=True)
    outcome = models.CharField(max_length=20, choices=ReactionOutcome.choices, default=ReactionOutcome.ONGOING)
    note = models.TextField(blank=True)
    client_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    entered_in_error_at = models.DateTimeField(null=True, blank=True)
    entered_in_error_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    entered_in_error_reason = models.CharField(max_length=200, blank=True)

    objects = models.Manager()
    charted = ChartedManager()

    OUTCOME_CHOICES = ReactionOutcome.choices

    class Meta:
        ordering = ["-onset_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(grade__gte=1, grade__lte=4), name="reaction_grade_1_to_4", violation_error_message="The CTCAE grade is 1 to 4 (grade 5 is not charted here)."),
            models.CheckConstraint(condition=Q(symptoms__regex=_list_regex(Symptom)), name="reaction_symptoms_valid", violation_error_message="Pick at least one symptom from the list."),
            models.CheckConstraint(condition=Q(interventions="") | Q(interventions__regex=_list_regex(Intervention)), name="reaction_interventions_valid", violation_error_message="Pick the interventions from the list."),
            models.CheckConstraint(condition=~Q(symptoms__regex=r"(^|,)other(,|$)") | ~Q(symptoms_other=""), name="reaction_other_symptom_described", violation_error_message="Describe the other symptom."),
            models.CheckConstraint(
                condition=~Q(interventions__regex=r"(^|,)other(,|$)") | ~Q(interventions_other=""), name="reaction_other_intervention_described", violation_error_message="Describe the other intervention."
            ),
            models.CheckConstraint(condition=Q(outcome__in=ReactionOutcome.values), name="reaction_outcome_valid", violation_error_message="Unknown outcome."),
            _struck_has_reason("reaction"),
        ]
        triggers = [
            _frozen_trigger(
                "reaction_signed_frozen",
                (
                    "encounter_id",
                    "onset_at",
                    "onset_reason",
                    "grade",
                    "symptoms",
                    "symptoms_other",
                    "interventions",
                    "interventions_other",
                    "outcome",
                    "note",
                    "recorded_by_id",
                    "recorded_at",
                    "entered_in_error_at",
                    "entered_in_error_by_id",
                    "entered_in_error_reason",
                ),
                SIGNED_VIA_ENCOUNTER,
            )
        ]

    def __str__(self) -> str:
        return f"reaction grade {self.grade} at {self.onset_at:%Y-%m-%d %H:%M}"

    @property
    def is_entered_in_error(self) -> bool:
        return self.entered_in_error_at is not None

    @staticmethod
    def _labels(values: str, choices: type[models.TextChoices], other: str) -> list[str]:
        labels = [other if v == "other" and other else choices(v).label for v in values.split(",") if v]
        return labels

    @property
    def symptom_labels(self) -> list[str]:
        return self._labels(self.symptoms, Symptom, self.symptoms_other)

    @property
    def intervention_labels(self) -> list[str]:
        return self._labels(self.interventions, Intervention, self.interventions_other)


@pghistory.track()
class ReactionAdministration(models.Model):
    """A drug a reaction relates to, and the pause recording the reaction
    opened on it (none when it was already paused or stopped)."""

    reaction = models.ForeignKey(Reaction, on_delete=models.PROTECT, related_name="links")
    administration = models.ForeignKey(Administration, on_delete=models.PROTECT, related_name="+")
    pause = models.OneToOneField(Pause, null=True, blank=True, on_delete=models.PROTECT, related_name="reaction_link")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reaction", "administration"], name="reaction_administration_unique", violation_error_message="This drug is already linked to the reaction."),
        ]
        triggers = [
            _frozen_trigger(
                "reaction_administration_signed_frozen",
                ("reaction_id", "administration_id", "pause_id"),
                "EXISTS (SELECT 1 FROM charting_reaction r JOIN charting_encounter e ON e.id = r.encounter_id WHERE r.id = OLD.reaction_id AND e.status = 'signed')",
            )
        ]
