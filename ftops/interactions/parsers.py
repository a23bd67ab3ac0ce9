"""A JSON parser that answers a too-deeply nested body with a 400, never a 500."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ftops.interactions.validation import MAX_DEPTH


class NestingTooDeep(ParseError):
    default_detail = "the JSON body is nested too deeply to parse"
    default_code = "nesting_too_deep"


class SafeJSONParser(JSONParser):
    """DRF's JSONParser, except that ``[[[[...]]]]`` nested past the interpreter's recursion
    limit is a ParseError: the C decoder raises RecursionError, which DRF does not catch
    (it only turns ValueError into a 400), so such a body was a 500."""

    def parse(self, stream: IO[Any], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise NestingTooDeep(
                f"the JSON body is nested too deeply to parse; a field may nest objects and arrays at most "
                f"{MAX_DEPTH} levels deep"
            ) from None
