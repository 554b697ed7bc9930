"""Deterministic benchmark data: a file tree of 10 services, a pgbench database, a MariaDB table.

Everything derives from the seed, so two runs with the same scale and seed
back up byte-identical trees and databases.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
from dataclasses import dataclass

from bench.measure import quiet

SERVICES = 10
WORDS = ("backup restic server policy service database dump restore snapshot repository config nginx "
         "postgres mariadb upload index cache session user order invoice report log error warning info "
         "request response timeout retry queue worker cron mail alert metric disk memory cpu").split()

PG = ("-h", "127.0.0.1", "-p", "5432", "-U", "postgres")
MY = ("-h", "127.0.0.1", "-P", "3306", "-u", "root")


@dataclass(frozen=True)
class Tree:
    root: str
    services: tuple[str, ...]
    files: tuple[str, ...]
    total_bytes: int

    def service_path(self, name: str) -> str:
        return os.path.join(self.root, name)


_POOL: dict[int, bytes] = {}
POOL_BYTES = 8 << 20


def _pool(seed: int) -> bytes:
    """8 MiB of log-like text lines from the seed; text files are slices of it at random offsets."""
    if seed not in _POOL:
        rng = random.Random(seed ^ 0x5EED)
        out, n = [], 0
        while n < POOL_BYTES:
            line = " ".join(rng.choices(WORDS, k=rng.randint(4, 14))) + f" {rng.getrandbits(32):08x}\n"
            out.append(line)
            n += len(line)
        _POOL[seed] = "".join(out).encode()
    return _POOL[seed]


def _text(rng: random.Random, size: int) -> bytes:
    """Text-like bytes (compressible like a log); a slice of the pool at a random offset, so every file differs."""
    pool = _pool(0)
    out, n = [], 0
    while n < size:
        start = rng.randrange(len(pool) - 1)
        piece = pool[start:start + size - n]
        out.append(piece)
        n += len(piece)
    return b"".join(out)


def _content(rng: random.Random, size: int, binary: bool) -> bytes:
    return rng.randbytes(size) if binary else _text(rng, size)


def make_tree(root: str, services: int, files_per_service: int, bytes_per_service: int, seed: int) -> Tree:
    """Per service: many small text-like files and ~2% large incompressible ones, ``bytes_per_service`` in all.

    Small files are 512 B to 32 KiB (log-uniform), large ones share the rest
    of the service's bytes. Directories nest two levels below each service.
    """
    rng = random.Random(seed)
    shutil.rmtree(root, ignore_errors=True)
    names = tuple(f"svc{i:02d}" for i in range(services))
    paths, written = [], 0
    for svc in names:
        large = max(1, files_per_service // 50)
        small_sizes = [int(2 ** rng.uniform(9, 15)) for _ in range(files_per_service - large)]
        rest = max(bytes_per_service - sum(small_sizes), large * 65536)
        weights = [rng.uniform(0.5, 1.5) for _ in range(large)]
        large_sizes = [int(rest * w / sum(weights)) for w in weights]
        sizes = [(s, False) for s in small_sizes] + [(s, True) for s in large_sizes]
        rng.shuffle(sizes)
        for i, (size, binary) in enumerate(sizes):
            sub = os.path.join(root, svc, f"d{rng.randrange(8)}", f"e{rng.randrange(8)}")
            os.makedirs(sub, exist_ok=True)
            path = os.path.join(sub, f"f{i:06d}.{'bin' if binary else 'txt'}")
            with open(path, "wb") as fh:
                fh.write(_content(rng, size, binary))
            paths.append(path)
            written += size
    return Tree(root=root, services=names, files=tuple(paths), total_bytes=written)


def change_files(tree: Tree, fraction: float, seed: int) -> int:
    """Rewrite ``fraction`` of the files (same size, new content); returns how many."""
    rng = random.Random(seed)
    chosen = rng.sample(tree.files, max(1, int(len(tree.files) * fraction)))
    for path in chosen:
        size = os.path.getsize(path)
        with open(path, "wb") as fh:
            fh.write(_content(rng, size, path.endswith(".bin")))
    return len(chosen)


def read_tree(root: str) -> None:
    """Read every file once so that the first timed contender does not pay for a cold page cache."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as fh:
                while fh.read(1 << 20):
                    pass


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


# --- PostgreSQL ---------------------------------------------------------------

def pg_create(name: str, scale: int) -> None:
    quiet(["createdb", *PG, name])
    quiet(["pgbench", "-q", "-i", "-s", str(scale), *PG, name])


def pg_psql(name: str, sql: str) -> str:
    return quiet(["psql", *PG, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", name, "-c", sql]).decode()


def pg_change_rows(name: str, fraction: float, seed: int) -> None:
    """Update ``fraction`` of pgbench_accounts rows (every 1/fraction-th aid, offset by the seed)."""
    step = max(1, round(1 / fraction))
    pg_psql(name, f"UPDATE pgbench_accounts SET abalance = abalance + 1, filler = md5((aid + {seed})::text) "
                  f"WHERE aid % {step} = {seed % step}")


def pg_drop(name: str) -> None:
    quiet(["dropdb", *PG, "--if-exists", name])


def pg_size(name: str) -> int:
    return int(pg_psql(name, f"SELECT pg_database_size('{name}')").strip())


# --- MariaDB --------------------------------------------------------------------

def my_sql(sql: str, database: str | None = None) -> str:
    return quiet(["mysql", *MY, "-N", "-B", *([database] if database else []), "-e", sql]).decode()


def my_create(name: str, rows: int) -> None:
    """One InnoDB table of generated rows, filled from MariaDB's sequence engine (deterministic)."""
    my_sql(f"CREATE DATABASE `{name}`")
    my_sql("CREATE TABLE items (id INT PRIMARY KEY, sku VARCHAR(32), qty INT, price DECIMAL(10,2), "
           "note VARCHAR(200)) ENGINE=InnoDB", name)
    my_sql(f"INSERT INTO items SELECT seq, CONCAT('sku-', seq), seq % 997, (seq % 10007) / 100, "
           f"CONCAT(MD5(seq), ' ', SHA1(seq), ' ', MD5(seq * 7)) FROM seq_1_to_{rows}", name)


def my_drop(name: str) -> None:
    my_sql(f"DROP DATABASE IF EXISTS `{name}`")
