"""Pure logic of the database upgrade: fingerprints, checks, estimates, the pg_restore shim."""

from __future__ import annotations

import subprocess

import pytest

from runbooks.gateways import postgres_facts as facts
from runbooks.gateways import postgres_parallel as parallel
from runbooks.gateways.postgres_facts import TableSum

A = {"db": {"public.t": TableSum(2, "aa"), "public.u": TableSum(0, "")}}


@pytest.mark.parametrize(
    ("actual", "expected_problems"),
    [
        (A, []),
        ({}, ["database db is missing"]),
        ({**A, "other": {}}, ["database other is unexpected"]),
        ({"db": {"public.t": TableSum(2, "aa")}}, ["db: table public.u is missing"]),
        (
            {"db": {**A["db"], "public.v": TableSum(1, "x")}},
            ["db: table public.v is unexpected"],
        ),
        (
            {"db": {**A["db"], "public.t": TableSum(3, "aa")}},
            ["db: public.t has 3 rows, expected 2"],
        ),
        (
            {"db": {**A["db"], "public.t": TableSum(2, "bb")}},
            ["db: public.t checksum bb, expected aa"],
        ),
    ],
)
def test_compare_fingerprints(actual: facts.Fingerprints, expected_problems: list[str]) -> None:
    assert facts.compare_fingerprints(A, actual) == expected_problems


def test_fingerprints_round_trip_through_json() -> None:
    assert facts.fingerprints_from_json(facts.fingerprints_to_json(A)) == A


def test_parse_fingerprint_output_ignores_other_lines() -> None:
    text = 'SET\n{"table" : "public.t", "rows" : 5, "checksum" : "ab"}\n\n'
    assert facts.parse_fingerprint_output(text) == {"public.t": TableSum(5, "ab")}


def test_fingerprint_script_pins_settings_and_reads_one_snapshot() -> None:
    script = facts.fingerprint_script()
    assert script.index("SET TimeZone = 'UTC'") < script.index("BEGIN ISOLATION LEVEL REPEATABLE")
    assert "\\gexec" in script and script.rstrip().endswith("COMMIT;")
    assert "pg_export_snapshot" not in script


def test_the_backup_dump_runs_in_the_fingerprint_snapshot() -> None:
    script = facts.fingerprint_script(["pg_dump", "-f", "/b/x y.dump"], "/b/.rc")
    export = script.index("pg_export_snapshot()")
    dump = script.index("\\! pg_dump -f '/b/x y.dump' --snapshot=\"$RB_SNAPSHOT\"")
    assert export < dump < script.index("\\gexec")
    assert "echo $? > /b/.rc" in script
    with pytest.raises(ValueError, match="rc_file"):
        facts.fingerprint_script(["pg_dump"])


@pytest.mark.parametrize(
    ("old_has_checksums", "flag"),
    [(False, "--no-data-checksums"), (True, "--data-checksums")],
)
def test_the_new_cluster_matches_the_old_checksum_setting(
    old_has_checksums: bool, flag: str
) -> None:
    assert facts.initdb_checksum_flag(old_has_checksums) == flag


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ("postgres (PostgreSQL) 18.6", 18),
        ("pg_upgrade (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", 15),
        ("postgres (PostgreSQL) 9.6.24", 9),
    ],
)
def test_parse_binary_version(text: str, major: int) -> None:
    assert facts.parse_binary_version(text) == major


def test_parse_controldata() -> None:
    text = "Database system identifier:           7441\nData page checksum version:           0\n"
    assert facts.parse_controldata(text) == {
        "Database system identifier": "7441",
        "Data page checksum version": "0",
    }


def test_downtime_and_space_grow_with_data_and_clone_needs_no_copy() -> None:
    small, big = facts.estimate_downtime_s(10**6), facts.estimate_downtime_s(10**10)
    assert facts.FIXED_DOWNTIME_S < small < big
    assert facts.estimate_downtime_s(10**10, "clone") < big
    assert facts.space_needed(10**9, 10**8) > facts.space_needed(10**9, 10**8, "clone")


@pytest.mark.parametrize("mode", ["clone", "link", "swap"])
def test_only_the_copy_grows_the_downtime(mode: str) -> None:
    """Nothing but copy mode's copy grows with the data while writers are stopped: the
    tables are read in the opening's snapshots after the downtime, not in two passes in it."""
    assert facts.estimate_downtime_s(10**12, mode) == facts.FIXED_DOWNTIME_S
    assert facts.estimate_downtime_s(10**9) == facts.FIXED_DOWNTIME_S + 10**9 / 150e6


def test_carried_settings_leave_out_paths() -> None:
    settings = {"port": "5432", "data_directory": "/old", "hba_file": "/old/hba", "x": "it's"}
    carried = facts.carried_settings(settings)
    assert carried == {"port": "5432", "x": "it's"}
    assert "x = 'it''s'" in facts.config_block(carried, 15)


def test_unknown_column_options() -> None:
    counts = {"pg_attver": 40, "n_distinct": 2, "n_distinct_inherited": 1}
    assert facts.unknown_column_options(counts) == {"pg_attver": 40}


@pytest.mark.parametrize(
    ("line", "filtered"),
    [
        ('ALTER TABLE ONLY "s"."t" ALTER COLUMN "a" SET (pg_attver=22713472);', ""),
        (
            'ALTER TABLE ONLY "t" ALTER COLUMN "a" SET (pg_attver=1, n_distinct=5);',
            'ALTER TABLE ONLY "t" ALTER COLUMN "a" SET (n_distinct=5);',
        ),
        (
            'ALTER TABLE ONLY "t" ALTER COLUMN "a" SET (n_distinct=5, pg_attver=1);',
            'ALTER TABLE ONLY "t" ALTER COLUMN "a" SET (n_distinct=5);',
        ),
        ("INSERT INTO t VALUES ('pg_attver=1');", "INSERT INTO t VALUES ('pg_attver=1');"),
    ],
)
def test_option_filter_removes_only_the_refused_option(line: str, filtered: str) -> None:
    args = [a for e in facts.option_filter_sed(["pg_attver"]) for a in ("-e", e)]
    out = subprocess.run(
        ["sed", "-E", *args], input=line + "\n", capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == filtered


def test_pg_restore_shim_is_valid_bash() -> None:
    shim = facts.pg_restore_shim("/opt/pg 18/bin", ["pg_attver"])
    assert "'/opt/pg 18/bin/pg_restore'" in shim
    subprocess.run(["bash", "-n"], input=shim, text=True, check=True)


def test_parallel_scripts_split_big_tables_into_page_ranges_that_cover_everything() -> None:
    scripts = parallel.parallel_scripts({"public.big": 10_000, "public.small": 3}, 3)
    assert len(scripts) == 3
    ranges = [line for s in scripts for line in s.splitlines() if "public.big" in line]
    assert len(ranges) == 3
    assert "ctid >= '(0,0)'::tid AND ctid < '(3334,0)'::tid" in "".join(ranges)
    assert any(r.endswith("WHERE ctid >= '(6668,0)'::tid;") for r in ranges)  # open-ended
    assert sum(s.count("public.small") for s in scripts) == 2  # literal + identifier, once
    assert all(s.startswith(facts.FINGERPRINT_SETTINGS) for s in scripts)
    assert parallel.parallel_scripts({"t": 10_000}, 1)[0].count("SELECT json") == 1


def test_parts_add_up() -> None:
    a = '{"table" : "public.t", "rows" : 2, "checksum" : "-5"}\n'
    b = '{"table" : "public.t", "rows" : 3, "checksum" : "7"}\n{"table": "x", "rows": 0, ' + (
        '"checksum": "0"}'
    )
    assert parallel.add_parts([a, b]) == {"public.t": TableSum(5, "2"), "x": TableSum(0, "0")}
