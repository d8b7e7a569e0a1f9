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
