"""Running a deployment: purge, reaper, the maintenance loop, logging, a clean exit."""
