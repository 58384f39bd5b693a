"""`@record` (gateway/core/records.py): value semantics at run time, frozen for the type checker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mypy import api as mypy_api

from gateway.core.domain import AuthorType, NewMessage


def test_records_compare_and_hash_by_value_and_copy_with_replace() -> None:
    a = NewMessage(author_type=AuthorType.CONTACT, author_id="c1", text="hi", client_id="k")
    b = NewMessage(author_type=AuthorType.CONTACT, author_id="c1", text="hi", client_id="k")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    c = dataclasses.replace(a, text="other")
    assert c != a and c.text == "other" and a.text == "hi"
    assert not hasattr(a, "__dict__")  # slotted


def test_the_type_checker_refuses_assigning_to_a_field(tmp_path: Path) -> None:
    src = tmp_path / "assign.py"
    src.write_text(
        "from gateway.core.domain import AuthorType, NewMessage\n"
        "m = NewMessage(author_type=AuthorType.CONTACT, author_id=None, text='x')\n"
        "m.text = 'changed'\n"
    )
    out, _, status = mypy_api.run([str(src), "--follow-imports=silent", "--no-incremental",
                                   "--cache-dir", str(tmp_path / "cache")])
    assert status == 1, out
    assert 'Property "text" defined in "NewMessage" is read-only' in out

