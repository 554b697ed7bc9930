"""vhbackup: server backups with restic."""

__version__ = "0.2.0.dev1"
