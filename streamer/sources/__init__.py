"""Sources: each yields commit-bounded chunks of source rows with a resumable position."""
