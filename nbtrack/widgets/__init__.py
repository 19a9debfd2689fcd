"""Views only: they present what the core returns and never call MLflow themselves.

Owns the run card (``card``), the comparison panel (``compare/``: table, plots, actions; its
JavaScript in .js files shipped as package data), the learning curves (``curves``), the live
view under a running cell (``live``), the registry panel (``registry_panel/``), the static HTML
fallbacks (``static``) and one helper for escaping and formatting (``_html``).

May import, of nbtrack: ``query`` (the read side), ``record``, ``errors``, ``settings``, ``log``
and each other. Everything else comes in as data or callbacks from the caller (the facade, or
the magic for the card and the live view): the store's address, a listener registration for the
live view, a ``RegistrySource`` of reads and moves for the registry panel.
"""
