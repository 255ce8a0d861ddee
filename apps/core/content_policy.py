"""django-csp's middleware, with the policy built once per process for the responses that
change nothing about it.

``CSPMiddleware`` builds both headers (the policy and the report-only one) from the settings
for every response, though for nearly all of them (no nonce asked for, no per-view
``@csp_update``/``@csp_replace``/``@csp_exempt``) the text is the same each time. Those get the
text built the first time (again after a settings change, as in tests); any other response
goes through django-csp unchanged.
"""

from __future__ import annotations

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)

# (header, setting, report only) -> (the policy text, its excluded path prefixes)
_built: dict[tuple[str, str, bool], tuple[str, tuple[str, ...]]] = {}


@receiver(setting_changed, dispatch_uid="content_policy_setting_changed")
def _forget(setting: str, **kwargs) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _built.clear()


def _policy(header: str, setting: str, report_only: bool) -> tuple[str, tuple[str, ...]]:
    key = (header, setting, report_only)
    built = _built.get(key)
    if built is None:
        config = getattr(settings, setting, None) or {}
        built = (build_policy(report_only=report_only), tuple(config.get("EXCLUDE_URL_PREFIXES") or ()))
        _built[key] = built
    return built


class ContentPolicyMiddleware(CSPMiddleware):
    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) is not None or any(
            hasattr(response, name) for name in _PER_RESPONSE
        ):
            return super().process_response(request, response)
        if response.status_code in (500, 404) and settings.DEBUG:
            return response  # as django-csp: Django's debug pages keep their inline scripts
        for header, setting, report_only in (
            (HEADER, "CONTENT_SECURITY_POLICY", False),
            (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", True),
        ):
            policy, excluded = _policy(header, setting, report_only)
            if policy and header not in response and not request.path_info.startswith(excluded):
                response[header] = policy
        # As django-csp: a nonce asked for once the header is written is an error, not a silent gap.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
