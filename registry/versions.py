"""MindSpore versions: which card a short name means, and the order in which cards are listed.

A short name shared by cards of several MindSpore versions (`resnet50_imagenet2012` exists as
mindspore/1.3/..., mindspore/1.10/..., mindspore/2.5/...) resolves to one of them (`choose`):
- asked for a version or specifier (`mindspore_version="1.8"`, `--mindspore-version '>=1.8,<2'`;
  a bare version means that release series, "1.8" is 1.8, 1.8.0, 1.8.1 ...): the newest card
  that satisfies it, else NotFoundError naming the versions there are;
- else the newest card whose version is not newer than the installed MindSpore, comparing
  major.minor (a 2.10.1 card is fine for MindSpore 2.10.0). When every card is newer, the oldest one
  (the nearest); when MindSpore is not installed, the newest one. The installed version comes from
  the package metadata, so resolving never imports MindSpore.
A card's version is its `mindspore-version` read as a version (1.10 is newer than 1.9); when that
is missing or not a version (`-`, `r1.x`), the version directory of its id
(`USER[/BACKEND]/VERSION/NAME`); a card with neither counts as older than every versioned one.
Two or more cards left with the same newest version (two users, two backends) are ambiguous:
NotFoundError (exit 3) listing every candidate by version.

Versions are always compared as versions, never as text: `sort_key` orders `registry list`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import NotFoundError, UsageError

_RELEASE = re.compile(r"^\d+(\.\d+)*$")
_DETECT = object()  # choose(installed=...) default: look the installed MindSpore up


def installed_mindspore() -> str | None:
    """The installed MindSpore's version from its package metadata (no import), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mindspore")
    except PackageNotFoundError:
        return None


def parse(text):
    """`text` as a packaging Version, or None when it is not one."""
    return None if text is None else _parsed(str(text).strip())


@functools.lru_cache(maxsize=4096)
def _parsed(text: str):
    # A catalogue has a few dozen distinct version texts and a listing sorts every card by one: parsing
    # each text once is most of the sort's cost at 46k cards. Versions are immutable, so sharing is safe.
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return None


def card_version(declared, card_id: str):
    """The version of a card: its declared mindspore-version, else the version directory of its id."""
    version = parse(declared)
    if version is None and card_id.count("/") >= 2:
        version = parse(card_id.split("/")[-2])
    return version


def sort_key(declared, card_id: str) -> tuple:
    """Oldest first, unversioned cards before all; ties by id."""
    version = card_version(declared, card_id)
    return (0, (), card_id) if version is None else (1, version, card_id)


def spec(text: str, option: str = "--mindspore-version (mindspore_version= in Python)"):
    """A SpecifierSet from a version ("1.8": the 1.8 series) or a specifier (">=1.8,<2"); `option` names
    where the text came from in the error."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    given = text = str(text).strip()
    if _RELEASE.match(text):
        text = f"=={text}.*"
    elif text and text[0].isdigit():
        text = "==" + text
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise UsageError(
            f"{option} {given!r} is not a version or specifier: write e.g. 1.8, '>=1.8' or '>=1.5,<2'"
        ) from None


def satisfies(wanted, version) -> bool:
    """Whether a Version (None: unknown) is in a SpecifierSet; pre-releases count as their release series."""
    return version is not None and wanted.contains(version, prereleases=True)


@dataclass(frozen=True)
class Choice:
    """Which card a short name resolved to among several, and why. `str()` is the sentence the CLI prints."""

    name: str
    id: str
    version: str  # the chosen card's version as written ("1.10"), or "" when it has none
    reason: str  # e.g. "newest for the installed MindSpore 2.10.0"
    others: tuple[str, ...]  # the other candidates' versions, oldest first, each once

    def __str__(self) -> str:
        others = f"; others: {', '.join(self.others)}" if self.others else ""
        return f"{self.name} -> {self.id} ({self.reason}{others})"


def _label(version) -> str:
    return str(version) if version is not None else "no version"


def choose(
    name: str,
    candidates: Mapping[str, str | None],
    *,
    wanted: str | None = None,
    installed=_DETECT,
    location: str = "the registry",
) -> Choice:
    """The card `name` means among `candidates` (id -> declared mindspore-version text), by the rules
    of the module doc. `wanted` is what the user asked for; `installed` defaults to the installed MindSpore."""
    versions = {card_id: card_version(declared, card_id) for card_id, declared in candidates.items()}
    ordered = sorted(versions, key=lambda i: sort_key(candidates[i], i))
    if wanted is not None:
        want = spec(wanted)
        pool = [i for i in ordered if satisfies(want, versions[i])]
        if not pool:
            have = ", ".join(dict.fromkeys(_label(versions[i]) for i in ordered))
            raise NotFoundError(
                f"no card of model {name!r} in {location} is for MindSpore {wanted}: "
                f"it has {have}; ask for one of those or give a full id"
            )
        pick, reason = pool[-1], f"newest for MindSpore {wanted}"
    else:
        have = installed_mindspore() if installed is _DETECT else installed
        series = parse(have).release[:2] if parse(have) is not None else None
        fit = [i for i in ordered if series is None or (versions[i] is not None and versions[i].release[:2] <= series)]
        if series is None:
            pool, reason = (
                ordered,
                (
                    f"newest; the installed MindSpore {have!r} has no readable version"
                    if have
                    else "newest; MindSpore is not installed"
                ),
            )
        elif fit:
            pool, reason = fit, f"newest for the installed MindSpore {have}"
        else:
            pool = [i for i in ordered if versions[i] is not None] or ordered
            pool, reason = pool[:1], f"oldest: every card is newer than the installed MindSpore {have}"
        pick = pool[-1]
    tied = [i for i in ordered if versions[i] == versions[pick]]
    if len(tied) > 1:
        raise NotFoundError(
            f"model name {name!r} is ambiguous in {location}: use one of the full ids {', '.join(ordered)} "
            f"(by MindSpore version; {len(tied)} are for {_label(versions[pick])})"
        )
    declared = candidates[pick]
    version = str(declared).strip() if parse(declared) is not None else str(versions[pick] or "")
    others = tuple(dict.fromkeys(_label(versions[i]) for i in ordered if i != pick))
    return Choice(name, pick, version, reason, others)


def same_version_groups(
    ids_by_name: Mapping[str, list[str]], declared: Mapping[str, str | None]
) -> dict[str, list[str]]:
    """Of the short names shared by several ids, those where two or more ids are cards of one MindSpore
    version (two users, two backends): `choose` cannot tell them apart, so they need full ids."""
    tied = {}
    for name, ids in ids_by_name.items():
        seen: dict = {}
        for card_id in ids:
            seen.setdefault(card_version(declared.get(card_id), card_id), []).append(card_id)
        groups = [g for g in seen.values() if len(g) > 1]
        if groups:
            tied[name] = sorted(i for g in groups for i in g)
    return tied
