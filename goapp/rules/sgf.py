"""SGF FF[4] reading and writing (Smart Game Format, https://www.red-bean.com/sgf/).

Public API::

    parse_collection(data, *, max_bytes=..., max_nodes=..., max_value_length=...) -> list[Node]
    parse_sgf(data, **limits) -> Node                    # the first game of the collection
    write_sgf(tree_or_trees, *, line_width=78, charset=None) -> str
    write_sgf_bytes(tree_or_trees, *, line_width=78) -> bytes       # UTF-8, CA[UTF-8]
    read_record(data, *, default_rules="japanese", **limits) -> GameRecord
    GameRecord.from_tree(root) / .to_tree() / .to_sgf()
    record_to_sgf(info, moves, *, setup_black=(), setup_white=(), setup_empty=(),
                  player_to_move=None, application=None) -> str
    replay(record, *, fill_passes=False) -> goapp.rules.Game
    sgf_to_point("pd", size) -> (15, 3) | None;  point_to_sgf((15, 3)) -> "pd"
    expand_points(values, size, *, budget=None) -> list[(x, y)]   # "aa:cc" rectangles
    PointBudget(limit): .spent       # bounds the set-up point visits of one record
    GameInfo.result: goapp.rules.Result   # Result.parse(RE, strict=False); str(result)
    parse_komi(text) -> float | None
    rules_from_sgf(text, default) -> (Rules, known);  rules_to_sgf(rules) -> str
    SgfError(ValueError): .reason, .line, .column

Two layers:

* **Trees.** :func:`parse_collection` turns SGF text into game trees of :class:`Node`
  (every property kept, in file order, unknown ones included; the first child of a node
  is the main line), and :func:`write_sgf` turns trees back into text. ``parse(write(t))
  == t`` for every valid tree, and ``write(parse(text))`` is stable after one pass.
* **Game records.** :class:`GameRecord` is a typed view of one game's main line: board
  size, komi, rules, handicap, result, players, setup stones and moves. It maps back to a
  tree and to text (:func:`record_to_sgf`, used by the server to export games), and
  :func:`replay` plays it into the rules core (:class:`goapp.rules.Game`).

Coordinates
    A point is ``(x, y)``, both 0-based: ``x`` is the column counted from the **left**,
    ``y`` the row counted from the **top** (SGF's own orientation: ``"aa"`` is the top
    left corner, ``"pd"`` is ``(15, 3)``, the upper right star point of a 19x19 board).
    A pass is ``None``; it is read from ``B[]``, and from ``B[tt]`` on boards up to 19x19,
    and is always written as ``B[]``.

Text and charsets
    ``bytes`` input in UTF-16 or UTF-32 (with or without a byte order mark) is recognised
    by its first bytes and decoded as such. Other input is decoded with the charset named
    by the ``CA`` property (looked for in the raw bytes before decoding), else UTF-8 (a
    BOM is skipped). When some bytes do not fit (a ``CA`` naming an unknown or
    non-ASCII-compatible codec counts as no ``CA``), only the values that hold them are
    decoded again, each on its own, with the other candidate and then Latin-1: one bad
    name garbles nothing else. ``GB2312`` and ``GBK`` are read as ``GB18030`` (a superset
    that real "GB2312" files often need). ``str`` input is used as it is.
    :func:`write_sgf` returns ``str``; :func:`write_sgf_bytes` returns UTF-8 and rewrites
    the roots' ``CA`` to ``UTF-8`` so that the bytes say what they are.

Text outside the game trees
    Anything before the first game tree (``Game record:``), and text without property
    values between trees and after the last (a note, a DOS end-of-file byte, a stray
    ``)``), is skipped, as other readers do, when the input holds a game tree (a ``(``
    followed by ``;``); input without one is an error, and so is text with values after
    a tree (``(;B[aa])W[bb])``: moves cut off by a stray ``)`` are not dropped silently).

Values
    Property values are stored unescaped (``\\]`` is ``]``, ``\\\\`` is ``\\``) with SGF
    soft line breaks (a backslash before a line break) removed; other text is kept as it
    is, line breaks included. Old FF[1]-FF[3] property names with lowercase letters are
    read with the lowercase letters dropped, as the spec says (``AddBlack`` is ``AB``).
    A property that occurs twice in a node (illegal, but seen) has its values merged.

Limits (all configurable, see :func:`parse_collection`)
    input size ``DEFAULT_MAX_BYTES`` (4 MiB; bytes for ``bytes`` input, characters for
    ``str``), ``DEFAULT_MAX_NODES`` nodes (200,000: a 100,000-move main line parses with
    the defaults), ``DEFAULT_MAX_VALUE_LENGTH`` characters in one property value
    (512 KiB: KaTrain analysis blobs fit). Exceeding one raises :class:`SgfError`.
    Reading a record also checks the board size against the rules core's (2 to 25)
    before any point list is expanded, expands each distinct point-list value once and
    stops once the board is covered, and charges every point visited (plus a board's
    area for each set-up node, which replay rebuilds) to a :class:`PointBudget` of
    ``DEFAULT_POINT_BUDGET`` (1,000,000): the work of a hostile upload is bounded by the
    board and the budget, not by the text.

Everything is iterative (parser, writer, equality, main-line walk): trees of any depth
work without touching the recursion limit. Every malformed input raises
:class:`SgfError` (a :class:`ValueError`) whose message starts with ``line L, column C:``
when the problem has a place in the text.

Game-info interpretation (:class:`GameInfo`)
    * ``SZ``: ``19`` or ``columns:rows``; default 19 (the spec's default for Go).
    * ``KM``: a real number, ``6.50`` and ``6,5`` accepted. Two conventions of old files
      are recognised: an integer of 100 or more that is a multiple of 25 is hundredths
      (``KM[650]`` is 6.5, ``KM[375]`` is 3.75); a komi whose fractional part is .25 or
      .75 is in Chinese *stones* (zi) and is doubled into points (``KM[3.75]`` and
      ``KM[375]`` are 7.5 points, ``KM[2.75]`` is 5.5). Real komi in points is always a
      whole or half number, so the two cannot be confused. The original text stays in
      ``GameInfo.komi_raw``. Missing komi is 0.
    * ``RU``: mapped with :func:`rules_from_sgf` (many spellings, KataGo JSON rules and
      KataGo's short strings such as ``koPOSITIONALscoreAREAtaxNONEsui1`` too).
      Missing or unknown rules give :data:`DEFAULT_RULES_NAME` (Japanese, the default
      of KGS and OGS, where most SGF files come from); the raw text stays in
      ``GameInfo.rules_name`` and ``GameInfo.rules_known`` says whether it was recognised.
    * ``RE``: a :class:`goapp.rules.Result`, read with ``Result.parse(text, strict=False)``
      (the spellings it knows: ``B+3.5``, ``W+Resign``, ``黑中盘胜``, Fox's ``B+0.0`` for a
      win without a count, which is ``B+``...) and written as
      ``str(result)``, the canonical form; unreadable text is kept as
      ``Result.unknown(text)``, which writes the original text back.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from goapp.rules.result import Result
from goapp.rules.rulesets import (
    KoRule,
    Rules,
    ScoringRule,
    TaxRule,
    UnknownRulesError,
    WhiteHandicapBonus,
)

if TYPE_CHECKING:
    from goapp.rules.game import Game as CoreGame

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_NODES",
    "DEFAULT_MAX_VALUE_LENGTH",
    "DEFAULT_RULES_NAME",
    "Color",
    "GameInfo",
    "GameRecord",
    "Move",
    "Node",
    "Point",
    "PointBudget",
    "Setup",
    "SgfError",
    "expand_points",
    "parse_collection",
    "parse_komi",
    "parse_sgf",
    "point_to_sgf",
    "read_record",
    "record_to_sgf",
    "replay",
    "rules_from_sgf",
    "rules_to_sgf",
    "sgf_to_point",
    "write_sgf",
    "write_sgf_bytes",
]

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_NODES = 200_000
DEFAULT_MAX_VALUE_LENGTH = 512 * 1024
DEFAULT_LINE_WIDTH = 78

Color = Literal["B", "W"]
Point = tuple[int, int]


class SgfError(ValueError):
    """Malformed or oversized SGF. ``line`` and ``column`` (1-based) are set when the
    problem has a place in the text, and the message then starts with them."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.reason = message
        self.line = line
        self.column = column
        if line is not None and column is not None:
            message = f"line {line}, column {column}: {message}"
        super().__init__(message)


# --------------------------------------------------------------------------- tree


class Node:
    """One SGF node: ``properties`` maps each property identifier (uppercase letters) to
    its list of values (at least one each), in file order; ``children`` are the nodes that
    follow, the first being the main line. ``line``/``column`` give where the node's ``;``
    was in the parsed text (0 when the node was built in code); they are not compared."""

    __slots__ = ("children", "column", "line", "properties")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self,
        properties: Mapping[str, Sequence[str]] | Iterable[tuple[str, Sequence[str]]] | None = None,
        children: list[Node] | None = None,
    ) -> None:
        props: dict[str, list[str]] = {}
        if properties is not None:
            items = properties.items() if isinstance(properties, Mapping) else properties
            for ident, values in items:
                props.setdefault(ident, []).extend([values] if isinstance(values, str) else values)
        self.properties = props
        self.children: list[Node] = children if children is not None else []
        self.line = 0
        self.column = 0

    # -- properties
    def get(self, ident: str, default: str | None = None) -> str | None:
        """The first value of ``ident``, or ``default``."""
        values = self.properties.get(ident)
        return values[0] if values else default

    def get_all(self, ident: str) -> list[str]:
        """All values of ``ident`` (a new list; empty when absent)."""
        return list(self.properties.get(ident, ()))

    def set(self, ident: str, value: str | Iterable[str]) -> None:
        """Set ``ident`` to one value or a list of values (keeps its place if present)."""
        values = [value] if isinstance(value, str) else list(value)
        if not values:
            raise ValueError(f"property {ident} needs at least one value")
        self.properties[ident] = values

    def remove(self, ident: str) -> None:
        self.properties.pop(ident, None)

    def __contains__(self, ident: object) -> bool:
        return ident in self.properties

    # -- structure
    def add_child(self, child: Node | None = None) -> Node:
        """Append ``child`` (a new empty node when omitted) and return it."""
        node = child if child is not None else Node()
        self.children.append(node)
        return node

    def main_line(self) -> Iterator[Node]:
        """This node, its first child, that one's first child, ..."""
        node: Node | None = self
        while node is not None:
            yield node
            node = node.children[0] if node.children else None

    def walk(self) -> Iterator[Node]:
        """Every node of the subtree, depth first, main line first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def node_count(self) -> int:
        return sum(1 for _ in self.walk())

    def copy(self) -> Node:
        """A deep copy of the subtree (iterative)."""
        root = Node(self.properties.items())
        stack = [(self, root)]
        while stack:
            src, dst = stack.pop()
            for child in src.children:
                new = Node(child.properties.items())
                new.line, new.column = child.line, child.column
                dst.children.append(new)
                stack.append((child, new))
        root.line, root.column = self.line, self.column
        return root

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        stack: list[tuple[Node, Node]] = [(self, other)]
        while stack:
            a, b = stack.pop()
            if a is b:
                continue
            if a.properties != b.properties or len(a.children) != len(b.children):
                return False
            stack.extend(zip(a.children, b.children, strict=True))
        return True

    def __repr__(self) -> str:
        props = "".join(
            f"{ident}"
            + "".join(f"[{_short(v)}]" for v in values[:3])
            + ("..." if len(values) > 3 else "")
            for ident, values in list(self.properties.items())[:8]
        )
        more = "..." if len(self.properties) > 8 else ""
        return f"<Node ;{props}{more} children={len(self.children)}>"


def _short(value: str) -> str:
    return value if len(value) <= 20 else value[:17] + "..."


# --------------------------------------------------------------------------- decoding

_CA_RE = re.compile(rb"(?<![A-Za-z])C[a-z]*A[a-z]*\s*\[([^\]\\]{0,64})\]")
_ASCII_PROBE = "(;[]):\\ABCabc\n"
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "cp936": "gb18030",
    "euccn": "gb18030",
    "xeuccn": "gb18030",
}


def _codec_for(name: str) -> str | None:
    """A Python codec for an SGF ``CA`` value, or None when unknown or not ASCII based."""
    key = name.strip().lower()
    alias = _CHARSET_ALIASES.get(re.sub(r"[^a-z0-9]", "", key))
    try:
        info = codecs.lookup(alias or key)
    except (LookupError, ValueError):
        return None
    try:
        if _ASCII_PROBE.encode(info.name) != _ASCII_PROBE.encode("ascii"):
            return None
    except (UnicodeError, LookupError, TypeError, ValueError):
        return None
    return info.name


# UTF-32 before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WIDE_CODECS = ("utf-32-le", "utf-32-be", "utf-16-le", "utf-16-be")
_ESCAPED_BYTE_RE = re.compile("[\udc80-\udcff]")


def _wide_codec(data: bytes) -> tuple[str, int] | None:
    """``(codec, BOM length)`` for UTF-16/32 text (with or without a BOM), else None.
    Without a BOM the first bytes decide: SGF starts with ASCII, so in UTF-16/32 they
    hold zero bytes, and only one of the four codecs reads them as text without NULs."""
    for bom, codec in _WIDE_BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    if b"\x00" not in data[:4]:
        return None
    for codec in _WIDE_CODECS:
        try:
            head = codecs.getincrementaldecoder(codec)().decode(data[:64])
        except UnicodeDecodeError:
            continue
        if head and "\x00" not in head and "(" in head:
            return codec, 0
    return None


@dataclass(slots=True)
class _Decoded:
    """Decoded SGF text. ``escaped_codec`` is set when the text was decoded with
    ``surrogateescape`` (some bytes were not valid in it): the parser then re-decodes
    each value that holds such bytes with ``fallbacks``, one value at a time."""

    text: str
    escaped_codec: str | None = None
    fallbacks: tuple[str, ...] = ()

    def fix_value(self, value: str) -> str:
        assert self.escaped_codec is not None
        raw = value.encode(self.escaped_codec, "surrogateescape")
        for codec in self.fallbacks:
            try:
                return raw.decode(codec)
            except UnicodeDecodeError:
                continue
        return raw.decode("latin-1")  # pragma: no cover - latin-1 is always a fallback


def _decode(data: bytes) -> _Decoded:
    wide = _wide_codec(data)
    if wide is not None:
        codec, bom = wide
        return _Decoded(data[bom:].decode(codec, "replace"))
    match = _CA_RE.search(data)
    declared = _codec_for(match.group(1).decode("ascii", "replace")) if match else None
    candidates = [c for c in (declared, "utf-8") if c is not None]
    for codec in candidates:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        return _Decoded(text[1:] if text.startswith("\ufeff") else text)
    # Some bytes fit no candidate: decode with the declared charset (else UTF-8) and fix
    # the values that hold bad bytes one by one, so one bad name garbles nothing else.
    primary = candidates[0]
    text = data.decode(primary, "surrogateescape")
    fallbacks = tuple(dict.fromkeys([*candidates[1:], "utf-8", "latin-1"]))
    fallbacks = tuple(c for c in fallbacks if c != primary)
    return _Decoded(text[1:] if text.startswith("\ufeff") else text, primary, fallbacks)


# --------------------------------------------------------------------------- parser

# One token, after optional whitespace: ';', '(', ')', or a property (identifier plus
# one or more values). The value pattern is the "unrolled loop" form: linear, no
# catastrophic backtracking.
_VALUE_BODY = r"[^\\\]]*(?:\\.[^\\\]]*)*"
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<punct>[;()])|(?P<ident>[A-Za-z]+)\s*(?P<values>(?:\[" + _VALUE_BODY + r"\]\s*)+))",
    re.S,
)
_VALUE_RE = re.compile(r"\[(" + _VALUE_BODY + r")\]", re.S)
_UNESCAPE_RE = re.compile(r"\\(\r\n|\n\r|\r|\n|.)", re.S)
_SPACE_RE = re.compile(r"\s*")
# Where a game tree starts: '(' then ';' (not right after another '(': "((;" is an error).
_TREE_START_RE = re.compile(r"(?<!\()\(\s*;")
_LINE_BREAKS = frozenset("\r\n")
_LOWER = str.maketrans("", "", "abcdefghijklmnopqrstuvwxyz")


def _unescape_char(m: re.Match[str]) -> str:
    char = m.group(1)
    return "" if char[0] in _LINE_BREAKS else char


def _position(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def _error(text: str, pos: int, message: str) -> SgfError:
    line, column = _position(text, pos)
    return SgfError(message, line, column)


def _describe(char: str) -> str:
    return repr(char) if char.isprintable() else f"U+{ord(char):04X}"


def parse_collection(
    data: str | bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_value_length: int = DEFAULT_MAX_VALUE_LENGTH,
) -> list[Node]:
    """Parse an SGF collection into its game trees (one root :class:`Node` per game).

    Raises :class:`SgfError` for malformed input, for input longer than ``max_bytes``,
    with more than ``max_nodes`` nodes, or with a value longer than ``max_value_length``
    characters (escapes included)."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > max_bytes:
            raise SgfError(f"SGF input too large: {len(raw)} bytes (limit {max_bytes})")
        decoded = _decode(raw)
    elif isinstance(data, str):
        if len(data) > max_bytes:
            raise SgfError(f"SGF input too large: {len(data)} characters (limit {max_bytes})")
        decoded = _Decoded(data[1:] if data.startswith("\ufeff") else data)
    else:
        raise TypeError(f"SGF data must be str or bytes, not {type(data).__name__}")
    return _Parser(decoded, max_nodes, max_value_length).parse()


def parse_sgf(
    data: str | bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_value_length: int = DEFAULT_MAX_VALUE_LENGTH,
) -> Node:
    """Parse SGF text and return the root of its first game tree (the whole collection
    is still checked)."""
    return parse_collection(
        data, max_bytes=max_bytes, max_nodes=max_nodes, max_value_length=max_value_length
    )[0]


class _Parser:
    def __init__(self, decoded: _Decoded, max_nodes: int, max_value_length: int) -> None:
        self.decoded = decoded
        self.text = decoded.text
        self.max_nodes = max_nodes
        self.max_value_length = max_value_length
        # incremental line tracking (for node positions, O(n) over the whole parse)
        self._line = 1
        self._line_start = 0
        self._scanned = 0

    def _node_position(self, pos: int) -> tuple[int, int]:
        text = self.text
        count = text.count("\n", self._scanned, pos)
        if count:
            self._line += count
            self._line_start = text.rfind("\n", self._scanned, pos) + 1
        self._scanned = pos
        return self._line, pos - self._line_start + 1

    def parse(self) -> list[Node]:
        text = self.text
        end = len(text)
        token_match = _TOKEN_RE.match
        value_findall = _VALUE_RE.findall
        unescape = _UNESCAPE_RE.sub
        max_value_length = self.max_value_length
        max_nodes = self.max_nodes
        fix_value = self.decoded.fix_value if self.decoded.escaped_codec else None
        # Text outside the game trees ("Game record:" before, a DOS end-of-file byte
        # after...) is skipped, as other readers do, when the input holds a game tree;
        # without one, the strict reading below names what is wrong.
        lenient = _TREE_START_RE.search(text) is not None

        games: list[Node] = []
        # attach points of the open game trees: the node whose children the '(' adds
        # to (None for a game's outer '('), and where that '(' was (for messages)
        stack: list[tuple[Node | None, int]] = []
        current: Node | None = None  # last node of the sequence being read
        need_node = False  # just after '(' : a ';' must come
        after_subtree = False  # a ')' closed a variation: only '(' or ')' may follow
        nodes = 0
        pos = 0

        while True:
            if lenient and not stack:
                start_match = _TREE_START_RE.search(text, pos)
                stop = start_match.start() if start_match is not None else end
                # Text after a tree with property values in it is not a note: most
                # likely a stray ')' cut the tree short. Read it strictly (an error)
                # rather than drop moves.
                if not games or text.find("[", pos, stop) < 0:
                    if start_match is None:
                        break
                    pos = stop
            m = token_match(text, pos)
            if m is None:
                pos = _SPACE_RE.match(text, pos).end()  # type: ignore[union-attr]
                if pos >= end:
                    break
                raise self._diagnose(pos, stack)
            punct = m.group("punct")
            start = m.start("punct") if punct else m.start("ident")
            if not stack and punct != "(":
                if punct == ")":
                    raise _error(text, start, "unbalanced ')': no game tree is open")
                found = punct or m.group("ident")
                raise _error(text, start, f"expected '(' to start a game tree, found {found!r}")
            if need_node and punct != ";":
                raise _error(text, start, "expected ';' to start a node after '('")
            if punct == ";":
                if after_subtree:
                    raise _error(
                        text, start, "a node cannot follow variations; expected '(' or ')'"
                    )
                nodes += 1
                if nodes > max_nodes:
                    raise _error(text, start, f"too many nodes (limit {max_nodes})")
                node = Node()
                node.line, node.column = self._node_position(start)
                if current is None:
                    games.append(node)
                else:
                    current.children.append(node)
                current = node
                need_node = False
            elif punct == "(":
                stack.append((current, start))
                need_node = True
                after_subtree = False
            elif punct == ")":
                current, _ = stack.pop()
                after_subtree = current is not None
            else:
                if current is None or after_subtree:
                    raise _error(text, start, "a property cannot follow variations")
                raw_ident = m.group("ident")
                ident = raw_ident.translate(_LOWER) if not raw_ident.isupper() else raw_ident
                if not ident:
                    raise _error(
                        text, start, f"property identifier {raw_ident!r} has no uppercase letter"
                    )
                values = value_findall(m.group("values"))
                for i, value in enumerate(values):
                    if len(value) > max_value_length:
                        raise _error(
                            text,
                            start,
                            f"value of property {ident} too long: {len(value)} characters "
                            f"(limit {max_value_length})",
                        )
                    if fix_value is not None and _ESCAPED_BYTE_RE.search(value):
                        value = values[i] = fix_value(value)
                    if "\\" in value:
                        values[i] = unescape(_unescape_char, value)
                existing = current.properties.get(ident)
                if existing is None:
                    current.properties[ident] = values
                else:
                    existing.extend(values)
            pos = m.end()

        if need_node:
            raise _error(text, end, "unexpected end of input: expected ';' after '('")
        if stack:
            _, open_pos = stack[-1]
            line, column = _position(text, open_pos)
            raise _error(
                text,
                end,
                f"unexpected end of input: {len(stack)} game tree(s) not closed with ')' "
                f"(innermost '(' at line {line}, column {column})",
            )
        if not games:
            raise SgfError("empty input: no game tree (SGF starts with '(;')", 1, 1)
        return games

    def _diagnose(self, pos: int, stack: list[tuple[Node | None, int]]) -> SgfError:
        text = self.text
        char = text[pos]
        if not stack:
            return _error(text, pos, f"expected '(' to start a game tree, found {_describe(char)}")
        if char == "[":
            if _VALUE_RE.match(text, pos) is None:
                return _error(text, pos, "unterminated property value (missing ']')")
            return _error(text, pos, "property value without a property identifier")
        if char.isascii() and char.isalpha():
            ident_end = pos
            while ident_end < len(text) and text[ident_end].isascii() and text[ident_end].isalpha():
                ident_end += 1
            ident = text[pos:ident_end]
            after = _SPACE_RE.match(text, ident_end).end()  # type: ignore[union-attr]
            if after < len(text) and text[after] == "[":
                return _error(text, after, f"unterminated value of property {ident} (missing ']')")
            return _error(text, pos, f"property {ident} has no value")
        return _error(text, pos, f"unexpected character {_describe(char)}")


# --------------------------------------------------------------------------- writer

_IDENT_RE = re.compile(r"[A-Z]+\Z")


def _escape(value: str) -> str:
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "]" in value:
        value = value.replace("]", "\\]")
    return value


def write_sgf(
    trees: Node | Sequence[Node],
    *,
    line_width: int = DEFAULT_LINE_WIDTH,
    charset: str | None = None,
) -> str:
    """SGF text for one game tree or a collection.

    Lines are wrapped between properties so that they stay under ``line_width`` where a
    property allows it (never inside a value); each variation starts on a new line.
    ``charset``, when given, replaces the value of the roots' ``CA`` property in the
    output (the tree is not changed). Raises :class:`SgfError` for a property
    identifier that is not uppercase letters or a property without values."""
    roots = [trees] if isinstance(trees, Node) else list(trees)
    if not roots:
        raise SgfError("cannot write an empty collection")
    out: list[str] = []
    col = 0

    def emit(chunk: str, breakable: bool = True) -> None:
        nonlocal col
        if breakable and col and col + len(chunk) > line_width:
            out.append("\n")
            col = 0
        out.append(chunk)
        nl = chunk.rfind("\n")
        col = col + len(chunk) if nl < 0 else len(chunk) - nl - 1

    for index, root in enumerate(roots):
        if index:
            out.append("\n")
            col = 0
        stack: list[Node | str] = [")", root]
        emit("(")
        is_root = True
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if item == "(" and col:
                    out.append("\n")
                    col = 0
                emit(item, breakable=False)
                continue
            node = item
            chunks = [";"]
            for ident, values in node.properties.items():
                if not _IDENT_RE.match(ident):
                    raise SgfError(f"invalid property identifier {ident!r}: uppercase letters only")
                if not values:
                    raise SgfError(f"property {ident} has no value")
                if is_root and charset is not None and ident == "CA":
                    values = [charset]
                chunks.append(ident + "".join(["[" + _escape(v) + "]" for v in values]))
            if len(chunks) > 1:
                chunks[0:2] = [";" + chunks[1]]
            # keep a node on one line when it fits; else break between its properties
            # (never right after a '(', where a break would look odd)
            opened = out[-1] == "("
            if col and not opened and col + sum(len(c) for c in chunks) > line_width:
                out.append("\n")
                col = 0
            for i, chunk in enumerate(chunks):
                emit(chunk, breakable=not (i == 0 and opened))
            if is_root:
                out.append("\n")
                col = 0
                is_root = False
            children = node.children
            if len(children) == 1:
                stack.append(children[0])
            elif children:
                for child in reversed(children):
                    stack.append(")")
                    stack.append(child)
                    stack.append("(")
        out.append("\n")
        col = 0
    return "".join(out)


def write_sgf_bytes(trees: Node | Sequence[Node], *, line_width: int = DEFAULT_LINE_WIDTH) -> bytes:
    """UTF-8 SGF; a root ``CA`` property is written as ``CA[UTF-8]`` so it stays true."""
    return write_sgf(trees, line_width=line_width, charset="UTF-8").encode("utf-8")


# --------------------------------------------------------------------------- points

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTER_INDEX = {c: i for i, c in enumerate(_LETTERS)}


def _size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def sgf_to_point(value: str, size: int | tuple[int, int] = 19) -> Point | None:
    """``"pd"`` -> ``(15, 3)``: ``x`` column from the left, ``y`` row from the top,
    0-based. ``""`` (and ``"tt"`` on boards up to 19x19) is a pass: ``None``. ``size`` is
    the board size, ``19`` or ``(width, height)``. Raises :class:`SgfError` for a value
    that is not a point on that board."""
    width, height = _size_pair(size)
    if value == "" or (value == "tt" and width <= 19 and height <= 19):
        return None
    if len(value) != 2:
        raise SgfError(f"bad point {value!r}: a point is two letters")
    x = _LETTER_INDEX.get(value[0])
    y = _LETTER_INDEX.get(value[1])
    if x is None or y is None:
        raise SgfError(f"bad point {value!r}: letters a-z and A-Z only")
    if x >= width or y >= height:
        raise SgfError(f"bad point {value!r}: off the {width}x{height} board")
    return (x, y)


def point_to_sgf(point: Point | None) -> str:
    """``(15, 3)`` -> ``"pd"``; ``None`` (a pass) -> ``""``."""
    if point is None:
        return ""
    x, y = point
    if not (0 <= x < 52 and 0 <= y < 52):
        raise ValueError(f"point {point!r} cannot be written in SGF (0..51 only)")
    return _LETTERS[x] + _LETTERS[y]


class PointBudget:
    """How many points the expansion of point lists may still visit (``spent`` counts
    them). One budget is shared by every point list of a record, so that no file, however
    its rectangles are arranged, costs more than ``limit`` point visits."""

    __slots__ = ("limit", "spent")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, points: int) -> None:
        self.spent += points
        if self.spent > self.limit:
            raise SgfError(f"too many set-up points (limit {self.limit})")


#: Point visits one record's set-up may cost: every point of its AB/AW/AE lists, and
#: the board's area for each main-line node with set-up (replaying it rebuilds the
#: board). Real files use a few thousand; 1,000,000 costs well under a second.
DEFAULT_POINT_BUDGET = 1_000_000


def expand_points(
    values: Iterable[str],
    size: int | tuple[int, int] = 19,
    *,
    budget: PointBudget | None = None,
) -> list[Point]:
    """Points of a point list (``AB``, ``AW``, ``AE``, markup), expanding compressed
    rectangles (``"aa:cc"`` is the nine points from a1 corner to c3), without duplicates,
    in order. Raises :class:`SgfError` for bad points; an empty value is ignored.

    The work is bounded by the board, not by the text: a value seen before is not
    expanded again, and once every point of the board is in the list the remaining
    values are only checked. ``budget``, when given, is charged for every point visited
    (and raises :class:`SgfError` when spent)."""
    width, height = _size_pair(size)
    full = width * height
    seen: dict[Point, None] = {}
    done_values: set[str] = set()
    for value in values:
        if value == "" or value in done_values:
            continue
        done_values.add(value)
        if ":" in value:
            first, _, second = value.partition(":")
            a = sgf_to_point(first, size) if first != "tt" else _tt(size)
            b = sgf_to_point(second, size) if second != "tt" else _tt(size)
            if a is None or b is None:
                raise SgfError(f"bad point rectangle {value!r}")
            if len(seen) == full:
                continue  # the whole board is already in the list
            xs = range(min(a[0], b[0]), max(a[0], b[0]) + 1)
            ys = range(min(a[1], b[1]), max(a[1], b[1]) + 1)
            if budget is not None:
                budget.spend(len(xs) * len(ys))
            for y in ys:
                for x in xs:
                    seen[(x, y)] = None
        else:
            point = sgf_to_point(value, size) if value != "tt" else _tt(size)
            if point is None:  # pragma: no cover - excluded above
                continue
            if budget is not None:
                budget.spend(1)
            seen[point] = None
    return list(seen)


def _tt(size: int | tuple[int, int]) -> Point:
    """``tt`` inside a point list is a real point (19, 19) where the board has it."""
    width, height = _size_pair(size)
    if width <= 19 or height <= 19:
        raise SgfError(f"bad point 'tt' in a point list: off the {width}x{height} board")
    return (19, 19)


def _format_number(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


# --------------------------------------------------------------------------- rules / komi

DEFAULT_RULES_NAME = "japanese"
_SGF_RULES_NAMES = {
    "japanese": "Japanese",
    "korean": "Korean",
    "chinese": "Chinese",
    "aga": "AGA",
    "new-zealand": "NZ",
    "tromp-taylor": "Tromp-Taylor",
}
_EXTRA_RULES_ALIASES = {
    "japan": "japanese",
    "jap": "japanese",
    "ja": "japanese",
    "日本": "japanese",
    "日本ルール": "japanese",
    "日本规则": "japanese",
    "日本規則": "japanese",
    "korea": "korean",
    "ko": "korean",
    "韩国": "korean",
    "韓國": "korean",
    "韩国规则": "korean",
    "한국": "korean",
    "china": "chinese",
    "zh": "chinese",
    "chineseogs": "chinese",
    "chinesekgs": "chinese",
    "中国": "chinese",
    "中國": "chinese",
    "中国规则": "chinese",
    "中國規則": "chinese",
    "bga": "aga",
    "british": "aga",
    "americangoassociation": "aga",
    "nzga": "new-zealand",
    "newzealandgoassociation": "new-zealand",
    "tromptaylorrules": "tromp-taylor",
    "tromptaylor": "tromp-taylor",
}


def _rules_from_katago_json(text: str) -> Rules | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        whb = str(data.get("whiteHandicapBonus", "0"))
        return Rules(
            ko=KoRule[str(data.get("ko", "POSITIONAL")).upper()],
            scoring=ScoringRule[str(data.get("scoring", "AREA")).upper()],
            tax=TaxRule[str(data.get("tax", "NONE")).upper()],
            suicide=bool(data.get("suicide", True)),
            button=bool(data.get("hasButton", False)),
            white_handicap_bonus={
                "0": WhiteHandicapBonus.ZERO,
                "N": WhiteHandicapBonus.N,
                "N-1": WhiteHandicapBonus.N_MINUS_ONE,
            }[whb],
            friendly_pass_ok=bool(data.get("friendlyPassOk", False)),
        )
    except (KeyError, TypeError, ValueError):
        return None


# KataGo's short rules strings (cpp/game/rules.cpp, Rules::toStringNoKomi and the
# "legacy internal format" of parseRulesHelper), as KataGo writes them into SGF RU:
# koPOSITIONALscoreAREAtaxNONEsui1, then button1, whbN / whbN-1, fpok1 when set, and
# sometimes komi7.5 (komi is KM's business: read and ignored here).
_KATAGO_RULES_TOKEN_RE = re.compile(
    r"\s*(?:ko(?P<ko>SIMPLE|POSITIONAL|SITUATIONAL)"
    r"|scor(?:e|ing)(?P<scoring>AREA|TERRITORY)"
    r"|tax(?P<tax>NONE|SEKI|ALL)"
    r"|sui(?P<sui>[01])"
    r"|button(?P<button>[01])"
    r"|whb(?P<whb>N-1|N|0)"
    r"|fpok(?P<fpok>[01])"
    r"|komi(?P<komi>[-+0-9.eE]+))\s*"
)
_WHB = {
    "0": WhiteHandicapBonus.ZERO,
    "N": WhiteHandicapBonus.N,
    "N-1": WhiteHandicapBonus.N_MINUS_ONE,
}


def _rules_from_katago_string(text: str) -> Rules | None:
    """Rules from KataGo's short string, or None when ``text`` is not one. Options not
    given keep KataGo's defaults (Tromp-Taylor-like; tax follows the scoring)."""
    pos, found = 0, {}
    while pos < len(text):
        m = _KATAGO_RULES_TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            return None
        found.update({k: v for k, v in m.groupdict().items() if v is not None})
        pos = m.end()
    if "ko" not in found and "scoring" not in found:
        return None  # too little to be sure it is KataGo's form
    scoring = ScoringRule[found.get("scoring", "AREA")]
    default_tax = "SEKI" if scoring is ScoringRule.TERRITORY else "NONE"
    return Rules(
        ko=KoRule[found.get("ko", "POSITIONAL")],
        scoring=scoring,
        tax=TaxRule[found.get("tax", default_tax)],
        suicide=found.get("sui", "1") == "1",
        button=found.get("button", "0") == "1",
        white_handicap_bonus=_WHB[found.get("whb", "0")],
        friendly_pass_ok=found.get("fpok", "0") == "1",
    )


def _katago_rules_string(rules: Rules) -> str:
    """KataGo's short string for ``rules`` (what Rules::toStringNoKomi writes)."""
    text = f"ko{rules.ko.name}score{rules.scoring.name}tax{rules.tax.name}sui{int(rules.suicide)}"
    if rules.button:
        text += "button1"
    if rules.white_handicap_bonus is not WhiteHandicapBonus.ZERO:
        text += (
            "whb"
            + {WhiteHandicapBonus.N: "N", WhiteHandicapBonus.N_MINUS_ONE: "N-1"}[
                rules.white_handicap_bonus
            ]
        )
    if rules.friendly_pass_ok:
        text += "fpok1"
    return text


def rules_from_sgf(value: str | None, default: str = DEFAULT_RULES_NAME) -> tuple[Rules, bool]:
    """Map an ``RU`` value to :class:`Rules`: ``(rules, known)``. Accepts the names of
    :meth:`Rules.from_name` in any case and punctuation (``Japanese``, ``chinese``,
    ``AGA``, ``NZ``, ``New Zealand``, ``Tromp-Taylor``, ``tromp taylor``...), KGS/OGS/Fox
    variants (``chinese-kgs``, ``jp``, ``中国``...), a trailing "rules" word, and KataGo
    JSON rules (``{"ko":"SIMPLE",...}``) and KataGo's short strings
    (``koPOSITIONALscoreAREAtaxNONEsui1``, as KataGo and :func:`rules_to_sgf` write
    custom rules). Missing or unknown: ``(Rules.from_name(default), False)``."""
    if value is not None and value.strip():
        text = value.strip()
        if text.startswith("{"):
            rules = _rules_from_katago_json(text)
            if rules is not None:
                return rules, True
        rules = _rules_from_katago_string(text)
        if rules is not None:
            return rules, True
        key = "".join(ch for ch in text.lower() if ch.isalnum())
        for candidate in (key, key.removesuffix("rules"), key.removesuffix("rule")):
            if not candidate:
                continue
            try:
                return Rules.from_name(_EXTRA_RULES_ALIASES.get(candidate, candidate)), True
            except UnknownRulesError:
                continue
    return Rules.from_name(default), False


def rules_to_sgf(rules: Rules) -> str:
    """The ``RU`` text for rules: the usual SGF name of a named ruleset (``Japanese``,
    ``Chinese``, ``AGA``, ``NZ``...), else KataGo's short string
    (``koPOSITIONALscoreAREAtaxNONEsui1``...), the form KataGo itself writes and reads."""
    name = rules.name
    if name in _SGF_RULES_NAMES:
        return _SGF_RULES_NAMES[name]
    return _katago_rules_string(rules)


def parse_komi(value: str | None) -> float | None:
    """Read a ``KM`` value (see the module docs for the conventions of old files):
    ``"6.50"`` -> 6.5, ``"375"`` -> 7.5, ``"3.75"`` -> 7.5, ``"650"`` -> 6.5. None when
    missing or not a number."""
    if value is None:
        return None
    text = value.strip().replace(",", ".")
    try:
        komi = float(text)
    except ValueError:
        return None
    if not math.isfinite(komi):
        return None
    if abs(komi) >= 100 and komi.is_integer() and komi % 25 == 0:
        komi /= 100  # hundredths: KM[650], KM[375]
    quarters = komi * 4
    if quarters.is_integer() and int(quarters) % 2 == 1:
        komi *= 2  # Chinese stones (zi): 3.75 zi = 7.5 points
    return komi


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class Move:
    """One move of the main line. ``point`` is ``(x, y)`` (see the module docs) or None
    for a pass; ``comment`` is the node's ``C``; ``time_left`` its ``BL``/``WL``."""

    color: Color
    point: Point | None
    comment: str | None = None
    time_left: float | None = None


@dataclass(slots=True)
class GameInfo:
    """Game information of a root node, typed. ``None`` means the property is absent."""

    width: int = 19
    height: int = 19
    komi: float = 0.0
    komi_raw: str | None = None
    handicap: int = 0
    rules: Rules = field(default_factory=lambda: Rules.from_name(DEFAULT_RULES_NAME))
    rules_name: str | None = None  #: the RU text as read (None: absent)
    rules_known: bool = False  #: whether rules_name was recognised
    result: Result | None = None  #: RE (an unreadable one is Result.unknown(text))
    black: str | None = None  #: PB
    white: str | None = None  #: PW
    black_rank: str | None = None  #: BR
    white_rank: str | None = None  #: WR
    black_team: str | None = None  #: BT
    white_team: str | None = None  #: WT
    date: str | None = None  #: DT (SGF form: "2024-05-01", "2024-05-01,02"...)
    game_name: str | None = None  #: GN
    event: str | None = None  #: EV
    round: str | None = None  #: RO
    place: str | None = None  #: PC
    source: str | None = None  #: SO
    annotator: str | None = None  #: AN
    user: str | None = None  #: US
    copyright: str | None = None  #: CP
    opening: str | None = None  #: ON
    time_limit: float | None = None  #: TM, seconds
    overtime: str | None = None  #: OT, free text ("5x30 byo-yomi")
    comment: str | None = None  #: the root's C
    application: str | None = None  #: AP ("CGoban:3", "goapp:0.1.0")

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


_TEXT_FIELDS = (
    ("black", "PB"),
    ("black_rank", "BR"),
    ("black_team", "BT"),
    ("white", "PW"),
    ("white_rank", "WR"),
    ("white_team", "WT"),
    ("date", "DT"),
    ("game_name", "GN"),
    ("event", "EV"),
    ("round", "RO"),
    ("place", "PC"),
    ("source", "SO"),
    ("annotator", "AN"),
    ("user", "US"),
    ("copyright", "CP"),
    ("opening", "ON"),
)


def _node_error(node: Node, message: str) -> SgfError:
    if node.line:
        return SgfError(message, node.line, node.column)
    return SgfError(message)


def _board_size(root: Node) -> tuple[int, int]:
    value = root.get("SZ")
    if value is None:
        return 19, 19
    text = value.strip()
    try:
        if ":" in text:
            w, _, h = text.partition(":")
            width, height = int(w), int(h)
        else:
            width = height = int(text)
    except ValueError:
        raise _node_error(root, f"bad board size SZ[{value}]") from None
    if not (1 <= width <= 52 and 1 <= height <= 52):
        raise _node_error(root, f"bad board size SZ[{value}]: 1 to 52 only")
    return width, height


def _parse_color(value: str | None) -> Color | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("b", "black", "1"):
        return "B"
    if v in ("w", "white", "2"):
        return "W"
    return None


def _float_or_none(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip().replace(",", "."))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _info_from_root(root: Node, default_rules: str) -> GameInfo:
    width, height = _board_size(root)
    info = GameInfo(width=width, height=height)
    komi_raw = root.get("KM")
    info.komi_raw = komi_raw
    komi = parse_komi(komi_raw)
    info.komi = komi if komi is not None else 0.0
    ha = _float_or_none(root.get("HA"))
    info.handicap = int(ha) if ha is not None and 0 <= ha <= 1000 else 0
    info.rules_name = root.get("RU")
    info.rules, info.rules_known = rules_from_sgf(info.rules_name, default_rules)
    re_value = root.get("RE")
    info.result = Result.parse(re_value, strict=False) if re_value is not None else None
    for attr, ident in _TEXT_FIELDS:
        setattr(info, attr, root.get(ident))
    info.time_limit = _float_or_none(root.get("TM"))
    info.overtime = root.get("OT")
    info.comment = root.get("C")
    info.application = root.get("AP")
    return info


@dataclass(slots=True)
class Setup:
    """The set-up properties of one main-line node: ``AB``/``AW``/``AE`` points (expanded)
    and ``PL``. ``before_move`` is how many moves of the main line come before it (0: the
    root and any node before the first move). In a node, ``AB`` and ``AW`` are applied
    first, then ``AE``; a node's move, if it has one, comes after its set-up stones, and
    a ``PL`` beside a move is a set-up of its own, after the move."""

    before_move: int
    black: list[Point] = field(default_factory=list)
    white: list[Point] = field(default_factory=list)
    empty: list[Point] = field(default_factory=list)
    player: Color | None = None


_SETUP_PROPERTIES = ("AB", "AW", "AE", "PL")


def _check_playable_size(root: Node, info: GameInfo) -> None:
    """Refuse, before any point list is expanded, a board the rules core cannot play."""
    from goapp._core import MAX_BOARD_SIZE

    if not (2 <= info.width <= MAX_BOARD_SIZE and 2 <= info.height <= MAX_BOARD_SIZE):
        raise _node_error(
            root,
            f"board size SZ[{root.get('SZ')}] is not supported: 2 to {MAX_BOARD_SIZE} only",
        )


@dataclass(slots=True)
class GameRecord:
    """A typed view of one game: its info, the root's setup stones (``AB``/``AW``/``AE``
    expanded), player to move (``PL``) and the main line's moves. ``setups`` lists the
    set-up of every main-line node that has any (the root's included), in order, which
    :func:`replay` applies. ``root`` is the tree it was read from (None when built in
    code); ``warnings`` lists what was skipped (invalid info values)."""

    info: GameInfo = field(default_factory=GameInfo)
    moves: list[Move] = field(default_factory=list)
    setup_black: list[Point] = field(default_factory=list)
    setup_white: list[Point] = field(default_factory=list)
    setup_empty: list[Point] = field(default_factory=list)
    player_to_move: Color | None = None
    setups: list[Setup] = field(default_factory=list)
    root: Node | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_tree(
        cls,
        root: Node,
        *,
        default_rules: str = DEFAULT_RULES_NAME,
        point_budget: PointBudget | None = None,
    ) -> GameRecord:
        """Read a game tree's root and main line. Raises :class:`SgfError` for a bad
        board size (or one the rules core cannot play), a point that is not on the board,
        a node with both B and W, or point lists that cost more than ``point_budget``
        (default: :data:`DEFAULT_POINT_BUDGET` point visits)."""
        if (root.get("GM") or "1").strip() not in ("1", ""):
            raise _node_error(root, f"not a game of Go: GM[{root.get('GM')}]")
        info = _info_from_root(root, default_rules)
        _check_playable_size(root, info)
        size = info.size
        budget = point_budget if point_budget is not None else PointBudget(DEFAULT_POINT_BUDGET)
        record = cls(info=info, root=root)
        if info.komi_raw is not None and parse_komi(info.komi_raw) is None:
            record.warnings.append(f"komi KM[{info.komi_raw}] is not a number; using 0")
        if info.rules_name is not None and not info.rules_known:
            record.warnings.append(
                f"unknown rules RU[{info.rules_name}]; using {default_rules} rules"
            )
        for number, node in enumerate(root.main_line()):
            props = node.properties
            if any(ident in props for ident in _SETUP_PROPERTIES):
                setup = Setup(len(record.moves))
                try:
                    budget.spend(info.width * info.height)  # replay rebuilds the board

                    setup.black = expand_points(props.get("AB", ()), size, budget=budget)
                    setup.white = expand_points(props.get("AW", ()), size, budget=budget)
                    setup.empty = expand_points(props.get("AE", ()), size, budget=budget)
                except SgfError as exc:
                    raise _node_error(node, f"{exc.reason} in setup stones") from None
                player = _parse_color(node.get("PL"))
                record.setups.append(setup)
                if "B" in props or "W" in props:
                    # PL next to a move (CGoban 2 writes it) says who plays after it
                    if player is not None:
                        record.setups.append(Setup(len(record.moves) + 1, player=player))
                else:
                    setup.player = player
                if number == 0:
                    record.setup_black, record.setup_white = setup.black, setup.white
                    record.setup_empty, record.player_to_move = setup.empty, setup.player
            black, white = props.get("B"), props.get("W")
            if black is not None and white is not None:
                raise _node_error(node, "a node has both a black and a white move")
            if black is None and white is None:
                continue
            color: Color = "B" if black is not None else "W"
            values = black if black is not None else white
            assert values is not None
            try:
                point = sgf_to_point(values[0], size)
            except SgfError as exc:
                raise _node_error(node, f"{exc.reason} in move {color}[{values[0]}]") from None
            time_left = _float_or_none(node.get("BL" if color == "B" else "WL"))
            record.moves.append(Move(color, point, node.get("C"), time_left))
        return record

    def to_tree(self, *, application: str | None = None) -> Node:
        """A fresh game tree (root + main line) for this record."""
        return _build_tree(
            self.info,
            self.moves,
            self.setup_black,
            self.setup_white,
            self.setup_empty,
            self.player_to_move,
            application,
        )

    def to_sgf(self, *, application: str | None = None) -> str:
        return write_sgf(self.to_tree(application=application))


def read_record(
    data: str | bytes | bytearray | memoryview,
    *,
    default_rules: str = DEFAULT_RULES_NAME,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_value_length: int = DEFAULT_MAX_VALUE_LENGTH,
) -> GameRecord:
    """Parse SGF text and read its first game as a :class:`GameRecord`."""
    root = parse_sgf(
        data, max_bytes=max_bytes, max_nodes=max_nodes, max_value_length=max_value_length
    )
    return GameRecord.from_tree(root, default_rules=default_rules)


def _default_application() -> str:
    from goapp import __version__

    return f"goapp:{__version__}"


def _build_tree(
    info: GameInfo,
    moves: Iterable[Move],
    setup_black: Iterable[Point],
    setup_white: Iterable[Point],
    setup_empty: Iterable[Point],
    player_to_move: Color | None,
    application: str | None,
) -> Node:
    root = Node()
    p = root.properties
    p["GM"] = ["1"]
    p["FF"] = ["4"]
    p["CA"] = ["UTF-8"]
    p["AP"] = [application or info.application or _default_application()]
    p["SZ"] = [str(info.width) if info.width == info.height else f"{info.width}:{info.height}"]
    p["KM"] = [_format_number(info.komi)]
    if info.handicap:
        p["HA"] = [str(info.handicap)]
    if info.rules_name and rules_from_sgf(info.rules_name) == (info.rules, True):
        p["RU"] = [info.rules_name]  # the spelling read ("Korean", "JP"...) when still true
    else:
        p["RU"] = [rules_to_sgf(info.rules)]
    for attr, ident in _TEXT_FIELDS:
        value = getattr(info, attr)
        if value is not None:
            p[ident] = [value]
    if info.time_limit is not None:
        p["TM"] = [_format_number(info.time_limit)]
    if info.overtime is not None:
        p["OT"] = [info.overtime]
    if info.result is not None:
        p["RE"] = [str(info.result)]
    if info.comment is not None:
        p["C"] = [info.comment]
    size = info.size
    for ident, points in (("AB", setup_black), ("AW", setup_white), ("AE", setup_empty)):
        values = [_checked_point(pt, size) for pt in points]
        if values:
            p[ident] = values
    if player_to_move is not None:
        p["PL"] = [player_to_move]
    node = root
    for move in moves:
        if move.color not in ("B", "W"):
            raise ValueError(f"bad move colour {move.color!r}")
        child = Node()
        child.properties[move.color] = [_checked_point(move.point, size)]
        if move.time_left is not None:
            child.properties["BL" if move.color == "B" else "WL"] = [
                _format_number(round(move.time_left, 3))
            ]
        if move.comment is not None:
            child.properties["C"] = [move.comment]
        node.children.append(child)
        node = child
    return root


def _checked_point(point: Point | None, size: tuple[int, int]) -> str:
    if point is not None:
        x, y = point
        if not (0 <= x < size[0] and 0 <= y < size[1]):
            raise ValueError(f"point {point!r} is off the {size[0]}x{size[1]} board")
    return point_to_sgf(point)


def record_to_sgf(
    info: GameInfo,
    moves: Iterable[Move],
    *,
    setup_black: Iterable[Point] = (),
    setup_white: Iterable[Point] = (),
    setup_empty: Iterable[Point] = (),
    player_to_move: Color | None = None,
    application: str | None = None,
) -> str:
    """SGF text (FF[4], GM[1], CA[UTF-8], AP[goapp:<version>] unless ``application`` or
    ``info.application`` says otherwise) for a game's info and moves. Raises
    :class:`ValueError` for a move or setup point off the board."""
    return write_sgf(
        _build_tree(info, moves, setup_black, setup_white, setup_empty, player_to_move, application)
    )


# --------------------------------------------------------------------------- rules core
# The game core (goapp.rules.Game) is imported lazily so that this module's parsing and
# writing never depend on it.


def _initial_position(
    setups: Iterable[Setup],
) -> tuple[list[Point], list[Point], Color | None]:
    """Black stones, white stones and ``PL`` after applying ``setups`` to an empty board."""
    colors: dict[Point, Color] = {}
    player: Color | None = None
    for setup in setups:
        colors.update(dict.fromkeys(setup.black, "B"))
        colors.update(dict.fromkeys(setup.white, "W"))
        for point in setup.empty:
            colors.pop(point, None)
        player = setup.player or player
    black = [p for p, c in colors.items() if c == "B"]
    white = [p for p, c in colors.items() if c == "W"]
    return black, white, player


def _is_handicap(
    info: GameInfo, black: list[Point], white: list[Point], player: Color | None
) -> bool:
    """Black stones alone, two or more, that HA (when given) counts, with White to move
    (or nobody said): handicap stones."""
    if white or len(black) < 2 or player == "B":
        return False
    return info.handicap in (0, len(black))


def replay(record: GameRecord, *, fill_passes: bool = False) -> CoreGame:
    """Play a record's main line into a :class:`goapp.rules.Game` with the record's board
    size, rules and komi, and return it.

    Set-up (``AB``/``AW``/``AE``/``PL``) is applied wherever it is in the main line. The
    set-up before the first move makes the starting position: black stones alone (two
    or more, as many as ``HA`` says when it is given) are handicap stones, anything else
    (white or removed stones, a single black stone) is a set-up position. Later set-up
    edits the position before the next move (:meth:`goapp.rules.Game.edit`). Who moves
    after a set-up: ``PL`` when given, else the colour of the next move, else (for
    handicap) White. A set-up that leaves a chain without liberties, which the rules core
    cannot hold, raises :class:`SgfError`: the result is always the file's position.

    A move by the player not to move raises :class:`SgfError`, unless ``fill_passes``:
    then a pass by the other player is inserted first (some editors omit them). An illegal
    move raises :class:`SgfError` naming the move number and the rule it breaks (the
    :class:`goapp.rules.IllegalMoveError` is chained)."""
    from goapp.rules import Game, IllegalMoveError
    from goapp.rules.coords import Color as CoreColor

    def core_color(color: Color) -> CoreColor:
        return CoreColor.BLACK if color == "B" else CoreColor.WHITE

    info = record.info
    moves = record.moves
    edits: dict[int, list[Setup]] = {}
    for setup in record.setups:
        edits.setdefault(setup.before_move, []).append(setup)
    black, white, player = _initial_position(edits.pop(0, ()))
    if player is None and moves and (black or white):
        player = moves[0].color
    try:
        if _is_handicap(info, black, white, player):
            game = Game(
                info.width, info.height, rules=info.rules, komi=info.komi, handicap_stones=black
            )
            if player is not None:
                game.edit(to_move=core_color(player))
        else:
            game = Game(info.width, info.height, rules=info.rules, komi=info.komi)
            if black or white or player is not None:
                game.edit(black, white, to_move=core_color(player) if player else None)
    except ValueError as exc:
        raise SgfError(f"cannot set up the game: {exc}") from exc
    for number, move in enumerate([*moves, None], 1):
        for setup in edits.get(number - 1, ()):
            to_move = setup.player or (move.color if move is not None else None)
            try:
                game.edit(
                    setup.black,
                    setup.white,
                    setup.empty,
                    to_move=core_color(to_move) if to_move else None,
                )
            except ValueError as exc:
                raise SgfError(f"cannot apply the set-up before move {number}: {exc}") from exc
        if move is None:
            break
        color = core_color(move.color)
        if color is not game.to_move:
            if not fill_passes:
                raise SgfError(
                    f"move {number} ({move.color}[{point_to_sgf(move.point)}]) is played out "
                    f"of turn: {game.to_move.display} was to move"
                )
            game.play(None)
        try:
            game.play(move.point, color)
        except IllegalMoveError as exc:
            raise SgfError(
                f"move {number} ({move.color}[{point_to_sgf(move.point)}]) is illegal: {exc}"
            ) from exc
    return game
