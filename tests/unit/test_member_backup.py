"""The passphrase-protected profile backup (cli/member/backup.py, specs/profile.md).

No node: a profile is made by hand. Argon2id runs with tiny parameters passed
explicitly (the CLI's default, RFC 9106's 64 MiB / t=3 / p=4, is checked for being the
default, and run once by the integration test)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from cli.client_cmds import client
from cli.member import backup as B
from cli.member.profile import Profile
from protocol.codec import decode, encode

FAST = B.KdfParams(m_kib=64, t=1, p=1)
PASS = "correct horse battery staple"
TOKEN = "session-token-must-not-leave-7c1e"
SECRET = bytes(range(32))


def _profile(root: Path) -> Profile:
    p = Profile(root)
    sign, _ = p.create_device(os.urandom)
    p.save_settings(node_url="https://acme.example", node="acme.example",
                    member="@alice:acme.example", kid=sign.key_id, token=TOKEN,
                    token_expires_ms=123)  # fmt: skip
    p.save_epoch_secret("F1:acme.example", 1, SECRET)
    p.save_epoch_secret("F1:acme.example", 2, bytes(32))
    p.save_epoch_secret("F2:beta.example", 7, b"\x07" * 32)
    p.pin_descriptor("acme.example", b"acme-descriptor")
    p.pin_descriptor("beta.example", b"beta-descriptor")
    return p


@pytest.fixture
def made(tmp_path: Path) -> tuple[Profile, Path]:
    p = _profile(tmp_path / "old")
    out = tmp_path / "alice.pfkeys"
    B.backup_profile(p.root, out, PASS, params=FAST)
    return p, out


def test_round_trip_restores_keys_epochs_and_pins_but_not_the_token(
    made: tuple[Profile, Path], tmp_path: Path
) -> None:
    old, out = made
    got = B.restore_profile(out, tmp_path / "new", PASS)
    assert got == {"profile": str(tmp_path / "new"), "member": "@alice:acme.example",
                   "node": "acme.example", "kid": old.device()[0].key_id,
                   "forums": 2, "epochs": 3, "nodes": 2}  # fmt: skip
    new = Profile(tmp_path / "new")
    (s1, a1), (s2, a2) = old.device(), new.device()
    assert (s1.seed, a1.secret) == (s2.seed, a2.secret)
    assert new.epoch_secrets() == old.epoch_secrets()
    assert new.pinned_descriptors() == old.pinned_descriptors()
    settings = new.settings()
    assert settings["token"] is None and settings["token_expires_ms"] is None
    assert {k: settings[k] for k in B.PROFILE_FIELDS} == {
        k: old.settings()[k] for k in B.PROFILE_FIELDS
    }
    assert stat.S_IMODE(new.root.stat().st_mode) == 0o700
    for f in new.root.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert not [f for f in tmp_path.iterdir() if ".restore-" in f.name]  # staging removed


def test_the_backup_never_holds_the_session_token(made: tuple[Profile, Path]) -> None:
    _, out = made
    plain = B.open_sealed(out.read_bytes(), PASS)
    assert TOKEN.encode() not in encode(plain)
    assert set(plain["profile"]) == {"node_url", "node", "member", "kid"}
    assert TOKEN.encode() not in out.read_bytes()


def test_keys_only_leaves_out_epochs_and_pins(tmp_path: Path) -> None:
    p = _profile(tmp_path / "old")
    r = B.backup_profile(p.root, tmp_path / "k", PASS, params=FAST, keys_only=True)
    assert (r["forums"], r["epochs"], r["nodes"]) == (0, 0, 0)
    B.restore_profile(tmp_path / "k", tmp_path / "new", PASS)
    assert sorted(f.name for f in (tmp_path / "new").iterdir()) == ["device.json", "profile.json"]


def test_wrong_passphrase_is_named_and_writes_nothing(
    made: tuple[Profile, Path], tmp_path: Path
) -> None:
    _, out = made
    with pytest.raises(B.BackupError) as err:
        B.restore_profile(out, tmp_path / "new", PASS + "!")
    assert err.value.code == "backup.passphrase" and "wrong passphrase" in err.value.message
    assert not (tmp_path / "new").exists()


def test_a_tampered_ciphertext_byte_is_named(made: tuple[Profile, Path], tmp_path: Path) -> None:
    _, out = made
    data = bytearray(out.read_bytes())
    data[-20] ^= 0x01  # inside the ciphertext
    out.write_bytes(bytes(data))
    with pytest.raises(B.BackupError) as err:
        B.restore_profile(out, tmp_path / "new", PASS)
    assert err.value.code == "backup.damaged" and "altered" in err.value.message
    assert not (tmp_path / "new").exists()


def test_every_single_byte_change_is_refused(made: tuple[Profile, Path]) -> None:
    """Header (AAD), parameters, salt, nonce, check, ciphertext, tag: no flipped bit
    anywhere opens, and each failure is a BackupError with a message."""
    _, out = made
    data = out.read_bytes()
    codes = set()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x10
        with pytest.raises(B.BackupError) as err:
            B.open_sealed(bytes(bad), PASS)
        assert err.value.message
        codes.add(err.value.code)
    assert {"backup.damaged", "backup.passphrase", "backup.format"} <= codes
    assert B.open_sealed(data, PASS)["profile"]["member"] == "@alice:acme.example"


def test_truncated_or_foreign_files_are_not_backups(tmp_path: Path) -> None:
    for data in (b"", b"{}", json.dumps({"sign_seed": "x"}).encode(), os.urandom(300),
                 encode(["other.format", 1, {}, b""])):  # fmt: skip
        with pytest.raises(B.BackupError) as err:
            B.open_sealed(data, PASS)
        assert err.value.code == "backup.format"
    p = _profile(tmp_path / "p")
    B.backup_profile(p.root, tmp_path / "f", PASS, params=FAST)
    with pytest.raises(B.BackupError) as err:
        B.open_sealed((tmp_path / "f").read_bytes()[:-1], PASS)
    assert err.value.code == "backup.format"


def test_a_newer_version_is_refused_by_name(made: tuple[Profile, Path]) -> None:
    _, out = made
    value = decode(out.read_bytes(), B.LIMITS)
    value[1] = 2
    with pytest.raises(B.BackupError) as err:
        B.open_sealed(encode(value, B.LIMITS), PASS)
    assert err.value.code == "backup.unsupported" and "version 2" in err.value.message


def test_file_is_0600_from_creation_even_with_an_open_umask(tmp_path: Path) -> None:
    p = _profile(tmp_path / "p")
    old = os.umask(0)
    try:
        B.backup_profile(p.root, tmp_path / "b", PASS, params=FAST)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []


def test_refuses_to_overwrite_without_force(made: tuple[Profile, Path]) -> None:
    p, out = made
    before = out.read_bytes()
    with pytest.raises(B.BackupError) as err:
        B.backup_profile(p.root, out, PASS, params=FAST)
    assert err.value.code == "backup.exists" and "--force" in err.value.message
    assert out.read_bytes() == before
    B.backup_profile(p.root, out, PASS, params=FAST, force=True)
    assert out.read_bytes() != before  # a fresh salt and nonce
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_restore_only_into_a_new_or_empty_directory(
    made: tuple[Profile, Path], tmp_path: Path
) -> None:
    _, out = made
    with pytest.raises(B.BackupError) as err:
        B.restore_profile(out, made[0].root, PASS)  # the live profile: never overwritten
    assert err.value.code == "backup.target"
    (tmp_path / "empty").mkdir()
    B.restore_profile(out, tmp_path / "empty", PASS)
    assert Profile(tmp_path / "empty").exists()


def test_short_passphrases_are_refused(tmp_path: Path) -> None:
    p = _profile(tmp_path / "p")
    with pytest.raises(B.BackupError) as err:
        B.backup_profile(p.root, tmp_path / "b", "short", params=FAST)
    assert err.value.code == "backup.weak_passphrase"
    assert not (tmp_path / "b").exists()


def test_passphrase_is_nfc_normalized(tmp_path: Path) -> None:
    p = _profile(tmp_path / "p")
    composed, decomposed = "caf\u00e9 au lait ok", "cafe\u0301 au lait ok"
    B.backup_profile(p.root, tmp_path / "b", composed, params=FAST)
    assert B.open_sealed((tmp_path / "b").read_bytes(), decomposed)["device"]


def test_default_parameters_are_rfc9106_second_option() -> None:
    assert (B.DEFAULT_PARAMS.m_kib, B.DEFAULT_PARAMS.t, B.DEFAULT_PARAMS.p) == (65536, 3, 4)


def test_parameters_are_stored_and_honoured(tmp_path: Path) -> None:
    """The file names its own Argon2id cost; opening uses exactly that (re-derived here
    by hand), and a file whose stored cost was changed no longer opens."""
    p = _profile(tmp_path / "p")
    params = B.KdfParams(m_kib=256, t=2, p=2)
    r = B.backup_profile(p.root, tmp_path / "b", PASS, params=params)
    assert r["kdf"] == {"alg": "argon2id", "m_kib": 256, "t": 2, "p": 2}
    data = (tmp_path / "b").read_bytes()
    fmt, version, header, ct = decode(data, B.LIMITS)
    assert (fmt, version) == ("peerforum.profile-backup", 1)
    kdf = header["kdf"]
    assert (kdf["alg"], kdf["m_kib"], kdf["t"], kdf["p"], len(kdf["salt"])) == (
        "argon2id", 256, 2, 2, 16)  # fmt: skip
    okm = Argon2id(salt=kdf["salt"], length=64, iterations=2, lanes=2,
                   memory_cost=256).derive(PASS.encode())  # fmt: skip
    assert okm[32:] == header["check"]
    aad = encode(["peerforum.profile-backup", 1, header])
    plain = decode(AESGCM(okm[:32]).decrypt(header["aead"]["nonce"], ct, aad), B.LIMITS)
    assert plain["device"]["sign_seed"] == p.device()[0].seed
    assert B.open_sealed(data, PASS) == plain  # no parameters given: read from the file

    for field, value in (("t", 3), ("m_kib", 512), ("p", 1)):
        changed = {**header, "kdf": {**kdf, field: value}}
        with pytest.raises(B.BackupError) as err:
            B.open_sealed(encode([fmt, version, changed, ct], B.LIMITS), PASS)
        assert err.value.code == "backup.passphrase", field


def test_parameters_out_of_bounds_are_refused_before_any_work(made: tuple[Profile, Path]) -> None:
    _, out = made
    fmt, version, header, ct = decode(out.read_bytes(), B.LIMITS)
    for field, value in (("m_kib", 1 << 40), ("t", 10_000), ("p", 0), ("m_kib", 4)):
        changed = {**header, "kdf": {**header["kdf"], field: value}}
        with pytest.raises(B.BackupError) as err:
            B.open_sealed(encode([fmt, version, changed, ct], B.LIMITS), PASS)
        assert err.value.code == "backup.unsupported", (field, value)


# ---------------------------------------------------------------------------- the commands


def _cli(*args: str, env: Mapping[str, str | None] | None = None) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(client, [*args, "--json"], env=env or {})
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_cli_refuses_without_a_passphrase_source_and_before_overwriting(tmp_path: Path) -> None:
    p = _profile(tmp_path / "p")
    env = {"PEERFORUM_PASSPHRASE": ""}
    code, out = _cli("backup", "--out", str(tmp_path / "b"), "--profile", str(p.root),
                     env={"PEERFORUM_PASSPHRASE": None})  # no terminal
    assert code == 2 and "--passphrase-file" in out["message"]
    (tmp_path / "b").write_bytes(b"keep")
    code, out = _cli("backup", "--out", str(tmp_path / "b"), "--profile", str(p.root), env=env)
    assert code == 1 and out["error"] == "backup.exists"
    assert (tmp_path / "b").read_bytes() == b"keep"
    code, out = _cli("backup", "--out", str(tmp_path / "c"), "--profile", str(p.root), env=env)
    assert code == 1 and out["error"] == "backup.weak_passphrase"
    code, out = _cli("restore", str(tmp_path / "b"), "--profile", str(p.root), env=env)
    assert code == 1 and out["error"] == "backup.target"


def test_cli_reads_the_passphrase_file_first_line(made: tuple[Profile, Path],
                                                  tmp_path: Path) -> None:  # fmt: skip
    _, out = made
    pf = tmp_path / "pass.txt"
    pf.write_text(PASS + "\nignored second line\n")
    env = {"PEERFORUM_PASSPHRASE": "wrong one!!!!"}  # the file comes first
    code, got = _cli("restore", str(out), "--profile", str(tmp_path / "new"),
                     "--passphrase-file", str(pf), env=env)  # fmt: skip
    assert code == 0 and got["member"] == "@alice:acme.example" and got["epochs"] == 3
    pf.write_text("not the passphrase\n")
    code, got = _cli("restore", str(out), "--profile", str(tmp_path / "other"),
                     "--passphrase-file", str(pf))  # fmt: skip
    assert code == 1 and got["error"] == "backup.passphrase"
    assert not (tmp_path / "other").exists()
