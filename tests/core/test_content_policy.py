"""The Content-Security-Policy headers (``apps.core.content_policy``): built once per process,
always the text django-csp's own middleware writes for the same request and response."""

from __future__ import annotations

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE
from csp.middleware import CSPMiddleware
from django.http import HttpResponse, JsonResponse
from django.test import RequestFactory

from apps.core.content_policy import ContentPolicyMiddleware

REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'self'"], "report-uri": "/csp-report/"}}


def _headers(middleware_class, path: str, response, *, use_nonce: bool = False) -> dict[str, str]:
    request = RequestFactory().get(path)
    middleware = middleware_class(lambda request: response)
    middleware.process_request(request)
    if use_nonce:
        str(request.csp_nonce)  # a template asked for the nonce
    answered = middleware.process_response(request, response)
    return {name: answered[name] for name in (HEADER, HEADER_REPORT_ONLY) if name in answered}


def _both(path: str, make, **kwargs) -> tuple[dict, dict]:
    return _headers(ContentPolicyMiddleware, path, make(), **kwargs), _headers(
        CSPMiddleware, path, make(), **kwargs
    )


@pytest.mark.parametrize("make", [lambda: JsonResponse({"ok": True}), lambda: HttpResponse("<p>page</p>")])
def test_the_kept_policy_is_django_csps_and_follows_a_settings_change(settings, make):
    ours, theirs = _both("/api/v1/orders/", make)
    assert ours == theirs and "script-src 'self'" in ours[HEADER] and HEADER_REPORT_ONLY not in ours
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = REPORT_ONLY
    ours, theirs = _both("/", make)
    assert ours == theirs == {HEADER: "default-src 'none'", HEADER_REPORT_ONLY: theirs[HEADER_REPORT_ONLY]}
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {"default-src": ["'self'"]},
        "EXCLUDE_URL_PREFIXES": ["/api/"],
    }
    ours, theirs = _both("/api/v1/orders/", make)
    assert ours == theirs and HEADER not in ours  # an excluded prefix gets none


def test_a_response_with_its_own_policy_or_a_nonce_goes_through_django_csp(settings):
    def updated():
        response = HttpResponse("<p>chart</p>")
        response._csp_update = {"img-src": ["https://example.com"]}
        return response

    ours, theirs = _both("/", updated)
    assert ours == theirs and "https://example.com" in ours[HEADER]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"script-src": ["'self'", NONCE]}}
    first = _headers(ContentPolicyMiddleware, "/", HttpResponse("<p>x</p>"), use_nonce=True)
    second = _headers(ContentPolicyMiddleware, "/", HttpResponse("<p>x</p>"), use_nonce=True)
    assert "'nonce-" in first[HEADER] and first != second  # each request's own nonce, never a kept one


def test_a_nonce_asked_for_after_the_header_is_written_is_an_error():
    from csp.exceptions import CSPNonceError

    request = RequestFactory().get("/")
    middleware = ContentPolicyMiddleware(lambda request: HttpResponse(""))
    middleware.process_request(request)
    middleware.process_response(request, HttpResponse(""))
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)
