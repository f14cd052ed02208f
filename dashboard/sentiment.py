"""Ticket sentiment, offline: VADER extended with telecom language, behind a small protocol.

VADER scores single words from a lexicon and handles negation ("not good"), boosters ("very
slow"), ALL-CAPS emphasis and "but". Telecom complaints carry their meaning in phrases ("no
signal", "dropped calls", "still waiting", "cancel my contract") that VADER does not know. Each
phrase is rewritten into one token (``no_signal``) before VADER runs, and the token is added to
the lexicon, so phrases get VADER's negation, boosting and capitals exactly as words do:
"NO SIGNAL" becomes ``NO_SIGNAL`` (emphasised), "not really down" is negated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@runtime_checkable
class SentimentScorer(Protocol):
    """Anything that turns texts into sentiment scores in [-1, 1] (negative .. positive)."""

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """One float per text, in [-1, 1]; an empty or missing text scores 0."""
        ...


# Single words VADER lacks or weighs wrongly for support tickets, on VADER's -4..+4 scale.
TELECOM_WORDS: dict[str, float] = {
    # service failures
    "outage": -2.6,
    "outages": -2.6,
    "blackout": -2.4,
    "down": -1.8,
    "offline": -1.8,
    "slow": -1.6,
    "slower": -1.6,
    "sluggish": -1.6,
    "laggy": -1.6,
    "lag": -1.2,
    "buffering": -1.4,
    "disconnecting": -2.0,
    "disconnects": -2.0,
    "disconnected": -1.8,
    "dropping": -1.8,
    "dropped": -1.6,
    "drops": -1.4,
    "intermittent": -1.4,
    "unreliable": -2.2,
    "unusable": -2.8,
    "unstable": -1.8,
    "patchy": -1.4,
    "spotty": -1.4,
    "fault": -1.5,
    "faulty": -1.8,
    "overcharged": -2.3,
    "overcharging": -2.3,
    "overbilled": -2.3,
    "waiting": -0.6,
    "again": -0.3,
    "issue": -0.6,
    "issues": -0.6,
    "complaint": -1.4,
    "unresolved": -2.0,
    "escalate": -0.8,
    # restored service
    "fixed": 2.0,
    "resolved": 2.0,
    "restored": 2.0,
    "working": 0.9,
    "works": 0.9,
    "sorted": 1.4,
    "solved": 2.0,
    "quick": 1.2,
    "quickly": 1.2,
    "fast": 1.2,
    # politeness and request words are not sentiment in a ticket ("please help", "support team")
    "please": 0.2,
    "help": 0.3,
    "kindly": 0.2,
    "support": 0.0,
    "like": 0.4,
    "want": 0.0,
    "ok": 0.5,
    "well": 0.3,
    "pretty": 0.3,
    "care": 0.3,
    "customer": 0.0,
    "charge": 0.0,
    "charges": 0.0,
}

_NUM = r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|several|a few|many|multiple)"
_NOT = r"(?:not|isn'?t|aren'?t|doesn'?t|don'?t|won'?t|wont|can'?t|cannot|stopped|stops)"
_NET = r"(?:signal|service|internet|network|connection|connectivity|coverage|data|broadband|wifi|wi-fi|4g|5g)"

# Multi-word phrases (regular expressions, matched case-insensitively on word boundaries) and
# their valence. Longer, more specific phrases come first; each becomes a single VADER token.
TELECOM_PHRASES: list[tuple[str, str, float]] = [
    # token, pattern, valence
    (
        "cancel_contract",
        r"(?:cancel|terminate|end) (?:my|the|our) (?:contract|subscription|account|line|service)",
        -2.8,
    ),
    (
        "switch_provider",
        r"(?:switch(?:ing)?|move|moving|go|going|port(?:ing)?) (?:my number )?"
        r"to (?:another|a different|a new|a competitor|a better) "
        r"(?:provider|operator|network|company|carrier)",
        -2.6,
    ),
    ("switch_provider", r"switch(?:ing)? (?:operators?|providers?|networks?|carriers?)", -2.6),
    ("port_out", r"port(?:ing)? (?:out|my number)", -2.2),
    (
        "down_for_long",
        rf"(?:down|out|offline|cut off|without {_NET}) for {_NUM} (?:more )?(?:days?|weeks?)",
        -3.0,
    ),
    ("for_days", rf"for {_NUM} (?:more )?(?:days?|weeks?)", -1.0),
    ("for_hours", rf"for {_NUM} (?:more )?hours?", -0.6),
    ("no_network", rf"(?:no|zero|lost|losing|lose|without) {_NET}", -2.6),
    ("not_working", rf"{_NOT} (?:\w+ )?(?:work|working|works|connect|connecting|load|loading)", -2.4),
    (
        "calls_dropping",
        r"(?:dropped|dropping|drop(?:ped)?) calls?"
        r"|calls? (?:keep |keeps )?(?:dropping|drop|cut off|cutting out)",
        -2.4,
    ),
    (
        "keeps_failing",
        r"keeps? (?:disconnecting|dropping|cutting out|failing|crashing|buffering|going down|freezing)",
        -2.6,
    ),
    ("still_waiting", r"still (?:waiting|no|not|nothing|down|broken|slow|the same|having)", -2.2),
    ("waiting_since", r"(?:waiting|down|broken|off) since", -1.6),
    (
        "no_response",
        r"no (?:one|body|response|reply|answer|update|call ?back)|nobody (?:called|answers|replied)",
        -2.0,
    ),
    (
        "worst_service",
        r"(?:worst|terrible|awful|horrible|pathetic|useless) (?:service|network|provider|company|support)",
        -3.0,
    ),
    ("waste_of_money", r"waste of (?:money|time)", -2.6),
    ("paying_for_nothing", r"paying for (?:nothing|a service i|something i)", -2.4),
    ("charged_twice", r"(?:charged|billed) (?:twice|double|wrongly|incorrectly|too much)", -2.2),
    (
        "working_again",
        r"(?:working|works|back|up|online|connected) (?:again|now)|back (?:up|online|to normal)",
        2.4,
    ),
    ("all_good", r"all (?:good|sorted|fixed|working)", 2.2),
    ("no_problem", r"no (?:problems?|issues?|complaints?)", 1.6),
    ("thank_you", r"thank you|thanks a lot|many thanks|much appreciated|thanks so much", 2.4),
    (
        "great_service",
        r"(?:great|excellent|fantastic|amazing|quick|fast|good) (?:service|support|job|work|response)",
        3.0,
    ),
    # Requests are neutral: "I would like to change my plan" is not a compliment.
    ("would_like", r"(?:would|'d|d) like", 0.0),
    ("customer_service", r"customer (?:service|support|care)", 0.0),
    ("speed_test", r"speed ?test", 0.0),
    ("help_me", r"(?:please )?help (?:me|us)", 0.0),
]


def _compile(phrases: Iterable[tuple[str, str, float]]) -> re.Pattern[str]:
    # Groups are numbered, not named by token, so one token may have several patterns.
    groups = [f"(?P<p{i}>{pattern})" for i, (_, pattern, _) in enumerate(phrases)]
    return re.compile(r"(?<![\w'])(?:" + "|".join(groups) + r")(?![\w'])", re.IGNORECASE)


class TelecomVader:
    """VADER with telecom words and phrases; deterministic, offline, about 10k texts/s per core."""

    def __init__(
        self,
        *,
        words: Mapping[str, float] | None = None,
        phrases: Sequence[tuple[str, str, float]] | None = None,
    ) -> None:
        self._phrases = list(TELECOM_PHRASES if phrases is None else phrases)
        self._analyzer = SentimentIntensityAnalyzer()
        self._analyzer.lexicon.update(TELECOM_WORDS if words is None else words)
        for token, _, valence in self._phrases:
            self._analyzer.lexicon[token] = valence
        self._pattern = _compile(self._phrases)

    def _tokenise(self, match: re.Match[str]) -> str:
        token = self._phrases[int((match.lastgroup or "p0")[1:])][0]
        # Keep the emphasis of a phrase written in capitals: VADER boosts ALL-CAPS lexicon words.
        return token.upper() if match.group(0).isupper() else token

    def rewrite(self, text: str) -> str:
        """The text with every known phrase replaced by its token (what VADER then scores)."""
        return self._pattern.sub(self._tokenise, text.replace("\u2019", "'"))

    def score_one(self, text: str) -> float:
        if not text or not text.strip():
            return 0.0
        return float(self._analyzer.polarity_scores(self.rewrite(text))["compound"])

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Scores in [-1, 1]; each distinct text is scored once (ticket texts repeat a lot)."""
        series = pd.Series(list(texts), dtype=object).fillna("").astype(str)
        if series.empty:
            return np.zeros(0, dtype=float)
        codes, uniques = pd.factorize(series)
        scored = np.fromiter((self.score_one(t) for t in uniques), dtype=float, count=len(uniques))
        return np.asarray(np.clip(scored[codes], -1.0, 1.0), dtype=float)


@lru_cache(maxsize=1)
def default_scorer() -> SentimentScorer:
    """The scorer ingest uses; built once per process (loading VADER's lexicon takes ~50 ms)."""
    return TelecomVader()


def _text_of(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    parts = [frame[c].astype("string").fillna("").str.strip() for c in columns if c in frame.columns]
    if not parts:
        return pd.Series([""] * len(frame), index=frame.index, dtype="string")
    text = parts[0]
    for p in parts[1:]:
        # A subject without final punctuation must not run into the description's first words.
        sep = np.where(text.str.len().gt(0) & ~text.str.contains(r"[.!?]$", regex=True), ". ", " ")
        text = (text + pd.Series(sep, index=frame.index, dtype="string") + p).str.strip()
    return text


def score_frame(
    frame: pd.DataFrame,
    text_columns: Sequence[str],
    *,
    scorer: SentimentScorer | None = None,
    keep_existing: bool = True,
) -> pd.DataFrame:
    """``frame`` with its ``sentiment`` column filled from the given text columns.

    With ``keep_existing`` a score the source already supplied (a CRM's own model) is kept and only
    missing scores are computed. Rows without any text keep a null sentiment.
    """
    out = frame.copy()
    if "sentiment" not in out.columns:
        out["sentiment"] = np.nan
    current = pd.to_numeric(out["sentiment"], errors="coerce").astype("float64")
    text = _text_of(out, text_columns)
    todo = text.str.len().gt(0).to_numpy(dtype=bool)
    if keep_existing:
        todo &= current.isna().to_numpy()
    values = current.to_numpy(copy=True)
    if todo.any():
        values[todo] = (scorer or default_scorer()).score(text[todo].tolist())
    out["sentiment"] = np.round(values, 4)
    return out


def enrich_tickets(rows: pd.DataFrame) -> pd.DataFrame:
    """Ingest enricher for ``tickets``: sentiment of subject + description."""
    return score_frame(rows, ["subject", "description"])


def enrich_ticket_notes(rows: pd.DataFrame) -> pd.DataFrame:
    """Ingest enricher for ``ticket_notes``: sentiment of the note text."""
    return score_frame(rows, ["text"])
