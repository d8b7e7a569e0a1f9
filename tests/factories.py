"""factory_boy factories shared by the whole suite.

Synthetic patients only, and canary-named (PHI-2): every patient's family
name and MRN contain `CANARY` unless a test names it, so the run fails if
one reaches a log line, a Celery message or an e-mail (tests/phi_canary.py).
Times are aware UTC. `AdministrationFactory` makes an
IV infusion with its own access site on the same encounter; pass
`route="subcutaneous", access_site=None` for an injection.
"""

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from charting.models import AccessSite, AdminFamily, Administration, Clinic, Drug, Encounter, Patient, Route
from tests.phi_canary import CANARY

PASSWORD = "chairside-test-password"
_faker = factory.Faker._get_faker()


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"Clinic {n}")
    time_zone = "America/New_York"


class UserFactory(factory.django.DjangoModelFactory):
    """A user; `UserFactory(roles=["nurse"], clinics=[clinic])` adds groups and clinics."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for name in extracted or []:
            self.groups.add(Group.objects.get_or_create(name=name)[0])

    @factory.post_generation
    def clinics(self, create, extracted, **kwargs):
        for clinic in extracted or []:
            clinic.staff.add(self)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    clinic = factory.SubFactory(ClinicFactory)
    mrn = factory.Sequence(lambda n: f"{CANARY}-{n:06d}")
    given_name = factory.Faker("first_name")
    family_name = factory.LazyFunction(lambda: f"{_faker.last_name()} {CANARY}")
    birth_date = dt.date(1970, 1, 1)


class EncounterFactory(factory.django.DjangoModelFactory):
    """A draft encounter dated today in its clinic's zone."""

    class Meta:
        model = Encounter

    patient = factory.SubFactory(PatientFactory)
    clinic = factory.SelfAttribute("patient.clinic")
    setting = "office"
    date_of_service = factory.LazyAttribute(lambda o: timezone.localdate(timezone.now(), o.clinic.tz))


class AccessSiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccessSite

    encounter = factory.SubFactory(EncounterFactory)
    label = factory.Sequence(lambda n: f"S{n}")
    kind = AccessSite.Kind.PERIPHERAL_IV
    location = "left forearm"
    gauge = 22


class DrugFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Drug
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"drug {n}")
    hcpcs = "J1745"
    billing_unit_value = Decimal("10")
    billing_unit_unit = "mg"
    admin_family = AdminFamily.CHEMO_COMPLEX
    single_dose = True
    is_verified = True


class AdministrationFactory(factory.django.DjangoModelFactory):
    """Not started unless you pass started_at/stopped_at."""

    class Meta:
        model = Administration

    encounter = factory.SubFactory(EncounterFactory)
    label = factory.Sequence(lambda n: f"adm{n}")
    drug = factory.SubFactory(DrugFactory)
    admin_class = factory.SelfAttribute("drug.admin_family")
    route = Route.IV_INFUSION
    access_site = factory.SubFactory(AccessSiteFactory, encounter=factory.SelfAttribute("..encounter"))
    dose_value = Decimal("500")
    dose_unit = "mg"


def chart_vials(adm: Administration) -> Administration:
    """Chart the vials (NDC, lot) and "none wasted" of a given drug, so its
    record is complete and signing asks no confirmation (charting/checks.py)."""
    from charting.models import VialUse

    VialUse.objects.create(administration=adm, ndc="57894-030-01", lot="TESTLOT1", size_value=Decimal("100"), size_unit="mg", count=5)
    Administration.objects.filter(pk=adm.pk).update(container_type="single_dose", wasted_value=Decimal("0"), wasted_unit=adm.dose_unit or "mg", waste_confirmed_at=timezone.now())
    adm.refresh_from_db()
    return adm


@contextmanager
def amending(amendment_id: str = "test-arrangement"):
    """Arrange test data on a SIGNED encounter, as an amendment would
    (REC-1): sets `chairside.amendment` for the block, then clears it (it is
    transaction-local, and a test runs in one transaction)."""
    from django.db import connection, transaction

    def set_(value: str) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('chairside.amendment', %s, true)", [value])

    # In its own (sub)transaction: the setting is transaction-local, and a
    # transactional test runs each statement in a transaction of its own.
    with transaction.atomic():
        set_(amendment_id)
        try:
            yield
        finally:
            set_("")


# --- two-factor log-in (AC-9) ------------------------------------------------------------------


def confirmed_device(user):
    """The user's confirmed TOTP device (created on first use), as an
    authenticator app on the user's phone would hold it."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="test phone", confirmed=True)


def totp_for_key(key: bytes, *, last_t: int = -1, step: int = 30, t0: int = 0, digits: int = 6, drift: int = 0) -> str:
    """The code an authenticator app holding `key` shows now, or — when the
    device already accepted this time step (`last_t`) — the next step's code,
    which the server still accepts (tolerance 1 step). Codes are single-use."""
    import time

    from django_otp.oath import TOTP, hotp

    now = TOTP(key, step, t0, digits, drift)
    now.time = time.time()
    counter = max(now.t(), last_t + 1)
    return f"{hotp(key, counter, digits):0{digits}d}"


def next_totp(device) -> str:
    """A code `device` accepts now (the device row is re-read: the server may have used a step)."""
    device.refresh_from_db()
    return totp_for_key(device.bin_key, last_t=device.last_t, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift)
