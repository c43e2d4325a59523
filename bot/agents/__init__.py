"""The tools coding agents reach through the Model Context Protocol."""
