"""Search keys derived on ingest, so subscriber search is an index lookup (see dashboard.subscribers).

Every batch of ``subscribers`` and ``accounts`` gets them right after de-duplication, whatever
enrichers an :class:`~dashboard.ingest.Ingestor` was built with; connectors never send them (the
columns are ``managed``). Search parses what a person types with the same functions, so the keys
and the typed text always agree:

- ``subscribers.msisdn_digits``: the MSISDN's digits, without an international ``00`` prefix
  (``+351 912-345-678`` and ``00351912345678`` -> ``351912345678``);
- ``subscribers.msisdn_rev``: those digits reversed, so "ends with" is a prefix match too;
- ``accounts.name_key``: the name lower-cased, accents removed, whitespace collapsed
  (``  Gonçalo   PIRES`` -> ``goncalo pires``).
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

_NOT_DIGIT = re.compile(r"\D")
_SPACES = re.compile(r"\s+")
_COMBINING = re.compile(r"[\u0300-\u036f]")  # accents once NFKD has split them off their letters
_KEY_LENGTH = 32  # subscribers.msisdn_digits / msisdn_rev
_NAME_KEY_LENGTH = 256  # accounts.name_key


def phone_digits(text: str) -> str:
    """The digits of a phone number as search keys hold them: ``00`` (international) dropped."""
    stripped = text.strip().lstrip("(").lstrip()
    digits = _NOT_DIGIT.sub("", stripped)
    return digits[2:] if stripped.startswith("00") else digits


def name_key(text: str) -> str:
    """What an account name is matched by: lower case, no accents, single spaces."""
    folded = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return _SPACES.sub(" ", folded).strip().lower()[:_NAME_KEY_LENGTH]


def msisdn_keys(msisdn: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(digits, reversed digits) of each MSISDN; None where it has no digit."""
    text = msisdn.astype(object).where(msisdn.notna(), None).astype("string[python]")
    trimmed = text.str.strip().str.lstrip("(").str.lstrip()
    digits = trimmed.str.replace(_NOT_DIGIT, "", regex=True)
    digits = digits.where(~trimmed.str.startswith("00").fillna(False), digits.str.slice(2))
    digits = digits.str.slice(0, _KEY_LENGTH)
    digits = digits.where(digits.str.len() > 0)
    out = digits.astype(object).where(digits.notna(), None)
    rev = digits.str.slice(step=-1)
    return out, rev.astype(object).where(rev.notna(), None)


def name_keys(names: pd.Series) -> pd.Series:
    """:func:`name_key` of each name, vectorised; None where the name is missing."""
    text = names.astype(object).where(names.notna(), None).astype("string[python]")
    folded = text.str.normalize("NFKD").str.replace(_COMBINING, "", regex=True)
    keys = folded.str.replace(_SPACES, " ", regex=True).str.strip().str.lower().str.slice(0, _NAME_KEY_LENGTH)
    return keys.astype(object).where(keys.notna(), None)


def derive_keys(kind: str, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the search keys of their kind filled in (other kinds are returned as they are)."""
    if kind == "subscribers" and "msisdn" in rows.columns:
        digits, rev = msisdn_keys(rows["msisdn"])
        return rows.assign(msisdn_digits=digits.to_numpy(), msisdn_rev=rev.to_numpy())
    if kind == "accounts" and "name" in rows.columns:
        return rows.assign(name_key=name_keys(rows["name"]).to_numpy())
    return rows
