"""Alerts after a run (the notifiers arrive with their issue; until then nothing is sent)."""


def after_run(ctx, record) -> None:
    return None
