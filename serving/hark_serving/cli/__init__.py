"""The `hark` command line. Commands import their heavy dependencies when they run."""
