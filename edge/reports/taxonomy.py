"""The standard taxonomy (config/taxonomy.toml): stable codes, names, keywords, tag mapping."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.core.resources import shipped

DEFAULT_PATH = shipped("config/taxonomy.toml")
CODE = r"^[a-z][a-z0-9_]{1,39}$"


class TaxonomyError(ValueError):
    """The taxonomy is unusable; the message names the bad key."""


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=CODE)
    number: str = Field(pattern=r"^[0-9]{2}$")
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    description: str = ""
    strong: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    retired: bool = False


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1)
    category: tuple[Category, ...]
    # system -> {their tag -> our code}
    mapping: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Taxonomy:
        codes = [c.code for c in self.category]
        if len(set(codes)) != len(codes):
            raise ValueError(f"category codes must be unique: {codes}")
        if "other" not in codes:
            raise ValueError("category: the code 'other' must exist (the fallback)")
        for system, table in self.mapping.items():
            for tag, code in table.items():
                if code not in codes:
                    raise ValueError(f"mapping.{system}.{tag}: unknown code {code!r}")
        return self

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.category if not c.retired]

    def get(self, code: str) -> Category:
        for c in self.category:
            if c.code == code:
                return c
        raise KeyError(code)

    def map_tag(self, system: str, tag: str) -> str | None:
        """Another system's tag as a standard code (None when the table does not know it)."""
        table = self.mapping.get(system)
        if table is None:
            return None
        wanted = tag.strip().lower()
        for theirs, code in table.items():
            if theirs.strip().lower() == wanted:
                return code
        return None

    def public(self) -> list[dict[str, Any]]:
        return [
            {"code": c.code, "number": c.number, "zh": c.zh, "en": c.en}
            for c in self.category
            if not c.retired
        ]


def parse_taxonomy(data: dict[str, Any]) -> Taxonomy:
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(taxonomy)"
        raise TaxonomyError(f"taxonomy: {where}: {err['msg']}") from e


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    path = Path(path) if path else DEFAULT_PATH
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise TaxonomyError(f"{path}: {e}") from e
    return parse_taxonomy(data)
