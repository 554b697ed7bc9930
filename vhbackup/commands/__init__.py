"""One module per command; ``cli`` registers them in this order."""

COMMANDS = ("config", "init", "backup", "restore", "unlock")
