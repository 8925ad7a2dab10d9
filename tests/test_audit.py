"""The audit log: complete, filterable, append-only, and tamper-evident."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from spacechat_plugin.store.audit import row_hash

from .support import OWNER, RawStore, Server, invite, login, toml_config, wait_until


def verify(server: Server) -> subprocess.CompletedProcess[str]:
    return server.cli("audit", "verify")


def drop_guard(store: RawStore, trigger: str) -> None:
    """What someone with the database's owner rights can do: drop an append-only trigger."""
    store.execute(f"DROP TRIGGER {trigger}" + (" ON audit_log" if store.postgres else ""))


def test_chain_verifies_then_names_the_altered_row(server: Server) -> None:
    member = invite(server, server.token, "member")
    login(server, member.user["email"], "wrong password here")
    with httpx.Client(base_url=server.url, headers=server.auth) as client:
        client.post("/v1/channels", json={"name": "secret-plans", "private": True})
        entries = client.get("/v1/audit", params={"limit": 500}).json()["entries"]
    assert len(entries) >= 6
    ok = verify(server)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{len(entries)} rows, chain intact" in ok.stdout

    target = entries[len(entries) // 2]["id"]
    with server.raw_store() as store:
        with pytest.raises(store.error, match="append-only"):
            store.execute("UPDATE audit_log SET action = 'auth.nothing' WHERE id = ?", (target,))
        with pytest.raises(store.error, match="append-only"):
            store.execute("DELETE FROM audit_log WHERE id = ?", (target,))
        # Someone with the database drops the guard and rewrites history: the chain names the row.
        drop_guard(store, "audit_log_append_only_update")
        store.execute('UPDATE audit_log SET details = \'{"email":"someone-else@example.com"}\' WHERE id = ?', (target,))
    broken = verify(server)
    assert broken.returncode == 1
    assert f"BROKEN at row {target}:" in broken.stdout
    assert "altered" in broken.stdout


def test_a_deleted_row_breaks_the_chain(server: Server) -> None:
    for _ in range(3):
        login(server, OWNER["email"], OWNER["password"])
    with server.raw_store() as store:
        drop_guard(store, "audit_log_append_only_delete")
        store.execute("DELETE FROM audit_log WHERE id = 2")
    result = verify(server)
    assert result.returncode == 1 and "BROKEN at row 2: row 2 is missing" in result.stdout


def test_audit_queries_filter_and_need_audit_read(server: Server) -> None:
    member = invite(server, server.token, "member")
    login(server, OWNER["email"], OWNER["password"])
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v1/audit", headers=member.auth).status_code == 403
        everything = client.get("/v1/audit", headers=server.auth).json()["entries"]
        assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
        logins = client.get("/v1/audit", params={"action": "auth.login"}, headers=server.auth).json()["entries"]
        assert logins and all(e["action"] == "auth.login" for e in logins)
        auth = client.get("/v1/audit", params={"action": "auth."}, headers=server.auth).json()["entries"]
        assert {e["action"] for e in auth} >= {
            "auth.setup",
            "auth.login",
            "auth.token_created",
            "auth.invitation_accepted",
        }
        mine = client.get("/v1/audit", params={"actor": member.id}, headers=server.auth).json()["entries"]
        assert mine and all(e["actor"]["id"] == member.id for e in mine)
        middle = everything[len(everything) // 2]["ts"]
        since = client.get("/v1/audit", params={"since": middle}, headers=server.auth).json()["entries"]
        until = client.get("/v1/audit", params={"until": middle}, headers=server.auth).json()["entries"]
        assert all(e["ts"] >= middle for e in since) and all(e["ts"] < middle for e in until)
        assert len(since) + len(until) == len(everything)
        page = client.get("/v1/audit", params={"limit": 2}, headers=server.auth).json()
        nxt = client.get("/v1/audit", params={"limit": 2, "before": page["next_before"]}, headers=server.auth).json()
        assert [e["id"] for e in nxt["entries"]] == [e["id"] for e in everything[2:4]]
        bad = client.get("/v1/audit", params={"since": "last tuesday"}, headers=server.auth)
        assert bad.status_code == 400


AUDIT_COLUMNS = (
    "id, ts, org_id, actor_kind, actor_id, action, target_type, target_id, ip, outcome, details, prev_hash, hash"
)


def rechain_from(store: RawStore, first: int) -> None:
    """What an attacker with the database does after rewriting a row: recompute every hash from it on."""
    names = AUDIT_COLUMNS.split(", ")
    rows = [
        dict(zip(names, r, strict=True))
        for r in store.execute(f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id >= ? ORDER BY id", (first,))
    ]
    previous = store.execute("SELECT hash FROM audit_log WHERE id = ?", (first - 1,))[0][0]
    for row in rows:
        row["prev_hash"] = previous
        row["hash"] = row_hash(row)
        store.execute(
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", (row["prev_hash"], row["hash"], row["id"])
        )
        previous = row["hash"]


def tampered_copy(source: Server, target: Path, tamper: Any) -> Server:
    """A copy of the stopped server's data (directory, and its Postgres database on Postgres),
    its audit log's guards dropped and then `tamper(store)` done to it."""
    copy = source.copy(target)
    with copy.raw_store() as store:
        drop_guard(store, "audit_log_append_only_update")
        drop_guard(store, "audit_log_append_only_delete")
        tamper(store)
    return copy


def test_audit_tampering_drill(tmp_path: Path) -> None:
    """On copies of a stopped server's data dir: cut the tail, rewrite a row, rewrite and re-chain.
    `audit verify` names each; the checkpoints and the log line hold the head outside the file."""
    server = Server(tmp_path / "data", toml_config()).start()
    for _ in range(4):
        login(server, OWNER["email"], OWNER["password"])
    head = server.cli("audit", "head")
    assert head.returncode == 0, head.stderr
    witnessed = head.stdout.strip()
    row_id, _, digest = witnessed.partition(":")
    # The head is in the structured log too (shipped off the machine, it is a copy nobody here can edit).
    assert any('"audit_row": ' + row_id in line and digest in line for line in server.output)
    server.stop()
    last = int(row_id)
    assert last >= 5
    ok = server.cli("audit", "verify")
    assert ok.returncode == 0 and f"{last} rows, chain intact, anchored at row {last}" in ok.stdout, ok.stdout

    truncated = tampered_copy(
        server, tmp_path / "truncated", lambda s: s.execute("DELETE FROM audit_log WHERE id >= ?", (last - 1,))
    )
    result = truncated.cli("audit", "verify")
    assert result.returncode == 1
    assert f"TRUNCATED: the log ends at row {last - 2} but a checkpoint records row {last}" in result.stdout

    altered = tampered_copy(
        server, tmp_path / "altered", lambda s: s.execute("UPDATE audit_log SET ip = '10.6.6.6' WHERE id = 3")
    )
    result = altered.cli("audit", "verify")
    assert (
        result.returncode == 1
        and "BROKEN at row 3: its contents do not match its hash (the row was altered)" in result.stdout
    )

    def rewrite_and_rechain(store: RawStore) -> None:
        store.execute("UPDATE audit_log SET ip = '10.6.6.6' WHERE id = 3")
        rechain_from(store, 3)

    rechained = tampered_copy(server, tmp_path / "rechained", rewrite_and_rechain)
    result = rechained.cli("audit", "verify")
    assert result.returncode == 1 and "RE-CHAINED at or before row" in result.stdout, result.stdout

    # With the checkpoint file deleted too, the log itself says so; an external witness's head
    # (from `audit head`) still catches the rewrite.
    (rechained.data_dir / "audit.checkpoints").unlink()
    result = rechained.cli("audit", "verify")
    assert result.returncode == 1 and "UNANCHORED" in result.stdout
    result = rechained.cli("audit", "verify", "--expect", witnessed)
    assert result.returncode == 1 and f"RE-CHAINED at or before row {last}" in result.stdout


def test_the_instance_role_is_granted_with_the_cli_and_audited(server: Server) -> None:
    admin = invite(server, server.token, "admin")
    with httpx.Client(base_url=server.url) as client:
        refused = client.post("/v1/ops/instance/recover", json={"reason": "try"}, headers=admin.auth)
        assert refused.status_code == 403 and refused.json()["error"]["details"]["scope"] == "instance:operate"
        assert "instance:operate" not in client.get("/v1/me", headers=admin.auth).json()["scopes"]
    granted = server.cli("instance", "grant", admin.user["email"])
    assert granted.returncode == 0 and "now holds the instance role" in granted.stdout, granted.stderr
    listed = server.cli("instance", "list")
    assert admin.user["email"] in listed.stdout and OWNER["email"] in listed.stdout
    with httpx.Client(base_url=server.url, headers=admin.auth) as client:
        wait_until(lambda: "instance:operate" in client.get("/v1/me").json()["scopes"])
        entries = client.get("/v1/audit", params={"action": "instance."}).json()["entries"]
    assert [(e["action"], e["target"]["id"], e["actor"]) for e in entries] == [
        ("instance.role_granted", admin.id, {"kind": "system", "id": "cli"})
    ]
    revoked = server.cli("instance", "revoke", admin.user["email"])
    assert revoked.returncode == 0 and "no longer holds" in revoked.stdout
    unknown = server.cli("instance", "grant", "nobody@example.com")
    assert unknown.returncode != 0 and "nobody active has the email" in unknown.stderr
    assert server.cli("audit", "verify").returncode == 0  # the CLI's audit rows are anchored too
