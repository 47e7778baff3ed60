"""Validate OFREP responses against the protocol's OpenAPI document (tests/ofrep_spec/openapi.yaml).

The document is used as published except for three amendments, made here in memory, where read as strict
JSON Schema it refuses answers it plainly means to allow:

1. `codeDefaultFlag` is `{type: object, properties: {}}`, which every object matches, so under the `oneOf`
   of `evaluationSuccess` every answer *with* a value matches two schemas and fails. It is amended to what
   its description says: an answer without `value`.
2. `floatFlag`'s `number` also matches integers, so an integer value matched both `integerFlag` and
   `floatFlag`. A float is amended to be a number that is not an integer.
3. The 429 answers' `Retry-After` is typed as an RFC 3339 date-time (the bulk endpoint also allows an
   integer, which a header, arriving as text, never is to the validator). HTTP's own forms are a number of
   seconds or an HTTP date (RFC 9110), which OFREP's providers read; the server sends seconds. Both are
   amended to a date-time or a text of digits.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

DOCUMENT = Path(__file__).parent / "ofrep_spec" / "openapi.yaml"


@cache
def ofrep_openapi() -> OpenAPI:
    document: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    schemas["codeDefaultFlag"]["not"] = {"required": ["value"]}
    schemas["floatFlag"]["properties"]["value"]["not"] = {"type": "integer"}
    retry_after = {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": "^[0-9]+$"}]
    }
    for path in ("/ofrep/v1/evaluate/flags/{key}", "/ofrep/v1/evaluate/flags"):
        document["paths"][path]["post"]["responses"]["429"]["headers"]["Retry-After"]["schema"] = retry_after
    return OpenAPI.from_dict(document)


def validate(path: str, body: Any, response: Any, headers: dict[str, str] | None = None) -> None:
    """Raise when `response` (a test client's, for a POST of `body` to `path`) breaks the document. `path`
    is the one the document names (`/ofrep/v1/...`), whatever prefix the app serves it under."""
    request = MockRequest(
        "http://localhost",
        "post",
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers=headers or {},
    )
    mock = MockResponse(
        response.get_data(),
        status_code=response.status_code,
        content_type=response.mimetype or "application/json",
        headers=dict(response.headers),
    )
    ofrep_openapi().validate_response(request, mock)
