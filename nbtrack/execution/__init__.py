"""Running notebooks: papermill in a child process (runner) and the pre-forked kernel server.

May import: capture, errors, settings. Knows nothing of grids or reproduction (they call it).
"""
