"""Names are checked whole: nothing may trail a valid name (not even a newline)."""

from __future__ import annotations

import pytest

from protocol.errors import RemoteProtocolError
from protocol.identity import check_forum_id, check_node_name, parse_member_id
from protocol.keys import SigningKey, VerifyKey
from protocol.log import Event
from protocol.schema import sig


@pytest.mark.parametrize("name", ["acme.example", "127.0.0.1:8701", "[::1]:8700", "a-b.c"])
def test_valid_node_names(name: str) -> None:
    assert check_node_name(name) == name


@pytest.mark.parametrize(
    "name", ["acme.example\n", "Acme.example", "acme.example:0", "acme.example:65536", "", "-a.b"]
)
def test_invalid_node_names(name: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        check_node_name(name)
    assert info.value.code == "identity.bad_node_name"


@pytest.mark.parametrize("mid", ["@alice:acme.example\n", "@Alice:acme.example", "alice:acme"])
def test_invalid_member_ids(mid: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_member_id(mid)
    assert info.value.code == "identity.bad_member_id"


def test_forum_id_with_trailing_newline_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        check_forum_id("!" + "A" * 22 + ":acme.example\n")


def test_wrong_length_signature_is_sig_invalid_everywhere() -> None:
    # §3.3: a signature that is not 64 bytes cannot verify.
    with pytest.raises(RemoteProtocolError) as info:
        sig(b"\0" * 63, "x")
    assert info.value.code == "sig.invalid"
    key = SigningKey(b"\1" * 32)
    with pytest.raises(RemoteProtocolError) as info:
        VerifyKey(key.verify_key.raw).verify(b"m", b"\0" * 10)
    assert info.value.code == "sig.invalid"
    with pytest.raises(RemoteProtocolError) as info:
        Event.from_wire(
            {
                "v": 1,
                "forum": "!" + "A" * 22 + ":acme.example",
                "type": "post",
                "author": "@a:acme.example",
                "kid": key.key_id,
                "ts": 1,
                "nonce": b"\0" * 16,
                "epoch": 1,
                "body": {},
                "sig": b"\0" * 63,
            }  # fmt: skip
        )
    assert info.value.code == "sig.invalid"


def test_non_ascii_digits_are_not_an_address() -> None:
    # Python's \d matches Arabic-Indic digits; the browser's does not. Both must refuse.
    with pytest.raises(RemoteProtocolError):
        check_node_name("١.٢.٣.٤")
