"""How alike a class's submissions are: winnowed fingerprints of normalised tokens, and
an HTML report of the pairs, most alike first (``codedock similarity``).

Each submission is read with Python's own :mod:`tokenize`; comments, blank lines and
layout are dropped, every name that is not a keyword, a builtin or an attribute
becomes ``V``, every string ``S`` and every number ``N``. So renaming variables and
adding comments change nothing, and reordering functions changes only the few
token runs that cross a boundary. Runs of :data:`K` tokens are hashed and
winnowed (the smallest hash of each window of :data:`WINDOW` hashes is kept, as
Schleimer, Wilkerson and Aiken's MOSS does); runs that occur in the starter code are
dropped. Pairs that share a fingerprint are then measured: a pair's similarity is
the share of both files' tokens inside runs they share, from 0 to 1.
"""

from __future__ import annotations

import builtins
import html
import io
import keyword
import tokenize
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

__all__ = ["THRESHOLD", "WINDOW", "Fingerprinted", "K", "Pair", "compare", "fingerprint", "report"]

#: Tokens in a fingerprinted run: shorter runs are shared by independent code.
K = 12
#: Hashes in a winnowing window: any run of ``K + WINDOW - 1`` tokens shared is found.
WINDOW = 6
#: Pairs at or above this similarity are flagged in the report.
THRESHOLD = 0.6

_BUILTINS = frozenset(dir(builtins))
_DROPPED = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENCODING,
        tokenize.ENDMARKER,
    }
)

# f-strings are one STRING token before Python 3.12, several after.
_FSTRING = frozenset(
    getattr(tokenize, name)
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(tokenize, name)
)


def normalise(code: str) -> list[tuple[str, int]]:
    """The code's tokens, normalised, each with its line (1-based).

    Code that does not tokenize to its end (a student's syntax error) keeps the
    tokens read before the fault.
    """
    out: list[tuple[str, int]] = []
    previous = ""
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    try:
        for token in tokens:
            if token.type in _DROPPED:
                continue
            text = token.string
            if token.type == tokenize.NAME:
                if not (keyword.iskeyword(text) or text in _BUILTINS or previous == "."):
                    text = "V"
            elif token.type == tokenize.STRING or token.type in _FSTRING:
                text = "S"
            elif token.type == tokenize.NUMBER:
                text = "N"
            out.append((text, token.start[0]))
            previous = token.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def _hashes(tokens: Sequence[tuple[str, int]]) -> list[int]:
    return [
        zlib.crc32("\x1f".join(text for text, _ in tokens[i : i + K]).encode())
        for i in range(len(tokens) - K + 1)
    ]


@dataclass
class Fingerprinted:
    """One submission's normalised tokens and fingerprints.

    Attributes:
        name: the student.
        code: the source as read.
        tokens: ``(normalised token, line)`` in order.
        prints: each kept fingerprint, with the token positions its run starts at.
        runs: the hash of the run at each token position (``-1`` for a run of the
            starter code), for the extent of a match once a fingerprint finds it.
    """

    name: str
    code: str
    tokens: list[tuple[str, int]]
    prints: dict[int, list[int]] = field(default_factory=dict)
    runs: list[int] = field(default_factory=list)


def fingerprint(name: str, code: str, *, starter: frozenset[int] = frozenset()) -> Fingerprinted:
    """Winnow ``code``'s hashed runs, leaving out those in ``starter`` (all of its hashes)."""
    tokens = normalise(code)
    hashes = _hashes(tokens)
    kept: dict[int, list[int]] = {}
    chosen = -1
    for start in range(max(len(hashes) - WINDOW + 1, 1 if hashes else 0)):
        window = range(start, min(start + WINDOW, len(hashes)))
        # The rightmost smallest hash, so that the same run is chosen again in the next
        # window rather than a new one.
        best = min(window, key=lambda i: (hashes[i], -i))
        if best != chosen:
            chosen = best
            if hashes[best] not in starter:
                kept.setdefault(hashes[best], []).append(best)
    # Every occurrence of a kept run, not only the one its window chose.
    for position, value in enumerate(hashes):
        if value in kept and position not in kept[value]:
            kept[value].append(position)
    runs = [-1 if value in starter else value for value in hashes]
    return Fingerprinted(name, code, tokens, kept, runs)


def starter_hashes(code: str) -> frozenset[int]:
    """Every run's hash in the starter code: runs the students were given."""
    return frozenset(_hashes(normalise(code)))


@dataclass(frozen=True)
class Pair:
    """Two submissions and how alike they are.

    Attributes:
        a, b: the two students.
        similarity: the share of both files' tokens in shared runs, 0 to 1.
        lines_a, lines_b: the lines of each in a shared run.
    """

    a: str
    b: str
    similarity: float
    lines_a: frozenset[int]
    lines_b: frozenset[int]


def _covered(one: Fingerprinted, other: frozenset[int]) -> set[int]:
    covered: set[int] = set()
    for start, value in enumerate(one.runs):
        if value in other:
            covered.update(range(start, start + K))
    return covered


def compare(submissions: Sequence[Fingerprinted]) -> list[Pair]:
    """Every pair, most alike first (ties by name)."""
    pairs = []
    every = {id(one): frozenset(one.runs) - {-1} for one in submissions}
    for one, other in combinations(submissions, 2):
        shared = one.prints.keys() & other.prints.keys()
        total = len(one.tokens) + len(other.tokens)
        if not shared or not total:
            pairs.append(Pair(one.name, other.name, 0.0, frozenset(), frozenset()))
            continue
        # The fingerprints find the pairs; every run they share then marks the extent.
        in_one, in_other = _covered(one, every[id(other)]), _covered(other, every[id(one)])
        pairs.append(
            Pair(
                one.name,
                other.name,
                (len(in_one) + len(in_other)) / total,
                frozenset(one.tokens[i][1] for i in in_one),
                frozenset(other.tokens[i][1] for i in in_other),
            )
        )
    return sorted(pairs, key=lambda p: (-p.similarity, p.a, p.b))


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table.rank{border-collapse:collapse}table.rank td,table.rank th{padding:.2em .8em;
border-bottom:1px solid #ddd;text-align:left}.flag{color:#b00;font-weight:bold}
.side{display:flex;gap:1em}.side>div{flex:1;min-width:0;overflow:auto}
pre{margin:0;font-size:12px;line-height:1.35}pre span{display:block;white-space:pre}
pre span.m{background:#ffe08a}pre span i{color:#999;font-style:normal;
display:inline-block;width:3.5em;user-select:none}details{margin:.8em 0}
summary{cursor:pointer;font-weight:bold}
"""


def _listing(code: str, marked: frozenset[int]) -> str:
    rows = []
    for number, line in enumerate(code.splitlines(), start=1):
        css = ' class="m"' if number in marked else ""
        rows.append(f"<span{css}><i>{number}</i>{html.escape(line)}</span>")
    return "<pre>" + "".join(rows) + "</pre>"


def report(
    submissions: Sequence[Fingerprinted],
    pairs: Sequence[Pair],
    *,
    shown: int = 20,
    threshold: float = THRESHOLD,
    skipped: Sequence[tuple[str, str]] = (),
    starter: str | None = None,
) -> str:
    """The HTML report: one page, no script, no outside file; every student string escaped.

    Args:
        submissions: what was compared.
        pairs: from :func:`compare`, most alike first.
        shown: how many of the top pairs are shown side by side.
        threshold: pairs at or above it are flagged.
        skipped: ``(student, why)`` of the submissions not compared.
        starter: the starter file's name, if one was left out.
    """
    codes = {one.name: one.code for one in submissions}
    esc = html.escape
    flagged = sum(p.similarity >= threshold for p in pairs)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>Similarity report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Similarity report</h1>",
        f"<p>{len(submissions)} submissions, {len(pairs)} pairs; {flagged} at or above "
        f"{threshold:.0%}. Names are normalised, comments and layout ignored"
        + (f"; runs in the starter code {esc(starter)} left out" if starter else "")
        + f". Runs of {K} tokens, winnowed over windows of {WINDOW}.</p>",
    ]
    if skipped:
        parts.append("<p>Not compared:</p><ul>")
        parts += [f"<li>{esc(name)}: {esc(why)}</li>" for name, why in skipped]
        parts.append("</ul>")
    alike = [pair for pair in pairs if pair.similarity > 0]
    if len(alike) < len(pairs):
        parts.append(f"<p>{len(pairs) - len(alike)} pairs share no run; they are not listed.</p>")
    parts.append("<table class='rank'><tr><th>#</th><th>pair</th><th>similarity</th></tr>")
    for rank, pair in enumerate(alike[: max(shown * 5, 50)], start=1):
        css = " class='flag'" if pair.similarity >= threshold else ""
        parts.append(
            f"<tr{css}><td>{rank}</td><td>{esc(pair.a)} · {esc(pair.b)}</td>"
            f"<td>{pair.similarity:.0%}</td></tr>"
        )
    parts.append("</table><h2>Side by side</h2>")
    for rank, pair in enumerate(pairs[:shown], start=1):
        if pair.similarity == 0:
            break
        parts.append(
            f"<details{' open' if rank <= 3 else ''}><summary>#{rank} {esc(pair.a)} · "
            f"{esc(pair.b)}: {pair.similarity:.0%}</summary><div class='side'>"
            f"<div><h3>{esc(pair.a)}</h3>{_listing(codes[pair.a], pair.lines_a)}</div>"
            f"<div><h3>{esc(pair.b)}</h3>{_listing(codes[pair.b], pair.lines_b)}</div>"
            "</div></details>"
        )
    parts.append("</body></html>\n")
    return "".join(parts)
