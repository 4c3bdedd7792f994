"""stub"""

from bench._common import RunContext, Section


def run_idle(ctx: RunContext) -> list[Section]:
    return []


def run_workers(ctx: RunContext) -> list[Section]:
    return []
