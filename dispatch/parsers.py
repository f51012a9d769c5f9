"""The API's JSON parser: DRF's, with pathological nesting answered as a 400."""

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            # The stdlib decoder recurses per nesting level; DRF only catches ValueError.
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
