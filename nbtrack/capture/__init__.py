"""Pure snapshot functions: they read the world (files, git, the interpreter) and return values.

Nothing here talks to MLflow or imports IPython; the tracker combines what they return.
"""
