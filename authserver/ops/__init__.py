"""Running a deployment: purge, reaper, maintenance, logging, clean exit."""
