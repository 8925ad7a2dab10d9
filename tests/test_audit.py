"""The audit log: complete, filterable, append-only, and tamper-evident."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import httpx
import pytest

from .support import OWNER, Server, invite, login


def verify(server: Server) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spacechat_plugin", "audit", "verify", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )


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

    conn = sqlite3.connect(server.data_dir / "spacechat.db")
    target = entries[len(entries) // 2]["id"]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET action = 'auth.nothing' WHERE id = ?", (target,))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE id = ?", (target,))
    # Someone with the file drops the guard and rewrites history: the chain names the row.
    conn.execute("DROP TRIGGER audit_log_append_only_update")
    conn.execute('UPDATE audit_log SET details = \'{"email":"someone-else@example.com"}\' WHERE id = ?', (target,))
    conn.commit()
    conn.close()
    broken = verify(server)
    assert broken.returncode == 1
    assert f"BROKEN at row {target}:" in broken.stdout
    assert "altered" in broken.stdout


def test_a_deleted_row_breaks_the_chain(server: Server) -> None:
    for _ in range(3):
        login(server, OWNER["email"], OWNER["password"])
    conn = sqlite3.connect(server.data_dir / "spacechat.db")
    conn.execute("DROP TRIGGER audit_log_append_only_delete")
    conn.execute("DELETE FROM audit_log WHERE id = 2")
    conn.commit()
    conn.close()
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
