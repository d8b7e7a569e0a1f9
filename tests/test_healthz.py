"""GET /healthz/: the load balancer's probe and the benchmarks' bare view."""

import pytest


@pytest.mark.django_db
def test_healthz_answers_anonymous_get_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_healthz_refuses_post(client):
    assert client.post("/healthz/").status_code == 405


@pytest.mark.django_db
def test_favicon_redirects_to_the_static_icon_which_is_served(client, django_assert_num_queries):
    """Browsers ask /favicon.ico on pages that name no icon (the admin's): a
    redirect to the static SVG, not a 404 in every log; anonymous, no database."""
    with django_assert_num_queries(0):
        response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("img/favicon.svg")
    page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon"' in page and "img/favicon.svg" in page
