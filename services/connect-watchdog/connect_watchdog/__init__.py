"""connect-watchdog: a deployable of its own, run by the native launcher and by docker-compose alike."""
