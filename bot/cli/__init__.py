"""The ``rollbot`` command line."""
