"""Search's folding and snippets (gateway/search/fold.py), and migrations of one number per
dialect (0013)."""

from __future__ import annotations

import pytest

from gateway.search.fold import fold, highlight, query_terms
from gateway.store.migrations import for_dialect, load_migrations


def test_vietnamese_folds_to_ascii_letters() -> None:
    assert fold("Hà Nội") == "ha noi"
    assert fold("ĐÀ NẴNG đẹp") == "da nang dep"
    assert fold("người Việt ưởng ỹ") == "nguoi viet uong y"
    assert fold("Ha\u0300 No\u0302\u0323i") == "ha noi"  # decomposed input
    assert query_terms("  Hà-Nội, đẹp!!  ") == ["ha", "noi", "dep"]
    assert query_terms("!!!") == []
    assert len(query_terms(" ".join(["x"] * 20))) == 8


def test_snippets_are_escaped_marked_and_cut() -> None:
    assert highlight("a <script>Hà</script> b", ["ha"]) == "a &lt;script&gt;<mark>Hà</mark>&lt;/script&gt; b"
    assert highlight("Giao hàng", ["giao", "h"]) == "<mark>Giao</mark> <mark>hàng</mark>"
    assert highlight("gia giao", ["giao", "x"]) == "gia <mark>giao</mark>"  # only the last term is a prefix
    long = "x " * 200 + "Hà Nội" + " y" * 200
    snip = highlight(long, ["ha", "noi"], width=60)
    assert snip.startswith("…") and snip.endswith("…") and "<mark>Hà</mark> <mark>Nội</mark>" in snip
    assert len(snip) < 100
    assert highlight("nothing here", ["zz"]) == "nothing here"


def test_dialect_migrations_share_a_version() -> None:
    thirteen = [(m.version, m.dialect) for m in load_migrations() if m.version == 13]
    assert thirteen == [(13, "postgres"), (13, "sqlite")]


def test_dialect_files_load_and_clash(tmp_path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "0002_b.sqlite.sql").write_text("SELECT 2;\n")
    (tmp_path / "0002_b.postgres.sql").write_text("SELECT 3;\n")
    loaded = load_migrations(tmp_path)
    assert [m.statements for m in for_dialect(loaded, "sqlite")] == [("SELECT 1",), ("SELECT 2",)]
    assert [m.statements for m in for_dialect(loaded, "postgres")] == [("SELECT 1",), ("SELECT 3",)]
    (tmp_path / "0002_c.sql").write_text("SELECT 4;\n")  # shared and dialect files of one version
    with pytest.raises(ValueError, match="duplicate"):
        load_migrations(tmp_path)
    (tmp_path / "0002_c.sql").unlink()
    (tmp_path / "0002_c.sqlite.sql").write_text("SELECT 4;\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_migrations(tmp_path)
