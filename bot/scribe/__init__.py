"""The scribe: incidents, the timeline's entries, the run of show and tasks, names, reminders."""
