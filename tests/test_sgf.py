"""SGF FF[4]: parser, writer, game-record mapping (goapp.rules.sgf)."""

from __future__ import annotations

import contextlib
import pathlib
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goapp import __version__
from goapp.rules import Color, Result, ResultReason
from goapp.rules.rulesets import KoRule, Rules, ScoringRule
from goapp.rules.sgf import (
    DEFAULT_MAX_BYTES,
    DEFAULT_POINT_BUDGET,
    GameInfo,
    GameRecord,
    Move,
    Node,
    PointBudget,
    SgfError,
    expand_points,
    parse_collection,
    parse_komi,
    parse_sgf,
    point_to_sgf,
    read_record,
    record_to_sgf,
    replay,
    rules_from_sgf,
    rules_to_sgf,
    sgf_to_point,
    write_sgf,
    write_sgf_bytes,
)

CORPUS = pathlib.Path(__file__).parent / "sgf_corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.sgf"))


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def props(node: Node) -> dict[str, list[str]]:
    return node.properties


# --------------------------------------------------------------------------- parser


def test_parse_simple_tree_keeps_order_and_unknown_properties() -> None:
    root = parse_sgf("(;GM[1]FF[4]ZZ[private][two]SZ[19];B[pd]XY[];W[dp])")
    assert list(root.properties) == ["GM", "FF", "ZZ", "SZ"]
    assert root.get_all("ZZ") == ["private", "two"]
    moves = list(root.main_line())[1:]
    assert [m.properties for m in moves] == [{"B": ["pd"], "XY": [""]}, {"W": ["dp"]}]


def test_escapes_and_soft_line_breaks() -> None:
    text = "(;C[a\\]b \\\\ c\\\nd\\\r\ne\\\n\rf\\\rg \\x]GN[keep\nhard\r\nbreaks])"
    root = parse_sgf(text)
    assert root.get("C") == "a]b \\ cdefg x"
    assert root.get("GN") == "keep\nhard\r\nbreaks"


def test_whitespace_anywhere_between_tokens() -> None:
    text = " \n ( \t ; GM \n [1] \r\n [x]  SZ[9] ; B [ee]\n(\n;W[cc]\n)\n( ; W[gg] ) ) \n\n"
    root = parse_sgf(text)
    assert root.properties == {"GM": ["1", "x"], "SZ": ["9"]}
    move = root.children[0]
    assert move.get("B") == "ee"
    assert [c.get("W") for c in move.children] == ["cc", "gg"]


def test_old_ff3_lowercase_identifiers_are_stripped() -> None:
    root = parse_sgf("(;GaMe[1]AddBlack[aa][bb]PlayerWhite[x];Black[cc]White[dd])")
    assert root.properties == {"GM": ["1"], "AB": ["aa", "bb"], "PW": ["x"]}
    assert root.children[0].properties == {"B": ["cc"], "W": ["dd"]}


def test_duplicate_properties_are_merged() -> None:
    root = parse_sgf("(;AB[aa]C[x]AB[bb])")
    assert root.properties == {"AB": ["aa", "bb"], "C": ["x"]}


def test_str_bytes_and_bom() -> None:
    text = "(;GM[1]PB[Jérôme])"
    assert parse_sgf(text) == parse_sgf(text.encode()) == parse_sgf(b"\xef\xbb\xbf" + text.encode())
    assert parse_sgf("\ufeff" + text) == parse_sgf(text)
    assert parse_sgf(bytearray(text.encode())).get("PB") == "Jérôme"


def test_collection_returns_all_games_and_helper_takes_first() -> None:
    games = parse_collection(corpus("collection.sgf"))
    assert [g.get("GN") for g in games] == ["first", "second", "third"]
    assert parse_sgf(corpus("collection.sgf")).get("GN") == "first"
    assert games[2].children == []


def test_node_positions_are_recorded() -> None:
    root = parse_sgf("(;GM[1]\n;B[aa]\n  ;W[bb])")
    nodes = list(root.main_line())
    assert [(n.line, n.column) for n in nodes] == [(1, 2), (2, 1), (3, 3)]


def test_empty_node_and_node_without_properties() -> None:
    root = parse_sgf("(;;;B[aa];)")
    assert [n.properties for n in root.main_line()] == [{}, {}, {"B": ["aa"]}, {}]
    assert parse_sgf(write_sgf(root)) == root


# --------------------------------------------------------------------------- charsets


def test_gb2312_declared_file_is_read_as_gb18030() -> None:
    root = parse_sgf(corpus("gb2312.sgf"))
    assert root.get("PB") == "柯洁"
    assert root.get("PW") == "申真谞"  # not in GB2312 proper: real files need GBK/GB18030
    assert root.get("CA") == "gb2312"
    record = GameRecord.from_tree(root)
    assert record.info.result == Result.resignation(Color.BLACK)  # read from 黑中盘胜
    assert record.moves[-1].comment == "好棋"


def test_latin1_declared_and_undeclared() -> None:
    root = parse_sgf(corpus("latin1.sgf"))
    assert (root.get("PB"), root.get("PW"), root.get("PC")) == (
        "Jürgen Müller",
        "François Señor",
        "Köln",
    )
    assert root.children[0].get("C") == "Très bien"
    # no CA: not UTF-8, so the Latin-1 fallback
    assert parse_sgf(corpus("latin1_no_ca.sgf")).get("PB") == "Ångström"


def test_wrong_or_unknown_charset_falls_back() -> None:
    utf8 = "(;CA[ISO-8859-1]PB[Jürgen])".encode()
    assert parse_sgf(utf8).get("PB") == "JÃ¼rgen"  # declared charset wins when it decodes
    assert parse_sgf("(;CA[no-such-codec]PB[Jürgen])".encode()).get("PB") == "Jürgen"
    assert parse_sgf("(;CA[UTF-16]PB[Jürgen])".encode()).get("PB") == "Jürgen"
    bad_utf8 = "(;CA[UTF-8]PB[Jürgen])".encode("latin-1")
    assert parse_sgf(bad_utf8).get("PB") == "Jürgen"


def test_write_sgf_bytes_rewrites_charset() -> None:
    root = parse_sgf(corpus("latin1.sgf"))
    data = write_sgf_bytes(root)
    assert b"CA[UTF-8]" in data
    again = parse_sgf(data)
    assert again.get("PB") == "Jürgen Müller"
    again.set("CA", "ISO-8859-1")
    assert again == root
    assert root.get("CA") == "ISO-8859-1"  # the tree itself is not changed


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("", 1, 1, "empty input"),
        ("   \n  ", 1, 1, "empty input"),
        ("GM[1]", 1, 1, "expected '('"),
        (";B[aa]", 1, 1, "expected '('"),
        ("garbage B[aa])", 1, 1, "expected '('"),
        ("(", 1, 2, "expected ';' after '('"),
        ("()", 1, 2, "expected ';' to start a node"),
        ("((;B[aa]))", 1, 2, "expected ';' to start a node"),
        ("(;B[aa]", 1, 8, "not closed with ')'"),
        ("(;B[aa](;W[bb])", 1, 16, "1 game tree(s) not closed"),
        ("))", 1, 1, "unbalanced ')'"),
        ("(;B[aa]))W[bb];B[cc])", 1, 9, "unbalanced ')'"),  # a stray ')' cut the tree
        ("(;GM[1]\n;B[aa]\n;C[unterminated comment ))", 3, 3, "unterminated value of property C"),
        ("(;GM[1]\n;B[aa][bb", 2, 7, "unterminated property value"),
        ("(;B[aa]W)", 1, 8, "property W has no value"),
        ("(;B[aa]#)", 1, 8, "unexpected character '#'"),
        ("(;B[aa]é)", 1, 8, "unexpected character 'é'"),
        ("(;B[aa]\x00)", 1, 8, "U+0000"),
        ("(;[aa])", 1, 3, "property value without a property identifier"),
        ("(;abc[aa])", 1, 3, "has no uppercase letter"),
        ("(;B[aa](;W[bb]);B[cc])", 1, 16, "a node cannot follow variations"),
        ("(;B[aa](;W[bb])C[x])", 1, 16, "a property cannot follow variations"),
    ],
)
def test_malformed_sgf_errors(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(SgfError) as info:
        parse_collection(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert message in str(err)
    assert (err.line, err.column) == (line, column), str(err)
    assert str(err).startswith(f"line {line}, column {column}: ")


def test_error_types() -> None:
    with pytest.raises(TypeError):
        parse_collection(12)  # type: ignore[arg-type]


def test_limit_max_bytes() -> None:
    text = "(;C[" + "x" * 100 + "])"
    assert parse_sgf(text, max_bytes=len(text)).get("C") == "x" * 100
    with pytest.raises(SgfError, match=r"too large: 106 characters \(limit 105\)"):
        parse_sgf(text, max_bytes=105)
    with pytest.raises(SgfError, match=r"too large: 106 bytes"):
        parse_sgf(text.encode(), max_bytes=105)


@pytest.mark.timeout(60)
def test_giant_input_rejected() -> None:
    giant = b"(;C[" + b"x" * DEFAULT_MAX_BYTES + b"])"
    with pytest.raises(SgfError, match="too large"):
        parse_sgf(giant)
    root = parse_sgf(giant, max_bytes=len(giant), max_value_length=DEFAULT_MAX_BYTES)
    assert root.get("C") == "x" * DEFAULT_MAX_BYTES
    with pytest.raises(SgfError, match="value of property C too long"):
        parse_sgf(giant, max_bytes=len(giant))


def test_limit_max_nodes() -> None:
    text = "(;GM[1]" + ";B[aa]" * 10 + ")"
    assert parse_sgf(text, max_nodes=11).node_count() == 11
    with pytest.raises(SgfError, match=r"too many nodes \(limit 10\)"):
        parse_sgf(text, max_nodes=10)
    variations = "(;GM[1]" + "(;B[aa])" * 10 + ")"
    with pytest.raises(SgfError, match="too many nodes"):
        parse_sgf(variations, max_nodes=5)


def test_limit_max_value_length() -> None:
    text = "(;GM[1]C[" + "y" * 50 + "];B[aa])"
    assert parse_sgf(text, max_value_length=50).get("C") == "y" * 50
    with pytest.raises(SgfError, match=r"line 1, column 8: value of property C too long"):
        parse_sgf(text, max_value_length=49)


@pytest.mark.timeout(300)  # never hangs: bounded by a generous timeout, not timed
def test_deep_variation_nesting_is_iterative() -> None:
    depth = 50_000
    text = "(;GM[1]" + "(;B[aa]" * depth + ")" * (depth + 1)
    root = parse_sgf(text)
    assert root.node_count() == depth + 1
    out = write_sgf(root)
    assert parse_sgf(out) == root
    assert write_sgf(parse_sgf(out)) == out
    assert root.copy() == root
    with pytest.raises(SgfError, match=rf"{depth + 1} game tree\(s\) not closed"):
        parse_sgf(text[: -(depth + 1)])


@pytest.mark.timeout(300)  # never hangs: bounded by a generous timeout, not timed
def test_100k_move_main_line() -> None:
    coords = [point_to_sgf((i % 19, (i // 19) % 19)) for i in range(100_000)]
    body = "".join(f";{'BW'[i % 2]}[{c}]" for i, c in enumerate(coords))
    text = "(;GM[1]FF[4]SZ[19]" + body + ")"
    root = parse_sgf(text)
    record = GameRecord.from_tree(root)
    assert len(record.moves) == 100_000
    assert record.moves[-1] == Move("W", (99_999 % 19, (99_999 // 19) % 19))
    out = write_sgf(root)
    assert parse_sgf(out) == root
    assert len(record.to_sgf()) > 0
    assert "children=1" in repr(root)
    other = parse_sgf(text.replace("]" + ")", "];B[aa])"))
    assert other != root


# --------------------------------------------------------------------------- writer


def test_writer_escapes_and_round_trips() -> None:
    root = Node({"GM": ["1"], "C": ["a]b\\c\\\nd", "x]"], "LB": ["aa:x\\:y"]})
    child = root.add_child(Node({"B": [""]}))
    child.add_child(Node({"W": ["tt"]}))
    child.add_child()
    text = write_sgf(root)
    assert "C[a\\]b\\\\c\\\\\nd][x\\]]" in text
    assert parse_sgf(text) == root


def test_writer_layout() -> None:
    root = parse_sgf(corpus("ogs.sgf"))
    text = write_sgf(root)
    lines = text.splitlines()
    assert lines[0].startswith("(;FF[4]CA[UTF-8]GM[1]")
    for line in lines:
        if "C[" not in line and "\n" not in line:
            assert len(line) <= 78
    assert "\n(;W[dq]" in text
    assert text.endswith("))\n")
    narrow = write_sgf(root, line_width=20)
    assert parse_sgf(narrow) == root
    assert max(len(x) for x in narrow.splitlines() if "C[" not in x and "PC[" not in x) <= 40


def test_writer_rejects_bad_trees() -> None:
    with pytest.raises(SgfError, match="invalid property identifier 'b'"):
        write_sgf(Node({"b": ["aa"]}))
    with pytest.raises(SgfError, match="invalid property identifier 'AddBlack'"):
        write_sgf(Node({"AddBlack": ["aa"]}))
    with pytest.raises(SgfError, match="has no value"):
        write_sgf(Node({"B": []}))
    with pytest.raises(SgfError, match="empty collection"):
        write_sgf([])


def test_write_collection() -> None:
    games = parse_collection(corpus("collection.sgf"))
    text = write_sgf(games)
    assert text.count("(;GM[1]") == 3
    assert parse_collection(text) == games


# --------------------------------------------------------------------------- node API


def test_node_api() -> None:
    assert Node({"B": "aa"}).properties == {"B": ["aa"]}  # a lone string is one value
    node = Node([("B", ["aa"]), ("C", ["x", "y"])])
    assert node.get("C") == "x" and node.get_all("C") == ["x", "y"] and node.get("Z") is None
    assert node.get("Z", "d") == "d" and node.get_all("Z") == []
    assert "B" in node and "W" not in node
    node.set("C", "z")
    node.set("AB", ["aa", "bb"])
    assert list(node.properties) == ["B", "C", "AB"] and node.get_all("C") == ["z"]
    with pytest.raises(ValueError):
        node.set("AB", [])
    node.remove("B")
    node.remove("nothing")
    assert "B" not in node
    a = node.add_child(Node({"W": ["bb"]}))
    b = node.add_child(Node({"W": ["cc"]}))
    a.add_child(Node({"B": ["dd"]}))
    assert [n.get("W") or n.get("B") for n in node.walk()] == [None, "bb", "dd", "cc"]
    assert [n.get("W") for n in node.main_line()] == [None, "bb", None]
    copy = node.copy()
    assert copy == node and copy is not node and copy.children[0] is not a
    b.set("W", "ee")
    assert copy != node
    assert node != "node"
    with pytest.raises(TypeError):
        hash(node)
    assert "AB[aa][bb]" in repr(node) and "children=2" in repr(node)


# --------------------------------------------------------------------------- points


def test_points() -> None:
    assert sgf_to_point("pd") == (15, 3)
    assert sgf_to_point("aa") == (0, 0)
    assert sgf_to_point("sa") == (18, 0)
    assert sgf_to_point("as") == (0, 18)
    assert sgf_to_point("") is None
    assert sgf_to_point("tt") is None
    assert sgf_to_point("tt", 21) == (19, 19)
    assert sgf_to_point("tt", (19, 13)) is None
    assert sgf_to_point("Az", 52) == (26, 25)
    assert point_to_sgf((15, 3)) == "pd" and point_to_sgf(None) == ""
    assert point_to_sgf((51, 26)) == "ZA"
    cases: list[tuple[str, int | tuple[int, int]]] = [
        ("zz", 19), ("ta", 19), ("a", 19), ("abc", 19), ("a1", 19), ("ii", (19, 8))
    ]  # fmt: skip
    for bad, size in cases:
        with pytest.raises(SgfError, match="bad point"):
            sgf_to_point(bad, size)
    with pytest.raises(ValueError):
        point_to_sgf((52, 0))


def test_point_roundtrip_all() -> None:
    for x in range(52):
        for y in range(52):
            assert sgf_to_point(point_to_sgf((x, y)), 52) == (x, y)


def test_expand_points() -> None:
    assert expand_points(["aa:bc"]) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    assert expand_points(["bc:aa", "aa", "dd", ""]) == [
        (0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2), (3, 3)
    ]  # fmt: skip
    assert expand_points(["tt"], 21) == [(19, 19)]
    assert expand_points(["ss:tt"], 21) == [(18, 18), (19, 18), (18, 19), (19, 19)]
    for bad in (["aa:zz"], ["tt"], ["aa:"], ["zz"]):
        with pytest.raises(SgfError):
            expand_points(bad, 19)


# --------------------------------------------------------------------------- results / komi / rules


@pytest.mark.parametrize(
    ("text", "reason", "winner", "margin", "out"),
    [
        ("B+3.5", ResultReason.SCORE, Color.BLACK, 3.5, "B+3.5"),
        ("W+0.5", ResultReason.SCORE, Color.WHITE, 0.5, "W+0.5"),
        ("W+15.50", ResultReason.SCORE, Color.WHITE, 15.5, "W+15.5"),
        ("B+12", ResultReason.SCORE, Color.BLACK, 12.0, "B+12"),
        ("b+3,5", ResultReason.SCORE, Color.BLACK, 3.5, "B+3.5"),
        ("W+R", ResultReason.RESIGN, Color.WHITE, None, "W+R"),
        ("W+Resign", ResultReason.RESIGN, Color.WHITE, None, "W+R"),
        ("B+Res.", ResultReason.RESIGN, Color.BLACK, None, "B+R"),
        ("B+T", ResultReason.TIME, Color.BLACK, None, "B+T"),
        ("W+Time", ResultReason.TIME, Color.WHITE, None, "W+T"),
        ("B+F", ResultReason.FORFEIT, Color.BLACK, None, "B+F"),
        ("W+Forfeit", ResultReason.FORFEIT, Color.WHITE, None, "W+F"),
        ("B+", ResultReason.WIN, Color.BLACK, None, "B+"),
        ("0", ResultReason.DRAW, None, None, "0"),
        ("Draw", ResultReason.DRAW, None, None, "0"),
        ("Jigo", ResultReason.DRAW, None, None, "0"),
        ("Void", ResultReason.VOID, None, None, "Void"),
        ("?", ResultReason.UNKNOWN, None, None, "?"),
        ("", ResultReason.UNKNOWN, None, None, "?"),
        ("B+-3", ResultReason.UNKNOWN, None, None, "B+-3"),
        ("Black wins", ResultReason.UNKNOWN, None, None, "Black wins"),
        ("黑中盘胜", ResultReason.RESIGN, Color.BLACK, None, "B+R"),
        ("白胜3目半", ResultReason.SCORE, Color.WHITE, 3.5, "W+3.5"),
        ("黑胜1又3/4子", ResultReason.SCORE, Color.BLACK, 3.5, "B+3.5"),
        ("흑 불계승", ResultReason.RESIGN, Color.BLACK, None, "B+R"),
    ],
)
def test_results(
    text: str, reason: ResultReason, winner: Color | None, margin: float | None, out: str
) -> None:
    """RE values as SGF import reads them: ``Result.parse(text, strict=False)``."""
    result = Result.parse(text, strict=False)
    assert (result.reason, result.winner, result.margin) == (reason, winner, margin)
    assert str(result) == out
    # the canonical form reads back to the same result (an unreadable text included)
    again = Result.parse(out, strict=False)
    assert (again.reason, again.winner, again.margin) == (reason, winner, margin)
    assert again == result and str(again) == out


def test_unreadable_results_keep_their_text() -> None:
    assert Result.parse("Black wins", strict=False) == Result.unknown("Black wins")
    assert Result.parse("B+-3", strict=False).raw == "B+-3"
    assert Result.unknown("Black wins") != Result.unknown()
    # "?" and "" are the plain unknown result, whatever the spelling
    assert Result.parse("", strict=False) == Result.parse(" ? ", strict=False) == Result.unknown()
    assert Result.unknown("?").raw is None and Result.unknown("").raw is None
    for text in ["B+-3", "Black wins"]:
        with pytest.raises(ValueError):
            Result.parse(text)  # strict (the default) refuses them


def test_incomplete_results_are_refused() -> None:
    with pytest.raises(ValueError):
        Result(Color.BLACK, ResultReason.SCORE)  # no margin
    with pytest.raises(ValueError):
        Result(None, ResultReason.RESIGN)  # no winner
    with pytest.raises(ValueError):
        Result(Color.BLACK, ResultReason.RESIGN, raw="B+Resign")  # only unknown keeps text
    assert str(Result(Color.WHITE, ResultReason.SCORE, 7.0)) == "W+7"
    assert str(Result.win(Color.BLACK)) == "B+"


@pytest.mark.parametrize(
    ("text", "komi"),
    [
        ("6.5", 6.5),
        ("6.50", 6.5),
        ("6,5", 6.5),
        (" 7.5 ", 7.5),
        ("0", 0.0),
        ("-5.5", -5.5),
        ("375", 7.5),  # hundredths of Chinese stones: 3.75 zi
        ("3.75", 7.5),  # Chinese stones
        ("2.75", 5.5),
        ("650", 6.5),  # hundredths
        ("550", 5.5),
        ("100", 1.0),
        ("0.5", 0.5),
        ("abc", None),
        ("nan", None),
        ("inf", None),
        (None, None),
    ],
)
def test_komi(text: str | None, komi: float | None) -> None:
    assert parse_komi(text) == komi


@pytest.mark.parametrize(
    ("text", "name", "known"),
    [
        ("Japanese", "japanese", True),
        ("japanese", "japanese", True),
        ("JP", "japanese", True),
        ("Chinese", "chinese", True),
        ("chinese", "chinese", True),
        ("Chinese_kgs", "chinese", True),
        ("cn", "chinese", True),
        ("中国规则", "chinese", True),
        ("AGA", "aga", True),
        ("aga", "aga", True),
        ("Korean", "korean", True),
        ("NZ", "new-zealand", True),
        ("New Zealand", "new-zealand", True),
        ("new_zealand", "new-zealand", True),
        ("Tromp-Taylor", "tromp-taylor", True),
        ("tromp taylor", "tromp-taylor", True),
        ("Japanese rules", "japanese", True),
        ("ing", "japanese", False),
        ("whatever", "japanese", False),
        ("", "japanese", False),
        (None, "japanese", False),
    ],
)
def test_rules_mapping(text: str | None, name: str, known: bool) -> None:
    rules, was_known = rules_from_sgf(text)
    assert (rules, was_known) == (Rules.from_name(name), known)


def test_rules_default_and_custom_roundtrip() -> None:
    assert rules_from_sgf("???", default="chinese")[0] == Rules.from_name("chinese")
    for name in ("japanese", "chinese", "aga", "korean", "new-zealand", "tromp-taylor"):
        rules = Rules.from_name(name)
        assert rules_from_sgf(rules_to_sgf(rules)) == (rules, True)
    assert rules_to_sgf(Rules.from_name("new-zealand")) == "NZ"
    custom = Rules(ko=KoRule.SIMPLE, scoring=ScoringRule.TERRITORY, suicide=True, button=True)
    text = rules_to_sgf(custom)
    assert text == "koSIMPLEscoreTERRITORYtaxNONEsui1button1"  # KataGo's own short form
    assert rules_from_sgf(text) == (custom, True)
    json_text = '{"ko":"SIMPLE","scoring":"TERRITORY","tax":"NONE","suicide":true,"hasButton":true}'
    assert rules_from_sgf(json_text) == (custom, True)
    assert rules_from_sgf('{"ko": "BOGUS"}')[1] is False
    assert rules_from_sgf("{not json")[1] is False


# --------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_corpus_round_trip(path: pathlib.Path) -> None:
    trees = parse_collection(path.read_bytes())
    text = write_sgf(trees)
    again = parse_collection(text)
    assert again == trees
    assert write_sgf(again) == text  # stable after one pass
    assert (
        parse_collection(write_sgf_bytes(trees))[0].properties.keys() == trees[0].properties.keys()
    )
    record = GameRecord.from_tree(trees[0])
    # the record's own export reads back to the same record
    back = read_record(record.to_sgf())
    assert back.moves == record.moves
    assert back.setup_black == record.setup_black and back.setup_white == record.setup_white
    assert back.info.size == record.info.size and back.info.komi == record.info.komi
    assert back.info.rules == record.info.rules
    assert back.info.result == record.info.result  # unreadable RE text included
    if record.info.result is not None:
        assert str(back.info.result) == str(record.info.result)


def test_kgs_record() -> None:
    record = read_record(corpus("kgs_cgoban.sgf"))
    info = record.info
    assert (info.width, info.height, info.komi, info.komi_raw) == (19, 19, 6.5, "6.50")
    assert info.rules == Rules.from_name("japanese") and info.rules_name == "Japanese"
    assert (info.black, info.black_rank, info.white, info.white_rank) == (
        "mooncake", "1k", "Lucifer", "2d"
    )  # fmt: skip
    assert info.result == Result.resignation(Color.WHITE)  # read from W+Resign
    assert info.time_limit == 1800 and info.overtime == "5x30 byo-yomi"
    assert info.date == "2019-03-14" and info.application == "CGoban:3"
    assert info.place == "The KGS Go Server at http://www.gokgs.com/"
    assert len(record.moves) == 16
    assert record.moves[0] == Move("B", (15, 3), None, 1795.2)
    assert record.moves[1].time_left == 1797.554
    assert record.moves[4].comment == "mooncake [1k]: hi\nLucifer [2d]: hello, have fun\n"
    assert record.warnings == []
    assert record.root is not None and record.root.get("ST") == "2"


def test_ogs_record_with_passes_and_variation() -> None:
    root = parse_sgf(corpus("ogs.sgf"))
    assert len(root.children) == 1 and len(root.children[0].children) == 2
    record = GameRecord.from_tree(root)
    assert record.info.place == "OGS: https://online-go.com/game/55512345"
    assert record.info.result == Result(Color.BLACK, ResultReason.SCORE, 12.5)
    assert record.info.game_name == "Friendly Match"
    assert record.info.comment is not None and "good luck" in record.info.comment
    assert len(record.moves) == 14
    assert record.moves[-2:] == [
        Move("B", None),
        Move("W", None, "Score: Black 78.5, White 66 (komi 6.5)"),
    ]


def test_sabaki_variations_and_markup() -> None:
    root = parse_sgf(corpus("sabaki_variations.sgf"))
    nodes = list(root.main_line())
    branch = nodes[8]  # W[eq]MN[8]
    assert branch.get("W") == "eq" and len(branch.children) == 3
    first, second, third = branch.children
    assert first.get_all("TR") == ["eq", "hq"] and first.get("GB") == "1"
    assert first.children[0].get_all("LB") == ["dn:A", "do:B : note", "en:C"]
    assert second.get("BM") == "1" and len(second.children[0].children) == 2
    assert second.children[0].children[1].get("DM") == "1"
    assert third.get("HO") == "1"
    assert nodes[-1].get("TE") == "1"
    record = GameRecord.from_tree(root)
    assert len(record.moves) == 13 and record.moves[8] == Move("B", (7, 16), "Solid.")


def test_deep_variations_structure() -> None:
    root = parse_sgf(corpus("deep_variations.sgf"))
    ee = root.children[0]
    assert [c.get("W") for c in ee.children] == ["cc", "gg", "eg"]
    cc = ee.children[0]
    assert [c.get("B") for c in cc.children] == ["gg", "gc"]
    gg = cc.children[0]
    assert [c.get("W") for c in gg.children] == ["gc", "cg"]
    gc = gg.children[0]
    assert [c.get("B") for c in gc.children] == ["cg", "dg"]
    dg = gc.children[0].children[0]
    assert [c.get("B") for c in dg.children] == ["dh", "ch"]
    assert gc.children[1].get("C") == "level 4 alternative"
    assert [c.get("B") for c in ee.children[2].children] == ["ec", "dg", "fg"]
    assert root.node_count() == 22
    record = GameRecord.from_tree(root)
    assert [point_to_sgf(m.point) for m in record.moves] == [
        "ee", "cc", "gg", "gc", "cg", "dg", "dh", "eh"
    ]  # fmt: skip


def test_katrain_record() -> None:
    record = read_record(corpus("katrain.sgf"))
    assert record.info.application == "KaTrain:1.14.0" and record.info.rules_name == "JP"
    assert record.info.rules == Rules.from_name("japanese") and record.info.rules_known
    assert record.info.result is not None and str(record.info.result) == "W+R"
    assert record.root is not None and record.root.get("KTV") == "1.0"
    first = record.root.children[0]
    assert first.get_all("KT") == ["eyJyb290SW5mbyI6eyJzY29yZUxlYWQiOi02LjJ9fQ==", "RG9uZQ=="]
    assert record.moves[0].comment is not None
    assert record.moves[0].comment.startswith("Move 1: B D16\nScore: W+6.2")
    assert len(record.moves) == 8


def test_ff3_record() -> None:
    record = read_record(corpus("ff3_lowercase.sgf"))
    info = record.info
    assert (info.black, info.white, info.black_rank, info.white_rank) == (
        "Kitani Minoru", "Go Seigen", "5d", "5d"
    )  # fmt: skip
    assert info.komi == 0 and info.date == "1933-10-16"
    assert info.result == Result(Color.WHITE, ResultReason.SCORE, 2.0)
    assert info.comment == "From an old FF[3] archive."
    assert [m.color for m in record.moves] == ["B", "W", "B", "W", "B", "W"]
    assert record.moves[4].comment == "Old files mix long and short names."
    assert record.root is not None and record.root.get("FF") == "3"


def test_handicap_record() -> None:
    record = read_record(corpus("handicap.sgf"))
    assert record.info.handicap == 4 and record.info.komi == 0.5
    assert record.setup_black == [(3, 3), (15, 3), (3, 15), (15, 15)]
    assert record.player_to_move == "W" and record.moves[0].color == "W"
    assert record.info.result is not None and record.info.result.margin == 15.5
    text = record.to_sgf()
    assert "HA[4]" in text and "AB[dd][pd][dp][pp]" in text and "PL[W]" in text


def test_chinese_records() -> None:
    record = read_record(corpus("chinese_rules.sgf"))
    assert record.info.rules == Rules.from_name("chinese") and record.info.komi == 7.5
    assert record.info.result == Result.resignation(Color.BLACK)
    assert (record.info.event, record.info.round) == ("Mock Cup", "Final, game 1")
    assert len(record.moves) == 28
    old = read_record(corpus("chinese_old_komi.sgf"))
    assert old.info.komi == 7.5 and old.info.komi_raw == "375"
    assert old.info.black == "黑"


def test_pass_and_rectangular_records() -> None:
    record = read_record(corpus("pass.sgf"))
    assert record.info.size == (9, 9)
    assert [m.point for m in record.moves[-2:]] == [None, None]
    rect = read_record(corpus("rectangular.sgf"))
    assert rect.info.size == (19, 13) and rect.info.rules.name == "tromp-taylor"
    assert [m.point for m in rect.moves] == [(18, 12), (0, 0), (9, 6), None, None]
    assert "SZ[19:13]" in rect.to_sgf()


def test_compressed_setup_record() -> None:
    record = read_record(corpus("compressed_setup.sgf"))
    assert record.setup_black == [(x, y) for y in range(3) for x in range(3)] + [(4, 4)]
    assert record.setup_white == [(x, y) for y in range(6, 9) for x in range(6, 9)] + [(0, 8)]
    assert record.setup_empty == [(1, 1)] and record.player_to_move == "B"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "(;GM[1]SZ[19];B[zz])",
            "line 1, column 14: bad point 'zz': off the 19x19 board in move B[zz]",
        ),
        ("(;SZ[9];B[jj])", "off the 9x9 board"),
        ("(;SZ[9]\n;B[aa]W[bb])", "line 2, column 1: a node has both a black and a white move"),
        ("(;SZ[abc])", "line 1, column 2: bad board size SZ[abc]"),
        ("(;SZ[0])", "bad board size SZ[0]: 1 to 52 only"),
        ("(;SZ[53])", "bad board size"),
        ("(;SZ[9]AB[aa:zz])", "in setup stones"),
        ("(;GM[2])", "not a game of Go: GM[2]"),
    ],
)
def test_record_errors(text: str, message: str) -> None:
    with pytest.raises(SgfError, match=re.escape(message)):
        read_record(text)


def test_record_warnings() -> None:
    record = read_record("(;KM[lots]RU[Ing]HA[x];B[aa];AB[bb];W[cc])")
    assert record.info.komi == 0 and record.info.handicap == 0
    assert record.info.rules_name == "Ing" and not record.info.rules_known
    assert len(record.warnings) == 2
    assert any("KM[lots]" in w for w in record.warnings)
    assert any("RU[Ing]" in w for w in record.warnings)
    # set-up after the root is no longer skipped: it is part of the record
    assert [(s.before_move, s.black) for s in record.setups] == [(1, [(1, 1)])]


def test_record_defaults_and_colours() -> None:
    record = read_record("(;PL[white])", default_rules="chinese")
    assert record.info.size == (19, 19) and record.info.rules.name == "chinese"
    assert record.player_to_move == "W" and record.moves == []
    assert read_record("(;PL[?])").player_to_move is None


# --------------------------------------------------------------------------- export


def test_record_to_sgf_export() -> None:
    info = GameInfo(
        width=19,
        height=19,
        komi=6.5,
        rules=Rules.from_name("japanese"),
        result=Result.parse("W+R"),
        black="alice",
        white="bob]\\",
        black_rank="3k",
        date="2026-11-27",
        time_limit=600,
        overtime="5x30 byo-yomi",
        comment="Played on goapp",
    )
    moves = [
        Move("B", (15, 3), time_left=598.25),
        Move("W", (3, 15), comment="hi"),
        Move("B", None),
        Move("W", (16, 16)),
    ]
    text = record_to_sgf(info, moves)
    assert text.startswith(f"(;GM[1]FF[4]CA[UTF-8]AP[goapp:{__version__}]SZ[19]KM[6.5]RU[Japanese]")
    assert "PW[bob\\]\\\\]" in text and "RE[W+R]" in text and "TM[600]" in text
    assert ";B[pd]BL[598.25];W[dp]C[hi];B[];W[qq]" in text
    back = read_record(text)
    assert back.moves == moves
    assert back.info.white == "bob]\\" and back.info.result == Result.resignation(Color.WHITE)
    assert back.info.application == f"goapp:{__version__}"
    assert record_to_sgf(info, moves, application="test:1").count("AP[test:1]") == 1


def test_record_to_sgf_handicap_and_rejects_off_board() -> None:
    info = GameInfo(width=9, height=9, komi=0.5, handicap=2, rules=Rules.from_name("aga"))
    text = record_to_sgf(
        info, [Move("W", (4, 4))], setup_black=[(2, 6), (6, 2)], player_to_move="W"
    )
    assert "HA[2]" in text and "AB[cg][gc]" in text and "PL[W]" in text and "RU[AGA]" in text
    with pytest.raises(ValueError, match="off the 9x9 board"):
        record_to_sgf(info, [Move("B", (9, 0))])
    with pytest.raises(ValueError, match="colour"):
        record_to_sgf(info, [Move("X", (1, 1))])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- property tests

_idents = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=3)
_values = st.text(max_size=12) | st.sampled_from(["", "]", "\\", "\\\n", "a\r\nb", ":", "[x]"])
_properties = st.dictionaries(_idents, st.lists(_values, min_size=1, max_size=3), max_size=4)


@st.composite
def trees(draw: st.DrawFn) -> Node:
    root = Node(draw(_properties))
    nodes = [root]
    for _ in range(draw(st.integers(0, 25))):
        parent = draw(st.sampled_from(nodes))
        nodes.append(parent.add_child(Node(draw(_properties))))
    return root


@settings(max_examples=300, deadline=None)
@given(trees(), st.integers(10, 100))
def test_hypothesis_round_trip(tree: Node, width: int) -> None:
    text = write_sgf(tree, line_width=width)
    parsed = parse_sgf(text)
    assert parsed == tree
    assert write_sgf(parsed, line_width=width) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(trees(), min_size=1, max_size=3))
def test_hypothesis_collection_round_trip(collection: list[Node]) -> None:
    assert parse_collection(write_sgf(collection)) == collection


def _parse_or_sgf_error(data: str | bytes) -> None:
    try:
        trees_ = parse_collection(data, max_nodes=5_000)
    except SgfError as exc:
        assert str(exc)
    else:
        for tree in trees_:
            text = write_sgf(tree)
            assert parse_sgf(text) == tree
            with contextlib.suppress(SgfError):
                GameRecord.from_tree(tree)


_SGF_ALPHABET = st.sampled_from([*"();[]\\:\n \tABWCabpd19+.", "é", "\x00", "\r"])


@pytest.mark.timeout(300)  # never hangs: bounded by a generous timeout, not timed
@settings(max_examples=400, deadline=None)
@given(st.text(_SGF_ALPHABET, max_size=60) | st.text(max_size=60))
def test_fuzz_text(data: str) -> None:
    _parse_or_sgf_error(data)
    _parse_or_sgf_error("(;" + data)


@pytest.mark.timeout(300)  # never hangs: bounded by a generous timeout, not timed
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_bytes(data: bytes) -> None:
    _parse_or_sgf_error(data)
    _parse_or_sgf_error(b"(;CA[" + data[:8] + b"]" + data)


_CORPUS_BYTES = [p.read_bytes() for p in CORPUS_FILES]


@st.composite
def mutated_corpus(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_CORPUS_BYTES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"(", b")", b";", b"[", b"]", b"\\", b"B", b"\xff"])
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 5))]
        elif op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


@pytest.mark.timeout(300)  # never hangs: bounded by a generous timeout, not timed
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_corpus())
def test_fuzz_corpus_mutations(data: bytes) -> None:
    _parse_or_sgf_error(data)


@pytest.mark.parametrize(
    "data",
    [
        "(;" + "A" * 200_000,
        "(;A" + "[" * 200_000,
        "(;A" + "[]" * 100_000 + "[",
        "(;A[" + "\\" * 200_001,
        "(" * 200_000,
        " " * 200_000 + "#",
        "(;" + ";" * 100_000 + "B[aa]" * 10 + "C",
        "(;" + "(;" * 100_000,
    ],
    ids=["letters", "brackets", "values", "backslashes", "parens", "spaces", "nodes", "nesting"],
)
@pytest.mark.timeout(60)  # linear work: milliseconds; a quadratic scan would take hours
def test_pathological_inputs_do_not_hang(data: str) -> None:
    with pytest.raises(SgfError):
        parse_collection(data)


# --------------------------------------------------------------------------- replay into the core


def test_replay_ko_fight_game() -> None:
    from goapp.rules import Color

    record = read_record(corpus("kgs_ko_fight_9x9.sgf"))
    assert len(record.moves) == 19
    game = replay(record)
    assert (game.width, game.height, game.komi) == (9, 9, 6.5)
    assert game.rules == Rules.from_name("japanese")
    assert game.move_number == 19 and game.is_over
    board = game.board
    # the ko was taken three times and finally connected by Black at E5 = (4, 4)
    assert board[4, 4] == Color.BLACK and board[5, 4] == Color.BLACK
    assert board[1, 1] == Color.WHITE
    assert [t.captures for t in game.history if t.captures] == [1, 1, 1]


def test_replay_immediate_ko_recapture_is_an_sgf_error() -> None:
    text = corpus("kgs_ko_fight_9x9.sgf").decode().replace(";W[hg]", ";W[ee]", 1)
    with pytest.raises(SgfError, match=r"move 10 \(W\[ee\]\) is illegal") as info:
        replay(read_record(text))
    assert info.value.__cause__ is not None


def test_replay_handicap_pass_and_rectangular() -> None:
    from goapp.rules import Color

    game = replay(read_record(corpus("handicap.sgf")))
    assert game.handicap == 4 and game.komi == 0.5
    assert game.board[3, 3] == Color.BLACK and game.board[16, 13] == Color.WHITE
    game = replay(read_record(corpus("pass.sgf")))
    assert game.is_over and game.rules == Rules.from_name("chinese")
    game = replay(read_record(corpus("rectangular.sgf")))
    assert (game.width, game.height) == (19, 13) and game.board[18, 12] == Color.BLACK


@pytest.mark.parametrize(
    "name",
    ["kgs_cgoban.sgf", "ogs.sgf", "sabaki_variations.sgf", "katrain.sgf", "chinese_rules.sgf"],
)
def test_replay_corpus_games(name: str) -> None:
    record = read_record(corpus(name))
    game = replay(record)
    assert game.move_number == len(record.moves)


def test_replay_errors_and_fill_passes() -> None:
    with pytest.raises(SgfError, match=r"move 2 \(B\[bb\]\) is played out of turn: White"):
        replay(read_record("(;SZ[9];B[aa];B[bb])"))
    game = replay(read_record("(;SZ[9];B[aa];B[bb])"), fill_passes=True)
    assert game.move_number == 3
    with pytest.raises(SgfError, match="is illegal"):
        replay(read_record("(;SZ[9];B[aa];W[aa])"))
    with pytest.raises(SgfError, match="not supported: 2 to 25 only"):
        replay(read_record("(;SZ[52];B[aa])"))


def test_record_result_is_the_core_result() -> None:
    """GameInfo.result is goapp.rules.Result: what the core computes is what SGF writes."""
    for text in ["B+3.5", "W+R", "B+T", "W+F", "B+", "0", "Void", "?", "Black wins"]:
        record = read_record(f"(;SZ[9]RE[{text}])")
        assert isinstance(record.info.result, Result)
        assert str(record.info.result) == text
        assert f"RE[{text}]" in record.to_sgf()  # unreadable text round-trips as it was
    assert read_record("(;RE[nonsense])").info.result == Result.unknown("nonsense")
    assert read_record("(;RE[W+12.5])").info.result == Result(Color.WHITE, ResultReason.SCORE, 12.5)
    assert read_record("(;SZ[9])").info.result is None
    game = replay(read_record("(;SZ[9]KM[6.5];B[ee];W[];B[])"))
    info = GameInfo(width=9, height=9, komi=6.5, result=game.result())
    assert read_record(record_to_sgf(info, [])).info.result == game.result()


# --------------------------------------------------------------------------- files as they exist
# Shapes of real files from public collections (issue 15), each written small here.


def _stones(game: object) -> tuple[list[str], list[str]]:
    """(black, white) stones of a replayed game, as sorted SGF points."""
    from goapp.rules import Game

    assert isinstance(game, Game)
    board = game.board
    return (
        sorted(point_to_sgf(game.xy(loc)) for loc in board.stones(Color.BLACK)),
        sorted(point_to_sgf(game.xy(loc)) for loc in board.stones(Color.WHITE)),
    )


def test_point_list_bomb_is_refused_before_any_expansion() -> None:
    """SZ[52] passes the SGF size check but no board of the core: refused first, so the
    142,857 rectangles of a 1 MB upload are never expanded (no point is visited)."""
    bomb = "(;GM[1]SZ[52]AB" + "[aa:ZZ]" * 142_857 + ")"
    assert len(bomb) < 1024 * 1024
    root = parse_sgf(bomb)
    budget = PointBudget(DEFAULT_POINT_BUDGET)
    with pytest.raises(SgfError, match=r"SZ\[52\] is not supported: 2 to 25 only"):
        GameRecord.from_tree(root, point_budget=budget)
    assert budget.spent == 0


def test_point_list_expansion_is_bounded_by_the_board() -> None:
    # the same rectangle 142,857 times is expanded once: 361 (the node) + 342 points
    root = parse_sgf("(;GM[1]SZ[19]AB" + "[aa:sr]" * 142_857 + ")")
    budget = PointBudget(DEFAULT_POINT_BUDGET)
    record = GameRecord.from_tree(root, point_budget=budget)
    assert len(record.setup_black) == 19 * 18
    assert budget.spent == 361 + 342
    # once the whole board is listed, later rectangles are only checked
    budget = PointBudget(10_000)
    points = expand_points(["aa:ss", "ab:ss", "ba:sr", "cc:dd"], 19, budget=budget)
    assert len(points) == 361 and budget.spent == 361
    # 22,464 different rectangles on 25x25 (157 KB): stopped at the budget, not expanded
    letters = "abcdefghijklmnopqrstuvwxy"
    rects = "".join(
        f"[{letters[a]}{letters[b]}:{letters[c]}{letters[d]}]"
        for a in range(12)
        for b in range(12)
        for c in range(12, 24)
        for d in range(12, 25)
    )
    budget = PointBudget(DEFAULT_POINT_BUDGET)
    with pytest.raises(SgfError, match="too many set-up points"):
        GameRecord.from_tree(parse_sgf(f"(;GM[1]SZ[25]AB{rects})"), point_budget=budget)
    assert DEFAULT_POINT_BUDGET < budget.spent <= DEFAULT_POINT_BUDGET + 25 * 25
    # a set-up node costs its board's area too: 200,000 one-stone edits stop at the budget
    budget = PointBudget(DEFAULT_POINT_BUDGET)
    with pytest.raises(SgfError, match="too many set-up points"):
        GameRecord.from_tree(parse_sgf("(;SZ[25]" + ";AB[aa]" * 10_000 + ")"), point_budget=budget)
    assert budget.spent <= DEFAULT_POINT_BUDGET + 25 * 25 + 1


def test_upload_path_refuses_the_bomb() -> None:
    from goapp.server.api.games import review_sgf

    with pytest.raises(SgfError, match="not supported"):
        review_sgf(("(;GM[1]SZ[52]AB" + "[aa:ZZ]" * 142_857 + ")").encode())


def test_player_to_move_is_honoured() -> None:
    game = replay(read_record(corpus("player_white_first.sgf")))
    assert game.move_number == 3 and _stones(game) == (["cc"], ["ee", "gg"])
    game = replay(read_record("(;SZ[9]AB[cc][gg]PL[B];B[ee])"))
    assert _stones(game) == (["cc", "ee", "gg"], []) and game.handicap == 0
    assert game.to_move == Color.WHITE
    # CGoban 2 writes PL beside a move: the player after that move
    game = replay(read_record(corpus("pl_beside_move.sgf")))
    assert game.move_number == 4 and game.to_move == Color.BLACK


def test_setup_after_the_root_is_applied() -> None:
    game = replay(read_record("(;GM[1]SZ[9];AB[cc]AW[dd];B[ee])"))
    assert _stones(game) == (["cc", "ee"], ["dd"])
    # set-up between moves: AE clears a stone, AB adds one, and the next move follows
    game = replay(read_record(corpus("setup_mid_game.sgf")))
    assert _stones(game) == (["cg", "ee"], ["dd", "gc", "gg"])
    assert game.move_number == 3
    with pytest.raises(IndexError, match="edited"):
        game.undo()
        game.undo()  # the edit came after move 2: taking it back would be wrong
    # Fox writes the handicap stones in the node after the root
    game = replay(read_record(corpus("fox_handicap_second_node.sgf")))
    assert game.handicap == 2 and sorted(point_to_sgf(game.xy(h)) for h in game.handicap_locs) == [
        "dp",
        "pd",
    ]
    assert _stones(game) == (["ce", "dp", "pd", "qn"], ["dc", "pp"])


def test_setup_that_no_game_can_hold_is_an_error_not_another_position() -> None:
    # a white stone without liberties: SGF allows writing it, the core cannot hold it
    with pytest.raises(SgfError, match="cannot set up the game"):
        replay(read_record("(;SZ[9]AB[ab][ba]AW[aa];B[ee])"))
    with pytest.raises(SgfError, match="cannot apply the set-up before move 2"):
        replay(read_record("(;SZ[9];B[ab];AB[ba]AW[aa];W[ee])"))


def test_root_with_white_or_removed_stones_or_one_black_stone() -> None:
    game = replay(read_record(corpus("problem_root_aw_ae.sgf")))
    assert game.handicap == 0 and game.move_number == 3
    black, white = _stones(game)
    assert "sc" in black and "sd" in white and "pc" in white
    game = replay(read_record(corpus("single_black_stone.sgf")))
    assert _stones(game) == (["dd", "pd"], ["dp"]) and game.handicap == 0
    game = replay(read_record(corpus("compressed_setup.sgf")))
    assert game.board[1, 1] == 0  # AE[bb] cleared the rectangle's stone


def test_katago_rules_strings_are_read_and_written() -> None:
    rules, known = rules_from_sgf("koPOSITIONALscoreAREAtaxNONEsui1")
    assert known and rules == Rules.from_name("tromp-taylor")
    rules, known = rules_from_sgf("koSITUATIONALscoreAREAtaxNONEsui0button1whbN-1")
    assert known and rules == Rules.from_name("aga").with_options(
        button=True, friendly_pass_ok=False
    )
    rules, known = rules_from_sgf("koSIMPLEscoreTERRITORYsui0komi6.5")
    assert known and rules == Rules.from_name("japanese")  # tax follows the scoring
    assert rules_from_sgf("koBOGUSscoreAREA") == (Rules.from_name("japanese"), False)
    custom = Rules.from_name("chinese").with_options(button=True)
    assert rules_to_sgf(custom) == "koSIMPLEscoreAREAtaxNONEsui0button1whbNfpok1"
    assert rules_from_sgf(rules_to_sgf(custom)) == (custom, True)
    # a multi-stone suicide that KataGo's sui1 allows replays (Japanese would refuse it)
    record = read_record(corpus("katago_rules_suicide.sgf"))
    assert record.info.rules_known and record.info.rules.suicide
    game = replay(record)
    assert _stones(game) == (["ac", "bb", "ca", "ee"], [])
    assert game.board.captures(Color.BLACK) == 3


def test_fox_zero_margin_keeps_the_winner() -> None:
    assert str(read_record(corpus("fox_handicap_second_node.sgf")).info.result) == "B+"
    result = read_record("(;RE[W+0.0])").info.result
    assert result is not None and result.winner == Color.WHITE
    assert read_record("(;RE[0])").info.result == Result.draw()


def test_one_bad_byte_garbles_only_its_value() -> None:
    root = parse_sgf(corpus("one_bad_byte.sgf"))
    assert root.get("PB") == "李昌镐"  # valid UTF-8, as declared
    assert root.get("PW") == "Ångström"  # the one Latin-1 value, decoded on its own
    assert root.get("C") == "Zürich"
    gb = "(;CA[GB2312]PB[柯洁]PW[".encode("gb18030") + b"x\x80y])"  # 0x80 is no GB18030 lead
    root = parse_sgf(gb)
    assert root.get("PB") == "柯洁" and root.get("PW") == "x\x80y"


@pytest.mark.parametrize(
    "name", ["text_around.sgf", "utf16_bom.sgf", "utf16be_no_bom.sgf", "utf32le_no_bom.sgf"]
)
def test_text_around_the_tree_and_wide_encodings(name: str) -> None:
    record = read_record(corpus(name))
    assert record.moves[0] == Move("B", (4, 4))
    if name != "text_around.sgf":
        assert record.info.black == "Jürgen"
    if name == "utf16_bom.sgf":
        assert record.info.white == "李昌镐"


def test_text_between_and_after_game_trees() -> None:
    games = parse_collection("Games:\n(;GN[a])\n-- next --\n(;GN[b]))\x1a")
    assert [g.get("GN") for g in games] == ["a", "b"]
    with pytest.raises(SgfError, match="expected '\\('"):
        parse_collection("(;B[aa])\n;W[bb])")  # moves after the tree are not dropped
