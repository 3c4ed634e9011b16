"""Schema checking: the front matter of a card against `schemas/model-card.schema.json`.

The schema is loaded and its validator compiled once per process, on first use. Each jsonschema
error becomes a `Problem` at the line and column of the value (or key) it is about, with a rule id
naming the kind of failure and a message that says how to fix it:

    schema-required     a required field is missing
    schema-type         a value of the wrong type (text for a number, a list for a value, ...)
    schema-enum         a value outside the allowed set (the message lists the allowed values)
    schema-pattern      text of the wrong form (sha256, dates, versions, links, module-type)
    schema-unknown-key  a key an asset item cannot have
    schema-value        any other constraint (empty text, empty list, non-positive shape, ...)
    sha256-prefix       an asset-sha256 of 8 to 63 hex digits: a prefix of the digest, not all of it

A value gets at most one problem: the first failure found for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from functools import lru_cache
from typing import Any, Callable

from .card import Card, Problem
from .names import is_sha256
from .settings import schemas_dir

SCHEMA_FILE = "model-card.schema.json"

# What to write instead, by field, for pattern and format failures.
_FORM_HINTS = {
    "asset-sha256": "must be the 64 hex digits of the file's SHA-256: run `registry hash FILE` and paste the digest",
    "update-time": "must be a real date written YYYY-MM-DD, month and day zero-padded, e.g. 2023-02-17",
    "repo-link": "must be an http(s) URL of the source code, e.g. https://gitee.com/mindspore/models",
    "asset-link": "must be an https URL or a path relative to the card, without spaces or angle brackets inside",
    "model-version": "must be a version number such as 1.0",
    "mindspore-version": "must be a MindSpore version such as 1.10 or 2.3.1",
    "module-type": "must be a domain (audio, cv, cvtmodel, gnn, mm, nlp, recommend, rl), "
    "optionally followed by -task, e.g. cv-classification; write it in lowercase",
}
_EXAMPLES = {
    "repo-link": "https://gitee.com/mindspore/models",
    "train-dataset": "coco2017",
}
_ASSET_ITEM = "each file as a `- file-format: ckpt` item with `asset-link: URL` and `asset-sha256: DIGEST` under it"
_JSON_TYPES = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of keys",
    "null": "empty",
}


@lru_cache(maxsize=1)
def schema() -> dict:
    """The model-card JSON Schema document (raises OSError if the schema file is missing from the installation)."""
    path = schemas_dir() / SCHEMA_FILE
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def validator():
    """The jsonschema validator of the card schema, made once per process."""
    from jsonschema import Draft202012Validator, FormatChecker

    # Only the date format: the others would need extra packages, and patterns cover them.
    checker = FormatChecker(formats=("date",))
    return Draft202012Validator(schema(), format_checker=checker)


@lru_cache(maxsize=1)
def _fast_check():
    """A plain-Python predicate equivalent to the validator, or None if the schema uses keywords it
    does not know. Sound cards pass it in a fraction of jsonschema's time; only cards it rejects go
    through jsonschema, which finds and describes the errors."""
    try:
        return _Compiler(schema()).compile(schema())
    except _Unsupported:
        return None


def check(card: Card) -> list[Problem]:
    """Schema problems of a parsed card (none when its front matter could not be read as a mapping)."""
    if not isinstance(card.data, dict):
        return []
    fast = _fast_check()
    if fast is not None and fast(card.data):
        return []
    problems = []
    seen = set()
    for error in errors(card.data):
        path = tuple(error.absolute_path)
        # Several fields can be missing from one mapping; any other value gets one problem.
        key = (path, error.message) if error.validator == "required" else path
        if key in seen:
            continue
        seen.add(key)
        problems.extend(_problems(card, error, path))
    return problems


def errors(data: dict) -> Iterator:
    """jsonschema's errors of a front matter mapping, in its order. When the top-level keywords
    other than `properties` hold (the usual case), only the fields the fast check rejects are walked:
    the others yield no error, so the list is the same at a fraction of the cost."""
    split = _split_check()
    if split is None or not split[0](data):
        yield from validator().iter_errors(data)
        return
    full = validator()
    for key, (sub, ok) in split[1].items():
        if key in data and not ok(data[key]):
            for error in full.descend(data[key], sub, path=key, schema_path=key):
                error.relative_schema_path.appendleft("properties")  # as the walk from the top has it
                yield error


@lru_cache(maxsize=1)
def _split_check():
    """(a predicate of the top-level keywords but `properties`, {field: (its schema, its predicate)}),
    or None if the schema uses keywords the compiler does not know."""
    root = schema()
    compiler = _Compiler(root)
    try:
        checks = [compiler._keyword(k, a, root) for k, a in root.items() if k not in _ANNOTATIONS and k != "properties"]
        fields = {k: (sub, compiler.compile(sub)) for k, sub in root.get("properties", {}).items()}
    except _Unsupported:
        return None
    checks = [c for c in checks if c is not None]
    return (lambda value: all(c(value) for c in checks)), fields


def _name(path: tuple) -> str:
    """A readable place: `asset-sha256 of asset 2`, `input-shape item 1`, `update-time`."""
    if not path:
        return "the front matter"
    if len(path) >= 3 and path[0] == "asset" and isinstance(path[1], int):
        return f"{path[2]} of asset {path[1] + 1}"
    if len(path) == 2 and isinstance(path[1], int):
        return f"{path[0]} item {path[1] + 1}"
    return str(path[-1])


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _problems(card: Card, error, path: tuple) -> list[Problem]:
    kind = error.validator
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    where = _name(path)
    value = error.instance

    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(error.message)
        example = _EXAMPLES.get(missing)
        place = "the front matter" if not path else where
        return [
            card.problem(
                path,
                "error",
                "schema-required",
                f"{place} lacks the required field `{missing}`: add a line `{missing}: ...`"
                + (f" (e.g. {example})" if example else ""),
            )
        ]
    if kind == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        extras = [k for k in value if k not in error.schema.get("properties", {})]
        return [
            card.problem(
                path + (k,),
                "error",
                "schema-unknown-key",
                f"{where} cannot have the key `{k}`; allowed keys: {allowed}"
                + ("; each asset is its own list item starting with `- `" if path[:1] == ("asset",) else ""),
                at_key=True,
            )
            for k in extras
        ]
    if kind == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        want = " or ".join(_JSON_TYPES.get(t, t) for t in expected)
        if value is None:
            example = _EXAMPLES.get(field)
            if path == ("asset",):
                fix = f"list {_ASSET_ITEM}, or remove the line"
            else:
                fix = f"write e.g. `{field}: {example}`" if example else "fill it in"
            return [card.problem(path, "error", "schema-type", f"{where} is empty but must be {want}: {fix}")]
        got = _JSON_TYPES.get(_json_type(value), type(value).__name__)
        hint = ""
        if "true or false" in want:
            hint = ": write true or false"
        elif expected == ["string"] and not isinstance(value, (list, dict)):
            hint = f': quote it, `{field}: "{_show(value)}"`'
        return [
            card.problem(path, "error", "schema-type", f"{where} is {got} ({_show(value)}) but must be {want}{hint}")
        ]
    if kind == "enum":
        allowed = list(error.validator_value)
        lowered = str(value).lower()
        suggestion = next((a for a in allowed if isinstance(a, str) and a.lower() == lowered), None)
        fix = f"write `{suggestion}`" if suggestion is not None else "allowed: " + ", ".join(map(str, allowed))
        return [card.problem(path, "error", "schema-enum", f"{where} is `{_show(value)}`, not an allowed value; {fix}")]
    if kind in ("pattern", "format"):
        hint = _FORM_HINTS.get(field, f"must match {error.validator_value}")
        detail, rule = "", "schema-pattern"
        if (
            field == "asset-sha256"
            and isinstance(value, str)
            and value
            and all(c in "0123456789abcdefABCDEF" for c in value)
        ):
            detail = f" (it has {len(value)} hex digits)"
            if is_sha256(value, prefix=True):  # pull accepts a prefix and checks it; the publisher should give it all
                detail, rule = (
                    f" (it has {len(value)} hex digits: a prefix, which only guards against corruption)",
                    "sha256-prefix",
                )
            elif len(value) < 8:
                detail = f" (it has {len(value)} hex digits: a file-name hash, not a SHA-256)"
        elif field == "update-time" and isinstance(value, str):
            padded = _pad_date(value)
            if padded:
                hint = f"must be a date written YYYY-MM-DD: write `{padded}`"
        elif field == "module-type" and isinstance(value, str) and value.lower() != value:
            hint = f"must be lowercase: write `{value.lower()}`"
        return [card.problem(path, "error", rule, f"{where} `{_show(value)}`{detail} {hint}")]
    if kind == "anyOf" and field == "input-shape":
        return [
            card.problem(
                path,
                "error",
                "schema-value",
                f"input-shape {_show(value)} must be a list of positive whole numbers such as [300, 300, 3] "
                "(or a list of such lists, one per input)",
            )
        ]
    if kind == "minItems":
        required = len(path) == 1 and field in schema().get("required", ())
        fix = f"list {_ASSET_ITEM}" if path == ("asset",) else "give at least one item"
        return [
            card.problem(
                path,
                "error",
                "schema-value",
                f"{where} is an empty list: {fix}{'' if required else ', or remove the line'}",
            )
        ]
    if kind == "minLength":
        return [card.problem(path, "error", "schema-value", f"{where} is empty text: fill it in")]
    if kind == "minimum":
        return [
            card.problem(
                path, "error", "schema-value", f"{where} is {_show(value)} but must be at least {error.validator_value}"
            )
        ]
    return [card.problem(path, "error", "schema-value", f"{where}: {error.message}")]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def _pad_date(text: str) -> str | None:
    """`2023-2-17` -> `2023-02-17` when that is a real date; else None."""
    parts = text.strip().split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(parts[0]) != 4:
        return None
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2])).isoformat()
    except ValueError:
        return None


# --------------------------------------------------------------------------- fast path


class _Unsupported(Exception):
    pass


_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "version", "title", "description", "examples"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    # As in jsonschema: a bool is not a number, and 1.0 is an integer.
    "integer": lambda v: not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, float) and v.is_integer())),
    "number": lambda v: not isinstance(v, bool) and isinstance(v, (int, float)),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _valid_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return not isinstance(value, str)
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


class _Compiler:
    """Compiles the keyword subset our schema uses into nested closures returning True when valid."""

    def __init__(self, root: dict):
        self.root = root
        self.refs: dict[str, Callable[[Any], bool]] = {}

    def compile(self, node: Any) -> Callable[[Any], bool]:
        if node is True or node == {}:
            return lambda value: True
        if node is False:
            return lambda value: False
        if not isinstance(node, dict):
            raise _Unsupported(node)
        checks = [self._keyword(key, arg, node) for key, arg in node.items() if key not in _ANNOTATIONS]
        checks = [c for c in checks if c is not None]
        if len(checks) == 1:  # the usual node: no loop around its one check
            return checks[0]

        def every(value: Any) -> bool:
            for check in checks:  # noqa: SIM110 (a plain loop: cheaper than all() over a generator)
                if not check(value):
                    return False
            return True

        return every

    def _keyword(self, key: str, arg: Any, node: dict):
        if key == "type":
            names = arg if isinstance(arg, list) else [arg]
            if not all(n in _TYPE_TESTS for n in names):
                raise _Unsupported(key)
            tests = [_TYPE_TESTS[n] for n in names]
            if len(tests) == 1:
                return tests[0]
            return lambda v: any(t(v) for t in tests)
        if key == "enum":
            if not all(isinstance(a, str) for a in arg):
                raise _Unsupported(key)
            allowed = frozenset(arg)
            return lambda v: isinstance(v, str) and v in allowed
        if key == "pattern":
            rx = re.compile(arg)
            return lambda v: not isinstance(v, str) or rx.search(v) is not None
        if key == "format":
            if arg != "date":
                raise _Unsupported(arg)
            return _valid_date
        if key == "minLength":
            return lambda v: not isinstance(v, str) or len(v) >= arg
        if key == "minItems":
            return lambda v: not isinstance(v, list) or len(v) >= arg
        if key == "minimum":
            return lambda v: isinstance(v, bool) or not isinstance(v, (int, float)) or v >= arg
        if key == "items":
            sub = self.compile(arg)
            return lambda v: not isinstance(v, list) or all(sub(i) for i in v)
        if key == "required":
            return lambda v: not isinstance(v, dict) or all(k in v for k in arg)
        if key == "properties":
            subs = {k: self.compile(s) for k, s in arg.items()}

            def properties(v: Any) -> bool:
                if not isinstance(v, dict):
                    return True
                for k, x in v.items():
                    sub = subs.get(k)
                    if sub is not None and not sub(x):
                        return False
                return True

            return properties
        if key == "additionalProperties":
            if "patternProperties" in node:
                raise _Unsupported(key)
            known = frozenset(node.get("properties", ()))
            sub = self.compile(arg)

            def additional(v: Any) -> bool:
                if not isinstance(v, dict):
                    return True
                for k, x in v.items():  # noqa: SIM110 (as above)
                    if k not in known and not sub(x):
                        return False
                return True

            return additional
        if key == "anyOf":
            subs = [self.compile(s) for s in arg]
            return lambda v: any(s(v) for s in subs)
        if key == "$ref":
            return self._ref(arg)
        raise _Unsupported(key)

    def _ref(self, ref: str) -> Callable[[Any], bool]:
        if not ref.startswith("#/$defs/"):
            raise _Unsupported(ref)
        name = ref[len("#/$defs/") :]
        if name not in self.refs:
            self.refs[name] = lambda v: True  # placeholder while compiling a recursive definition
            compiled = self.compile(self.root["$defs"][name])
            self.refs[name] = compiled
        return lambda v: self.refs[name](v)
