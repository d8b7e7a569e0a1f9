"""Steps a person takes in the browser, shared by the browser tests."""

import base64

from tests.factories import PASSWORD, next_totp, totp_for_key


def log_in(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the real pages: password, then — for coders, admins and
    enrolled nurses — the TOTP step. A code is computed from the device's key
    the way an authenticator app would; a user who has no device yet enrols on
    the set-up page with the secret that page shows as text (AC-9)."""
    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if "/accounts/two-factor/setup/" in page.url:
        secret = page.locator('[data-testid="two-factor-secret"]').inner_text().replace(" ", "")
        key = base64.b32decode(secret + "=" * (-len(secret) % 8))
        page.fill("#id_token", totp_for_key(key))
    elif "/accounts/two-factor/" in page.url:
        user = get_user_model().objects.get(username=username)
        page.fill("#id_token", next_totp(TOTPDevice.objects.get(user=user, confirmed=True)))
    else:
        return
    with page.expect_navigation():
        page.click('[data-testid="two-factor-submit"]')


def chart_infusion(page, *, patient: str, drug: str, dose: str, site_location: str = "right antecubital") -> None:
    """From the worklist: open `patient`'s encounter, add a peripheral IV site,
    add `drug` as an IV infusion of `dose` mg, tap Start, then Stop."""
    page.select_option('[data-testid="open-patient"]', label=patient)
    page.click('[data-testid="open-encounter"]')
    page.click('[data-testid="add-site-toggle"]')
    page.select_option('[data-testid="site-kind"]', "peripheral_iv")
    page.fill('[data-testid="site-location"]', site_location)
    page.click('[data-testid="add-site-submit"]')
    page.wait_for_selector('[data-testid="site-A"]')
    page.click('[data-testid="add-administration-toggle"]')
    page.select_option('[data-testid="adm-drug"]', label=drug)
    page.select_option('[data-testid="adm-route"]', "iv_infusion")
    page.select_option('[data-testid="adm-access-site"]', index=1)
    page.fill('[data-testid="adm-dose-value"]', dose)
    page.select_option('[data-testid="adm-dose-unit"]', "mg")
    page.click('[data-testid="add-administration-submit"]')
    page.click(f'[data-testid="start-{drug}"]')
    page.wait_for_selector(f'[data-testid="stop-{drug}"]')
    page.click(f'[data-testid="stop-{drug}"]')
    page.wait_for_selector(f'[data-testid="administration-{drug}"][data-state="stopped"]')


def sign(page) -> None:
    """Tap Sign; when the chart still has items that would stop a billed line,
    the "ready to bill" panel asks once more: confirm with "Sign anyway"."""
    # A plain POST and a redirect: wait for the new page, not for an element
    # the old one already had (the panel shows "Sign anyway" before the tap too).
    with page.expect_navigation():
        page.click('[data-testid="sign-encounter"]')
    if page.locator('[data-testid="sign-anyway"]').count():
        page.wait_for_selector("text=would stop or change a billed line")
        with page.expect_navigation():
            page.click('[data-testid="sign-anyway"]')
    page.wait_for_selector("text=Encounter signed")
