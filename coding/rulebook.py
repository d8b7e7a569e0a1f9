"""The text of the coding rules, by rule id, for the coder's rule page.

`coding/data/coding-rules.md` is an unchanged copy of the team's
`shared/coding-rules.md` (a test keeps it byte-identical). Rules are the
paragraphs that open with ``**R12 — Title.**`` and run to the next rule, heading
or rule line (R38 carries its drug table), and the engine defaults are the
bullets ``* **D1 — title:** text``. The file is parsed once per process.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

RULES_FILE = Path(__file__).resolve().parent / "data" / "coding-rules.md"

_RULE_START = re.compile(r"^\*\*(R\d+) — (.+?)\*\*\s*(.*)$")
_DEFAULT_START = re.compile(r"^\* \*\*(D\d+) — (.+?)\*\*\s*(.*)$")


@dataclass(frozen=True, slots=True)
class RuleText:
    """One rule as written: `id` ("R12", "D3"), `title` (without the trailing
    "." or ":"), `body` (the markdown after the title) and the `section`
    heading it sits under."""

    id: str
    title: str
    body: str
    section: str

    def body_html(self) -> SafeString:
        return render_markdown(self.body)


@functools.cache
def rules() -> dict[str, RuleText]:
    """Every rule and default of coding-rules.md by id, in file order."""
    return parse(RULES_FILE.read_text(encoding="utf-8"))


def rule(rule_id: str) -> RuleText | None:
    return rules().get(rule_id)


def parse(text: str) -> dict[str, RuleText]:
    out: dict[str, RuleText] = {}
    section = ""
    current: tuple[str, str, list[str]] | None = None  # id, title, body lines
    in_default = False

    def close() -> None:
        nonlocal current
        if current is not None:
            rule_id, title, body = current
            out[rule_id] = RuleText(id=rule_id, title=title.rstrip(".:"), body="\n".join(body).strip(), section=section)
        current = None

    for line in _join_split_titles(text.splitlines()):
        if line.startswith("#") or line.strip() == "---":
            close()
            section = line.lstrip("#").strip() if line.startswith("#") else section
            continue
        if match := _RULE_START.match(line):
            close()
            current, in_default = (match[1], match[2], [match[3]]), False
            continue
        if match := _DEFAULT_START.match(line):
            close()
            current, in_default = (match[1], match[2], [match[3]]), True
            continue
        if current is None:
            continue
        # A default is one bullet: it ends at the next bullet or a blank line.
        if in_default and (not line.strip() or line.startswith("* ")):
            close()
            continue
        current[2].append(line.strip() if in_default else line)
    close()
    return out


def _join_split_titles(lines: list[str]) -> list[str]:
    """Join a rule's bold title wrapped over two lines (R8) back onto one line."""
    out: list[str] = []
    for line in lines:
        if out and re.match(r"^\*\*R\d+ — ", out[-1]) and out[-1].count("**") == 1:
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line)
    return out


_INLINE = re.compile(r"\*\*(.+?)\*\*|\*(.+?)\*|`(.+?)`")


def _inline(text: str) -> str:
    """Escape `text`, then bold, italics and code spans."""

    def sub(match: re.Match[str]) -> str:
        bold, italic, code = match.groups()
        if bold is not None:
            return f"<strong>{escape(bold)}</strong>"
        if italic is not None:
            return f"<em>{escape(italic)}</em>"
        return f"<code>{escape(code)}</code>"

    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(sub(match))
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def render_markdown(text: str) -> SafeString:
    """The small part of markdown the rules use: paragraphs, pipe tables and
    inline bold/italic/code. Everything else is escaped text."""
    html = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(line.startswith("|") for line in lines):
            rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if not re.fullmatch(r"[|\s:-]+", line)]
            head, *body = rows
            html.append('<table class="table table-sm"><thead><tr>' + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>")
            html.extend("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body)
            html.append("</tbody></table>")
        else:
            html.append(f"<p>{_inline(' '.join(lines))}</p>")
    # Every piece of the source text went through escape() above.
    return mark_safe("".join(html))  # noqa: S308
