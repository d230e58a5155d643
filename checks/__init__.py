"""One module per runbook step. Each exposes ``async def run(ctx) -> list[Finding]``."""
