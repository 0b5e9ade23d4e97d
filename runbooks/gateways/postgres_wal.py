"""The way back after ``pg_upgrade --link`` or ``--swap``: a base backup and archived WAL.

Once the new cluster has started, the old data directory is unusable (link: the files are
shared and the new server has written them; swap: they were moved). The way back is
PostgreSQL's point-in-time recovery ("Continuous Archiving and Point-in-Time Recovery"):

- WAL archiving is on (``archive_mode``, ``archive_command`` copying each finished segment
  into the run's ``wal`` directory) from before the base backup until the old cluster stops;
- the base backup (``pg_basebackup``) is checked against its manifest (``pg_verifybackup``);
- a clean shutdown with archiving on switches to a new segment first, so the archive holds
  every record before the shutdown checkpoint (measured: the zero-loss test passes without
  the next step); still, once the old cluster is down, the segments left in its ``pg_wal``
  up to the shutdown checkpoint's (an archiver that lagged or failed) are saved into the
  archive, as the documentation's recovery procedure does with "unarchived WAL segment
  files", and the archive is checked to run without a gap from the backup's start to the
  shutdown checkpoint;
- restoring = the base backup copied into a data directory, ``recovery.signal``, and a
  ``restore_command`` reading the archive: recovery replays to the end of the archived WAL,
  which ends at the shutdown checkpoint, i.e. every write committed before the stop.

Nothing here runs a command; the gateway (``postgres_upgrade``) does.
"""

from __future__ import annotations

import re
import shlex

SEGMENT = re.compile(r"\A[0-9A-F]{24}\Z")


def archive_command(wal_dir: str) -> str:
    """The documentation's archive command: never overwrite an archived segment.

    >>> archive_command("/srv/wal")
    'test ! -f /srv/wal/%f && cp %p /srv/wal/%f'
    """
    wal = shlex.quote(wal_dir)
    return f"test ! -f {wal}/%f && cp %p {wal}/%f"


def restore_command(wal_dir: str) -> str:
    """
    >>> restore_command("/srv/wal")
    'cp /srv/wal/%f %p'
    """
    return f"cp {shlex.quote(wal_dir)}/%f %p"


def server_options(settings: dict[str, str]) -> str:
    """``pg_ctl -o`` text setting ``settings`` on the server's command line (pg_ctl runs it
    through a shell).

    >>> server_options({"archive_mode": "on", "archive_command": "cp %p '/w/%f'"})
    '-c archive_mode=on -c \\'archive_command=cp %p \\'"\\'"\\'/w/%f\\'"\\'"\\'\\''
    """
    return " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items())


def segment_number(name: str, segment_bytes: int) -> tuple[int, int]:
    """(timeline, segment number) of a WAL file name.

    >>> segment_number("000000010000000200000003", 16 * 2**20)
    (1, 515)
    """
    if not SEGMENT.match(name):
        raise ValueError(f"{name!r} is not a WAL segment name")
    per_id = 0x100000000 // segment_bytes
    return int(name[:8], 16), int(name[8:16], 16) * per_id + int(name[16:], 16)


def gaps(names: list[str], first: str, last: str, segment_bytes: int) -> list[str]:
    """Segments of ``first``'s timeline from ``first`` to ``last`` missing from ``names``.

    >>> gaps(["000000010000000000000002", "000000010000000000000004"],
    ...      "000000010000000000000002", "000000010000000000000004", 16 * 2**20)
    ['000000010000000000000003']
    """
    per_id = 0x100000000 // segment_bytes
    timeline, lo = segment_number(first, segment_bytes)
    _, hi = segment_number(last, segment_bytes)
    have = {segment_number(n, segment_bytes) for n in names if SEGMENT.match(n)}
    return [
        f"{timeline:08X}{n // per_id:08X}{n % per_id:08X}"
        for n in range(lo, hi + 1)
        if (timeline, n) not in have
    ]


def start_wal_file(backup_label: str) -> str:
    """The first segment a base backup needs, from its ``backup_label``.

    >>> start_wal_file("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\\n")
    '000000010000000000000002'
    """
    found = re.search(r"START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)", backup_label)
    if found is None:
        raise ValueError("backup_label names no start WAL file")
    return found.group(1)
