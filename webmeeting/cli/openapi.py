"""Print the PBX API's OpenAPI document (``make openapi`` writes docs/openapi.json)."""

import json
import sys

from webmeeting.domain.openapi import pbx_openapi

DOCS_SERVER = "https://webmeeting.example.com"


def render() -> str:
    return json.dumps(pbx_openapi(DOCS_SERVER), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
