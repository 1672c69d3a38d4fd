"""A member backs up their device with the CLI and restores it elsewhere, on a real node.

The restored profile is the same device: it logs in afresh (the backup holds no session
token), reads the forum it read before, posts, and the original device reads that post.
The CLI runs with its default Argon2id cost (64 MiB, t=3, p=4) here, once each way."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from cli.member import MemberClient
from cli.member.backup import open_sealed

from .conftest import Nodes
from .harness import run_cli

PASS = "a long backup passphrase for alice"
TEXT = "backup-marker-41d0: only members read this"


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = run_cli(*args, "--json", env=env, timeout=60)
    return result.returncode, json.loads(result.stdout)


def test_backup_then_restore_reads_the_forum(nodes: Nodes, tmp_path: Path) -> None:
    data, port = nodes.init()
    node = nodes.serve(data, port)
    code, added = _cli("member", "add", "alice", "--org", "Acme", "--data", str(data))
    assert code == 0, added
    alice = MemberClient.enroll(tmp_path / "alice", node.url, added["enrollment_code"])
    forum = alice.create_forum("Backup circle", None)
    alice.post(forum, TEXT)
    token = alice.profile.settings()["token"]
    assert token

    out = tmp_path / "alice.pfkeys"
    env = {"PEERFORUM_PASSPHRASE": PASS}
    code, made = _cli("client", "backup", "--out", str(out), "--profile", str(alice.profile.root),
                      env=env)  # fmt: skip
    assert code == 0, made
    assert made["member"] == alice.member and made["kid"] == alice.sign_key.key_id
    assert made["forums"] == 1 and made["epochs"] >= 1 and made["nodes"] >= 1
    assert made["kdf"] == {"alg": "argon2id", "m_kib": 65536, "t": 3, "p": 4}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert token.encode() not in out.read_bytes()
    assert "token" not in json.dumps(open_sealed(out.read_bytes(), PASS)["profile"])

    again, _ = _cli("client", "backup", "--out", str(out), "--profile", str(alice.profile.root),
                    env=env)  # fmt: skip
    assert again == 1  # refuses to overwrite without --force

    pf = tmp_path / "pass.txt"
    pf.write_text("not alice's passphrase\n")
    new = tmp_path / "restored"
    code, wrong = _cli("client", "restore", str(out), "--profile", str(new),
                       "--passphrase-file", str(pf))  # fmt: skip
    assert code == 1 and wrong["error"] == "backup.passphrase", wrong
    assert "wrong passphrase" in wrong["message"] and not new.exists()

    pf.write_text(PASS + "\n")
    code, restored = _cli("client", "restore", str(out), "--profile", str(new),
                          "--passphrase-file", str(pf))  # fmt: skip
    assert code == 0, restored
    assert restored["member"] == alice.member and restored["kid"] == alice.sign_key.key_id
    assert json.loads((new / "profile.json").read_text())["token"] is None
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in new.iterdir())

    code, read = _cli("forum", "read", forum, "--profile", str(new))
    assert code == 0, read
    assert [e["body"]["text"] for e in read["entries"] if e["type"] == "post"] == [TEXT]
    assert not any(e.get("unreadable") for e in read["entries"])

    back = MemberClient(new)
    back.post(forum, "posted from the restored device")
    texts = [e["body"]["text"] for e in alice.read(forum)["entries"] if e["type"] == "post"]
    assert texts == [TEXT, "posted from the restored device"]
