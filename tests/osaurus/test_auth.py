"""API keys: where they come from, how a call presents one, and how they are compared."""

from __future__ import annotations

import hmac

import pytest

from osaurus import auth
from osaurus.auth import ApiKeys, Role, key_from_metadata
from osaurus.errors import InvalidArgument


def test_no_key_means_no_authentication() -> None:
    keys = ApiKeys()
    assert not keys.enabled and keys.check(None) and keys.check("anything")


def test_keys_from_flags_and_file(tmp_path) -> None:
    file = tmp_path / "keys"
    file.write_text("# operators\nk2\n\n  k3  \n")
    keys = ApiKeys(["k1"], file)
    assert keys.enabled
    assert all(keys.check(k) for k in ("k1", "k2", "k3"))
    assert not any(keys.check(k) for k in (None, "", "k", "k1 ", "K1", "# operators"))


def test_roles_from_flags_and_file(tmp_path) -> None:
    file = tmp_path / "keys"
    file.write_text("a2\nr2 read-only\na3 admin\nr1 admin\n")
    keys = ApiKeys(["a1"], file, read_only=["r1"])
    assert [keys.role(k) for k in ("a1", "a2", "a3")] == [Role.ADMIN] * 3
    assert keys.role("r1") is keys.role("r2") is Role.READ_ONLY  # the flag's role wins for r1
    assert keys.role("nope") is None and keys.role(None) is None
    assert ApiKeys().role(None) is Role.ADMIN  # no keys: no roles either


@pytest.mark.parametrize("line", ["k1 reader", "k1 read-only extra"])
def test_a_key_file_line_with_an_unknown_role_is_an_error(tmp_path, line) -> None:
    file = tmp_path / "keys"
    file.write_text(f"ok\n{line}\n")
    with pytest.raises(InvalidArgument, match="line 2: expected KEY or KEY followed by") as info:
        ApiKeys([], file)
    assert "k1" not in str(info.value)  # a key is never repeated in a message


def test_reload_reads_the_file_again_and_keeps_the_keys_when_it_cannot(tmp_path) -> None:
    file = tmp_path / "keys"
    file.write_text("old\n")
    keys = ApiKeys([], file)
    file.write_text("new\n")
    keys.reload()
    assert keys.check("new") and not keys.check("old")
    file.unlink()
    keys.reload()  # logged; the server goes on with what it had
    assert keys.check("new")


def test_an_unreadable_key_file_at_start_is_an_error(tmp_path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read the API key file"):
        ApiKeys([], tmp_path / "missing")


def test_every_key_is_compared_in_constant_time(monkeypatch) -> None:
    compared, real = [], hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = ApiKeys(["first", "second", "third"])
    assert keys.check("first")
    assert compared == [b"first", b"second", b"third"]  # no early exit on the match


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ([("authorization", "Bearer abc")], "abc"),
        ([("authorization", "bearer  abc ")], "abc"),
        ([("x-api-key", "abc")], "abc"),
        ([("authorization", "Basic abc")], None),
        ([("user-agent", "x")], None),
        ([], None),
    ],
)
def test_the_key_a_call_presents(metadata, key) -> None:
    assert key_from_metadata(metadata) == key
