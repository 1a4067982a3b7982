"""The zero-downtime rule of docs/upgrading.md, enforced: every migration is
applied to a populated database while the code of the previous head keeps
writing and reading (and restarting), and nothing is lost or refused.

The previous head's code comes from git history: for revision R, the commit that
added R's file has a parent whose code knows R's down-revision as its head;
``git archive`` of that parent is run in a subprocess (tests/store/old_workload.py)
against the database while this process migrates it to R.

The machinery checks itself with two made-up next migrations: an expand step
(passes) and a contract step that drops a column the old code writes (caught).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from collector.store.postgres import migrate
from serverproc import REPO

VERSIONS = "collector/store/postgres/migrations/versions"
WORKLOAD = Path(__file__).resolve().parent / "old_workload.py"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout


def _pairs() -> list[tuple[str, str]]:
    return [(down, rev) for rev, down, _ in migrate.history() if down is not None]


def previous_head_code(revision: str, dest: Path) -> Path:
    """The source tree whose newest migration is ``revision``'s down-revision:
    the parent of the commit that added ``revision``'s file to main. Along the
    first-parent line, so a migration that arrives by a merge is found at the
    merge, whose first parent is main before it (a branch's own numbering before
    the merge never counts)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("the zero-downtime test needs the git history") if os.environ.get("CI") else \
            pytest.skip("no git history here")
    try:
        added = _git("log", "--first-parent", "--diff-merges=first-parent", "--no-renames", "--no-patch",
                     "--diff-filter=A",
                     "--format=%H", "--", f"{VERSIONS}/{revision}_*.py").split()
    except subprocess.CalledProcessError as e:
        pytest.fail(f"git log failed: {e.stderr}")
    if not added:
        pytest.fail(f"migration {revision} is not committed yet: commit it, then run this test")
    return archive(f"{added[-1]}^", dest)


def archive(commit: str, dest: Path) -> Path:
    """The code (collector/, alerting/) of ``commit``, unpacked under ``dest/old``."""
    tar = dest / "old.tar"
    with open(tar, "wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", commit, "collector", "alerting"], stdout=f, check=True)
    with tarfile.open(tar) as t:
        t.extractall(dest / "old", filter="data")
    return dest / "old"


def run_with_old_code(old_code: Path, dsn: str, work: Path, migrate_to: str, extra_versions=()) -> dict:
    """The old code writes and reads while the database goes to ``migrate_to``."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(old_code)}
    proc = subprocess.Popen([sys.executable, str(WORKLOAD), dsn, str(work)], env=env, cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while not (work / "started").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "the old code did not start"
            time.sleep(0.05)
        time.sleep(0.5)                                     # a few rounds before the migration
        saved = list(migrate.EXTRA_VERSIONS)
        migrate.EXTRA_VERSIONS[:] = [str(p) for p in extra_versions]
        try:
            migrate.upgrade(dsn, target=migrate_to)
        finally:
            migrate.EXTRA_VERSIONS[:] = saved
        (work / "migrated").touch()
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads((work / "result.json").read_text())
    result["output"] = out
    return result


def _stored(dsn: str) -> int:
    with psycopg.connect(dsn) as con:
        return int(con.execute("SELECT coalesce(sum(count), 0) FROM hist").fetchone()[0])


def _at(dsn: str, revision: str | None) -> None:
    """Bring a fresh database to ``revision`` (the previous head)."""
    if revision is not None:
        migrate.upgrade(dsn, target=revision)


@pytest.mark.parametrize("down,revision", _pairs() or [pytest.param(None, None, marks=pytest.mark.skip(
    reason="one migration so far: there is no previous head to run beside it (the machinery is checked below)"))])
def test_each_migration_keeps_the_previous_heads_code_working(pg_cluster, tmp_path, down, revision):
    dsn = pg_cluster.dsn(pg_cluster.create_database())
    _at(dsn, down)
    old = previous_head_code(revision, tmp_path)
    result = run_with_old_code(old, dsn, tmp_path / "work", revision)
    assert result["errors"] == [], result
    assert result["after_migration"] >= 5
    assert _stored(dsn) == result["spans"]


EXPAND = '''
"""Made up for the test: an expand step (a nullable column, a new table).
Revision ID: 9001
"""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None
OLDEST_COMPATIBLE = "{head}"


def upgrade():
    op.add_column("hist", sa.Column("exemplar", sa.Text, nullable=True))
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
    op.execute(sa.text("UPDATE meta SET value = :v WHERE key = 'schema_oldest_compatible'").bindparams(
        v=OLDEST_COMPATIBLE))


def downgrade():
    pass
'''

CONTRACT = EXPAND.replace("an expand step (a nullable column, a new table)", "a contract step done too early") \
    .replace('op.add_column("hist", sa.Column("exemplar", sa.Text, nullable=True))',
             'op.execute("DROP VIEW latency"); op.drop_column("hist", "p99")') \
    .replace('OLDEST_COMPATIBLE = "{head}"', 'OLDEST_COMPATIBLE = "9001"')


@pytest.mark.parametrize("kind", ["expand", "contract"])
def test_the_machinery_passes_an_expand_step_and_catches_a_contract_step(pg_cluster, tmp_path, kind):
    head = migrate.head()
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "9001_made_up.py").write_text(
        textwrap.dedent((EXPAND if kind == "expand" else CONTRACT).replace("{head}", head)))
    dsn = pg_cluster.dsn(pg_cluster.create_database())
    _at(dsn, head)
    # the code at head as committed (git archive, as for real revisions), else this tree
    in_git = shutil.which("git") and (REPO / ".git").exists() and \
        _git("ls-files", f"{VERSIONS}/{head}_*.py").strip()
    old = archive("HEAD", tmp_path) if in_git else REPO
    result = run_with_old_code(old, dsn, tmp_path / "work", "9001", extra_versions=[versions])
    if kind == "expand":
        assert result["errors"] == [], result
        assert result["after_migration"] >= 5 and _stored(dsn) == result["spans"]
        with psycopg.connect(dsn) as con:
            assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "9001"
    else:
        assert result["errors"], "dropping a column the previous code writes must be caught"
        assert any("p99" in e or "newer than this tocsin" in e for e in result["errors"]), result["errors"]
