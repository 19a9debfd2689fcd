"""The ways in: the IPython magic (``%%track``) and the ``nbtrack`` command line.

May import anything below it; nothing below imports it.
"""
