"""vhbackup: server backups with restic."""

__version__ = "0.1.0"
