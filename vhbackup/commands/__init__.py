"""One module per command; ``cli`` registers them in this order."""

COMMANDS = ("config", "init", "backup", "restore", "prune", "verify", "status", "drill", "notify", "unlock")
