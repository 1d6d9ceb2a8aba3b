"""Texts a person reads in Chinese (the default) and English, from message catalogues.

A feature registers its texts once, keyed ``"<check id>.<reason>"`` (for the doctor) with an
English and a Chinese template, and makes :class:`Msg` values: the key plus the values to put
in (ports, paths, device names stay as they are). A Msg is rendered in either language when it
is shown, so one doctor run serves a Chinese page, an English page and ``--json`` with both.

Values may themselves be a :class:`Msg`, a :class:`Both` (a text already in both languages,
e.g. a translated config error) or a list of those (joined with "; " / "；").
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

_CATALOGUE: dict[str, tuple[str, str]] = {}  # key -> (English, Chinese)


class Both(NamedTuple):
    en: str
    zh: str


@dataclass(frozen=True)
class Msg:
    key: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def text(self, lang: Lang) -> str:
        en, zh = _CATALOGUE[self.key]
        values = {k: _render(v, lang) for k, v in self.params.items()}
        return (en if lang == "en" else zh).format_map(values)

    @property
    def en(self) -> str:
        return self.text("en")

    @property
    def zh(self) -> str:
        return self.text("zh")


def _render(value: Any, lang: Lang) -> Any:
    if isinstance(value, Msg):
        return value.text(lang)
    if isinstance(value, Both):
        return value.en if lang == "en" else value.zh
    if isinstance(value, list | tuple):
        return ("; " if lang == "en" else "；").join(str(_render(v, lang)) for v in value)
    return value  # numbers keep their format specs ({mb:,}, {skew:+.1f})


def catalogue(entries: Mapping[str, tuple[str, str]]) -> Callable[..., Msg]:
    """Register (key -> (English, Chinese)) and get the maker of Msgs for them. Both templates
    must name the same values, so neither language drops one."""
    for key, (en, zh) in entries.items():
        if not en.strip() or not zh.strip():
            raise ValueError(f"{key}: needs an English and a Chinese text")
        if fields(en) != fields(zh):
            raise ValueError(f"{key}: English and Chinese name different values")
        if _CATALOGUE.get(key, (en, zh)) != (en, zh):
            raise ValueError(f"{key}: registered twice with different texts")
        _CATALOGUE[key] = (en, zh)

    def make(key: str, **params: Any) -> Msg:
        if key not in _CATALOGUE:
            raise KeyError(f"no text for {key!r}: add it to a catalogue in both languages")
        return Msg(key, params)

    return make


def registered() -> Mapping[str, tuple[str, str]]:
    return dict(_CATALOGUE)


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def lang_from_env(environ: Mapping[str, str] | None = None) -> Lang:
    """English when the locale asks for it (LC_ALL, then LC_MESSAGES, then LANG = en_*);
    Chinese otherwise, also for C / POSIX."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            return "en" if value.lower().startswith("en") else "zh"
    return "zh"
