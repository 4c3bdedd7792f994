"""stub"""

from bench._common import RunContext, Section


def run(ctx: RunContext) -> list[Section]:
    return []
